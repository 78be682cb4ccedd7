"""`priorfx matte` as a user runs it."""
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from waits import EVENT_DEADLINE_S, wait_for


def test_still_to_png_with_alpha(cli, sample, tmp_path):
    out = tmp_path / "astronaut_matte.png"
    res = cli("matte", str(sample("astronaut.png")), "-o", str(out), "--quality", "fast", "--quiet")
    assert res.returncode == 0, res.stderr
    rgba = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (512, 512, 4)
    assert rgba[150, 256, 3] == 255 and rgba[30, 30, 3] == 0  # face opaque, flag transparent


def test_sequence_with_frame_range_to_exr(cli, sample, tmp_path):
    from priorfx.io import read_image, read_image_info

    src = tmp_path / "plate"
    src.mkdir()
    img = cv2.resize(cv2.imread(str(sample("astronaut.png"))), (256, 256))
    for n in range(1, 5):
        cv2.imwrite(str(src / f"p_{n:04d}.png"), np.roll(img, 2 * n, axis=1))
    holdout = np.zeros((256, 256), np.uint8)
    holdout[:20, :20] = 255
    cv2.imwrite(str(tmp_path / "holdout.png"), holdout)
    out = tmp_path / "out"
    out.mkdir()
    res = cli("matte", str(src / "p_%04d.png"), "-o", str(out / "m_%04d.exr"), "--frames", "2-3",
              "--holdout", str(tmp_path / "holdout.png"), "--quality", "fast", "--json",
              "--progress", "json")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line)["progress"] for line in res.stderr.splitlines() if line.startswith("{")]
    assert events[-1] == {"done": 2, "total": 2, "message": "frame 2"}
    assert json.loads(res.stdout)["frames"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["m_0002.exr", "m_0003.exr"]
    info = read_image_info(out / "m_0003.exr")
    assert {"A", "matte.alpha", "matte.confidence", "fg.R"} <= set(info.channel_names)
    assert info.provenance["input"].endswith("p_%04d.png")
    alpha = read_image(out / "m_0003.exr", channels=["matte.alpha"])[..., 0]
    assert np.all(alpha[:20, :20] == 1.0)


def test_bad_guide_and_usage_errors_leave_no_output(cli, sample, tmp_path):
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((10, 10), np.uint8))
    out = tmp_path / "m.png"
    res = cli("matte", str(sample("astronaut.png")), "-o", str(out), "--guide", str(small), "--quiet")
    assert res.returncode == 3
    assert "trimap guide is 10x10 but the frame is 512x512" in res.stderr
    res = cli("matte", str(sample("astronaut.png")), "-o", str(out), "--frames", "1-2")
    assert res.returncode == 2 and "--frames" in res.stderr
    res = cli("matte", str(sample("astronaut.png")), "-o", str(tmp_path / "m.jpg"))
    assert res.returncode == 2 and "JPEG cannot store alpha" in res.stderr
    res = cli("matte", str(tmp_path / "missing.png"), "-o", str(out))
    assert res.returncode == 3
    assert list(tmp_path.iterdir()) == [small]


def _long_clip(src: Path, dst: Path, repeats: int) -> int:
    """single_face.mp4 played forwards and backwards `repeats` times (no cuts): a shot
    far longer than the time between the first staged frame and the SIGINT."""
    from priorfx import io as pio

    frames = list(pio.read_frames(str(src)))
    frames = (frames + frames[::-1]) * repeats
    with pio.FrameWriter(dst, fps=30) as w:
        for f in frames:
            w.write(f)
    return len(frames)


@pytest.mark.parametrize("started_ignoring_sigint", [False, True], ids=["terminal", "background-job"])
def test_ctrl_c_cancels_cleanly(sample, tmp_path, started_ignoring_sigint):
    """SIGINT mid-clip: exit 130, nothing written. Also when the process was started
    with SIGINT ignored, as a script's background job or some launchers start it."""
    n = _long_clip(sample("single_face.mp4"), tmp_path / "long.mp4", 3)  # 432 frames
    out = tmp_path / "out"
    out.mkdir()
    exe = Path(sys.executable).with_name("priorfx")
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if started_ignoring_sigint else None
    proc = subprocess.Popen([str(exe), "matte", str(tmp_path / "long.mp4"), "-o", str(out / "m_%04d.exr"),
                             "--quality", "fast", "--progress", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()

    def staged():  # a frame written into the hidden staging folder: the writer is mid-clip
        assert proc.poll() is None, "".join(lines)
        return [f for d in out.glob(".priorfx-partial*") for f in d.iterdir()]

    wait_for(staged, "the first staged matte frame")
    proc.send_signal(signal.SIGINT)
    proc.wait(EVENT_DEADLINE_S)
    reader.join(EVENT_DEADLINE_S)
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert "cancelled" in err
    events = [json.loads(line)["progress"] for line in lines if line.startswith("{")]
    assert events and events[-1]["total"] == n and events[-1]["done"] < n  # stopped mid-clip
    assert list(out.iterdir()) == []  # nothing half-written, the staging folder removed


def _video(path):
    """What a player sees in a video file: streams, codec, size, rotation, times, sound packets, frames."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = sorted(float(p.pts * p.time_base) for p in c.demux(v) if p.size)
        audio = []
        if c.streams.audio:
            c.seek(0)
            audio = [(float(p.pts * p.time_base), bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]
        c.seek(0)
        frames = [f.to_ndarray(format="rgba64le") / 65535.0 for f in c.decode(video=0)]
        cc = v.codec_context
        return {"streams": [(s.type, s.codec_context.codec.canonical_name if s.codec_context else None)
                            for s in c.streams],
                "pts": pts, "size": (cc.width, cc.height), "profile": cc.profile, "pix_fmt": cc.pix_fmt,
                "audio": audio, "frames": frames, "metadata": dict(c.metadata)}


def test_matte_video_keeps_the_sound_and_writes_alpha_video(cli, sample, tmp_path):
    src = sample("single_face.mp4")   # H.264 + MP3, 25 fps
    grey = tmp_path / "matte.mp4"
    res = cli("matte", str(src), "-o", str(grey), "--frames", "10-15", "--quality", "fast", "--quiet")
    assert res.returncode == 0, res.stderr
    got, want = _video(grey), _video(src)
    assert got["streams"] == [("video", "h264"), ("audio", "mp3")]
    np.testing.assert_allclose(got["pts"], np.array(want["pts"][10:16]) - want["pts"][10], atol=1e-4)
    t0, t1 = want["pts"][10], want["pts"][16]
    sound = [(t - t0, b) for t, b in want["audio"] if t0 <= t < t1]
    assert len(sound) >= 3 and [b for _, b in got["audio"]] == [b for _, b in sound]  # byte for byte
    np.testing.assert_allclose([t for t, _ in got["audio"]], [t for t, _ in sound], atol=1e-4)
    assert json.loads(got["metadata"]["priorfx_provenance"])["frame_range"] == [10, 15]
    a = got["frames"][2][..., :3]
    assert np.abs(a[..., 0] - a[..., 2]).max() < 0.05        # grey: the alpha in every channel
    assert a.max() > 0.9 and a.min() < 0.1                   # a person on a background
    # foreground + alpha: ProRes 4444 in .mov, straight alpha equal to the grey matte
    rgba = tmp_path / "matte.mov"
    res = cli("matte", str(src), "-o", str(rgba), "--frames", "10-15", "--quality", "fast", "--quiet",
              "--video-alpha", "alpha")
    assert res.returncode == 0, res.stderr
    pro = _video(rgba)
    assert pro["streams"][0] == ("video", "prores") and "4444" in pro["profile"]
    assert pro["pix_fmt"].startswith("yuva444p") and pro["streams"][1] == ("audio", "mp3")
    assert np.abs(pro["frames"][2][..., 3] - a[..., 1]).mean() < 0.02
    res = cli("matte", str(src), "-o", str(tmp_path / "bad.mp4"), "--video-alpha", "alpha", "--quiet")
    assert res.returncode == 2 and "h264 video has no alpha channel" in res.stderr
    assert not (tmp_path / "bad.mp4").exists()


def test_matte_of_a_rotated_phone_clip_is_upright(cli, sample, tmp_path):
    """People are matted upright: a sideways-stored phone clip gives the matte of the upright clip."""
    from priorfx.bench.video import make_clip
    from priorfx.io import read_frames

    upright = [(f * 255 + 0.5).astype(np.uint8) for f in read_frames(sample("single_face.mp4"), (10, 13))]
    stored = [np.ascontiguousarray(np.rot90(f, -1)) for f in upright]   # the sensor's sideways picture
    phone = make_clip(tmp_path / "phone.mp4", stored, rotation=90, options={"crf": "12"})
    plain = make_clip(tmp_path / "plain.mp4", upright, options={"crf": "12"})
    for clip in (phone, plain):
        res = cli("matte", str(clip), "-o", str(tmp_path / f"m_{clip.stem}.mp4"), "--quality", "fast", "--quiet")
        assert res.returncode == 0, res.stderr
    got, ref = _video(tmp_path / "m_phone.mp4"), _video(tmp_path / "m_plain.mp4")
    assert got["size"] == ref["size"] == (640, 360)
    import av
    with av.open(str(tmp_path / "m_phone.mp4")) as c:
        assert next(c.decode(video=0)).rotation == 0
    assert np.abs(got["frames"][3][..., 1] - ref["frames"][3][..., 1]).mean() < 0.02


def test_ctrl_c_while_writing_a_video_leaves_nothing(sample, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    exe = Path(sys.executable).with_name("priorfx")
    proc = subprocess.Popen([str(exe), "matte", str(sample("single_face.mp4")), "-o", str(out / "matte.mp4"),
                             "--quality", "fast", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def writing() -> bool:
        """The video is being written (its temporary file exists); the matte must still be running."""
        assert proc.poll() is None, proc.stderr.read()
        return any(".partial-" in p.name for p in out.iterdir())

    wait_for(writing, "the video's temporary file")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=EVENT_DEADLINE_S)
    assert proc.returncode == 130, err
    assert list(out.iterdir()) == []
