"""Per-frame correction shared by clips and live streams (`FrameCorrector`).

`FrameCorrector` owns everything tied to one frame size (flow object, map
grids, temporal state) and turns small grey neighbours into a displacement
field, then warps RGB frames or camera planes with it. Clips
(`priorfx.shutter.clip`) and the live session (`priorfx.shutter.session`)
both drive it.
"""
from __future__ import annotations

import cv2
import numpy as np

from priorfx.errors import InputError
from priorfx.priors.motion import DisFlow, gray_small, small_size
from priorfx.shutter import rs, rsgr
from priorfx.shutter.params import CLIP_FLOW, LIVE_FLOW, ShutterParams
from priorfx.shutter.readout import band_flows

DEBLUR_BANDS = 8
EXTRAPOLATE = True
"""Zero-latency streams: carry the camera velocity forward by its acceleration (see `_extrapolate`)."""
SKIP_PX = 0.25
"""A frame whose correction moves no pixel by more than this is passed through
unchanged: a sub-pixel bilinear resample would soften it more than the
correction sharpens it (and a still scene stays bit-identical)."""
ESTIMATION_WIDTH, ESTIMATION_PRESET = 640, "medium"
"""The readout estimate rests on a subtle row-to-row change of the flow, which
the coarse live flow flattens (it reads g about 20 % low); a finer, slower
flow is used for it, only on the frames that feed the estimate."""


def check_frame(frame: np.ndarray, what: str = "frame") -> np.ndarray:
    """An H x W x 3 (or x 4) float32/uint8 image, or InputError saying what is wrong."""
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 8 or arr.shape[1] < 8:
        raise InputError(f"{what} has shape {arr.shape}",
                         "expected an RGB image H x W x 3 (at least 8 x 8 pixels)")
    if arr.dtype == np.float64 or arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.float32, np.uint8):
        raise InputError(f"{what} has dtype {arr.dtype}", "use float32 in [0, 1] or uint8")
    return arr


class FrameCorrector:
    """Motion and warp for frames of one size.

    Parameters
    ----------
    params : ShutterParams
    width, height : int
        Full-resolution frame size.
    live : bool
        Live stream (fast flow) or clip (fine flow) when the params leave it open.
    """

    def __init__(self, params: ShutterParams, width: int, height: int, live: bool = True):
        self.params = params
        self.full = (int(width), int(height))
        width_default, preset_default = LIVE_FLOW if live else CLIP_FLOW
        self.cubic = not live
        self.small = small_size(width, height, params.flow_width or width_default)
        self.flow = DisFlow(self.full, self.small, params.flow_preset or preset_default)
        self.maps = rs.WarpMaps()
        self._v_before: np.ndarray | None = None
        self.last_velocity: np.ndarray | None = None
        self.last_target_velocity: np.ndarray | None = None

    # ------------------------------------------------------------------ motion
    def gray(self, image: np.ndarray) -> np.ndarray:
        return gray_small(image, self.small)

    def coefficients(self, readout: float) -> tuple[float, float, float]:
        """(a, b, b_vel): warp offset tau(y) = a + b y and the velocity slope."""
        p, h = self.params, self.full[1]
        if p.mode == "rsgr":
            return rsgr.coefficients(h, readout, p.exposure, p.scan)
        a, b = rs.time_coefficients(h, readout, p.scan, p.target)
        return a, b, b

    def velocity(self, cur: np.ndarray, prev: np.ndarray | None, nxt: np.ndarray | None,
                 readout: float, gap: int = 1, gap_next: int = 1) -> np.ndarray | None:
        """Smoothed velocity field of the frame `cur` (small grey); advances the motion
        state. None without neighbours. All a warm-up frame needs (see `correct_clip`).
        `gap`: frames between `prev` and `cur` (a live stream's motion thread skips
        frames when the CPU is behind, a busy host drops them), `gap_next` to `nxt`."""
        if prev is None and nxt is None:
            return None
        _, _, b_vel = self.coefficients(readout)
        v_next = rs.velocity_from_flow(self.flow(cur, nxt), b_vel, +gap_next) if nxt is not None else None
        v_prev = rs.velocity_from_flow(self.flow(cur, prev), b_vel, -gap) if prev is not None else None
        acc = None
        if v_next is None and EXTRAPOLATE:
            med = rs.dominant_velocity(v_prev)
            acc = self._global_acceleration(med)
            if acc is not None and gap > 1:
                # v_prev is the velocity mid-gap, gap/2 frames ago: carried the extra
                # (gap - 1)/2 frames here, the last half frame by combine_velocities
                acc = acc / gap
                v_prev = v_prev + acc * np.float32(0.5 * (gap - 1))
        motion = rs.combine_velocities(v_next, v_prev, acc)
        v = rs.smooth_velocity(motion, self._v_before, self.params.smoothing)
        self._v_before = v
        self.last_velocity = v
        return v

    def displacement(self, cur: np.ndarray, prev: np.ndarray | None, nxt: np.ndarray | None,
                     readout: float, gap: int = 1, gap_next: int = 1) -> np.ndarray | None:
        """Small displacement field for the frame `cur` (small grey), None without neighbours."""
        v = self.velocity(cur, prev, nxt, readout, gap, gap_next)
        if v is None:
            return None
        a, b, _ = self.coefficients(readout)
        v_t = rs.splat_velocity(v, self.full, a, b)
        self.last_target_velocity = v_t
        d = rs.displacement(v_t, self.full, a, b, self.params.strength)
        if float(np.abs(d).max()) < SKIP_PX:
            return None
        return d

    def _global_acceleration(self, median_velocity: np.ndarray) -> np.ndarray | None:
        """Zero latency: the camera's acceleration, to carry the half-frame-old velocity to now.

        The flow to the previous frame tells the velocity half a frame ago; the
        change of the median velocity since the last frame is the camera's
        acceleration. Only this global part is used: a per-pixel difference
        would mix up moving objects with what was there a frame ago.
        """
        before, self._median_before = getattr(self, "_median_before", None), median_velocity
        if before is None:
            return None
        return np.clip(median_velocity - before, -8.0, 8.0)  # px / frame^2; guards cuts and glitches

    def _estimation(self) -> DisFlow:
        if getattr(self, "_est", None) is None:
            self._est = DisFlow(self.full, small_size(*self.full, ESTIMATION_WIDTH), ESTIMATION_PRESET)
        return self._est

    def estimation_gray(self, image: np.ndarray) -> np.ndarray:
        """Grey image at the readout-estimation resolution (from a full-size image)."""
        return gray_small(image, self._estimation().small)

    def estimation_flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Fine flow between two `estimation_gray` images, for the readout estimate
        (made by this or another corrector of the same size: the motion process's)."""
        return self._estimation()(a, b)

    # ------------------------------------------------------------------ apply
    def correct_rgb(self, frame: np.ndarray, disp: np.ndarray | None, readout: float) -> np.ndarray:
        """Warp (and in RSGR mode normalise + deblur) one RGB(A) frame."""
        p = self.params
        if p.mode == "rsgr":
            exp_rows = rsgr.row_exposure(self.full[1], readout, p.exposure, p.scan)
            img = frame.astype(np.float32) * np.float32(1 / 255) if frame.dtype == np.uint8 else frame
            img = rsgr.normalise(img, exp_rows)
            if disp is None:
                return img
            img = rs.warp(img, self.maps.map_for(disp, self.full), cubic=self.cubic)
            if p.strength > 0:
                bands = band_flows(self.last_target_velocity, DEBLUR_BANDS) * p.strength
                img = rsgr.deblur(img, bands.astype(np.float32), exp_rows)
            return img if frame.dtype != np.uint8 else cv2.convertScaleAbs(img, alpha=255.0)
        if disp is None:
            return frame.copy()
        return rs.warp(frame, self.maps.map_for(disp, self.full), cubic=self.cubic)

    @staticmethod
    def plane_maps(fmt: str, full: tuple[int, int]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """(size, subsampling) of the maps a format's planes are warped with."""
        w, h = full
        if fmt in ("bgra", "rgba"):
            return [(full, (1, 1))]
        if fmt == "yuy2":
            return [(full, (1, 1)), ((w // 2, h), (2, 1))]
        sub = (2, 1) if fmt == "i422" else (2, 2)
        return [(full, (1, 1)), ((w // 2, h // sub[1]), sub)]

    def correct_planes(self, planes: list[np.ndarray], fmt: str, disp,
                       out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Warp camera planes in their own layout (RS mode); `out` views are written in place.

        `disp` is a small displacement field, or the maps themselves as a dict
        {(size, sub): map} (`BackgroundMotion` builds them off the frame's path).
        """
        w, h = self.full
        if isinstance(disp, dict):
            prebuilt = disp
            map_for = lambda _d, size, sub=(1, 1): prebuilt[(tuple(size), sub)]  # noqa: E731
        else:
            map_for = self.maps.map_for
        if out is None:
            out = [np.empty(p.shape, np.uint8) for p in planes]
        if disp is None:
            for src, dst in zip(planes, out):
                if not np.shares_memory(src, dst):
                    np.copyto(dst, src)
            return out
        if fmt in ("bgra", "rgba"):
            rs.warp(planes[0].reshape(h, w, 4), map_for(disp, self.full),
                    dst=out[0].reshape(h, w, 4))
            return out
        if fmt == "yuy2":
            quad = planes[0].reshape(h, w // 2, 4)
            y = np.ascontiguousarray(planes[0].reshape(h, w, 2)[..., 0])
            uv = np.ascontiguousarray(quad[..., 1::2])
            y = rs.warp(y, map_for(disp, self.full))
            uv = rs.warp(uv, map_for(disp, (w // 2, h), (2, 1)))
            dst = out[0].reshape(h, w // 2, 4)
            dst[..., 0::2] = y.reshape(h, w // 2, 2)
            dst[..., 1::2] = uv
            return out
        rs.warp(planes[0], map_for(disp, self.full), dst=out[0])
        sub = (2, 1) if fmt == "i422" else (2, 2)
        csize = (w // 2, h // sub[1])
        cmap = map_for(disp, csize, sub)
        if fmt == "nv12":
            rs.warp(planes[1].reshape(csize[1], csize[0], 2), cmap, dst=out[1].reshape(csize[1], csize[0], 2))
        else:
            rs.warp(planes[1], cmap, dst=out[1])
            rs.warp(planes[2], cmap, dst=out[2])
        return out
