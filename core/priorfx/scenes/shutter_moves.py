"""Camera moves of calls and handheld shots over real pictures, rendered row by row.

The real-footage cases of `bench shutter`: real content (sample clips, or photos)
seen through a camera that shakes, pans in jerks, rolls, or stands still
while a hand waves in front of it. The rolling-shutter frame takes row y from
the instant ``k + tau(y)`` of the exact pose (and hand position) at that
instant; the ground truth is the frame at instant k. The clip's own content
changes too (bikes ride by): content rows are taken at their rows' instants
from the flow-interpolated footage (`VideoScene`), unless the content is one
still picture (`bench shutter` freezes the clip behind a waved hand: the
clip's own rolling shutter would blur that case's truth).

The estimator never sees these parameters: it gets the frames and the scan
direction (a setting of the camera's mount the user knows), nothing else.
"""
from __future__ import annotations

import cv2
import numpy as np

MOVES = ("shake", "jerky_pan", "roll", "hand_wave")


class Move:
    """A camera pose over time: translation (tx, ty) px and roll (rad), t in frames."""

    def __init__(self, kind: str, seed: int, width: int, frames: int):
        rng = np.random.default_rng(seed)
        self.kind = kind
        scale = width / 480.0                       # speeds are for a 480-pixel-wide picture
        # Handheld tremor: three sines per axis, 1.2 to 7.5 Hz at 30 fps.
        n = 3
        self.freq = rng.uniform(0.04, 0.25, (2, n))
        speed = rng.uniform(1.0, 3.0, (2, n)) * scale * {"shake": 1.6, "jerky_pan": 0.5,
                                                          "roll": 0.6, "hand_wave": 0.05}[kind]
        self.amp = speed / (2 * np.pi * self.freq)  # peak speed = 2 pi f A
        self.phase = rng.uniform(0, 2 * np.pi, (2, n))
        self.roll_amp = {"roll": rng.uniform(0.03, 0.05), "shake": 0.004}.get(kind, 0.0)
        self.roll_freq = rng.uniform(0.05, 0.09)
        self.roll_phase = rng.uniform(0, 2 * np.pi)
        # Jerky pan: the horizontal speed steps between pans and stops, 2-frame ramps.
        t = np.arange(0, frames + 4, 0.01)
        vx = np.zeros_like(t)
        if kind == "jerky_pan":
            edge, v = 0.0, 0.0
            direction = rng.choice([-1.0, 1.0])
            while edge < t[-1]:
                length = rng.uniform(3, 7)
                target = 0.0 if v != 0 else direction * rng.uniform(8, 16) * scale
                ramp = np.clip((t - edge) / 2.0, 0, 1)
                sel = t >= edge
                vx[sel] = v + (target - v) * ramp[sel]
                edge, v = edge + length, target
        self._t, self._x = t - 2.0, np.cumsum(vx) * 0.01

    def pose(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.asarray(t, np.float64)
        sh = (self.amp[..., None] * np.sin(2 * np.pi * self.freq[..., None] * t + self.phase[..., None])).sum(1)
        tx = sh[0] + np.interp(t, self._t, self._x)
        theta = self.roll_amp * np.sin(2 * np.pi * self.roll_freq * t + self.roll_phase)
        return tx, sh[1], theta


class MovingCamera:
    """Real content through a moving camera (and an optional waving hand), any row instants.

    Parameters
    ----------
    content : H x W x 3 float32 image, or a `VideoScene`
        Larger than `size`: the camera looks at its centre, moved by the pose.
    size : (w, h)
        Output frame size.
    move : Move
    hand : h x w x 4 RGBA float32, optional
        A patch waved left and right in front of the camera ("hand_wave").
    """

    def __init__(self, content, size: tuple[int, int], move: Move, hand: np.ndarray | None = None,
                 seed: int = 0):
        self.content = content
        self.w, self.h = size
        self.move = move
        self.hand = hand
        rng = np.random.default_rng(seed + 7)
        self.wave_amp = self.w * rng.uniform(0.22, 0.3)
        self.wave_freq = rng.uniform(0.05, 0.08)
        self.wave_phase = rng.uniform(0, 2 * np.pi)
        gx, gy = np.meshgrid(np.arange(self.w, dtype=np.float32), np.arange(self.h, dtype=np.float32))
        self.gx, self.gy = gx, gy

    def _content_at(self, row_times: np.ndarray) -> np.ndarray:
        if isinstance(self.content, np.ndarray):
            return self.content
        # Content row yc lands near output row yc - margin: give it that row's instant.
        ch = self.content.h
        margin = (ch - self.h) / 2
        idx = np.clip(np.arange(ch) - margin, 0, self.h - 1).astype(int)
        return self.content.at(row_times[idx])

    def at(self, row_times: np.ndarray) -> np.ndarray:
        """Image whose row y shows the camera's view at instant row_times[y] (exact per row)."""
        t = np.asarray(row_times, np.float64)
        src = self._content_at(t)
        tx, ty, th = (c.astype(np.float32)[:, None] for c in self.move.pose(t))
        ch, cw = src.shape[:2]
        x, y = self.gx - self.w / 2, self.gy - self.h / 2
        mx = np.cos(th) * x - np.sin(th) * y + cw / 2 + tx
        my = np.sin(th) * x + np.cos(th) * y + ch / 2 + ty
        img = cv2.remap(src, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REFLECT_101)
        if self.hand is not None:
            hh, hw = self.hand.shape[:2]
            pos = self.wave_amp * np.sin(2 * np.pi * self.wave_freq * t + self.wave_phase)
            ox = (self.w / 2 - hw / 2 + pos).astype(np.float32)[:, None]
            oy = (self.h * 0.55 - hh / 2 + 0.15 * pos).astype(np.float32)[:, None]
            patch = cv2.remap(self.hand, self.gx - ox, self.gy - oy, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            a = patch[..., 3:4]
            img = img * (1 - a) + patch[..., :3] * a
        return np.clip(img, 0.0, 1.0).astype(np.float32)
