"""Global-reset rolling shutter (RSGR): exposure normalisation and row-dependent deblurring.

With a global reset every row starts integrating at the same instant t0 and
row y is read out at ``t0 + e + g * r(y)``: its exposure ``E(y) = e + g r(y)``
grows down the frame (scan down). So instead of skew the picture gets

* a brightness ramp: row y collected light for ``E(y)`` (normalised here to
  the longest row, which the sensor's gain puts at full scale);
* a motion blur of length ``|v| E(y)`` that grows down the frame, centred on
  where the point was at ``t0 + E(y) / 2``.

The prior turns "guess a warp" into "warp, then deblur": `coefficients`
gives the RS machinery the half-exposure offset so the warp moves each row's
blur centre to the reset instant, and `deblur` then removes the now
symmetric, row-dependent box blur (Wiener deconvolution in overlapping row
bands, each with its own blur length and direction from the motion).
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-6


def row_exposure(height: int, readout: float, exposure: float, scan: str = "down") -> np.ndarray:
    """E(y) in frame times for every row (float32, length H)."""
    y = np.arange(height, dtype=np.float32)
    r = y / height if scan == "down" else (height - 1 - y) / height
    return (exposure + readout * r).astype(np.float32)


def coefficients(height: int, readout: float, exposure: float, scan: str = "down") -> tuple[float, float, float]:
    """(a, b, b_vel) for the RS warp machinery in RSGR mode.

    The warp offset ``tau(y) = a + b y = E(y) / 2`` moves each row's blur
    centre to the reset instant. Blur centres of neighbouring frames are
    ``1 + (g / 2) dr`` frames apart, hence ``b_vel = b`` (half the RS slope).
    """
    h = float(height)
    if scan == "down":
        return exposure / 2, readout / (2 * h), readout / (2 * h)
    return exposure / 2 + readout * (h - 1) / (2 * h), -readout / (2 * h), -readout / (2 * h)


def normalise(frame: np.ndarray, height_exposure: np.ndarray) -> np.ndarray:
    """Undo the brightness ramp: scale row y by ``max(E) / E(y)`` (float32, clipped to [0, 1])."""
    gain = (height_exposure.max() / np.maximum(height_exposure, _EPS)).astype(np.float32)
    out = frame * gain.reshape(-1, *([1] * (frame.ndim - 1)))
    return np.clip(out, 0.0, 1.0, out=out)


def _line_psf(shape: tuple[int, int], length: float, angle: float) -> np.ndarray:
    """Centred box PSF of `length` pixels along `angle`, anti-aliased, sum 1 (wrapped for FFT)."""
    h, w = shape
    n = max(2, int(np.ceil(length)) * 4)
    t = (np.arange(n) + 0.5) / n - 0.5
    xs = t * length * np.cos(angle)
    ys = t * length * np.sin(angle)
    psf = np.zeros((h, w), np.float64)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(psf, ((y0 + dy) % h, (x0 + dx) % w), wgt)
    return psf / psf.sum()


def deblur(frame: np.ndarray, band_velocity: np.ndarray, exposure_rows: np.ndarray,
           noise: float = 0.02, min_length: float = 1.0) -> np.ndarray:
    """Remove a row-dependent, symmetric box motion blur.

    Parameters
    ----------
    frame : H x W x C float32
        Warped, exposure-normalised frame.
    band_velocity : n x 2 float32
        Dominant velocity (pixels per frame) of n equal row bands, top to bottom.
    exposure_rows : H float32
        E(y): the blur of row y is ``|v| E(y)`` long.
    noise : float
        Wiener noise-to-signal power; larger is smoother and rings less.
    min_length : float
        Blurs shorter than this (pixels) are left alone.

    Returns
    -------
    H x W x C float32 in [0, 1].
    """
    h, w = frame.shape[:2]
    n = len(band_velocity)
    edges = np.linspace(0, h, n + 1).round().astype(int)
    out = np.zeros_like(frame)
    weight = np.zeros((h, 1, 1), np.float32)
    for i in range(n):
        vx, vy = (float(c) for c in band_velocity[i])
        speed = float(np.hypot(vx, vy))
        # Overlapping bands (half a band each side) blended with a tent weight.
        half = max(1, (edges[i + 1] - edges[i]) // 2)
        y0, y1 = max(0, edges[i] - half), min(h, edges[i + 1] + half)
        length = speed * float(exposure_rows[(y0 + y1) // 2])
        band = frame[y0:y1]
        if length >= min_length:
            pad = int(np.ceil(length)) + 8
            padded = np.pad(band, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
            psf = _line_psf(padded.shape[:2], length, np.arctan2(vy, vx))
            k = np.fft.rfft2(psf)
            wiener = np.conj(k) / (np.abs(k) ** 2 + noise)
            spec = np.fft.rfft2(padded, axes=(0, 1))
            res = np.fft.irfft2(spec * wiener[..., None], s=padded.shape[:2], axes=(0, 1))
            band = res[pad:-pad, pad:-pad].astype(np.float32)
        rows = np.arange(y0, y1, dtype=np.float32)
        centre, spread = (y0 + y1 - 1) / 2, max(1.0, (y1 - y0) / 2)
        tent = np.clip(1.0 - np.abs(rows - centre) / spread, 0.05, 1.0).reshape(-1, 1, 1)
        out[y0:y1] += band * tent
        weight[y0:y1] += tent
    out /= weight
    return np.clip(out, 0.0, 1.0, out=out)
