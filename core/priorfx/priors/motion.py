"""Motion prior: dense optical flow (OpenCV DIS) at reduced resolution.

Rolling-shutter correction needs the motion of every pixel between
neighbouring frames, fast enough for live video. DIS (Kroeger et al., ECCV'16)
on a small grey image gives it in about a millisecond; the motion field is
smooth, so computing it at a quarter or a sixth of the resolution loses little
and the warp that uses it still runs at full resolution.

Flow is returned in *full-resolution pixels* on the small grid: sample
``(i, j)`` of the field sits at full-resolution position
``((j + 0.5) * sx - 0.5, (i + 0.5) * sy - 0.5)`` (pixel centres, the
convention of ``cv2.resize``).
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from priorfx.errors import InputError

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
           "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def small_size(width: int, height: int, target_width: int = 320) -> tuple[int, int]:
    """Size of the flow grid: about `target_width` wide, by an integer factor when it can.

    An integer factor keeps ``cv2.resize(INTER_AREA)`` on its fast block-average path.
    """
    if width <= target_width:
        return width, height
    factor = max(1, round(width / target_width))
    return max(8, width // factor), max(8, height // factor)


def gray_small(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 grey image of `size` (w, h) from RGB/BGRA/grey, float [0, 1] or uint8.

    Shrinks first, converts after, so the colour conversion touches few pixels.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.size == 0:
        raise InputError(f"frame has shape {img.shape}", "expected H x W (grey) or H x W x 3/4")
    h, w = img.shape[:2]
    small = img if (w, h) == tuple(size) else cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        code = cv2.COLOR_RGBA2GRAY if small.shape[2] == 4 else cv2.COLOR_RGB2GRAY
        small = cv2.cvtColor(small, code)
    if small.dtype != np.uint8:
        small = cv2.convertScaleAbs(small, alpha=255.0)  # rounds and saturates
    return small


class DisFlow:
    """Dense flow between two small grey frames, in full-resolution pixels.

    Parameters
    ----------
    full_size : (int, int)
        (width, height) of the full-resolution frames.
    small : (int, int)
        (width, height) of the grid the flow is computed on.
    preset : {'ultrafast', 'fast', 'medium'}

    Notes
    -----
    One instance per stream: the OpenCV object keeps buffers and is not
    thread-safe.
    """

    def __init__(self, full_size: tuple[int, int], small: tuple[int, int], preset: str = "fast"):
        self.full_size = tuple(full_size)
        self.small = tuple(small)
        self.scale = np.array([full_size[0] / small[0], full_size[1] / small[1]], np.float32)
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        # Finer patch stride than the preset: the grid is small, so this is cheap
        # and sharpens the flow at motion boundaries.
        self._dis.setPatchStride(3)
        self._dis.setUseSpatialPropagation(True)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow from small grey `a` to `b`: h x w x 2 float32 (dx, dy), full-res pixels."""
        if max(a.shape[:2]) < DIS_MIN_SIDE:  # OpenCV refuses it; a thumbnail shows no motion
            return np.zeros((*a.shape[:2], 2), np.float32)
        f = self._dis.calc(a, b, None)
        f *= self.scale
        return f


DIS_MIN_SIDE = 12  # DIS flow needs the width or the height to be at least this


@functools.lru_cache(maxsize=16)
def grid_positions(small: tuple[int, int], full: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution x and y (float32, h x w, read-only) of the small grid's samples."""
    w, h = small
    sx, sy = full[0] / w, full[1] / h
    xs = (np.arange(w, dtype=np.float32) + 0.5) * sx - 0.5
    ys = (np.arange(h, dtype=np.float32) + 0.5) * sy - 0.5
    gx, gy = np.broadcast_to(xs[None, :], (h, w)).copy(), np.broadcast_to(ys[:, None], (h, w)).copy()
    gx.flags.writeable = gy.flags.writeable = False  # cached and shared
    return gx, gy

