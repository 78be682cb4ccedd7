"""jobs.py: the core process (start, progress, errors, cancel) and the cache around it.

A stand-in `priorfx` executable (standin_priorfx.py) makes progress, cancels and
failures deterministic; test_e2e.py runs the same code on the real core.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from priorfx_nuke import jobs, logic
from priorfx_nuke.logic import AdapterError, CancelledByUser, MatteSettings

STANDIN = Path(__file__).with_name("standin_priorfx.py")


@pytest.fixture
def standin(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "priorfx"
    exe.parent.mkdir()
    exe.write_text("#!{}\n".format(sys.executable) + STANDIN.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("STANDIN_LOG", str(log))
    jobs.kit._info_cache.clear()

    def calls():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]
    return {"exe": str(exe), "calls": calls, "tmp": tmp_path}


@pytest.fixture
def plate(tmp_path):
    d = tmp_path / "export" / "plate"
    d.mkdir(parents=True)
    for f in range(11, 16):
        (d / "plate.{:04d}.exr".format(f)).write_bytes(b"px%d" % f)
    return str(d / "plate.%04d.exr")


def _engine(standin, mode, monkeypatch, remote_url=""):
    monkeypatch.setenv("STANDIN_MODE", mode)
    gate = standin["tmp"] / "gate"
    gate.mkdir(exist_ok=True)
    monkeypatch.setenv("STANDIN_GATE", str(gate))
    return jobs.make_engine("remote" if remote_url else "local", remote_url,
                            dict(os.environ, PRIORFX_EXE=standin["exe"]))


def _open_gate(standin, done: int) -> None:
    """Let the stepped stand-in go on past its `done`-th frame."""
    (standin["tmp"] / "gate" / str(done)).touch()


def test_run_reports_progress_and_writes_every_frame(standin, plate, monkeypatch, tmp_path):
    eng = _engine(standin, "stepped", monkeypatch)
    out = tmp_path / "job"
    out.mkdir()
    ticks = []

    def on_progress(d, t, m):
        ticks.append((d, t))
        _open_gate(standin, d)
    eng.run({"plate": plate}, 11, 15, str(out / "matte.%04d.exr"), MatteSettings(quality="fast"),
            on_progress, lambda: False)
    assert sorted(p.name for p in out.iterdir()) == ["matte.{:04d}.exr".format(f) for f in range(11, 16)]
    assert (out / "matte.0013.exr").read_bytes() == b"standin:px13"
    # each frame's progress line was seen while the process ran, then the end
    assert [d for d, _ in ticks if d > 0] == [1, 2, 3, 4, 5, 5] and {t for _, t in ticks} == {5}, ticks
    matte_call = [c for c in standin["calls"]() if c[0] == "matte"][0]
    assert matte_call[matte_call.index("--quality") + 1] == "fast"
    assert matte_call[matte_call.index("--progress") + 1] == "json"


def test_cli_error_becomes_message_and_hint(standin, plate, monkeypatch, tmp_path):
    eng = _engine(standin, "fail", monkeypatch)
    with pytest.raises(AdapterError) as e:
        eng.run({"plate": plate}, 11, 12, str(tmp_path / "matte.%04d.exr"), MatteSettings(),
                lambda *a: None, lambda: False)
    assert e.value.message == "guide is 10x10, the plate is 20x20"
    assert e.value.hint == "render the guide at the plate's size"


def test_cancel_interrupts_the_process(standin, plate, monkeypatch, tmp_path):
    eng = _engine(standin, "stepped", monkeypatch)  # it waits after frame 1: nobody opens the gate
    out = tmp_path / "job"
    out.mkdir()
    seen = []
    with pytest.raises(CancelledByUser):
        eng.run({"plate": plate}, 11, 15, str(out / "matte.%04d.exr"), MatteSettings(),
                lambda d, t, m: seen.append(d), lambda: bool(seen) and seen[-1] >= 1)
    # SIGINT (not SIGKILL): the core can clean up and cancel a server job
    assert standin["calls"]()[-1] == "interrupted"
    assert list(out.iterdir()) == []


def test_identity_comes_from_the_core(standin, monkeypatch):
    eng = _engine(standin, "ok", monkeypatch)
    assert eng.identity() == jobs.Identity("local", "7.7.7", logic.MODEL_ID)
    eng.identity()
    assert [c for c in standin["calls"]() if c[0] == "info"] == [["info", "--json"]]  # asked once


def test_remote_engine_with_no_server_is_a_clear_error(standin, monkeypatch):
    eng = _engine(standin, "ok", monkeypatch, remote_url="http://127.0.0.1:9")
    with pytest.raises(AdapterError, match="cannot reach the priorfx server") as e:
        eng.identity()
    assert "priorfx serve" in e.value.hint and e.value.exit_code == 7  # the core's own words


def test_process_range_runs_through_the_cores_cache_and_publishes(standin, plate, monkeypatch, tmp_path):
    eng = _engine(standin, "ok", monkeypatch)
    layout = logic.cache_layout(str(tmp_path / "cache"), "node1")
    r1 = jobs.process_range(eng, layout, {"plate": plate}, 11, 15, MatteSettings())
    assert (r1.cached, r1.made) == (0, 5)
    call = [c for c in standin["calls"]() if c[0] == "matte"][-1]
    assert call[call.index("--cache") + 1] == layout.root and "--json" in call
    assert call[call.index("-o") + 1] == layout.out_pattern()
    out = Path(layout.out_pattern()).parent
    assert sorted(p.name for p in out.glob("matte.*.exr")) == ["matte.{:04d}.exr".format(f) for f in range(11, 16)]
    manifest = json.loads(Path(layout.manifest_path()).read_text())
    assert manifest["frames"] == [11, 15] and manifest["priorfx_version"] == "7.7.7"
    # A shorter range: frames outside it disappear from the shown sequence.
    jobs.process_range(eng, layout, {"plate": plate}, 11, 12, MatteSettings())
    assert sorted(p.name for p in out.glob("matte.*.exr")) == ["matte.0011.exr", "matte.0012.exr"]


def test_process_range_failure_keeps_the_published_sequence(standin, plate, monkeypatch, tmp_path):
    layout = logic.cache_layout(str(tmp_path / "cache"), "node1")
    jobs.process_range(_engine(standin, "ok", monkeypatch), layout, {"plate": plate}, 11, 13,
                       MatteSettings())
    before = Path(logic.frame_path(layout.out_pattern(), 12)).read_bytes()
    with pytest.raises(AdapterError, match="guide is 10x10"):
        jobs.process_range(_engine(standin, "fail", monkeypatch), layout, {"plate": plate}, 11, 13,
                           MatteSettings(quality="fast"))
    assert Path(logic.frame_path(layout.out_pattern(), 12)).read_bytes() == before


def test_make_engine_errors():
    with pytest.raises(AdapterError, match="not local or remote"):
        jobs.make_engine("cloud", "", {})
    with pytest.raises(AdapterError, match="cannot find the priorfx command"):
        jobs.make_engine("local", "", {})
