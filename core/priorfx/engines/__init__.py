"""Engines: one interface to the manipulations, local or remote.

Adapters and the CLI call `get_engine(settings)` and never care where the
work runs. LocalEngine (engines/local.py) runs the core in this process;
RemoteEngine (engines/remote.py) sends the same calls to `priorfx serve` over
the wire format of engines/protocol.py. Both take and return the same types,
so the same inputs give the same outputs.

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

from priorfx.colour import ColourSpec
from priorfx.config import Settings, load_settings
from priorfx.engines.local import LocalEngine
from priorfx.progress import Progress

if TYPE_CHECKING:  # the manipulation packages import heavy modules lazily
    from priorfx.matting import MatteResult, MattingParams
    from priorfx.portrait import PortraitParams, PortraitResult
    from priorfx.shutter import ShutterParams, ShutterResult, ShutterSession

__all__ = ["Engine", "LocalEngine", "get_engine"]


class Engine(Protocol):
    """What every engine offers. `run(name, ...)` runs any operation of the
    registry (engines/operations.py); the named calls below are its shorthands
    (`OperationCalls`). See LocalEngine for the meaning of each call."""

    name: str

    def info(self) -> dict[str, Any]: ...
    def models(self) -> list[dict[str, Any]]: ...
    def run(self, name: str, data: Any, params: Any, progress: Progress | None = None,
            colour: ColourSpec | None = None, **options: Any) -> Any: ...
    def deshutter(self, frames: Sequence[np.ndarray], params: "ShutterParams",
                  progress: Progress | None = None, colour: ColourSpec | None = None) -> "ShutterResult": ...
    def shutter_stream(self, params: "ShutterParams") -> "ShutterSession": ...
    def undistort(self, image: np.ndarray, params: "PortraitParams",
                  progress: Progress | None = None, colour: ColourSpec | None = None) -> "PortraitResult": ...
    def matte(self, frames: Iterable[np.ndarray], params: "MattingParams",
              guides: dict[str, Any] | None = None, progress: Progress | None = None,
              colour: ColourSpec | None = None) -> Iterator["MatteResult"]: ...


def get_engine(settings: Settings | None = None) -> Engine:
    """LocalEngine, or RemoteEngine when a remote URL is configured."""
    settings = settings or load_settings()
    if settings.remote:
        from priorfx.engines.remote import RemoteEngine
        return RemoteEngine(settings.remote, token=settings.token)
    return LocalEngine(settings)
