"""The "Undistort Selfie" dialog in real GIMP 3 (GUI under Xvfb, in the trixie chroot).

gimp-console opens the sample selfie and calls the filter interactively, as the
menu does; nobody presses OK. What a user sees when the dialog opens, checked:
the plug-in's preview worker (`priorfx worker portrait`) undistorts the reduced
copy at once, the preview written carries the face's estimated distance and its
interval, and that very picture is on screen in the dialog (found in a screen
grab by template matching). The label beside it is set from the same reply
(its text, one line per face, is tested on the host: test_gimp_install.py).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gimp_chroot  # noqa: E402
import gimp_harness  # noqa: E402
from screenshot import GRAB, OPEN_DIALOG  # noqa: E402
from test_gimp_plugin import gimp_root  # noqa: E402,F401  (the module's chroot fixture)
from waits import wait_for  # noqa: E402

from priorfx import io as pio  # noqa: E402

pytestmark = [pytest.mark.host, pytest.mark.slow]

DISPLAY = ":88"
PREVIEW_SHOW_SIDE = 360          # the plug-in shows the preview this large


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _found_on_screen(screen: Path, preview: np.ndarray) -> float:
    """Best normalised correlation of the preview, shown 360 px large, anywhere on the screen."""
    grab = pio.read_image(screen)[..., :3].astype(np.float32)
    h, w = preview.shape[:2]
    k = PREVIEW_SHOW_SIDE / max(h, w)
    shown = cv2.resize(preview[..., :3].astype(np.float32), (round(w * k), round(h * k)),
                       interpolation=cv2.INTER_AREA)
    score = cv2.matchTemplate(cv2.cvtColor(grab, cv2.COLOR_RGB2GRAY), cv2.cvtColor(shown, cv2.COLOR_RGB2GRAY),
                              cv2.TM_CCOEFF_NORMED)
    return float(score.max())


def test_dialog_shows_the_estimated_distance_and_the_preview_when_it_opens(gimp_root, sample, tmp_path,  # noqa: F811
                                                                           cli):
    work = gimp_harness.GimpWork(tmp_path).make()
    assert cli("install", "gimp", "--plugins-dir", str(work.plugins_dir)).returncode == 0
    image = work.root / "selfie.jpg"
    shutil.copy(sample("single_face.jpg"), image)
    (work.root / "grab.py").write_text(GRAB)
    env = gimp_harness.gimp_env(work, {"DISPLAY": DISPLAY, "NO_AT_BRIDGE": "1"})
    chroot_bin = shutil.which("chroot") or "/usr/sbin/chroot"
    run_in = [chroot_bin, str(gimp_root), "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()]]
    log = open(work.root / "gimp.log", "w")
    xvfb = gimp = None
    with gimp_chroot.mounted(gimp_root, gimp_chroot.host_paths() + [work.root.resolve()]):
        try:
            xvfb = subprocess.Popen([*run_in, "Xvfb", DISPLAY, "-screen", "0", "1400x1000x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda: (gimp_root / "tmp" / ".X11-unix" / f"X{DISPLAY[1:]}").exists(), "Xvfb's socket")
            gimp = subprocess.Popen([*run_in, "gimp-console-3.0", "-n", "-d", "-f",
                                     "--batch-interpreter=python-fu-eval", "-b", "-"],
                                    stdin=subprocess.PIPE, stdout=log, stderr=log, text=True)
            gimp.stdin.write(OPEN_DIALOG.format(image=image))
            gimp.stdin.close()

            def preview_written():
                assert gimp.poll() is None, (work.root / "gimp.log").read_text()[-3000:]
                done = sorted(work.tmp.glob("priorfx-preview-*/preview_out_1.png"))
                return done[0] if done else None

            preview_path = wait_for(preview_written, "the preview the dialog asks for when it opens")
            preview = pio.read_image(preview_path)
            faces = pio.read_image_info(preview_path).provenance["faces"]
            # No EXIF: the distance comes from the face's perspective, with its interval.
            assert len(faces) == 1 and faces[0]["focal_source"] == "perspective"
            assert 0.1 < faces[0]["distance_low_m"] <= faces[0]["distance_m"]
            screen = work.root / "screen.png"

            def shown():
                subprocess.run([*run_in, "python3", str(work.root / "grab.py"), str(screen)], check=True,
                               capture_output=True)
                return _found_on_screen(screen, preview) > 0.9

            wait_for(shown, "the preview picture in the dialog", interval=1.0)
        finally:
            _stop(gimp)
            _stop(xvfb)
            log.close()
