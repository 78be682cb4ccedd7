"""What a request may carry, and a request made into a job.

The operations a server runs and their parameters come from the registry
(priorfx.engines.operations); `Limits` checks decoded images, frame lists and
guides against the server's limits; `build_work` validates a request for an
operation and returns the job's work function. Requests carry pixels only:
nothing here opens a path it is sent.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, Iterable

from priorfx.colour import ColourSpec
from priorfx.engines import protocol
from priorfx.engines.operations import OPERATIONS, operation
from priorfx.errors import InputError, LimitError, ModelMissingError, NotFoundError, UsageError
from priorfx.progress import Progress
from priorfx.server.jobs import FrameFeed

if TYPE_CHECKING:
    from priorfx.engines import LocalEngine
    from priorfx.server.app import ServerConfig

MAX_CHANNELS = 16  # an image's third axis: RGB(A), planes, a few AOVs


def params_class(op: str) -> type:
    """The parameters dataclass of an operation, or NotFoundError if unknown or not installed."""
    return operation(op).params_class()


def available_ops() -> list[str]:
    out = []
    for op in OPERATIONS:
        with contextlib.suppress(NotFoundError):
            params_class(op)
            out.append(op)
    return out


class Limits:
    """Checks decoded request content against the server's limits."""

    def __init__(self, cfg: "ServerConfig"):
        self.cfg = cfg

    def image(self, what: str, a: Any):
        import numpy as np

        if isinstance(a, (str, bytes)):
            raise InputError(f"{what} must be an image array, got a {type(a).__name__}: the server "
                             "never opens paths or names sent to it", "send the pixels in the request")
        if not isinstance(a, np.ndarray):
            raise InputError(f"{what} must be an image array, got {type(a).__name__}",
                             "send a float32 H x W x C array")
        if a.ndim not in (2, 3) or a.ndim == 3 and not 1 <= a.shape[2] <= MAX_CHANNELS:
            raise InputError(f"{what} has shape {a.shape}; an image is H x W or H x W x C "
                             f"(C from 1 to {MAX_CHANNELS})")
        self.size(what, *a.shape[:2])
        # dtypes and values (NaN) are the manipulation's business, as locally: it checks them.
        return a

    def size(self, what: str, h: int, w: int) -> None:
        if h < 1 or w < 1:
            raise InputError(f"{what} is {w}x{h} pixels; an image has at least one pixel")
        if max(h, w) > self.cfg.max_side or h * w > self.cfg.max_pixels:
            raise LimitError(f"{what} is {w}x{h}; this server accepts at most {self.cfg.max_side} "
                             f"pixels a side and {self.cfg.max_pixels / 1e6:g} MP",
                             "scale the image down or raise the server's --max-side/--max-pixels")

    def frames(self, what: str, frames: Any) -> list:
        if not isinstance(frames, list) or not frames:
            raise InputError(f"{what} must be a non-empty list of images")
        if len(frames) > self.cfg.max_frames:
            raise LimitError(f"{len(frames)} {what} in one job; this server accepts at most "
                             f"{self.cfg.max_frames}", "split the sequence into shorter jobs")
        return [self.image(f"{what}[{i}]", f) for i, f in enumerate(frames)]

    def guides(self, guides: Any) -> dict | None:
        if guides is None:
            return None
        if not isinstance(guides, dict):
            raise InputError("guides must be a mapping of name -> image array")
        out = {}
        for name, g in guides.items():
            if g is None:
                out[name] = None
            elif isinstance(g, list):
                out[name] = [None if x is None else self.image(f"guides[{name!r}][{i}]", x)
                             for i, x in enumerate(g)]
            else:
                out[name] = self.image(f"guides[{name!r}]", g)
        return out


def required_field(req: Any, name: str) -> Any:
    if not isinstance(req, dict) or name not in req:
        raise InputError(f"request has no {name!r} field")
    return req[name]


def build_work(name: str, req: Any, limits: Limits, engine: "LocalEngine"
               ) -> tuple[Callable[[Progress], Iterable], FrameFeed | None]:
    """Validate a decoded request; return the job's work function (and its feed
    when the frames come in several uploads: a request with more=true)."""
    op = operation(name)
    params = protocol.params_from_json(op.params_class(), required_field(req, "params"))
    extra = sorted(set(req) - op.request_fields() - {"params", "colour"})
    if extra:
        raise UsageError(f"unknown request field(s) for {name}: {', '.join(extra)}")
    # the plate's colour space: the server converts as a local run does
    colour = ColourSpec.from_json(req["colour"], remote=True) if req.get("colour") is not None else None

    def work(data, **options) -> Callable[[Progress], Iterable]:
        def run(progress: Progress) -> Iterable:
            result = engine.run(name, data, params, progress, colour, **options)
            return result if op.streamed else [result]
        return run

    if op.takes == "image":
        return work(limits.image("image", required_field(req, "image"))), None
    frames = limits.frames("frames", required_field(req, "frames"))
    guides = limits.guides(req.get("guides"))
    more, total = req.get("more", False), req.get("total")
    if type(more) is not bool or not (total is None or type(total) is int and total >= len(frames)):
        raise UsageError("'more' must be true or false and 'total' a frame count or null")
    if total is not None and total > limits.cfg.max_frames:
        raise LimitError(f"a job of {total} frames; this server takes at most "
                         f"{limits.cfg.max_frames} in one job", "split the shot at a cut")
    for prior in op.priors(params):
        check_prior(prior)
    if not more:
        return work(frames, **({"guides": guides} if op.guides else {})), None
    if not op.streamed:
        # The operation needs the whole clip: collect every upload, then run.
        feed = FrameFeed(total, hold_all=True)
        feed.add(frames, {}, more=True)
        return (lambda progress: [engine.run(name, list(feed), params, progress, colour)]), feed
    # A long shot in several uploads: per-frame guides (lists) travel with their frames.
    per_frame = tuple(k for k, g in (guides or {}).items() if isinstance(g, list))
    feed = FrameFeed(total, per_frame)
    feed.add(frames, chunk_guides(guides, per_frame, len(frames)), more=True)
    feed_guides = {k: feed.guide(k) if k in per_frame else g for k, g in (guides or {}).items()}
    return work(feed, **({"guides": feed_guides or None} if op.guides else {})), feed


def check_prior(prior_id: str) -> None:
    """A matte asks for a prior by id; this server uses its own store, so say
    so plainly when it lacks one (before any frame is worked on)."""
    from priorfx.priors.person import prior_entry, registered_priors

    try:
        prior_entry(prior_id)
    except ModelMissingError:
        raise ModelMissingError(
            f"this priorfx server has no prior {prior_id!r} (its priors: {', '.join(registered_priors())})",
            f"register it on the server with `priorfx models add {prior_id} FILE --role ...` (no restart "
            "needed), or choose one of its priors, or matte locally") from None


def chunk_guides(guides: dict | None, names: tuple[str, ...], n: int) -> dict[str, list]:
    out = {}
    for name in names:
        g = (guides or {}).get(name)
        if not isinstance(g, list) or len(g) != n:
            raise InputError(f"guide {name!r} must list one image (or null) for each of the {n} "
                             "frames of this upload")
        out[name] = g
    return out
