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
    assert side["frames"] == 6 and side["fps"] == 25 and side["codec"] == "mp4v"
    assert side["provenance"]["parameters"] == {"readout_ms": 20}
    clip = read_frames(tmp_path / "clip.mp4")
    assert len(clip) == 6 and clip.fps == pytest.approx(25.0) and clip.size == (64, 48)
    for a, b in zip(clip, frames):
        assert np.abs(a - b).mean() < 0.03  # lossy MPEG-4, same pictures
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
