"""Rolling-shutter test scenes rendered from real photos with a known, exact model."""
from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="module")
def photo(sample_media):
    """china.jpg (real photo) enlarged so a 320x192 window can pan across it."""
    from priorfx.io import read_image
    img = read_image(sample_media / "china.jpg")[..., :3]
    return cv2.resize(img, None, fx=1.2, fy=1.2, interpolation=cv2.INTER_CUBIC).astype(np.float32)


def row_times(height: int, g: float, scan: str = "down", target: str = "middle") -> np.ndarray:
    """tau(y): when row y is exposed relative to the target instant, in frames (the issue's model)."""
    y = np.arange(height, dtype=np.float64)
    r = y / height if scan == "down" else (height - 1 - y) / height
    y_t = (height - 1) / 2 if target == "middle" else 0.0
    r_t = y_t / height if scan == "down" else (height - 1 - y_t) / height
    return g * (r - r_t)


def window(photo: np.ndarray, x_off: np.ndarray, size=(320, 192), y_off: np.ndarray | float = 0.0) -> np.ndarray:
    """Crop of the photo whose row y is shifted by x_off[y] (camera panning right by x_off)."""
    w, h = size
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx = gx + 40 + np.asarray(x_off, np.float32).reshape(-1, 1)
    my = gy + 40 + np.asarray(y_off, np.float32).reshape(-1, 1)
    return cv2.remap(photo, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


@pytest.fixture
def pan_clip(photo):
    """pan_clip(g, speed, n, scan, target) -> (rolling-shutter frames, global-shutter truth).

    A pure horizontal pan at `speed` px/frame; the RS frame k shows row y as it
    was at time k + tau(y), the truth shows every row at time k.
    """
    def make(g: float, speed: float = 8.0, n: int = 6, scan: str = "down", target: str = "middle",
             shake: float = 0.0):
        h = 192
        tau = row_times(h, g, scan, target)
        pos = lambda t: speed * t + shake * np.sin(2 * np.pi * 0.17 * t)  # noqa: E731
        rs = [window(photo, pos(k + tau)) for k in range(n)]
        gt = [window(photo, np.full(h, pos(float(k)))) for k in range(n)]
        return rs, gt
    return make


def band_shifts(a: np.ndarray, b: np.ndarray, bands: int = 6, border: int = 24) -> np.ndarray:
    """Sub-pixel (dx, dy) of b relative to a in each row band (phase correlation), bands x 2."""
    ga = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)[border:-border, border:-border]
    gb = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)[border:-border, border:-border]
    edges = np.linspace(0, ga.shape[0], bands + 1).astype(int)
    win = None
    out = []
    for i in range(bands):
        pa, pb = ga[edges[i]:edges[i + 1]], gb[edges[i]:edges[i + 1]]
        win = cv2.createHanningWindow(pa.shape[::-1], cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(pa.astype(np.float32), pb.astype(np.float32), win)
        out.append((dx, dy))
    return np.array(out)


def psnr(a: np.ndarray, b: np.ndarray, border: int = 16) -> float:
    d = (a[border:-border, border:-border].astype(np.float64) - b[border:-border, border:-border]) ** 2
    return float(10 * np.log10(1.0 / max(d.mean(), 1e-12)))


@pytest.fixture
def helpers():
    class H:
        pass
    H.band_shifts = staticmethod(band_shifts)
    H.psnr = staticmethod(psnr)
    H.window = staticmethod(window)
    H.row_times = staticmethod(row_times)
    return H
