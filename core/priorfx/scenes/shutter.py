"""Rolling-shutter scenes: real footage and real photos as continuous-time
scenes, rendered row by row (rolling shutter) or with a global reset (RSGR).

Real footage (`VideoScene`): the frames are global-shutter instants; frames in
between are interpolated along Farneback flow (not DIS, so the data does not
share the corrector's flow). Photos (`PhotoScene`): a camera panning, shaking
and rolling over a real photo, optionally with a real photo patch moving
across it, rendered exactly.
"""
from __future__ import annotations

import cv2
import numpy as np

from priorfx.shutter import rs, rsgr


VIDEOS = ("bikes.mp4", "single_face.mp4", "carphone_pristine.mp4")

PHOTOS = ("china.jpg", "flower.jpg", "coffee.png")

EXPOSURE = 0.25


class VideoScene:
    """Real footage as a continuous-time scene: frames at integer times, flow-interpolated between."""

    def __init__(self, frames: list[np.ndarray]):
        self.frames = frames
        self.h, self.w = frames[0].shape[:2]
        self._flows: dict[tuple[int, int], np.ndarray] = {}
        gx, gy = np.meshgrid(np.arange(self.w, dtype=np.float32), np.arange(self.h, dtype=np.float32))
        self.grid = np.dstack([gx, gy])

    def _flow(self, i: int, j: int) -> np.ndarray:
        if (i, j) not in self._flows:
            a = cv2.cvtColor(self.frames[i], cv2.COLOR_RGB2GRAY)
            b = cv2.cvtColor(self.frames[j], cv2.COLOR_RGB2GRAY)
            self._flows[(i, j)] = cv2.calcOpticalFlowFarneback(
                (a * 255).astype(np.uint8), (b * 255).astype(np.uint8), None, 0.5, 4, 21, 4, 7, 1.5, 0)
        return self._flows[(i, j)]

    def at(self, row_times: np.ndarray) -> np.ndarray:
        """Image whose row y shows the scene at time row_times[y]."""
        out = np.empty_like(self.frames[0])
        base = np.clip(np.floor(row_times).astype(int), 0, len(self.frames) - 2)
        for i in np.unique(base):
            rows = np.nonzero(base == i)[0]
            alpha = np.clip(row_times[rows] - i, 0.0, 1.0).astype(np.float32)[:, None, None]
            if np.all(alpha == 0):
                out[rows] = self.frames[i][rows]
                continue
            f01, f10 = self._flow(i, i + 1)[rows], self._flow(i + 1, i)[rows]
            g = self.grid[rows]
            to0 = g + (-(1 - alpha) * alpha * f01 + alpha * alpha * f10)
            to1 = g + ((1 - alpha) ** 2 * f01 - alpha * (1 - alpha) * f10)
            i0 = cv2.remap(self.frames[i], to0, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            i1 = cv2.remap(self.frames[i + 1], to1, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out[rows] = (1 - alpha) * i0 + alpha * i1
        return out


class PhotoScene:
    """A camera moving over a real photo (pan, shake, roll), optionally with a moving object."""

    def __init__(self, photo: np.ndarray, size: tuple[int, int], seed: int, speed: float,
                 obj: np.ndarray | None = None, obj_speed: float = 0.0):
        rng = np.random.default_rng(seed)
        self.photo = photo
        self.w, self.h = size
        self.speed = speed * np.array([np.cos(a := rng.uniform(-0.4, 0.4)), np.sin(a)])
        if rng.random() < 0.5:
            self.speed[0] = -self.speed[0]
        self.shake_amp = rng.uniform(3.0, 6.0, 2)
        self.shake_freq = rng.uniform(0.12, 0.22, 2)
        self.shake_phase = rng.uniform(0, 2 * np.pi, 2)
        self.roll = rng.uniform(0.004, 0.01)
        self.obj = obj
        self.obj_v = np.array([obj_speed, rng.uniform(-0.2, 0.2) * obj_speed])
        gx, gy = np.meshgrid(np.arange(self.w, dtype=np.float32), np.arange(self.h, dtype=np.float32))
        self.gx, self.gy = gx, gy

    def _pose(self, t: np.ndarray):
        shake = self.shake_amp[:, None] * np.sin(2 * np.pi * self.shake_freq[:, None] * t[None] + self.shake_phase[:, None])
        tx = self.speed[0] * t + shake[0]
        ty = self.speed[1] * t + shake[1]
        theta = self.roll * np.sin(2 * np.pi * 0.1 * t)
        return tx, ty, theta

    def at(self, row_times: np.ndarray) -> np.ndarray:
        t = np.asarray(row_times, np.float64)
        tx, ty, th = (c.astype(np.float32)[:, None] for c in self._pose(t))
        ph, pw = self.photo.shape[:2]
        cx, cy = self.w / 2, self.h / 2
        x, y = self.gx - cx, self.gy - cy
        mx = np.cos(th) * x - np.sin(th) * y + pw / 2 + tx
        my = np.sin(th) * x + np.cos(th) * y + ph / 2 + ty
        img = cv2.remap(self.photo, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT_101)
        if self.obj is not None:
            oh, ow = self.obj.shape[:2]
            ox = (self.w * 0.5 - ow / 2 + self.obj_v[0] * (t - 6)).astype(np.float32)[:, None]
            oy = (self.h * 0.5 - oh / 2 + self.obj_v[1] * (t - 6)).astype(np.float32)[:, None]
            patch = cv2.remap(self.obj, self.gx - ox, self.gy - oy, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            a = patch[..., 3:4]
            img = img * (1 - a) + patch[..., :3] * a
        return img.astype(np.float32)


def object_patch(photo: np.ndarray, size: int) -> np.ndarray:
    """A round patch of a real photo with a soft edge, RGBA."""
    h, w = photo.shape[:2]
    s = min(h, w) // 2
    patch = cv2.resize(photo[h // 2 - s // 2:h // 2 + s // 2, w // 2 - s // 2:w // 2 + s // 2], (size, size),
                       interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(xx - size / 2 + 0.5, yy - size / 2 + 0.5) / (size / 2)
    alpha = np.clip((1.0 - r) * size / 4, 0, 1)[..., None]
    return np.dstack([patch, alpha]).astype(np.float32)


def render_rs(scene, ks: list[int], g: float, scan: str = "down") -> tuple[list, list]:
    """Rolling-shutter frames (target instant k = middle row's) and ground truth."""
    a, b = rs.time_coefficients(scene.h, g, scan, "middle")
    tau = a + b * np.arange(scene.h)
    rs_frames = [scene.at(k + tau) for k in ks]
    gts = [scene.at(np.full(scene.h, float(k))) for k in ks]
    return rs_frames, gts


def render_rsgr(scene, ks: list[int], g: float, exposure: float = EXPOSURE, samples: int = 12):
    """Global-reset frames (reset at k) with the brightness ramp, and the sharp frame at k."""
    e = rsgr.row_exposure(scene.h, g, exposure, "down").astype(np.float64)
    frames, gts = [], []
    for k in ks:
        acc = np.zeros_like(scene.at(np.full(scene.h, float(k))))
        for m in range(samples):
            acc += scene.at(k + e * (m + 0.5) / samples)
        gain = (e / e.max()).astype(np.float32)[:, None, None]
        frames.append(acc / samples * gain)
        gts.append(scene.at(np.full(scene.h, float(k))))
    return frames, gts


def load_video_frames(name: str, start: int, count: int, max_width: int = 640, step: int = 1) -> list[np.ndarray]:
    """`count` frames of a sample clip from `start`, every `step`-th frame."""
    from priorfx.io import read_frames
    from priorfx.samples import sample_path
    frames = []
    for i, f in enumerate(read_frames(sample_path(name))):
        if i < start or (i - start) % step:
            continue
        if len(frames) >= count:
            break
        if f.shape[1] > max_width:
            f = cv2.resize(f, (max_width, round(f.shape[0] * max_width / f.shape[1])), interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(f[..., :3], np.float32))
    return frames


def load_photo(name: str, scale: float) -> np.ndarray:
    from priorfx.io import read_image
    from priorfx.samples import sample_path
    img = read_image(sample_path(name))[..., :3]
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).astype(np.float32)
