"""Cut detection between consecutive frames: tiny colour thumbnails and
their mean change (a new shot resets the temporal state)."""
from __future__ import annotations

import cv2
import numpy as np


def thumbnail(image: np.ndarray, size: int = 32) -> np.ndarray:
    """A tiny colour thumbnail used to detect cuts.

    Large frames are first subsampled to every step-th pixel, keeping at
    least 8 x 8 samples per thumbnail pixel: averaging every pixel of a 4K
    frame cost 35 ms, more than the cut check is worth (now about 1 ms)."""
    h, w = image.shape[:2]
    step = max(1, min(h, w) // (8 * size))
    return cv2.resize(np.ascontiguousarray(image[::step, ::step, :3], np.float32), (size, size),
                      interpolation=cv2.INTER_AREA)


def cut_score(prev_thumb: np.ndarray, thumb: np.ndarray) -> float:
    """Mean absolute colour change between two thumbnails (0 same, ~0.3+ new shot)."""
    return float(np.abs(prev_thumb - thumb).mean())
