"""`priorfx matte` as a user runs it."""
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

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


def test_ctrl_c_cancels_cleanly(sample, tmp_path):
    n = _long_clip(sample("single_face.mp4"), tmp_path / "long.mp4", 3)  # 432 frames
    out = tmp_path / "out"
    out.mkdir()
    exe = Path(sys.executable).with_name("priorfx")
    proc = subprocess.Popen([str(exe), "matte", str(tmp_path / "long.mp4"), "-o", str(out / "m_%04d.exr"),
                             "--quality", "fast", "--progress", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
