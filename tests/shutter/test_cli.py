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
    from priorfx.demo.shutter import section
    from priorfx.engines import LocalEngine
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


def _probe(path):
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = sorted(float(p.pts * p.time_base) for p in c.demux(v) if p.size)
        c.seek(0)
        rot = next(c.decode(video=0)).rotation
        cc = v.codec_context
        audio = []
        c.seek(0)
        if c.streams.audio:
            audio = [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]
        return {"streams": [(s.type, s.codec_context.name if s.codec_context else None) for s in c.streams],
                "pts": pts, "rotation": rot, "size": (cc.width, cc.height), "pix_fmt": cc.pix_fmt,
                "tags": (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range),
                "metadata": dict(c.metadata), "audio": audio}


def test_deshutter_phone_clip_keeps_sound_rotation_tags_timecode(cli, pan_clip, tmp_path):
    """A rotated H.264 + AAC phone clip in, a range out: everything but the picture as it was."""
    from fractions import Fraction

    import numpy as np

    from priorfx.bench.video import make_clip

    rs, _ = pan_clip(0.8, speed=8.0, n=8)
    src = make_clip(tmp_path / "phone.mp4", [(f * 255 + 0.5).astype(np.uint8) for f in rs],
                    time_base=Fraction(1, 30), rotation=90, timecode="01:02:03:04")
    out = tmp_path / "fixed.mp4"
    r = cli("deshutter", str(src), "-o", str(out), "--readout", "0.8", "--frames", "2-6", "--quiet")
    assert r.returncode == 0, r.stderr
    got, want = _probe(out), _probe(src)
    assert got["streams"] == [("video", "h264"), ("audio", "aac"), ("data", None)]
    assert got["pix_fmt"] == "yuv420p" and got["tags"] == want["tags"] == (1, 1, 1, 1)
    # the picture stays as the sensor stored it (rows = scan lines) and keeps the phone's flag
    assert got["rotation"] == 90 and got["size"] == want["size"]
    np.testing.assert_allclose(got["pts"], [i / 30 for i in range(5)], atol=1e-6)
    assert got["metadata"]["timecode"] == "01:02:03:06"
    assert json.loads(got["metadata"]["priorfx_provenance"])["operation"] == "deshutter"
    t0, t1 = 2 / 30, 7 / 30
    audio = [(t - t0, b) for t, b in want["audio"] if t0 <= t < t1]
    assert len(audio) >= 7 and [b for _, b in got["audio"]] == [b for _, b in audio]  # byte for byte
    np.testing.assert_allclose([t for t, _ in got["audio"]], [t for t, _ in audio], atol=1e-4)  # in sync


def test_deshutter_stream_mp4_cannot_hold_fails_before_the_work(cli, pan_clip, tmp_path):
    import numpy as np

    from priorfx.bench.video import make_clip

    rs, _ = pan_clip(0.8, speed=8.0, n=4)
    src = make_clip(tmp_path / "cam.mov", [(f * 255 + 0.5).astype(np.uint8) for f in rs],
                    audio="pcm_alaw", audio_rate=8000)
    out = tmp_path / "fixed.mp4"
    r = cli("deshutter", str(src), "-o", str(out), "--readout", "0.8", "--quiet")
    assert r.returncode == 2 and "audio stream #1 (pcm_alaw) cannot go into a .mp4 file" in r.stderr
    assert "hint: write .mkv or .mov, or leave it out with --drop-audio" in r.stderr
    assert [line.split(":")[1] for line in r.stderr.strip().splitlines()] == [" error", " hint"]
    assert not out.exists()
    r = cli("deshutter", str(src), "-o", str(out), "--readout", "0.8", "--quiet", "--drop-audio")
    assert r.returncode == 0, r.stderr
    assert _probe(out)["streams"] == [("video", "h264")]
    r = cli("deshutter", str(src), "-o", str(tmp_path / "fixed.mov"), "--readout", "0.8", "--quiet",
            "--codec", "prores")
    assert r.returncode == 0, r.stderr
    assert _probe(tmp_path / "fixed.mov")["streams"] == [("video", "prores"), ("audio", "pcm_alaw")]
