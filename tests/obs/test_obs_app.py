"""Smoke run of the real `obs` binary under Xvfb with the script in its scene collection.

OBS loads the script like a user's OBS does, restores a media source that has
the filter on it, the worker corrects its frames, a helper script opens the
source's Filters dialog for a screenshot, the test closes it (as its close button
does) and SIGINT shuts everything down.
Set PRIORFX_OBS_SCREENSHOT=path to keep the screenshot (the README's image).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

import x11_windows
from waits import EVENT_DEADLINE_S, wait_for

pytestmark = pytest.mark.host

HELPER = '''
import sys
import obspython as obs
def _open():
    obs.timer_remove(_open)
    src = obs.obs_get_source_by_name("Webcam")
    print("test helper: opening the Filters dialog of", obs.obs_source_get_name(src))
    obs.obs_frontend_open_source_filters(src)
    obs.obs_source_release(src)
_said = {}
def _report():
    # the filter's own counters (its instances live in sys, shared by OBS's scripts)
    reg = getattr(sys, "_priorfx_obs_registry", None)
    for key, inst in list(reg.instances.items()) if reg else []:
        now = (inst.stats.corrected, inst.stats.frames // 30)
        if _said.get(key) != now:
            _said[key] = now
            print("test helper: filter %s corrected %d of %d frames"
                  % (key, inst.stats.corrected, inst.stats.frames))
def script_load(settings):
    obs.timer_add(_open, 2500)
    obs.timer_add(_report, 200)
'''


def _obs_home(tmp: Path, script: Path, clip: Path) -> Path:
    cfg = tmp / "home" / ".config" / "obs-studio"
    (cfg / "basic" / "scenes").mkdir(parents=True)
    (cfg / "basic" / "profiles" / "Test").mkdir(parents=True)
    (cfg / "global.ini").write_text(
        "[General]\nPre19Defaults=false\nPre21Defaults=false\nPre23Defaults=false\n"
        "Pre24.1Defaults=false\nFirstRun=true\nLastVersion=486539266\n"
        "[Basic]\nProfile=Test\nProfileDir=Test\nSceneCollection=Test\nSceneCollectionFile=Test\n"
        "ConfigOnNewProfile=false\n")
    (cfg / "basic" / "profiles" / "Test" / "basic.ini").write_text(
        "[General]\nName=Test\n[Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\n"
        "FPSType=0\nFPSCommon=30\n")
    (tmp / "open_filters.py").write_text(HELPER)
    item = {"name": "Webcam", "id": 1, "visible": True, "pos": {"x": 0, "y": 0}, "scale": {"x": 1, "y": 1},
            "align": 5, "bounds_type": 0, "bounds": {"x": 0, "y": 0}, "rot": 0}
    scene = {
        "name": "Test", "current_scene": "Scene", "current_program_scene": "Scene",
        "scene_order": [{"name": "Scene"}],
        "sources": [
            {"id": "scene", "versioned_id": "scene", "name": "Scene",
             "settings": {"items": [item], "id_counter": 1}},
            {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Webcam",
             "settings": {"local_file": str(clip), "looping": True, "is_local_file": True},
             "filters": [{"id": "priorfx_rolling_shutter", "versioned_id": "priorfx_rolling_shutter",
                          "name": "Rolling Shutter Correction", "enabled": True,
                          "settings": {"auto_readout": False, "readout": 0.7}}]}],
        # what `priorfx install obs` (or Tools > Scripts > +) writes
        "modules": {"scripts-tool": [{"path": str(script), "settings": {}},
                                     {"path": str(tmp / "open_filters.py"), "settings": {}}]}}
    (cfg / "basic" / "scenes" / "Test.json").write_text(json.dumps(scene, indent=2))
    return tmp / "home"


def _clip(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()


def read_xwd(path: Path) -> np.ndarray:
    """Xvfb's -fbdir screen (XWD, 32 bits per pixel, BGRX) as RGB uint8."""
    raw = path.read_bytes()
    f = struct.unpack(">25I", raw[:100])
    header, w, h, bytes_per_line, ncolors = f[0], f[4], f[5], f[12], f[19]
    off = header + 12 * ncolors
    px = np.frombuffer(raw[off:off + h * bytes_per_line], np.uint8).reshape(h, bytes_per_line)
    return np.ascontiguousarray(px[:, :w * 4].reshape(h, w, 4)[..., 2::-1])


def _latest_log(log_dir: Path) -> str:
    logs = sorted(log_dir.glob("*.txt"))
    return logs[-1].read_text(errors="replace") if logs else ""


def _wait_log(log_dir: Path, pattern: str) -> str:
    def text_once_shown():
        text = _latest_log(log_dir)
        return text if re.search(pattern, text) else None
    return wait_for(text_once_shown, f"OBS's log to show {pattern!r}", interval=0.2)


def _wait_corrected(log_dir: Path, corrected: int, frames: int) -> None:
    """Wait until the filter has shown `corrected` frames corrected out of more than
    `frames` (the helper script logs its counters), however slowly this machine works."""
    def enough():
        counts = re.findall(r"test helper: filter \d+ corrected (\d+) of (\d+) frames", _latest_log(log_dir))
        return any(int(c) >= corrected and int(f) > frames for c, f in counts)
    wait_for(enough, f"the filter to correct {corrected} frames", interval=0.2)


def test_real_obs_loads_the_script_runs_the_filter_and_quits_cleanly(obs_tools, tmp_path, sample):
    H = obs_tools
    photo = cv2.cvtColor(cv2.imread(str(sample("chelsea.png"))), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (640 + 400, 360), interpolation=cv2.INTER_AREA)
    frames = [np.ascontiguousarray(photo[:, 200 + int(150 * np.sin(k / 6)):][:, :640]) for k in range(60)]
    _clip(tmp_path / "clip.mp4", frames)
    home = _obs_home(tmp_path, H.SCRIPT, tmp_path / "clip.mp4")
    fb = tmp_path / "fb"
    fb.mkdir()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x760x24", "-fbdir", str(fb),
                             "-nolisten", "tcp"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    obs = None
    try:
        display = xvfb.stdout.readline().decode().strip()
        assert display.isdigit(), "Xvfb did not start"
        env = {**os.environ, "HOME": str(home), "DISPLAY": f":{display}", "PRIORFX_EXE": H.PRIORFX}
        env.pop("XDG_CONFIG_HOME", None)
        obs = subprocess.Popen(["obs", "--collection", "Test", "--profile", "Test", "--disable-shutdown-check",
                                "--disable-missing-files-check", "--multi"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        logs = home / ".config" / "obs-studio" / "logs"
        text = _wait_log(logs, r"\[priorfx\] filter \d+: worker ready")
        assert "Loaded python script: priorfx_rolling_shutter.py" in text
        assert "registered filter 'Rolling Shutter Correction'" in text
        assert "- filter: 'Rolling Shutter Correction' (priorfx_rolling_shutter)" in text
        worker_pid = int(re.findall(r"worker ready \(pid (\d+)\)", text)[-1])
        _wait_log(logs, "test helper: opening the Filters dialog")
        # frames flow through the filter (however slowly this machine corrects them); the dialog paints
        _wait_corrected(logs, 10, 30)
        title = "Filters for 'Webcam'"   # the title OBS gives the source's dialog
        wait_for(lambda: x11_windows.is_shown(f":{display}", title), "the Filters dialog to show", interval=0.2)
        shot = read_xwd(fb / "Xvfb_screen0")
        cv2.imwrite(str(tmp_path / "screenshot.png"), cv2.cvtColor(shot, cv2.COLOR_RGB2BGR))
        if os.environ.get("PRIORFX_OBS_SCREENSHOT"):
            shutil.copyfile(tmp_path / "screenshot.png", os.environ["PRIORFX_OBS_SCREENSHOT"])
        assert shot.std() > 20, "the screenshot is blank"

        # Close the Filters dialog before quitting, as its window's close button does.
        # OBS 29.0.2 itself segfaults in Qt's event loop (QWidget::event from
        # sendPostedEvents), after "All scene data cleared" and before libobs is freed,
        # when it quits with a source's Filters dialog open: 4 of 15 runs under load
        # with no priorfx script at all (only OBS's own Async Delay filter); with the
        # dialog closed first, 0 of 15. So this test quits as a user would, and every
        # exit must be clean.
        wait_for(lambda: not x11_windows.request_close(f":{display}", title),
                 "the Filters dialog to close", interval=0.5)
        obs.send_signal(signal.SIGINT)
        rc = obs.wait(EVENT_DEADLINE_S)
        text = sorted(logs.glob("*.txt"))[-1].read_text(errors="replace")
        # OBS must shut down completely: libobs freed, its memory accounted for.
        assert "Freeing OBS context data" in text and "Number of memory leaks" in text, \
            f"OBS exited with {rc} before finishing its shutdown:\n{text[-3000:]}"
        assert rc == 0, f"OBS exited with {rc}:\n{text[-3000:]}"
        # the worker ended by itself when asked (before, 1 in 5 aborted in its exit:
        # a motion thread still inside OpenCV while Python finalized)
        assert "worker stopped with exit code" not in text, text[-3000:]
        stats = re.search(r"filter \d+: (\d+) frames, (\d+) corrected, (\d+) passed through", text)
        assert stats, text[-3000:]
        frames_seen, corrected = int(stats.group(1)), int(stats.group(2))
        # how many get corrected in time depends on this machine's load; some must be
        assert frames_seen > 30 and corrected >= 10, stats.group(0)
        assert "Freeing OBS context data" in text
        assert not Path(f"/proc/{worker_pid}").exists() or \
            open(f"/proc/{worker_pid}/stat").read().split(")")[-1].split()[0] == "Z"
        assert H.slot_files_left(text) == []
    finally:
        if obs is not None and obs.poll() is None:
            obs.kill()
        xvfb.terminate()
        xvfb.wait(10)
