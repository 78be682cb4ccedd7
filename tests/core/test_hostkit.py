"""The host kit (priorfx/hosts/priorfx_hostkit.py): the process contract every adapter uses.

Run with the real `priorfx` of this environment where the core's answer matters
(info, errors, progress, cancel); small Python child processes stand in only
for timing (a core that is still running when cancel comes).
"""
from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

from priorfx.hosts import priorfx_hostkit as kit

PRIORFX = str(Path(sys.executable).with_name("priorfx"))


def test_find_core_prefers_priorfx_exe_then_the_record(tmp_path):
    exe = tmp_path / "Program Files" / "priorfx" / "priorfx.exe"   # spaces and .exe need no quoting
    exe.parent.mkdir(parents=True)
    exe.write_text("")
    record = {"command": [PRIORFX]}
    assert kit.find_core(record, {"PRIORFX_EXE": str(exe)}) == [str(exe)]
    assert kit.find_core(record, {}) == [PRIORFX]
    listed = json.dumps([sys.executable, "-m", "priorfx.cli"])
    assert kit.find_core({}, {"PRIORFX_EXE": listed}) == [sys.executable, "-m", "priorfx.cli"]


def test_find_core_errors_name_the_fix(tmp_path):
    with pytest.raises(kit.CoreError, match="cannot find the priorfx command") as e:
        kit.find_core({}, {})
    assert "priorfx install" in e.value.hint and "PRIORFX_EXE" in e.value.hint
    with pytest.raises(kit.CoreError, match="does not exist"):
        kit.find_core({"command": [str(tmp_path / "gone" / "priorfx")]}, {})
    with pytest.raises(kit.CoreError, match="not a JSON list"):
        kit.find_core({}, {"PRIORFX_EXE": "[broken"})


def test_load_record_missing_empty_and_broken(tmp_path):
    assert kit.load_record(str(tmp_path)) == {}
    (tmp_path / kit.RECORD_NAME).write_text("{broken")
    with pytest.raises(kit.CoreError, match="cannot read") as e:
        kit.load_record(str(tmp_path))
    assert "priorfx install" in e.value.hint


def test_child_env_drops_the_hosts_python_and_libraries(tmp_path):
    host = tmp_path / "Nuke13.2v5"
    env = {"PYTHONHOME": str(host), "PYTHONPATH": str(host / "plugins"), "HOME": "/home/a",
           "LD_LIBRARY_PATH": os.pathsep.join([str(host), "/usr/local/cuda/lib64"]),
           "DYLD_LIBRARY_PATH": str(host / "lib"), "PRIORFX_REMOTE": "http://gpu:8765"}
    out = kit.child_env({"env": {"PRIORFX_HOME": "/models", "HOME": "/recorded"}}, env, str(host),
                        drop=("PRIORFX_REMOTE",))
    # the recorded variables fill in; what the user set now wins over the record
    assert out == {"HOME": "/home/a", "LD_LIBRARY_PATH": "/usr/local/cuda/lib64", "PRIORFX_HOME": "/models"}
    assert env["PYTHONHOME"]  # the input is not changed


def test_error_and_progress_lines():
    err = kit.error_from_output("noise\npriorfx: error: guide is 10x10\npriorfx: hint: render it bigger\n", 3)
    assert (err.message, err.hint, err.exit_code) == ("guide is 10x10", "render it bigger", 3)
    assert str(err) == "guide is 10x10 (render it bigger)"
    raw = kit.error_from_output("Traceback...\nSegmentation fault\n", -11)
    assert "exit code -11" in raw.message and "Segmentation fault" in raw.message
    assert kit.error_from_output("", 130).cancelled
    assert kit.parse_progress('{"progress": {"done": 1, "total": 2, "message": "f"}}\n') == (1, 2, "f")
    assert kit.parse_progress('{"done": 3, "total": 10}') == (3, 10, "")
    for line in ("", "frames: 30%|###", '{"done": "x", "total": 2}', '{"total": 2}', "{broken"):
        assert kit.parse_progress(line) is None


def test_info_from_the_real_core():
    kit._info_cache.clear()
    info = kit.core_info([PRIORFX], dict(os.environ))
    import priorfx
    assert info["priorfx_version"] == priorfx.__version__
    assert "--progress" in info["commands"]["matte"] and "--cache" not in info["commands"]["deshutter"]
    assert "--focal-mm" in info["commands"]["undistort"]


def test_a_dead_server_is_the_cores_own_error():
    kit._info_cache.clear()
    with pytest.raises(kit.CoreError) as e:
        kit.core_info([PRIORFX], dict(os.environ), remote="http://127.0.0.1:9")
    assert e.value.exit_code == 7 and e.value.hint  # engine unreachable, with what to do


def test_run_core_reports_the_cores_error_and_a_missing_executable(tmp_path):
    with pytest.raises(kit.CoreError) as e:
        kit.run_core([PRIORFX, "undistort", str(tmp_path / "none.png"), "-o", str(tmp_path / "o.png")],
                     dict(os.environ))
    assert e.value.exit_code == 3 and "none.png" in e.value.message
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(kit.CoreError, match="cannot start") as e:
        kit.run_core([str(tmp_path / "nope")], dict(os.environ))
    assert "PRIORFX_EXE" in e.value.hint


def test_run_core_streams_progress_and_cancel_interrupts(tmp_path):
    """A child that reports one step, then waits for the interrupt it must get."""
    script = tmp_path / "core.py"
    marker = tmp_path / "interrupted"
    script.write_text(
        "import json, signal, sys, threading\n"
        "done = threading.Event()\n"
        "signal.signal(signal.SIGINT, lambda *a: (open(sys.argv[1], 'w').close(), sys.exit(130)))\n"
        "print(json.dumps({'progress': {'done': 1, 'total': 4, 'message': 'frame 1'}}), file=sys.stderr, flush=True)\n"
        "done.wait(120)\n")
    seen = []
    got = threading.Event()

    def on_progress(done, total, message):
        seen.append((done, total, message))
        got.set()

    with pytest.raises(kit.CoreError) as e:
        kit.run_core([sys.executable, str(script), str(marker)], dict(os.environ),
                     on_progress=on_progress, is_cancelled=got.is_set)
    assert e.value.cancelled
    assert seen == [(1, 4, "frame 1")]
    assert marker.exists()  # SIGINT, not a kill: the core can cancel its server job and clean up


def test_run_core_returns_stdout():
    out = kit.run_core([PRIORFX, "--version"], dict(os.environ))
    assert out.startswith("priorfx ")
