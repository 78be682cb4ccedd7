"""The Engine: one interface to the three manipulations, local or remote.

Adapters and the CLI call `get_engine(settings)` and never care where the
work runs. LocalEngine runs the core in this process; RemoteEngine
(priorfx.server.client) sends the same calls to `priorfx serve`. Both take
and return the same types, so the same inputs give the same outputs.

Parameters are dataclasses owned by each manipulation package
(`priorfx.shutter.ShutterParams`, `priorfx.portrait.PortraitParams`,
`priorfx.matting.MattingParams`); images are float32 H x W x C in [0, 1]
display-encoded, or in any encoding when `colour` (a priorfx.colour.ColourSpec,
the plate's OCIO config and colour space) is given: then the engine converts
the pixels into the manipulation's working encoding and its outputs back
(`priorfx.colour.Boundary`), so results stay in the plate's encoding. The
spec travels with a remote request, and the server converts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

from priorfx.colour import Boundary, ColourSpec
from priorfx.config import Settings, load_settings
from priorfx.progress import Progress

if TYPE_CHECKING:  # the manipulation packages import heavy modules lazily
    from priorfx.matting import MatteResult, MattingParams
    from priorfx.portrait import PortraitParams, PortraitResult
    from priorfx.shutter import ShutterParams, ShutterResult, ShutterSession


class Engine(Protocol):
    """What every engine offers. See LocalEngine for the meaning of each call."""

    name: str

    def info(self) -> dict[str, Any]: ...
    def models(self) -> list[dict[str, Any]]: ...
    def deshutter(self, frames: Sequence[np.ndarray], params: "ShutterParams",
                  progress: Progress | None = None, colour: ColourSpec | None = None) -> "ShutterResult": ...
    def shutter_stream(self, params: "ShutterParams") -> "ShutterSession": ...
    def undistort(self, image: np.ndarray, params: "PortraitParams",
                  progress: Progress | None = None, colour: ColourSpec | None = None) -> "PortraitResult": ...
    def matte(self, frames: Iterable[np.ndarray], params: "MattingParams",
              guides: dict[str, Any] | None = None, progress: Progress | None = None,
              colour: ColourSpec | None = None) -> Iterator["MatteResult"]: ...


class LocalEngine:
    """Runs the manipulations in this process."""

    name = "local"

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()

    def info(self) -> dict[str, Any]:
        import priorfx
        return {"engine": self.name, "priorfx_version": priorfx.__version__}

    def models(self) -> list[dict[str, Any]]:
        from priorfx.models import entries, status
        return [{**e.to_json(), "status": status(e.id)} for e in entries().values()]

    def deshutter(self, frames, params, progress=None, colour=None):
        """Correct a clip (list of RGB float32 frames); returns frames + readout estimate."""
        from priorfx.shutter import WORKING_ENCODING, correct_clip
        return deshutter_managed(lambda f: correct_clip(f, params, progress=progress), frames,
                                 Boundary(colour, WORKING_ENCODING))

    def shutter_stream(self, params):
        """A stateful session for live video: push(frame) -> corrected frame."""
        from priorfx.shutter import ShutterSession
        return ShutterSession(params)

    def undistort(self, image, params, progress=None, colour=None):
        """Re-render a close-up portrait as if shot from `params.distance_m`."""
        from priorfx.portrait import WORKING_ENCODING, undistort
        return undistort_managed(lambda im: undistort(im, params, progress=progress), image,
                                 Boundary(colour, WORKING_ENCODING))

    def matte(self, frames, params, guides=None, progress=None, colour=None):
        """Alpha, clean foreground and confidence for each frame of a shot."""
        from priorfx.matting import WORKING_ENCODING, matte_clip
        return matte_managed(lambda f: matte_clip(f, params, guides=guides, progress=progress,
                                                 device=self.settings.device), frames,
                             Boundary(colour, WORKING_ENCODING))


def _record(prov: dict, boundary: Boundary) -> None:
    if boundary.spec is not None:
        prov["colour"] = boundary.spec.provenance(boundary.working)


class _Paired:
    """The frames in the working encoding, remembering each (plate, working)
    pair until its result is taken (a streamed matte holds only a few)."""

    def __init__(self, frames: Iterable[np.ndarray], boundary: Boundary):
        self.frames, self.boundary = frames, boundary
        self.pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.frames)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i, plate in enumerate(self.frames):
            working = self.boundary.into(plate)
            self.pairs[i] = (plate, working)
            yield working

    def pop(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pairs.pop(i)


def undistort_managed(run, image: np.ndarray, boundary: Boundary) -> "PortraitResult":
    """`run(image)` (an undistort) on the image in the working encoding, the
    result back in the plate's encoding (unwarped pixels exactly)."""
    working = boundary.into(image)
    result = run(working)
    result.image = boundary.back(result.image, working, image)
    _record(result.provenance, boundary)
    return result


def matte_managed(run, frames: Iterable[np.ndarray], boundary: Boundary) -> Iterator["MatteResult"]:
    """`run(frames)` (a matte_clip, called now so bad settings fail now) on
    the frames in the working encoding; each result's foreground comes back
    in the plate's encoding. The results' `index` counts the frames given."""
    if boundary.identity:
        results = run(frames)
        return results if boundary.spec is None else _recorded(results, boundary)
    paired = _Paired(frames, boundary)
    return _converted(run(paired), paired, boundary)


def _recorded(results: Iterable["MatteResult"], boundary: Boundary) -> Iterator["MatteResult"]:
    for r in results:
        _record(r.provenance, boundary)
        yield r


def _converted(results: Iterable["MatteResult"], paired: _Paired, boundary: Boundary) -> Iterator["MatteResult"]:
    for r in results:
        plate, working = paired.pop(r.index)
        r.fg = boundary.back(r.fg, working, plate)
        r.fg_premult = r.fg * r.alpha[..., None]
        _record(r.provenance, boundary)
        yield r


def deshutter_managed(run, frames: Sequence[np.ndarray], boundary: Boundary, first: int = 0) -> "ShutterResult":
    """`run(frames)` (a correct_clip) on the frames in the working encoding,
    the corrected frames back in the plate's encoding. Result i belongs to
    frame `first + i` (a cluster chunk keeps the frames after its warm-up)."""
    if boundary.identity:
        return run(frames)
    working = [boundary.into(f) for f in frames]
    result = run(working)
    result.frames = [boundary.back(out, working[first + i], frames[first + i])
                     for i, out in enumerate(result.frames)]
    return result


def get_engine(settings: Settings | None = None) -> Engine:
    """LocalEngine, or RemoteEngine when a remote URL is configured."""
    settings = settings or load_settings()
    if settings.remote:
        from priorfx.server.client import RemoteEngine
        return RemoteEngine(settings.remote, token=settings.token)
    return LocalEngine(settings)
