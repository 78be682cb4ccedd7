"""Time the "Undistort Selfie" Apply on a 12 MP photo in real GIMP 3, end to end.

Not a test (timings on a shared machine are ratios, not pass/fail): a
maintainer's measurement, run as a script from the checkout::

    nice -n 5 .venv/bin/python tests/gimp/time_apply.py [--repeat 3] [--json out.json]

One headless GIMP session (the trixie chroot of gimp_chroot.py) loads a 12 MP
JPEG (the sample selfie letterboxed into 4000 x 3000) and runs the filter's PDB
procedure as a batch script would (export, `priorfx undistort`, load back, new
layer), once with the result handed back at each PNG deflate level in
--levels (the installed plug-in's HANDBACK_PNG_LEVEL rewritten between runs;
6 is what the core wrote before the plug-in asked for a level). Floors from
the same session: GIMP's own PNG export (level 1) and load of the same
layer, and on the host `priorfx undistort` of that PNG alone.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gimp_chroot  # noqa: E402
import gimp_harness  # noqa: E402

BATCH = r'''
import json, os, re, time
import gi
gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio
spec = json.load(open(os.environ["PRIORFX_TIME_SPEC"]))
out = {"apply": {}, "floors": {}}
plugin = spec["plugin_file"]
src = open(plugin).read()

def load():
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(spec["input"]))

def export_png(img, path):
    proc = Gimp.get_pdb().lookup_procedure("file-png-export")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", img)
    cfg.set_property("file", Gio.File.new_for_path(path))
    cfg.set_property("compression", 1)
    return proc.run(cfg).index(0)

for rep in range(spec["repeat"]):
    img = load()
    t = time.monotonic(); export_png(img, spec["floor_png"]); out["floors"].setdefault("gimp_export_png1_s", []).append(time.monotonic() - t)
    t = time.monotonic(); back = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(spec["floor_png"]))
    out["floors"].setdefault("gimp_load_png1_s", []).append(time.monotonic() - t)
    back.delete()
    for level in spec["levels"]:
        with open(plugin, "w") as fh:
            fh.write(re.sub(r"^HANDBACK_PNG_LEVEL = \d", f"HANDBACK_PNG_LEVEL = {level}", src, flags=re.M))
        proc = Gimp.get_pdb().lookup_procedure("plug-in-priorfx-undistort-selfie")
        cfg = proc.create_config()
        cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
        cfg.set_property("image", img)
        cfg.set_core_object_array("drawables", img.get_layers()[-1:])
        cfg.set_property("distance", 1.5)
        cfg.set_property("focal-mode", "manual")
        cfg.set_property("focal-mm", 26.0)
        t = time.monotonic()
        status = proc.run(cfg).index(0)
        out["apply"].setdefault(str(level), []).append(time.monotonic() - t)
        out.setdefault("status", []).append(status.value_nick)
        out["layers"] = len(img.get_layers())
    img.delete()
with open(plugin, "w") as fh:
    fh.write(src)
with open(spec["results"], "w") as fh:
    json.dump(out, fh)
'''


def make_photo(path: Path) -> None:
    import cv2
    import numpy as np

    from priorfx.samples import sample_path

    selfie = cv2.imread(str(sample_path("single_face.jpg")))
    w, h = 4000, 3000
    img = np.zeros((h, w, 3), np.uint8)
    fw = round(selfie.shape[1] * h / selfie.shape[0])
    img[:, (w - fw) // 2:(w - fw) // 2 + fw] = cv2.resize(selfie, (fw, h), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 92])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--levels", default="1,6", help="hand-back PNG deflate levels to time (default 1,6)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("priorfx")
    root = gimp_chroot.build()
    with tempfile.TemporaryDirectory(prefix="priorfx-time-apply-") as tmp:
        work = gimp_harness.GimpWork(Path(tmp)).make()
        inst = subprocess.run([str(exe), "install", "gimp", "--plugins-dir", str(work.plugins_dir)],
                              capture_output=True, text=True)
        if inst.returncode:
            print(inst.stderr, file=sys.stderr)
            return 1
        photo = work.root / "photo_12mp.jpg"
        make_photo(photo)
        spec = {"input": str(photo), "repeat": args.repeat, "levels": [int(x) for x in args.levels.split(",")],
                "plugin_file": str(work.plugins_dir / "priorfx-undistort" / "priorfx-undistort.py"),
                "floor_png": str(work.root / "floor.png"), "results": str(work.root / "results.json")}
        (work.root / "spec.json").write_text(json.dumps(spec))
        proc = gimp_harness.run_batch(root, work, BATCH, {"PRIORFX_TIME_SPEC": str(work.root / "spec.json")})
        res = gimp_harness.read_results(Path(spec["results"]), proc)
        # The core alone on the same layer, on the host (the floor of an Apply).
        core = []
        for _ in range(args.repeat):
            t = time.monotonic()
            r = subprocess.run([str(exe), "undistort", spec["floor_png"], "-o", str(work.root / "core_out.png"),
                                "--focal-mm", "26", "--png-compression", "1", "--quiet"], capture_output=True, text=True)
            core.append(time.monotonic() - t)
            if r.returncode:
                print(r.stderr, file=sys.stderr)
                return 1
        res["floors"]["cli_undistort_png1_s"] = core
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    # The fastest of the repeats: other work on a shared machine only ever adds time.
    summary = {"cpu": cpu.group(1) if cpu else "?", "status": sorted(set(res["status"])),
               **{f"apply_s_level{k}": round(min(v), 2) for k, v in res["apply"].items()},
               **{k: round(min(v), 2) for k, v in res["floors"].items()}}
    summary["apply_over_cli_level1"] = round(summary["apply_s_level1"] / summary["cli_undistort_png1_s"], 2) \
        if "apply_s_level1" in summary else None
    report = {"summary": summary, "raw": res}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
