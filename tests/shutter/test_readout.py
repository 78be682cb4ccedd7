"""The readout fit on band flows from an exact rolling-shutter forward model."""
from __future__ import annotations

import numpy as np
import pytest

from priorfx.shutter.readout import estimate_readout

HEIGHT, BANDS = 720, 12


def _integral(t: np.ndarray) -> np.ndarray:
    """Antiderivative of the camera velocity (px/frame): a pan that speeds up and
    slows down, with a vertical shake -- changing motion, which reveals g."""
    x = 6.0 * t - 5.0 * 7 / (2 * np.pi) * np.cos(2 * np.pi * t / 7)
    y = 3.0 * 5 / (2 * np.pi) * np.sin(2 * np.pi * t / 5)
    return np.stack([x, y], -1)


def _band_flows(g: float, frames: int) -> list[np.ndarray]:
    """Row band y moves from time k + g*y/H to k + 1 + g*y'/H, y' = y + its own dy."""
    yc = (np.arange(BANDS) + 0.5) * HEIGHT / BANDS
    out = []
    for k in range(frames - 1):
        flow = np.zeros((BANDS, 2))
        for _ in range(3):  # y' depends on the flow itself: a few fixed-point steps
            y1 = np.clip(yc + flow[:, 1], 0, HEIGHT - 1)
            flow = _integral(k + 1 + g * y1 / HEIGHT) - _integral(k + g * yc / HEIGHT)
        out.append(flow)
    return out


@pytest.mark.parametrize("g", [0.3, 0.75])
def test_readout_recovered_from_exact_band_flows(g):
    res = estimate_readout(_band_flows(g, 60), HEIGHT)
    est, conf = res.g, res.confidence
    assert abs(est - g) < 0.03, est
    assert conf > 0.5


def test_readout_fit_handles_a_long_shot():
    """3000 frames (two minutes): the fit is banded, so its size grows with the
    clip's length, not its square (a dense fit needed gigabytes here)."""
    rng = np.random.default_rng(1)
    bands = [b + rng.normal(0, 0.05, b.shape) for b in _band_flows(0.5, 3000)]
    res = estimate_readout(bands, HEIGHT)
    est, conf = res.g, res.confidence
    assert abs(est - 0.5) < 0.03 and conf > 0.5



def test_readout_at_the_limit_has_an_honest_interval():
    """g = 1 (the most a video camera can have) is found as a minimum with two sides,
    and footage that fits only an impossible g > 1 (a misfit) gets an interval
    reaching below the limit by as much, not a narrow one pinned at 1."""
    at_limit = estimate_readout(_band_flows(1.0, 40), HEIGHT)
    assert at_limit.g == pytest.approx(1.0, abs=0.02) and at_limit.high == pytest.approx(1.0)
    assert at_limit.low <= 0.95 and at_limit.informative, at_limit
    beyond = estimate_readout(_band_flows(1.15, 40), HEIGHT)
    assert beyond.g == pytest.approx(1.0) and beyond.high == pytest.approx(1.0), beyond
    assert beyond.low <= 1.0 - 0.15, beyond


@pytest.mark.parametrize("roll", [0.0, 0.004])
def test_an_object_moving_up_and_down_is_no_camera_roll(roll):
    """A still (or rolling) camera with an object moving up/down over a quarter of the
    columns: the roll is read from the other columns, so the camera's band flows hold
    no x-flow growing with the row (which would pass for rolling shutter), and the
    object is the moving layer. A least-squares roll read 0.004 rad here and gave the
    bands +-1.4 px."""
    from priorfx.shutter.readout import band_flows
    h, w = 288, 448
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.dstack([-roll * (yy - (h - 1) / 2), roll * (xx - (w - 1) / 2)]).astype(np.float32)
    hand = (xx >= 40) & (xx < 150) & (yy >= 20) & (yy < 270)
    flow[hand] = (25.0, 7.0)
    bands = band_flows(flow, 12, layers=True)
    assert np.abs(bands[:, 0]).max() < 0.02, bands[:, 0]
    inside = np.isfinite(bands[:, 2])
    assert inside[1:11].all() and np.allclose(bands[inside, 2], 25.0 + roll * ((np.arange(12)[inside] + 0.5) * h / 12 - (h - 1) / 2), atol=0.6)


def _waved_hand_flows(g: float, scan: str, frames: int = 40, h: int = 288, w: int = 512,
                      smear: float = 0.0) -> list:
    """Exact flow fields of a still camera with a round hand (110 px) waved left and
    right across it (and a little up and down), rolling shutter `g`: each hand pixel
    moves from its row's instant in frame k to the instant of the row it reaches in k+1.
    `smear`: a 20 px ring around the hand carries that share of its flow (a real flow
    smooths across the border)."""
    from priorfx.shutter import rs
    a, b = rs.time_coefficients(h, g, scan, "middle")
    ys = np.arange(h, dtype=np.float64)
    xs = np.arange(w, dtype=np.float64)
    pos = lambda t: 0.26 * w * np.sin(2 * np.pi * 0.065 * t + 0.7)  # noqa: E731
    out = []
    for k in range(frames):
        p0 = pos(k + a + b * ys)                                # hand offset seen by each row
        cx, cy = w / 2 + p0, 0.55 * h + 0.15 * p0
        dist = np.hypot(xs[None, :] - cx[:, None], (ys - cy)[:, None])
        hand = np.where(dist < 55, 1.0, np.where(dist < 75, smear, 0.0))
        y1 = ys.copy()
        for _ in range(4):                                      # the row reached depends on the motion
            dx = pos(k + 1 + a + b * np.clip(y1, 0, h - 1)) - p0
            y1 = ys + 0.15 * dx
        flow = np.zeros((h, w, 2), np.float32)
        flow[..., 0] = hand * dx[:, None]
        flow[..., 1] = hand * 0.15 * dx[:, None]
        out.append(flow)
    return out


@pytest.mark.parametrize("g,scan", [(0.5, "up"), (0.85, "down")])
def test_waved_hand_rows_are_where_its_pixels_are(g, scan):
    """A hand fills only part of its top and bottom bands; its flow there was read out
    at its own rows. Taken at the bands' centres its rows sat too far apart and g read
    low (before: 0.461 for 0.5 and 0.785 for 0.85 on these flows)."""
    from priorfx.shutter.readout import pair_evidence
    h = 288
    est = estimate_readout([pair_evidence(f) for f in _waved_hand_flows(g, scan, h=h)], h, scan)
    assert abs(est.g - g) <= 0.03 and est.low <= g <= est.high and est.informative, est


@pytest.mark.parametrize("g,scan", [(0.3, "down"), (0.85, "down")])
def test_flow_smeared_around_a_waved_hand_leaves_its_timeline(g, scan):
    """The flow smears part of the hand's motion into a ring around it; in the hand's
    top and bottom bands that ring is most of the 'moving' pixels. The moving layer is
    read only where the hand fills at least half as much of a band as of its fullest,
    so the ring does not blur the hand's timeline (read in every band, both
    readouts were 'cannot tell': 0.6 with the interval reaching 1.0)."""
    from priorfx.shutter.readout import pair_evidence
    est = estimate_readout([pair_evidence(f) for f in _waved_hand_flows(g, scan, smear=0.5)], 288, scan)
    assert abs(est.g - g) <= 0.04 and est.low <= g <= est.high and est.informative, est


# --------------------------------------------------------------------------- images, exact forward model

def _moving_camera_clip(sample_media, kind: str, g: float, scan: str = "down", n: int = 16, seed: int = 3):
    """Frames of a real photo through a camera `kind` (bench shutter's moves), exact RS render."""
    from priorfx.scenes.shutter import render_rs
    from priorfx.scenes.shutter_moves import Move, MovingCamera
    from priorfx.io import read_image
    img = read_image(sample_media / "china.jpg")[..., :3].astype(np.float32)
    img = np.ascontiguousarray(img[:400, :560])
    hand = None
    if kind == "hand_wave":
        patch = np.ascontiguousarray(img[100:210, 200:310])
        yy, xx = np.mgrid[0:110, 0:110]
        alpha = np.clip((1 - np.hypot(xx - 55, yy - 55) / 55) * 20, 0, 1)[..., None].astype(np.float32)
        hand = np.dstack([patch[..., ::-1], alpha])          # a round patch, colours swapped: stands out
    cam = MovingCamera(img, (448, 320), Move(kind, seed, 448, n + 2), hand, seed=seed)
    frames, _ = render_rs(cam, list(range(1, 1 + n)), g, scan)
    return frames


def _clip_estimate(frames, scan="down"):
    from priorfx.shutter import ShutterParams
    from priorfx.shutter.clip import clip_readout
    from priorfx.shutter.corrector import FrameCorrector
    params = ShutterParams(readout=None, scan=scan)
    corr = FrameCorrector(params, frames[0].shape[1], frames[0].shape[0], live=False)
    return clip_readout(frames, corr, params)


@pytest.mark.parametrize("g,scan", [(0.4, "down"), (0.9, "up")])
def test_known_readout_of_a_shaking_camera(sample_media, g, scan):
    """Exact rolling-shutter render of handheld shake over a real photo: g within 0.05,
    inside its interval, and the interval is narrow (the shake tells)."""
    est = _clip_estimate(_moving_camera_clip(sample_media, "shake", g, scan), scan)
    assert abs(est.g - g) <= 0.05, est
    assert est.low <= g <= est.high, est
    assert est.informative and est.high - est.low < 0.3, est


def test_interval_widens_when_the_motion_cannot_tell(pan_clip):
    """A steady pan explains every g equally: the interval spans most of the range,
    the default is used, and a shaky pan of the same scene gets a narrow one."""
    steady = _clip_estimate(pan_clip(0.8, speed=6.0, n=12)[0])
    shaky = _clip_estimate(pan_clip(0.8, speed=6.0, n=12, shake=5.0)[0])
    assert not steady.informative and steady.high - steady.low > 0.5, steady
    assert steady.g == pytest.approx(0.6)
    assert shaky.informative and shaky.high - shaky.low < 0.35, shaky
    assert shaky.low <= 0.8 <= shaky.high


def test_a_still_camera_on_straight_lines_does_not_tell(sample_media):
    """A still camera on a scene of straight edges (a building's lines and a drawn grid),
    sensor noise only: every g leaves straight lines straight and nothing moves, so
    nothing tells g. The estimate says so (the default, an interval over most of the
    range) instead of reading one from the lines."""
    from priorfx.io import read_image
    img = read_image(sample_media / "china.jpg")[..., :3].astype(np.float32)
    img = np.ascontiguousarray(img[:320, :448])
    img[::40, :] = img[:, ::56] = 1.0                      # white grid lines, exactly straight
    rng = np.random.default_rng(7)
    frames = [np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1).astype(np.float32) for _ in range(16)]
    est = _clip_estimate(frames)
    assert not est.informative and est.high - est.low > 0.5, est
    assert est.g == pytest.approx(0.6)


def test_hand_waved_before_a_still_camera_still_tells(sample_media):
    """The camera is still; only a hand (a patch) swings across: its own timeline reveals g."""
    est = _clip_estimate(_moving_camera_clip(sample_media, "hand_wave", 0.5, n=20))
    assert est.low <= 0.5 <= est.high, est
    assert est.informative, est


def test_interval_coverage_on_noisy_band_flows():
    """95 % intervals over 20 noisy clips of known g contain the truth at least 18 times."""
    rng = np.random.default_rng(5)
    hits = 0
    for i in range(20):
        g = float(rng.uniform(0.3, 1.0))
        bands = [b + rng.normal(0, 0.4, b.shape) for b in _band_flows(g, 30)]
        est = estimate_readout(bands, HEIGHT, seed=i)
        hits += est.low <= g <= est.high
    assert hits >= 18, hits


def test_live_stream_evidence_keeps_gaps():
    """Pairs sampled in runs far apart (a live stream's runs) still give the right g."""
    full = _band_flows(0.6, 400)
    idx = [k for k in range(399) if k % 100 < 30]
    est = estimate_readout([full[k] for k in idx], HEIGHT, frame_index=idx)
    assert abs(est.g - 0.6) < 0.04 and est.low <= 0.6 <= est.high, est
