"""LocalEngine: the manipulations run in this process, and the colour
boundary every engine shares.

`deshutter_managed`, `matte_managed` and `undistort_managed` wrap a run of a
manipulation so that it sees its working encoding while its results come back
in the plate's encoding (`priorfx.colour.Boundary`); RemoteEngine uses them
too when the conversion must happen on the client (an OCIO config file the
server cannot open), and the cluster's workers for their chunks.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from priorfx.colour import Boundary, ColourSpec
from priorfx.config import Settings, load_settings
from priorfx.engines.operations import OperationCalls, operation
from priorfx.progress import Progress

if TYPE_CHECKING:  # the manipulation packages import heavy modules lazily
    from priorfx.matting import MatteResult
    from priorfx.portrait import PortraitResult
    from priorfx.shutter import ShutterResult


class LocalEngine(OperationCalls):
    """Runs the manipulations in this process: every operation of the registry
    (engines/operations.py), by name with `run()` or by its named call."""

    name = "local"

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()

    def info(self) -> dict[str, Any]:
        import priorfx
        return {"engine": self.name, "priorfx_version": priorfx.__version__}

    def models(self) -> list[dict[str, Any]]:
        from priorfx.models import entries, status
        return [{**e.to_json(), "status": status(e.id)} for e in entries().values()]

    def run(self, name: str, data: Any, params: Any, progress: Progress | None = None,
            colour: ColourSpec | None = None, **options: Any) -> Any:
        """Run the operation `name` of the registry on `data` (a clip's frames or
        an image) in this process; `options` are the operation's own inputs
        (a matte's guides)."""
        op = operation(name)
        return op.local(data, params, Boundary(colour, op.working_encoding()), progress, self.settings, **options)

    def shutter_stream(self, params):
        """A stateful session for live video: push(frame) -> corrected frame."""
        from priorfx.shutter import ShutterSession
        return ShutterSession(params)


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
