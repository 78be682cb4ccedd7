"""Matting error metrics as the matting literature reports them.

All take float alpha mattes in [0, 1] of the same shape (H x W). The
definitions follow the evaluation code used by Composition-1k, P3M-10k and
PPM-100 (Rhemann et al.'s SAD / MSE / gradient / connectivity errors), over the
whole image; dtSSD follows Erofeev et al. (temporal coherence of video mattes).

- SAD = sum |a - g| / 1000
- MSE = mean (a - g)^2
- MAD = mean |a - g|
- Grad = sum (|grad a| - |grad g|)^2 / 1000, gradients by first-order
  Gaussian derivative filters with sigma 1.4
- Conn = sum |phi(a) - phi(g)| / 1000, where for each pixel l is the highest
  threshold (steps of 0.1) at which it is still in the largest 8-connected
  component of (a >= t) & (g >= t), d = x - l, phi(x) = 1 - d [d >= 0.15]
- dtSSD = mean over consecutive frame pairs of
  sqrt(mean(((a_t - a_t-1) - (g_t - g_t-1))^2)) * 100
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from scipy import ndimage


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(f"mattes must be H x W of the same shape, got {p.shape} and {g.shape}")
    return p, g


def sad(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = _pair(pred, gt)
    return float(np.abs(p - g).sum() / 1000.0)


def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = _pair(pred, gt)
    return float(np.square(p - g).mean())


def mad(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = _pair(pred, gt)
    return float(np.abs(p - g).mean())


def _grad_mag(x: np.ndarray, sigma: float) -> np.ndarray:
    gx = ndimage.gaussian_filter(x, sigma, order=(0, 1), mode="nearest")
    gy = ndimage.gaussian_filter(x, sigma, order=(1, 0), mode="nearest")
    return np.sqrt(gx * gx + gy * gy)


def grad(pred: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> float:
    p, g = _pair(pred, gt)
    return float(np.square(_grad_mag(p, sigma) - _grad_mag(g, sigma)).sum() / 1000.0)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == biggest


def conn(pred: np.ndarray, gt: np.ndarray, step: float = 0.1) -> float:
    p, g = _pair(pred, gt)
    thresholds = np.arange(0.0, 1.0 + step / 2, step)
    level = np.full(p.shape, -1.0)
    for i in range(1, len(thresholds)):
        omega = _largest_component((p >= thresholds[i]) & (g >= thresholds[i]))
        flag = (level == -1.0) & ~omega
        level[flag] = thresholds[i - 1]
    level[level == -1.0] = 1.0
    dp, dg = p - level, g - level
    phi_p = 1.0 - dp * (dp >= 0.15)
    phi_g = 1.0 - dg * (dg >= 0.15)
    return float(np.abs(phi_p - phi_g).sum() / 1000.0)


def dtssd(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    if len(preds) != len(gts) or len(preds) < 2:
        raise ValueError("dtSSD needs two or more predicted and ground-truth frames, as many of each")
    vals = []
    for t in range(1, len(preds)):
        dp = np.asarray(preds[t], np.float64) - np.asarray(preds[t - 1], np.float64)
        dg = np.asarray(gts[t], np.float64) - np.asarray(gts[t - 1], np.float64)
        vals.append(np.sqrt(np.square(dp - dg).mean()))
    return float(np.mean(vals) * 100.0)


def all_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """SAD, MSE, MAD, Grad and Conn of one matte."""
    return {"sad": sad(pred, gt), "mse": mse(pred, gt), "mad": mad(pred, gt),
            "grad": grad(pred, gt), "conn": conn(pred, gt)}


def shift(x: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """x moved by whole pixels (dx right, dy down); uncovered pixels are 0."""
    h, w = x.shape
    out = np.zeros_like(x)
    ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[yd, xd] = x[ys, xs]
    return out


def dtssd_consistent(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                     offsets: Sequence[tuple[int, int]]) -> float:
    """dtSSD of the same mattes made perfectly consistent over time.

    For a shot whose only motion is a whole-pixel translation of the subject
    (`offsets`: (dx, dy) of each frame relative to any fixed reference, as
    the benchmark's sequences are built), each frame's error a_t - g_t is
    moved back into the subject's frame and averaged over the shot; the
    result is g_t plus that mean error moved to frame t. This is what any
    temporal filter that only combines these mattes (averaging,
    motion-compensated blending, recurrence) can at best reach: the part of
    the error that flickers is gone, the part that moves with the subject
    stays, and a moving error still counts in dtSSD. It bounds what temporal
    handling can do for a given per-frame matting.
    """
    if not (len(preds) == len(gts) == len(offsets)) or len(preds) < 2:
        raise ValueError("dtSSD needs two or more predicted and ground-truth frames and an "
                         "offset per frame")
    errs = [shift(np.asarray(p, np.float64) - np.asarray(g, np.float64), -dx, -dy)
            for p, g, (dx, dy) in zip(preds, gts, offsets)]
    mean_err = np.mean(errs, axis=0)
    consistent = [np.clip(np.asarray(g, np.float64) + shift(mean_err, dx, dy), 0.0, 1.0)
                  for g, (dx, dy) in zip(gts, offsets)]
    return dtssd(consistent, gts)
