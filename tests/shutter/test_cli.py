"""`priorfx deshutter` as a user runs it, and the demo section."""
from __future__ import annotations

import json

import pytest

from priorfx.io import FrameWriter, read_frames


@pytest.fixture
def rs_video(pan_clip, tmp_path):
    rs, gt = pan_clip(0.8, speed=8.0, n=6)
    path = tmp_path / "rs.avi"   # Motion JPEG: near-lossless enough to measure the correction
    with FrameWriter(path, fps=30) as w:
        for f in rs:
            w.write(f)
    return path, rs, gt


def test_deshutter_video_to_video_prints_readout(cli, rs_video, tmp_path, helpers):
    src, rs, gt = rs_video
    out = tmp_path / "fixed.avi"
    r = cli("deshutter", str(src), "-o", str(out), "--readout", "0.8", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "readout: 0.800" in r.stdout and "given" in r.stdout
    frames = list(read_frames(out))
    assert len(frames) == 6
    for k in (2, 3):
        assert helpers.psnr(frames[k], gt[k]) > helpers.psnr(rs[k], gt[k]) + 4
    side = json.loads((tmp_path / "fixed.avi.json").read_text())
    assert side["provenance"]["operation"] == "deshutter"
    assert side["provenance"]["parameters"]["readout"] == 0.8


def test_deshutter_to_image_sequence_with_auto_readout(cli, rs_video, tmp_path):
    src, _, _ = rs_video
    r = cli("deshutter", str(src), "-o", str(tmp_path / "seq" / "f_%04d.png"), "--json", "--quiet")
    assert r.returncode == 11 and "does not exist" in r.stderr   # output folder missing: clear error
    (tmp_path / "seq").mkdir()
    r = cli("deshutter", str(src), "-o", str(tmp_path / "seq" / "f_%04d.png"), "--json", "--quiet",
            "--mode", "rs", "--scan", "down", "--lookahead")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["readout_estimated"] is True and 0 < summary["readout"] <= 1
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == [f"f_{i:04d}.png" for i in range(6)]


@pytest.mark.parametrize("g", ["0", "1.5", "-1", "x"])
def test_readout_outside_0_1_exit_2(cli, rs_video, tmp_path, g):
    src, _, _ = rs_video
    r = cli("deshutter", str(src), "-o", str(tmp_path / "o.avi"), "--readout", g)
    assert r.returncode == 2
    assert "readout" in r.stderr and "(0, 1]" in r.stderr or "not a number" in r.stderr
    assert not (tmp_path / "o.avi").exists()


def test_empty_or_unreadable_video_exit_3(cli, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    for src in (empty, junk, tmp_path / "missing.mp4"):
        r = cli("deshutter", str(src), "-o", str(tmp_path / "o.mp4"))
        assert r.returncode == 3, (src, r.stderr)
        assert "priorfx: error:" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "o.mp4").exists()


def test_demo_section_writes_before_after_and_truth(tmp_path):
    from priorfx.engine import LocalEngine
    from priorfx.shutter.demo import section
    sec = section(tmp_path, LocalEngine())
    assert sec["title"] and len(sec["pairs"]) >= 2
    for pair in sec["pairs"]:
        for key in ("before", "after"):
            assert (tmp_path / pair[key]).stat().st_size > 10_000
    before, after = sec["figures"]["bikes: PSNR input -> corrected (dB)"].split(" -> ")
    assert float(after) > float(before) + 1.0


def test_deshutter_image_sequence_in_video_out(cli, pan_clip, tmp_path, helpers):
    from priorfx.io import write_image
    rs, gt = pan_clip(1.0, speed=8.0, n=5)
    (tmp_path / "in").mkdir()
    for i, f in enumerate(rs):
        write_image(tmp_path / "in" / f"frame_{i + 1:04d}.png", f)
    out = tmp_path / "out.mkv"   # FFV1: lossless
    r = cli("deshutter", str(tmp_path / "in" / "frame_%04d.png"), "-o", str(out), "--readout", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    frames = list(read_frames(out))
    assert len(frames) == 5
    assert helpers.psnr(frames[2], gt[2]) > helpers.psnr(rs[2], gt[2]) + 6


def test_readout_command_prints_value_and_interval(cli, pan_clip, tmp_path):
    """`priorfx readout IN --json`: g with its interval from a shaky clip; a steady one says it cannot tell."""
    for name, shake in (("shaky", 5.0), ("steady", 0.0)):
        rs, _ = pan_clip(0.7, speed=6.0, n=14, shake=shake)
        path = tmp_path / f"{name}.avi"
        with FrameWriter(path, fps=30) as w:
            for f in rs:
                w.write(f)
        r = cli("readout", str(path), "--json", "--quiet")
        assert r.returncode == 0, r.stderr
        est = json.loads(r.stdout)
        if shake:
            assert est["informative"] and abs(est["readout"] - 0.7) <= 0.1, est
            assert est["low"] <= 0.7 <= est["high"]
        else:
            assert not est["informative"] and est["high"] - est["low"] > 0.5, est
        r = cli("readout", str(path), "--quiet")
        assert ("not measurable" in r.stdout) == (not shake), r.stdout
