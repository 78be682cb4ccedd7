"""The Engine: one interface to the three manipulations, local or remote.

Adapters and the CLI call `get_engine(settings)` and never care where the
work runs. LocalEngine runs the core in this process; RemoteEngine
(priorfx.server.client) sends the same calls to `priorfx serve`. Both take
and return the same types, so the same inputs give the same outputs.

Parameters are dataclasses owned by each manipulation package
(`priorfx.shutter.ShutterParams`, `priorfx.portrait.PortraitParams`,
`priorfx.matting.MattingParams`); images are float32 H x W x C in [0, 1].
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

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
                  progress: Progress | None = None) -> "ShutterResult": ...
    def shutter_stream(self, params: "ShutterParams") -> "ShutterSession": ...
    def undistort(self, image: np.ndarray, params: "PortraitParams",
                  progress: Progress | None = None) -> "PortraitResult": ...
    def matte(self, frames: Iterable[np.ndarray], params: "MattingParams",
              guides: dict[str, Any] | None = None,
              progress: Progress | None = None) -> Iterator["MatteResult"]: ...


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

    def deshutter(self, frames, params, progress=None):
        """Correct a clip (list of RGB float32 frames); returns frames + readout estimate."""
        from priorfx.shutter import correct_clip
        return correct_clip(frames, params, progress=progress)

    def shutter_stream(self, params):
        """A stateful session for live video: push(frame) -> corrected frame."""
        from priorfx.shutter import ShutterSession
        return ShutterSession(params)

    def undistort(self, image, params, progress=None):
        """Re-render a close-up portrait as if shot from `params.distance_m`."""
        from priorfx.portrait import undistort
        return undistort(image, params, progress=progress)

    def matte(self, frames, params, guides=None, progress=None):
        """Alpha, clean foreground and confidence for each frame of a shot."""
        from priorfx.matting import matte_clip
        return matte_clip(frames, params, guides=guides, progress=progress, device=self.settings.device)


def get_engine(settings: Settings | None = None) -> Engine:
    """LocalEngine, or RemoteEngine when a remote URL is configured."""
    settings = settings or load_settings()
    if settings.remote:
        from priorfx.server.client import RemoteEngine
        return RemoteEngine(settings.remote, token=settings.token)
    return LocalEngine(settings)
