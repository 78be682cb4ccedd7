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
