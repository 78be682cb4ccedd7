"""Person segmentation prior: MediaPipe selfie segmentation (LiteRT).

The model (from the mediapipe 0.10.21 wheel) takes a 256x256 RGB image in
[0, 1], stretched without keeping the aspect ratio (as it was trained), and
returns a person probability; we resize it back to the image size.
"""
from __future__ import annotations

import cv2
import numpy as np

MODEL_ID = "selfie-segmentation"
_SIZE = 256


def person_probability(rgb: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
    """Person probability, float32 H x W in [0, 1].

    Parameters
    ----------
    rgb : float32 H x W x 3 (or 4; alpha is ignored) in [0, 1]
    out_size : (width, height) of the result; default the image's own size.
    """
    from priorfx.models import runtimes

    model = runtimes.load(MODEL_ID)
    h, w = rgb.shape[:2]
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3], np.float32), (_SIZE, _SIZE),
                       interpolation=cv2.INTER_AREA)
    (prob,) = model.run(small[None])
    prob = np.clip(prob[0, :, :, 0], 0.0, 1.0).astype(np.float32)
    ow, oh = out_size or (w, h)
    return cv2.resize(prob, (ow, oh), interpolation=cv2.INTER_LINEAR)
