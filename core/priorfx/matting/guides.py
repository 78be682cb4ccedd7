"""User guidance for matting: a trimap, or holdout / garbage masks.

`guides` is a dict with any of the keys

- ``'trimap'``: 0 = background, 1 = foreground, anything between (0.5 by
  convention, i.e. 128 in an 8-bit file) = unknown; values <= 0.1 count as
  background and >= 0.9 as foreground. With a trimap the person prior is not
  used: the unknown region is solved from the picture and the trimap alone,
  so any subject can be matted (animals, props, smoke, fire).
- ``'holdout'``: > 0.5 = always foreground (alpha exactly 1).
- ``'garbage'``: > 0.5 = always background (alpha exactly 0).

Each value is one of
- a float32 (or any numeric) H x W array, used for every frame;
- H x W x 1, x 3 (the channel mean is used) or x 4 (the alpha channel is used);
- a sequence (list/tuple) with one such array (or None) per frame;
- a callable ``f(frame_index) -> array or None``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from priorfx.errors import InputError, UsageError

GUIDE_KEYS = ("trimap", "holdout", "garbage")


def check_guides(guides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the keys (not the pixels: those are checked per frame)."""
    if guides is None:
        return {}
    if not isinstance(guides, Mapping):
        raise UsageError(f"guides must be a dict with keys {', '.join(GUIDE_KEYS)}, got {type(guides).__name__}")
    bad = sorted(set(guides) - set(GUIDE_KEYS))
    if bad:
        raise UsageError(f"unknown guide(s) {', '.join(map(str, bad))}",
                         f"use {', '.join(GUIDE_KEYS)}")
    return {k: v for k, v in guides.items() if v is not None}


def to_mask(value: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    """One guide image as float32 H x W, checked against the frame's shape."""
    try:
        arr = np.asarray(value)
    except Exception:
        arr = np.asarray(None, dtype=object)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"the {name} guide is not an image (got {type(value).__name__})",
                         "pass a greyscale or RGBA image file / array")
    if arr.ndim == 3:
        c = arr.shape[2]
        if c == 1:
            arr = arr[..., 0]
        elif c == 3:
            arr = arr.astype(np.float32).mean(axis=2)
        elif c == 4:
            arr = arr[..., 3]
        else:
            raise InputError(f"the {name} guide has {c} channels",
                             "use a greyscale (1), RGB (3) or RGBA (4, alpha is used) image")
    if arr.ndim != 2:
        raise InputError(f"the {name} guide has shape {arr.shape}, not an image",
                         "pass an H x W (or H x W x C) image")
    if arr.shape != tuple(shape):
        raise InputError(f"the {name} guide is {arr.shape[1]}x{arr.shape[0]} but the frame is "
                         f"{shape[1]}x{shape[0]}", "make the guide the same size as the plate")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    arr = np.asarray(arr, np.float32)
    if not np.isfinite(arr).all():
        raise InputError(f"the {name} guide contains NaN or infinite values")
    return arr


def guides_for_frame(guides: dict[str, Any], index: int, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The guide masks that apply to frame `index` (checked)."""
    out: dict[str, np.ndarray] = {}
    for name, value in guides.items():
        if callable(value):
            value = value(index)
        elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and not _is_image_like(value):
            if index >= len(value):
                raise InputError(f"the {name} guide has {len(value)} frames but frame {index} was asked for",
                                 "give one guide per frame, or a single guide for all frames")
            value = value[index]
        if value is None:
            continue
        out[name] = to_mask(value, name, shape)
    return out


def _is_image_like(value: Sequence) -> bool:
    """A nested list of numbers (an image written as lists) rather than a list of frames."""
    return len(value) > 0 and isinstance(value[0], Sequence) and len(value[0]) > 0 and \
        isinstance(value[0][0], (int, float))


GuideSource = Callable[[int], Any]
