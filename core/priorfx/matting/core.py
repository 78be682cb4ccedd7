"""Matting a shot: person prior -> band refinement -> foreground colours.

`MattingSession` is the stateful form (push one frame, get one result; the
RVM recurrent state and the previous refined alpha live in it); `matte_clip`
runs a session over an iterable of frames. A still image is a clip of one frame.
"""
from __future__ import annotations

import time
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from priorfx.errors import InputError
from priorfx.matting import subject
from priorfx.matting.band import auto_band_px, confidence_map, refine_alpha
from priorfx.matting.cuts import cut_score, thumbnail
from priorfx.matting.foreground import estimate_foreground, estimate_foreground_multilevel
from priorfx.matting.guides import check_guides, guides_for_frame
from priorfx.matting.params import CG_ITERATIONS, MatteResult, MattingParams
from priorfx.matting.solver import clip01
from priorfx.matting.temporal import reliable_flow, temporal_blend
from priorfx.progress import Progress, tick
from priorfx.provenance import provenance

OPERATION = "matte"
# Largest share of the previous frame's alpha in the band is
# min(TEMPORAL_MAX, params.temporal * TEMPORAL_SCALE), times the gates of
# temporal.temporal_blend: the default temporal 0.5 gives 0.85 (on the
# benchmark's sequences 0.5 / 0.7 / 0.85 / 0.95 gave dtSSD 0.95 / 0.93 /
# 0.91 / 0.91 x per-frame matting).
TEMPORAL_SCALE = 1.7
TEMPORAL_MAX = 0.95
# Width of the grid the optical flow for temporal stability is computed on.
FLOW_WIDTH = 480
# Trust the flow only where forward and backward flow agree.
CHECK_FLOW = True


def check_frame(frame: Any, index: int) -> np.ndarray:
    """A frame as float32 H x W x 3 (uint8 / uint16 scaled to [0, 1]); alpha
    (a 4th channel) is dropped. Values are not clipped here."""
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 4 or arr.shape[1] < 4:
        raise InputError(f"frame {index} has shape {arr.shape}; matting needs RGB or RGBA "
                         "images (H x W x 3 or 4) of at least 4x4 pixels",
                         "convert greyscale or multi-layer images to RGB first")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    arr = np.ascontiguousarray(arr[..., :3], np.float32)
    if not np.isfinite(arr).all():
        raise InputError(f"frame {index} contains NaN or infinite values")
    return arr


class MattingSession:
    """Push frames of one or more shots in order; get a MatteResult each."""

    def __init__(self, params: MattingParams | None = None, threads: int = 0, device: str = "auto"):
        from priorfx.priors.person import PersonMatter

        self.params = (params or MattingParams()).validate()
        self.prior = PersonMatter(self.params.downsample_ratio, threads, self.params.prior, device)
        self.model_id = self.params.prior
        self.index = 0
        self._flow = None  # priorfx.priors.motion.DisFlow for the current frame size
        self._prev_gray: np.ndarray | None = None
        self._prev_image: np.ndarray | None = None
        self._prev_alpha: np.ndarray | None = None
        self._prev_thumb: np.ndarray | None = None
        self._prev_prior: np.ndarray | None = None

    def reset(self) -> None:
        """Start a new shot: forget the recurrent state and the previous frame."""
        self.prior.reset()
        self._prev_image = self._prev_alpha = self._prev_thumb = self._prev_gray = None
        self._prev_prior = None

    def _gray(self, image: np.ndarray) -> np.ndarray:
        from priorfx.priors.motion import DisFlow, gray_small, small_size

        h, w = image.shape[:2]
        small = small_size(w, h, FLOW_WIDTH)
        if self._flow is None or self._flow.full_size != (w, h):
            self._flow = DisFlow((w, h), small, preset="fast")
        return gray_small(image, small)

    def push(self, frame: np.ndarray, guides: Mapping[str, np.ndarray] | None = None) -> MatteResult:
        p = self.params
        original = check_frame(frame, self.index)
        # Scene-linear EXR plates may exceed 1: the prior and the solver work on
        # [0, 1] values, while opaque foreground keeps the plate's own values.
        image = clip01(original, np.empty_like(original))
        h, w = image.shape[:2]
        guides = dict(guides or {})
        t0 = time.perf_counter()
        thumb = thumbnail(image)
        cut = False
        if self._prev_thumb is not None:
            same_size = self._prev_image is not None and self._prev_image.shape == image.shape
            score = cut_score(self._prev_thumb, thumb)
            if not same_size or score > p.cut_threshold:
                cut = True
                self.reset()
        prior_alpha, _ = self.prior(image)  # the prior's own foreground is not used
        # Without a trimap, the prior's misses (holes, stray fragments) and the
        # parts that are not the chosen subject are settled before the solve;
        # with one, the prior is not used (band.refine_alpha).
        solve_prior = prior_alpha
        if "trimap" not in guides and (p.cleanup or p.subject is not None):
            chosen = subject.check_subject(p.subject, (h, w))
            evidence = None
            grid = subject.grid_prior(prior_alpha)
            check = subject.needs_check(grid) if p.cleanup else None
            if check is not None:
                evidence = subject.person_evidence(image, faces=check == "parts")
            if evidence is not None or chosen is not None:
                solve_prior, cleaned = subject.clean_prior(prior_alpha, evidence, chosen, grid)
                info_cleanup = cleaned.to_json()
            else:
                info_cleanup = subject.Cleanup().to_json()
        else:
            info_cleanup = None
        t1 = time.perf_counter()
        band_px = p.band_px or auto_band_px(h, w)
        info: dict[str, Any] = {"index": self.index, "cut": cut, "band_px": band_px,
                                "guides": sorted(guides)}
        if info_cleanup is not None:
            info["cleanup"] = info_cleanup
        if p.refine:
            previous = None
            if p.temporal > 0:
                gray = self._gray(image)
                if self._prev_alpha is not None:
                    # flow from this frame back to the previous one, so the
                    # previous alpha can be read where each pixel came from
                    flow = self._flow(gray, self._prev_gray)
                    if CHECK_FLOW:
                        flow = reliable_flow(flow, self._flow(self._prev_gray, gray),
                                             tuple(self._flow.scale))
                    previous = (self._prev_alpha, self._prev_image, flow, self._prev_prior)
                self._prev_gray = gray
            alpha, band, sinfo = refine_alpha(
                image, solve_prior, band_px=band_px, prior_weight=p.prior_weight,
                iterations=CG_ITERATIONS[p.quality], trimap=guides.get("trimap"),
                holdout=guides.get("holdout"), garbage=guides.get("garbage"))
            reference = sinfo.pop("reference", solve_prior)
            info.update(sinfo)
            if previous is not None:
                temporal_blend(alpha, band, image, solve_prior, previous,
                               min(TEMPORAL_MAX, p.temporal * TEMPORAL_SCALE))
        else:
            reference = solve_prior
            alpha = solve_prior.copy()
            band = np.zeros((h, w), bool)
            if "holdout" in guides:
                alpha[guides["holdout"] > 0.5] = 1.0
            if "garbage" in guides:
                alpha[guides["garbage"] > 0.5] = 0.0
        t2 = time.perf_counter()
        # Low where the solve leaves its reference (the prior, or with a
        # trimap the colour samples) and where alpha is fractional.
        confidence = confidence_map(alpha, reference, band)
        if p.foreground and "trimap" in guides:
            fg = estimate_foreground_multilevel(image, alpha, opaque=original)
        elif p.foreground:
            scale = max(h, w) / 1920.0
            radii = (max(30, int(round(90 * scale))), max(6, int(round(6 * scale))))
            fg = estimate_foreground(image, alpha, radii, opaque=original)
        else:
            fg = original
        t3 = time.perf_counter()
        info["seconds"] = {"prior": round(t1 - t0, 4), "refine": round(t2 - t1, 4),
                           "foreground": round(t3 - t2, 4)}
        self._prev_image, self._prev_alpha, self._prev_thumb = image, alpha, thumb
        self._prev_prior = solve_prior
        result = MatteResult(alpha=alpha, fg=fg, fg_premult=fg * alpha[..., None],
                             confidence=confidence, prior_alpha=prior_alpha, index=self.index,
                             cut=cut, provenance=provenance(OPERATION, p, [self.model_id], frame=info,
                                                            prior=self.prior.record))
        self.index += 1
        return result


def matte_clip(frames: Iterable[np.ndarray], params: MattingParams | None = None,
               guides: Mapping[str, Any] | None = None, progress: Progress | None = None,
               threads: int = 0, device: str = "auto") -> Iterator[MatteResult]:
    """Matte each frame of a shot (a still is a clip of one frame).

    Parameters
    ----------
    frames : iterable of float32 H x W x 3 (or x 4) RGB frames in [0, 1]
        (uint8 / uint16 are accepted and scaled). Frames of one shot in order:
        the person prior's recurrent state is carried from frame to frame and
        reset where a cut is detected (or the frame size changes).
    params : MattingParams (default settings if None); checked at once.
    guides : dict of 'trimap' / 'holdout' / 'garbage' (see priorfx.matting.guides):
        one array for all frames, a per-frame sequence, or a callable(index).
    progress : optional Progress, ticked per frame; cancelling raises CancelledError.
    threads, device : where the prior runs (runtime threads, priorfx.models.devices).

    Returns
    -------
    An iterator of MatteResult, one per frame. Parameters and guide keys are
    checked when this is called; frames and guide pixels as they are reached.
    An empty clip raises InputError.
    """
    from priorfx.priors.person import prior_entry

    params = (params or MattingParams()).validate()
    prior_entry(params.prior)  # an unknown prior fails here, before any frame is read
    guides = check_guides(guides)
    try:
        total = len(frames)  # type: ignore[arg-type]
    except TypeError:
        total = 0
    return _run(frames, params, guides, progress, total, threads, device)


def _run(frames, params, guides, progress, total, threads, device) -> Iterator[MatteResult]:
    """One session over the frames, restarted per `params.chunk_frames`.

    The restart rule is the cluster's chunk plan (priorfx.cluster.plan): a
    chunk starts at every cut and every `chunk_frames` frames after it; a
    fresh session is primed on the `chunk_warmup` frames before a chunk that
    does not start at a cut. Here the primer runs beside the current session
    on the same frames, so no frame is read twice or kept in memory.
    """
    session, primer = MattingSession(params, threads, device), None
    size, warmup = params.chunk_frames, params.chunk_warmup
    n = segment_start = 0
    tick(progress, 0, total, "matting")
    for frame in frames:
        frame_guides = guides_for_frame(guides, n, np.shape(frame)[:2])
        pos = n - segment_start
        if primer is not None and size and pos % size == 0:
            session, primer = primer, None  # a chunk boundary: the primed state takes over
        result = session.push(frame, frame_guides)
        if result.cut:
            segment_start, pos, primer = n, 0, None
        elif size and pos % size == size - warmup:
            primer = MattingSession(params, threads, device)
        if primer is not None:
            primer.push(frame, frame_guides)
        result.index = n
        n += 1
        tick(progress, n, total, f"frame {n}")
        yield result
    if n == 0:
        raise InputError("the clip has no frames", "check the input path, pattern or --frames range")


def matte_image(image: np.ndarray, params: MattingParams | None = None,
                guides: Mapping[str, Any] | None = None) -> MatteResult:
    """Matte a still image (a clip of one frame)."""
    return next(iter(matte_clip([image], params, guides)))


def cut_scores(frames: Iterable[np.ndarray]) -> list[float]:
    """How much each frame after the first differs from the one before it, as
    MattingSession measures it to find cuts: a score above
    `MattingParams.cut_threshold` is a cut, and a change of frame size scores
    inf. The cluster scans a long shot with it, part by part in parallel, to
    plan its chunks at the cuts."""
    thumbs, shapes = [], []
    for i, frame in enumerate(frames):
        image = clip01(check_frame(frame, i))
        thumbs.append(thumbnail(image))
        shapes.append(image.shape)
    return [cut_score(a, b) if sa == sb else float("inf")
            for a, b, sa, sb in zip(thumbs, thumbs[1:], shapes, shapes[1:])]
