"""Screenshot of the "Undistort Selfie" dialog in real GIMP 3 (GUI under Xvfb, in the chroot).

    .venv/bin/python tests/gimp/screenshot.py [OUT.png]     (default: gimp/screenshot.png)

Starts Xvfb and gimp-console in the trixie chroot, opens the sample selfie and
calls the filter interactively: the plug-in's dialog is then the only window
on the (black) screen. A second process grabs the screen with GDK; the image
is cropped to the dialog.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gimp_chroot  # noqa: E402
import gimp_harness  # noqa: E402

from priorfx import samples  # noqa: E402

DISPLAY = ":87"
SIZE = (1400, 1000)

OPEN_DIALOG = r'''
import gi
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio
img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path("{image}"))
proc = Gimp.get_pdb().lookup_procedure("plug-in-priorfx-undistort-selfie")
cfg = proc.create_config()
cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
cfg.set_property("image", img)
cfg.set_core_object_array("drawables", img.get_layers())
proc.run(cfg)
'''

GRAB = r'''
import sys, gi
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk
Gdk.init([])
screen = Gdk.Screen.get_default()
root = screen.get_root_window()
w, h = root.get_width(), root.get_height()
pb = Gdk.pixbuf_get_from_window(root, 0, 0, w, h)
pb.savev(sys.argv[1], "png", [], [])
print("saved", w, h)
'''


def _crop_to_content(src: Path, dst: Path) -> None:
    """Crop the black Xvfb background away (the dialog is the only window)."""
    from priorfx import io as pio
    img = pio.read_image(src)[..., :3]
    ys, xs = (img.max(axis=2) > 0.02).nonzero()
    if len(ys) == 0:
        raise RuntimeError("the screen is black: the dialog did not open")
    pio.write_image(dst, img[ys.min():ys.max() + 1, xs.min():xs.max() + 1], bits=8)


def main(out: Path) -> int:
    root = gimp_chroot.build()
    with tempfile.TemporaryDirectory(prefix="priorfx-gimp-shot-") as tmp:
        work = gimp_harness.GimpWork(Path(tmp)).make()
        exe = Path(sys.executable).with_name("priorfx")
        subprocess.run([str(exe), "install", "gimp", "--plugins-dir", str(work.plugins_dir)], check=True)
        image = work.root / "selfie.jpg"
        shutil.copy(samples.sample_path("single_face.jpg"), image)
        (work.root / "grab.py").write_text(GRAB)
        env = gimp_harness.gimp_env(work, {"DISPLAY": DISPLAY, "NO_AT_BRIDGE": "1"})
        chroot_bin = shutil.which("chroot") or "/usr/sbin/chroot"
        envargs = ["/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()]]
        shot = work.root / "screen.png"
        log = open(work.root / "gimp.log", "w")
        with gimp_chroot.mounted(root, gimp_chroot.host_paths() + [work.root.resolve()]):
            xvfb = subprocess.Popen([chroot_bin, str(root), *envargs, "Xvfb", DISPLAY, "-screen", "0",
                                     f"{SIZE[0]}x{SIZE[1]}x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            gimp = None
            try:
                time.sleep(2)
                gimp = subprocess.Popen([chroot_bin, str(root), *envargs, "gimp-console-3.0", "-n", "-d", "-f",
                                         "--batch-interpreter=python-fu-eval", "-b", "-"],
                                        stdin=subprocess.PIPE, stdout=log, stderr=log, text=True)
                gimp.stdin.write(OPEN_DIALOG.format(image=image))
                gimp.stdin.close()
                time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 40)
                subprocess.run([chroot_bin, str(root), *envargs, "python3", str(work.root / "grab.py"),
                                str(shot)], check=True)
            finally:
                for p in (gimp, xvfb):
                    if p is not None and p.poll() is None:
                        p.terminate()
                        try:
                            p.wait(10)
                        except subprocess.TimeoutExpired:
                            p.kill()
                            p.wait()
        log.close()
        tail = (work.root / "gimp.log").read_text().splitlines()
        print("\n".join(ln for ln in tail if "priorfx" in ln.lower() or "Traceback" in ln or "Error" in ln))
        _crop_to_content(shot, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[1] / "gimp" / "screenshot.png"
    sys.exit(main(target))
