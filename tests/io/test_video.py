"""Clips: real video files (OpenCV's bundled FFmpeg) and image sequences."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from priorfx.errors import InputError, OutputError, UsageError
from priorfx.io import FrameWriter, read_frames, read_image, read_image_info, write_image
from priorfx.provenance import provenance


def _frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """Smooth, distinct frames (a moving gradient): codecs keep them recognisable."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return [np.stack([(xx + 4 * i) % w / w, yy / h, np.full_like(xx, i / max(n - 1, 1))], axis=-1)
            .astype(np.float32) for i in range(n)]


def test_real_sample_video_reads_with_range(sample):
    clip = read_frames(sample("bikes.mp4"))
    assert len(clip) == 250 and clip.fps == pytest.approx(25.0) and clip.size == (640, 272)
    part = read_frames(sample("bikes.mp4"), frames=(10, 12))
    assert part.frame_numbers == [10, 11, 12]
    got = list(part)
    assert len(got) == 3 and got[0].shape == (272, 640, 3) and got[0].dtype == np.float32
    assert 0.0 <= got[0].min() and got[0].max() <= 1.0
    # the range starts where it says: frame 10 of the whole clip
    whole = iter(clip)
    for _ in range(10):
        next(whole)
    np.testing.assert_array_equal(next(whole), got[0])
    assert not np.array_equal(got[0], got[1])  # real panning footage changes


def test_mp4_write_read_round_trip_with_sidecar(tmp_path):
    frames = _frames(6)
    prov = provenance("deshutter", {"readout_ms": 20}, ["none"])
    with FrameWriter(tmp_path / "clip.mp4", fps=25, provenance=prov) as w:
        for f in frames:
            w.write(f)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.mp4.json"]
    side = json.loads((tmp_path / "clip.mp4.json").read_text())
    assert side["frames"] == 6 and side["fps"] == 25 and side["codec"] == "h264"
    assert side["provenance"]["parameters"] == {"readout_ms": 20}
    clip = read_frames(tmp_path / "clip.mp4")
    assert len(clip) == 6 and clip.fps == pytest.approx(25.0) and clip.size == (64, 48)
    for a, b in zip(clip, frames):
        assert np.abs(a - b).mean() < 0.03  # lossy H.264, same pictures
    assert np.abs(clip[3] - frames[3]).mean() < 0.03


@pytest.mark.parametrize("ext", [".png", ".exr"])
def test_image_sequence_write_read_with_patterns(tmp_path, ext):
    frames = _frames(4)
    with FrameWriter(tmp_path / f"frame_%04d{ext}", start=1001, provenance=provenance("matte")) as w:
        for f in frames:
            w.write(f)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"frame_{n}{ext}" for n in range(1001, 1005)]
    assert read_image_info(tmp_path / f"frame_1002{ext}").provenance["operation"] == "matte"
    tol = 0.5 / 255 + 1e-6 if ext == ".png" else 1e-3
    for src in (tmp_path / f"frame_%04d{ext}", tmp_path / f"frame_####{ext}", tmp_path):
        clip = read_frames(src)
        assert clip.frame_numbers == [1001, 1002, 1003, 1004]
        for a, b in zip(clip, frames):
            np.testing.assert_allclose(a, b, atol=tol)
    sub = read_frames(tmp_path / f"frame_%04d{ext}", frames=(1002, 1003))
    assert len(sub) == 2
    np.testing.assert_allclose(sub[0], frames[1], atol=tol)


def test_sequence_frames_to_rgb_from_exr_with_extra_channels(tmp_path):
    px = np.random.default_rng(0).random((8, 8, 5), dtype=np.float32)
    write_image(tmp_path / "m_0001.exr", px, ["R", "G", "B", "A", "matte.alpha"])
    (rgb,) = list(read_frames(tmp_path / "m_%04d.exr"))
    np.testing.assert_allclose(rgb, px[..., :3], atol=1e-3)


def test_missing_frames_and_empty_ranges_are_input_errors(tmp_path):
    for n in (1, 2, 4, 5, 7):
        write_image(tmp_path / f"f_{n:04d}.png", _frames(1)[0])
    with pytest.raises(InputError, match=r"2 frame\(s\) missing from the sequence: 3, 6"):
        read_frames(tmp_path / "f_%04d.png")
    with pytest.raises(InputError, match=r"missing from the sequence: 3$|missing from the sequence: 3 "):
        read_frames(tmp_path / "f_%04d.png", frames=(1, 4))
    assert len(read_frames(tmp_path / "f_%04d.png", frames=(4, 5))) == 2
    with pytest.raises(InputError, match=r"no frames in the range 100-200"):
        read_frames(tmp_path / "f_%04d.png", frames=(100, 200))
    with pytest.raises(UsageError, match="empty"):
        read_frames(tmp_path / "f_%04d.png", frames=(5, 4))
    with pytest.raises(InputError, match="no files match"):
        read_frames(tmp_path / "g_%04d.png")
    with pytest.raises(InputError, match="missing from the sequence"):
        read_frames(tmp_path)  # a folder is checked too


def test_unreadable_video_and_bad_paths(tmp_path, sample):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(InputError, match=r"broken\.mp4: cannot open the video"):
        read_frames(bad)
    with pytest.raises(InputError, match="no such file"):
        read_frames(tmp_path / "nothing.mov")
    with pytest.raises(InputError, match="no images in the folder"):
        read_frames(tmp_path)
    with pytest.raises(InputError, match=r"no frames in the range 500-600 \(the clip has frames 0-249\)"):
        read_frames(sample("bikes.mp4"), frames=(500, 600))
    # a truncated video: the container promises more frames than can be decoded
    real = sample("bikes.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(real[: len(real) // 3])
    with pytest.raises(InputError, match=r"cut\.mp4"):
        list(read_frames(cut))


def test_frame_writer_exception_leaves_nothing(tmp_path):
    frames = _frames(3)
    (tmp_path / "frame_0001.png").write_bytes(b"earlier render")  # must survive untouched
    with pytest.raises(RuntimeError, match="cancelled mid-clip"):
        with FrameWriter(tmp_path / "frame_%04d.png") as w:
            w.write(frames[0])
            w.write(frames[1])
            raise RuntimeError("cancelled mid-clip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_0001.png"]
    assert (tmp_path / "frame_0001.png").read_bytes() == b"earlier render"
    with pytest.raises(RuntimeError):
        with FrameWriter(tmp_path / "clip.mp4", fps=10) as w:
            w.write(frames[0])
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_0001.png"]
    # a frame of the wrong size is an error, and still nothing is kept
    with pytest.raises(InputError, match="frame 1 is 32x16, the video is 64x48"):
        with FrameWriter(tmp_path / "clip.mp4", fps=10) as w:
            w.write(frames[0])
            w.write(np.zeros((16, 32, 3), np.float32))
    with pytest.raises(OutputError, match="no frames were written"):
        with FrameWriter(tmp_path / "empty.mp4"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_0001.png"]


def test_frame_writer_unwritable_targets(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        with FrameWriter(tmp_path / "missing" / "clip.mp4"):
            pass
    with pytest.raises(UsageError, match="not a video file or an image sequence"):
        FrameWriter(tmp_path / "clip.gif")
    with pytest.raises(UsageError, match="one %d"):
        FrameWriter(tmp_path / "a_%04d_%04d.png")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: a target that cannot be replaced
            (ro / "clip.mp4").mkdir()
            with pytest.raises(OutputError, match="cannot write"):
                with FrameWriter(ro / "clip.mp4") as w:
                    w.write(_frames(1)[0])
            assert [p.name for p in ro.iterdir()] == ["clip.mp4"] and (ro / "clip.mp4").is_dir()
        else:
            with pytest.raises(OutputError, match="not writable"):
                with FrameWriter(ro / "clip.mp4"):
                    pass
            assert list(ro.iterdir()) == []
    finally:
        os.chmod(ro, 0o755)


def test_single_image_is_a_one_frame_clip(tmp_path):
    p = write_image(tmp_path / "still.png", _frames(1)[0])
    clip = read_frames(p)
    assert len(clip) == 1 and clip.size == (64, 48)
    np.testing.assert_allclose(clip[0], read_image(p))


# --------------------------------------------------------------------------- PyAV: clips as people have them
# The clips are written directly with PyAV (priorfx.bench.video.make_clip), not
# with FrameWriter, so the writer is checked against input it did not make.

import av  # noqa: E402
from fractions import Fraction  # noqa: E402

from priorfx.bench.video import make_clip  # noqa: E402


def _rgb8(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    return [(f * 255 + 0.5).astype(np.uint8) for f in _frames(n, h, w)]


def _streams(path) -> list[tuple[str, str | None]]:
    with av.open(str(path)) as c:
        return [(s.type, s.codec_context.name if s.codec_context else None) for s in c.streams]


def _packets(path, kind: str) -> list[tuple[float, bytes]]:
    """(start time in seconds, payload) of every packet of the first stream of a kind."""
    with av.open(str(path)) as c:
        s = [st for st in c.streams if st.type == kind][0]
        return [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(s) if p.size]


def _video_pts(path) -> tuple[list[float], dict]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = sorted(float(p.pts * p.time_base) for p in c.demux(s) if p.size)
        c.seek(0)
        frame = next(c.decode(video=0))
        cc = s.codec_context
        return pts, {"codec": cc.name, "pix_fmt": cc.pix_fmt, "profile": cc.profile, "rotation": frame.rotation,
                     "size": (cc.width, cc.height), "tags": (cc.color_primaries, cc.color_trc,
                                                             cc.colorspace, cc.color_range),
                     "metadata": dict(c.metadata)}


def test_h264_aac_range_keeps_sound_bit_exact_timecode_and_tags(tmp_path):
    src = make_clip(tmp_path / "phone.mp4", _rgb8(30), time_base=Fraction(1, 30), timecode="10:00:00:00")
    clip = read_frames(src, frames=(6, 20))
    assert len(clip) == 15 and clip.fps == pytest.approx(30.0) and clip.video.timecode == "10:00:00:00"
    prov = provenance("deshutter", {"readout": 0.3})
    with FrameWriter(tmp_path / "out.mp4", fps=clip.fps, source=clip, provenance=prov) as w:
        for f in clip:
            w.write(f)
    out = tmp_path / "out.mp4"
    assert _streams(out) == [("video", "h264"), ("audio", "aac"), ("data", None)]  # data = timecode track
    pts, info = _video_pts(out)
    assert info["pix_fmt"] == "yuv420p" and info["tags"] == (1, 1, 1, 1) and info["rotation"] == 0
    np.testing.assert_allclose(pts, [i / 30 for i in range(15)], atol=1e-6)
    assert json.loads(info["metadata"]["priorfx_provenance"])["parameters"] == {"readout": 0.3}
    assert info["metadata"]["timecode"] == "10:00:00:06"  # moved to the first frame taken
    side = json.loads((tmp_path / "out.mp4.json").read_text())
    assert side["codec"] == "h264" and side["copied_streams"] == [1] and side["timecode"] == "10:00:00:06"
    # the sound: the input's packets over frames 6-20 (0.2 s to 0.7 s), byte for byte, shifted by 0.2 s
    want = [(t - 0.2, b) for t, b in _packets(src, "audio") if 0.2 <= t < 0.7]
    got = _packets(out, "audio")
    assert len(want) > 20 and [b for _, b in got] == [b for _, b in want]
    np.testing.assert_allclose([t for t, _ in got], [t for t, _ in want], atol=1e-4)
    # the pictures are the input's frames 6-20
    back = list(read_frames(out))
    for a, b in zip(back, _frames(30)[6:21]):
        assert np.abs(a - b).mean() < 0.02


def test_whole_clip_keeps_every_audio_packet(tmp_path):
    src = make_clip(tmp_path / "in.mov", _rgb8(12), time_base=Fraction(1, 24))
    clip = read_frames(src)
    with FrameWriter(tmp_path / "out.mov", fps=clip.fps, source=clip) as w:
        for f in clip:
            w.write(f)
    assert [b for _, b in _packets(src, "audio")] == [b for _, b in _packets(tmp_path / "out.mov", "audio")]


def test_vfr_clip_is_numbered_by_timestamps_and_written_with_them(tmp_path):
    stamps = [0, 1, 2, 4, 5, 9, 10, 11, 15, 16]  # in 1/30 s: dropped and doubled frame times
    frames = _rgb8(10)
    src = make_clip(tmp_path / "vfr.mp4", frames, pts=stamps, time_base=Fraction(1, 30), audio=None)
    clip = read_frames(src, frames=(3, 8))
    got = list(clip)
    assert len(got) == 6
    for a, b in zip(got, frames[3:9]):  # frame n is the n-th picture, whatever its time
        assert np.abs(a - b / 255).mean() < 0.02
    with FrameWriter(tmp_path / "out.mp4", fps=clip.fps, source=clip) as w:
        for f in got:
            w.write(f)
    pts, _ = _video_pts(tmp_path / "out.mp4")
    np.testing.assert_allclose(pts, [(s - 4) / 30 for s in stamps[3:9]], atol=1e-4)


def test_ten_bit_hevc_reads_into_float_without_losing_bits(tmp_path):
    if "libx265" not in av.codecs_available:
        pytest.skip("this PyAV wheel has no HEVC encoder")
    ramp = np.linspace(0, 65535, 256 * 4, dtype=np.float64)  # 1024 grey levels across the frame
    img = np.repeat(np.repeat(ramp[None, :, None], 16, axis=0), 3, axis=2).astype(np.uint16)
    src = make_clip(tmp_path / "ten.mov", [img] * 3, codec="libx265", pix_fmt="yuv444p10le", audio=None,
                    options={"x265-params": "lossless=1:log-level=error"})
    clip = read_frames(src)
    assert clip.video.bits == 10
    frame = clip[1]
    levels = np.unique(np.round(frame[8, :, 1] * 1023))
    assert len(levels) > 700  # an 8-bit path gives at most 256
    np.testing.assert_allclose(frame[8, :, 1], ramp / 65535, atol=2.5 / 1023)
    with FrameWriter(tmp_path / "out.mov", fps=clip.fps, source=clip, codec="hevc") as w:
        for f in clip:
            w.write(f)
    _, info = _video_pts(tmp_path / "out.mov")
    assert info["codec"] == "hevc" and info["pix_fmt"] == "yuv420p10le"


def test_prores_4444_with_alpha_in_and_out(tmp_path):
    rgba = [np.dstack([f, np.full(f.shape[:2], 40 * i, np.uint8)]) for i, f in enumerate(_rgb8(4))]
    src = make_clip(tmp_path / "plate.mov", rgba, codec="prores_ks", pix_fmt="yuva444p10le", audio=None,
                    options={"profile": "4"})
    clip = read_frames(src)
    assert clip.video.codec == "prores" and clip.video.bits >= 10  # ProRes 4444 decodes as 12-bit
    np.testing.assert_allclose(clip[2], _frames(4)[2], atol=0.01)
    alpha = np.linspace(0, 1, 64, dtype=np.float32)[None, :].repeat(48, 0)
    with FrameWriter(tmp_path / "matte.mov", fps=clip.fps, source=clip, alpha=True) as w:
        for f in clip:
            w.write(np.dstack([f, alpha]))
    _, info = _video_pts(tmp_path / "matte.mov")
    assert info["codec"] == "prores" and info["pix_fmt"].startswith("yuva444p") and "4444" in info["profile"]
    with av.open(str(tmp_path / "matte.mov")) as c:
        back = next(c.decode(video=0)).to_ndarray(format="rgba64le")[..., 3] / 65535
    np.testing.assert_allclose(back, alpha, atol=2 / 1023)
    with pytest.raises(UsageError, match="h264 video has no alpha channel"):
        FrameWriter(tmp_path / "matte.mp4", source=clip, alpha=True)


def test_rotated_phone_clip_flag_carried_or_frames_turned_upright(tmp_path):
    frames = _rgb8(4)
    src = make_clip(tmp_path / "phone.mov", frames, rotation=90)
    stored = read_frames(src)
    upright = read_frames(src, orient=True)
    assert stored.size == (64, 48) and upright.size == (48, 64) and stored.video.rotation == 90
    np.testing.assert_array_equal(upright[1], np.rot90(stored[1], 1))  # 90 counter-clockwise, as players do
    for clip, name in ((stored, "carried.mov"), (upright, "baked.mov")):
        with FrameWriter(tmp_path / name, fps=clip.fps, source=clip) as w:
            for f in clip:
                w.write(f)
    _, carried = _video_pts(tmp_path / "carried.mov")
    _, baked = _video_pts(tmp_path / "baked.mov")
    assert carried["rotation"] == 90 and carried["size"] == (64, 48)
    assert baked["rotation"] == 0 and baked["size"] == (48, 64)
    assert np.abs(read_frames(tmp_path / "baked.mov")[1] - upright[1]).mean() < 0.02


def test_stream_the_container_cannot_hold_is_an_error_naming_the_flag(tmp_path):
    src = make_clip(tmp_path / "cam.mov", _rgb8(6), audio="pcm_alaw", audio_rate=8000)
    clip = read_frames(src)
    with pytest.raises(UsageError, match=r"audio stream #1 \(pcm_alaw\) cannot go into a \.mp4 file.*--drop-audio"):
        FrameWriter(tmp_path / "out.mp4", source=clip)
    with FrameWriter(tmp_path / "out.mp4", source=clip, drop=("audio",)) as w:
        for f in clip:
            w.write(f)
    assert _streams(tmp_path / "out.mp4") == [("video", "h264")]
    with FrameWriter(tmp_path / "out.mov", source=clip) as w:  # MOV holds A-law: copied
        for f in clip:
            w.write(f)
    assert _streams(tmp_path / "out.mov") == [("video", "h264"), ("audio", "pcm_alaw")]


def test_bad_video_inputs_give_one_line_errors(tmp_path):
    audio_only = tmp_path / "voice.m4a"
    with av.open(str(audio_only), "w", format="mp4") as out:
        from priorfx.bench.video import _write_tone
        _write_tone(out, out.add_stream("aac", rate=48000, layout="stereo"), 0.5, 48000)
    with pytest.raises(InputError, match=r"voice\.m4a: the file holds no video stream \(only audio\)") as e:
        read_frames(audio_only)
    assert "\n" not in str(e.value)
    good = make_clip(tmp_path / "good.mp4", _rgb8(6), audio=None).read_bytes()
    (tmp_path / "alien.mp4").write_bytes(good.replace(b"avc1", b"zzz9"))
    with pytest.raises(InputError, match=r"alien\.mp4: the video.s codec is unknown to FFmpeg and cannot be decoded here") as e:
        read_frames(tmp_path / "alien.mp4")
    assert "\n" not in str(e.value)


def test_ctrl_c_while_copying_sound_leaves_nothing(tmp_path):
    src = make_clip(tmp_path / "in.mp4", _rgb8(10))
    clip = read_frames(src)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        with FrameWriter(out / "clip.mp4", source=clip) as w:
            for i, f in enumerate(clip):
                w.write(f)
                if i == 5:
                    raise KeyboardInterrupt
    assert list(out.iterdir()) == []


def test_ranges_deep_in_a_clip_with_b_frames_are_frame_accurate(tmp_path):
    """Seeking lands on the keyframe before A and decodes forward to exactly frame A."""
    frames = _rgb8(40)
    src = make_clip(tmp_path / "gop.mp4", frames, audio=None,
                    options={"g": "12", "bf": "3", "crf": "10", "preset": "medium"})
    whole = list(read_frames(src))
    for first, last in ((0, 2), (13, 15), (29, 33), (39, 39)):
        part = list(read_frames(src, frames=(first, last)))
        assert len(part) == last - first + 1
        for k, f in enumerate(part):
            np.testing.assert_array_equal(f, whole[first + k])
    np.testing.assert_array_equal(read_frames(src)[26], whole[26])


def test_timecode_moves_with_the_range_drop_frame_too():
    from priorfx.io.videofile import add_timecode

    assert add_timecode("01:00:00:00", 30, 30) == "01:00:01:00"
    assert add_timecode("23:59:59:24", 1, 25) == "00:00:00:00"
    assert add_timecode("00:00:59;28", 2, 29.97) == "00:01:00;02"   # labels ;00 and ;01 are skipped
    assert add_timecode("00:09:59;29", 1, 29.97) == "00:10:00;00"   # but not every tenth minute
    assert add_timecode("00:00:00;00", 17982, 29.97) == "00:10:00;00"


def test_a_second_picture_stream_is_copied_untouched_or_dropped_on_request(tmp_path):
    src = tmp_path / "two.mkv"
    frames = _rgb8(6)
    with av.open(str(src), "w") as out:
        streams = [out.add_stream("libx264", rate=30), out.add_stream("mjpeg", rate=30)]
        for s in streams:
            s.width, s.height = 64, 48
        streams[0].pix_fmt, streams[1].pix_fmt = "yuv420p", "yuvj420p"
        for i, f in enumerate(frames):
            for s in streams:
                vf = av.VideoFrame.from_ndarray(f, format="rgb24")
                vf.pts = i
                out.mux(s.encode(vf))
        for s in streams:
            out.mux(s.encode(None))
    clip = read_frames(src)
    assert [k for _, k, _ in clip.video.streams] == ["video"]
    with FrameWriter(tmp_path / "out.mkv", source=clip) as w:
        for f in clip:
            w.write(f)
    assert _streams(tmp_path / "out.mkv") == [("video", "ffv1"), ("video", "mjpeg")]
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mkv")) as b:
        assert [bytes(p) for p in a.demux(a.streams.video[1]) if p.size] == \
            [bytes(p) for p in b.demux(b.streams.video[1]) if p.size]
    with FrameWriter(tmp_path / "one.mkv", source=clip, drop=("video",)) as w:
        for f in clip:
            w.write(f)
    assert _streams(tmp_path / "one.mkv") == [("video", "ffv1")]
