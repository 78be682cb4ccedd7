"""Chunk planning, the per-chunk done-marker and the missing-extra error (no cluster needed)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from priorfx.cluster.plan import auto_chunk_frames, plan_chunks, shutter_warmup
from priorfx.errors import UsageError


def test_chunks_keep_every_frame_once_and_read_their_warmup():
    chunks = plan_chunks(100, 30, warmup=17, lookahead=1)
    kept = [p for c in chunks for p in range(c.first, c.stop)]
    assert kept == list(range(100))
    assert [(c.read_first, c.read_stop) for c in chunks] == [(0, 31), (13, 61), (43, 91), (73, 100)]


def test_matte_chunks_start_at_cuts_and_never_warm_up_across_them():
    chunks = plan_chunks(50, 50, warmup=16, bounds=[20, 35])
    assert [(c.first, c.stop, c.read_first, c.read_stop) for c in chunks] == \
        [(0, 20, 0, 20), (20, 35, 20, 35), (35, 50, 35, 50)]
    inside = plan_chunks(50, 10, warmup=16, bounds=[20])
    assert [(c.first, c.read_first) for c in inside] == [(0, 0), (10, 0), (20, 20), (30, 20), (40, 24)]


def test_first_chunk_takes_extra_frames_for_the_warmup_the_others_pay():
    n, warm, extra = 250, 19, 11
    size = auto_chunk_frames(n, 2, warm, extra)
    chunks = plan_chunks(n, size, warm, 1, first_extra=extra)
    assert [p for c in chunks for p in range(c.first, c.stop)] == list(range(n))
    assert [(c.first, c.stop, c.read_first) for c in chunks] == [(0, 131, 0), (131, 250, 112)]
    # equal work when a warm-up frame costs 0.6 of a kept one
    costs = [c.frames + 0.6 * (c.first - c.read_first) for c in chunks]
    assert abs(costs[0] - costs[1]) <= 2
    # every segment's first chunk (after a cut too) gets the extra frames
    cut = plan_chunks(40, 10, 4, bounds=[20], first_extra=3)
    assert [(c.first, c.stop) for c in cut] == [(0, 13), (13, 20), (20, 33), (33, 40)]


def test_shutter_warmup_follows_the_smoothing():
    # history shrinks by `smoothing` per frame: 0.3**18 < 1e-9 <= 0.3**17, plus the previous neighbour
    assert shutter_warmup(0.3) == 19
    assert 0.3 ** (shutter_warmup(0.3) - 1) < 1e-9 <= 0.3 ** (shutter_warmup(0.3) - 2)
    assert shutter_warmup(0.0) == 1
    assert shutter_warmup(0.6) > shutter_warmup(0.3)
    assert auto_chunk_frames(250, 2, 17) == 125 and auto_chunk_frames(40, 2, 19) == 38


def test_missing_dask_names_the_extra(monkeypatch, tmp_path):
    from priorfx.cluster import run_clip_on_cluster

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(UsageError) as info:
        run_clip_on_cluster("deshutter", "in.mp4", str(tmp_path / "o_%04d.png"), None, "tcp://127.0.0.1:8786")
    assert "pip install 'priorfx[cluster]'" in str(info.value)


def test_a_chunk_run_again_writes_nothing_twice(tmp_path):
    """Dask may run a finished task again (its worker died holding the result):
    the done-marker makes the second run a no-op."""
    from priorfx import io as pio
    from priorfx.cluster import tasks
    from priorfx.cluster.run import ClipJob, _prepare
    from priorfx.shutter import ShutterParams

    rng = np.random.default_rng(0)
    base = rng.random((64, 96, 3), dtype=np.float32)
    src = tmp_path / "src"
    src.mkdir()
    with pio.FrameWriter(src / "f_%04d.png", fps=25) as w:
        for k in range(6):
            w.write(np.roll(base, 2 * k, axis=1))
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "marker"
    marker.mkdir()
    job = _prepare(ClipJob("deshutter", str(src / "f_%04d.png"), str(out / "o_%04d.png"), ShutterParams(readout=0.5)))
    chunk = plan_chunks(6, 3, warmup=2, lookahead=1)[1]
    first = tasks.run_chunk(job, chunk, {"readout": 0.5}, str(marker))
    assert first["frames"] == 3 and "skipped" not in first
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["o_0004.png", "o_0005.png", "o_0006.png"]
    stamps = [p.stat().st_mtime_ns for p in files]
    again = tasks.run_chunk(job, chunk, {"readout": 0.5}, str(marker))
    assert again["skipped"] is True
    assert [p.stat().st_mtime_ns for p in sorted(out.iterdir())] == stamps
