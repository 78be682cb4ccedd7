"""Matting parameters and results."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from priorfx.errors import UsageError
from priorfx.models.contract import DEFAULT_PRIOR

QUALITIES = ("fast", "best")

# Conjugate-gradient iterations of the band solver per quality. The solve
# starts from the prior's alpha, so a few dozen iterations already fix most
# edges; "best" runs it close to convergence.
CG_ITERATIONS = {"fast": 60, "best": 150}


@dataclass
class MattingParams:
    """Settings of `matte_clip`. JSON scalars only (the server rebuilds it with
    `MattingParams(**d)`).

    Parameters
    ----------
    quality : 'fast' | 'best'
        How far the band solver runs (60 or 150 conjugate-gradient iterations, cascadic).
    band_px : int or None
        Half-width in pixels of the refinement band around the prior's edge and
        around its uncertain (fractional) region. None: from the resolution
        (about 1/200 of the long side, at least 2 px: 10 px at 1080p, 19 at 4K).
    temporal : float in [0, 1]
        Temporal smoothing: how strongly a band pixel keeps the previous
        frame's refined alpha, read where optical flow says the pixel came
        from, and only as far as the flow is reliable there, its colour
        matches and the prior agrees (see temporal.temporal_blend; 0.5 keeps
        up to 85 %). 0 refines every frame on its own (the prior's recurrent
        state is still used).
    downsample_ratio : float in (0, 1] or None
        RVM's internal downsample ratio; None chooses it from the resolution.
    cut_threshold : float in (0, 1]
        Mean absolute colour change between small thumbnails of consecutive
        frames above which a cut is assumed and the recurrent state is reset.
    prior_weight : float >= 0
        Weight of the person prior's alpha in the band solve, where the
        prior is nearly sure; it grows with the distance from the prior's
        edge, as does the colour term beside it (0: no prior term, closed-form
        matting with the colour term only).
    foreground : bool
        Estimate decontaminated foreground colours (else fg is the input).
    refine : bool
        False returns the prior's alpha unrefined (for comparisons).
    chunk_frames : int >= 0
        A long shot restarts its temporal state (RVM's recurrent state, the
        previous alpha) every `chunk_frames` frames after each cut, from a
        fresh state primed on the `chunk_warmup` frames before the restart.
        Why: the result is then the same whether one machine mattes the shot
        or a cluster shares its chunks (priorfx.cluster), bit for bit. Costs
        chunk_warmup / chunk_frames more work (under 7 % at 480 / 32) on
        shots longer than chunk_frames; 0 never restarts.
    prior : str
        Id of the person prior (a model with a person-matting or
        person-segmentation contract, priorfx.models.contract): the built-in
        RVM by default, or a model registered with `priorfx models add`. A
        remote server or cluster worker looks it up in its own store.
    cleanup : bool
        Without a trimap: drop the parts of the prior's matte that neither
        selfie segmentation nor a detected face calls a person, and fill the
        holes inside a person that segmentation calls person
        (priorfx.matting.subject; only run when the prior has several parts
        or a hole).
    subject : [x, y] or [x0, y0, x1, y1] or None
        Matte only this subject: the parts of the prior's matte under the
        point (or the nearest one) or mostly inside the box, in pixels from
        the top-left corner. Without a trimap only.
    chunk_warmup : int >= 1
        Frames a restarted state is primed on (their results are dropped).
        Measured on carphone_pristine.mp4 at 320x180 ('fast'): after 32
        frames the restarted alpha differs from an unbroken run by more
        than 1/255 on 3.4 % of the pixels (16 frames: 4.1 %, 48: 2.0 %),
        on edges and hair where RVM itself flickers; the step at a restart
        is about 1.7x an ordinary frame-to-frame change.
    """

    quality: str = "best"
    band_px: int | None = None
    temporal: float = 0.5
    downsample_ratio: float | None = None
    cut_threshold: float = 0.2
    prior_weight: float = 0.05
    foreground: bool = True
    refine: bool = True
    chunk_frames: int = 480
    chunk_warmup: int = 32
    prior: str = DEFAULT_PRIOR
    cleanup: bool = True
    subject: list | None = None

    def __post_init__(self) -> None:
        # Every check lives here, so a bad value sent over HTTP (the server
        # rebuilds the params with MattingParams(**d)) fails as it does on the
        # command line: the error names the bad value and what to give instead.
        if self.quality not in QUALITIES:
            raise UsageError(f"quality {self.quality!r} is not one of {', '.join(QUALITIES)}",
                             "use --quality fast or --quality best")
        if self.band_px is not None and (not isinstance(self.band_px, int) or isinstance(self.band_px, bool)
                                         or not 1 <= self.band_px <= 512):
            raise UsageError(f"band_px {self.band_px!r} must be a whole number of pixels in 1..512",
                             "or leave it unset (None) to follow the resolution")
        _check_range("temporal", self.temporal, 0.0, 1.0,
                     "0 mattes every frame on its own, 1 holds edges steadiest (default 0.5)")
        if self.downsample_ratio is not None:
            _check_range("downsample_ratio", self.downsample_ratio, 0.01, 1.0,
                         "or leave it unset (None) to follow the resolution")
        _check_range("cut_threshold", self.cut_threshold, 1e-6, 1.0,
                     "the mean colour change that counts as a new shot, e.g. 0.2")
        _check_range("prior_weight", self.prior_weight, 0.0, 1e6,
                     "0 leaves the band to the colours alone; the default is 0.05")
        for name, lo, hint in (("chunk_frames", 0, "e.g. 480, or 0 to never restart the temporal state"),
                               ("chunk_warmup", 1, "e.g. 32")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise UsageError(f"{name} {value!r} must be a whole number >= {lo}", hint)
        if 0 < self.chunk_frames <= self.chunk_warmup:
            raise UsageError(f"chunk_frames {self.chunk_frames} must be larger than chunk_warmup "
                             f"{self.chunk_warmup}", "or 0 to never restart the temporal state")
        if not isinstance(self.prior, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", self.prior):
            raise UsageError(f"prior {self.prior!r} is not a model id",
                             "give the id of a registered prior (`priorfx models list`)")
        if self.subject is not None:
            vals = list(self.subject) if isinstance(self.subject, (list, tuple)) else None
            if vals is None or len(vals) not in (2, 4) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in vals):
                raise UsageError(f"subject {self.subject!r} must be x,y (a point) or x0,y0,x1,y1 (a box) in pixels",
                                 "e.g. --subject 640,360, or leave it unset to matte every person")
            self.subject = [float(v) for v in vals]
        for name in ("foreground", "refine", "cleanup"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be true or false, got {getattr(self, name)!r}",
                                 "pass a boolean (JSON true/false)")

    def validate(self) -> "MattingParams":
        """Check the fields again (after a field was changed in place); returns self."""
        self.__post_init__()
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check_range(name: str, value: Any, lo: float, hi: float, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise UsageError(f"{name} {value!r} must be a number in [{lo:g}, {hi:g}]", hint)


@dataclass
class MatteResult:
    """One matted frame. All arrays float32 in [0, 1] at the frame's size.

    alpha : H x W
    fg : H x W x 3, unpremultiplied foreground colours with the old background
        removed from the edges (equal to the input where alpha is 1)
    fg_premult : H x W x 3, fg * alpha (what a compositor's "over" expects)
    confidence : H x W, 1 where alpha is certain (outside the refinement band,
        or set by a guide), lower where the solver and the prior disagree or
        alpha is fractional
    prior_alpha : H x W, the raw RVM alpha of this frame (for comparison)
    index : frame index in the clip; cut : the recurrent state was reset here
    provenance : dict (priorfx.provenance) with per-frame details under "frame"
    """

    alpha: np.ndarray
    fg: np.ndarray
    fg_premult: np.ndarray
    confidence: np.ndarray
    prior_alpha: np.ndarray
    index: int = 0
    cut: bool = False
    provenance: dict = field(default_factory=dict)
