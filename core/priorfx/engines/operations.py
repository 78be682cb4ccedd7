"""The operation registry: one entry per manipulation the engines run.

Everything that differs from one operation to another lives in its entry
here: its parameters class, the manipulation's own function (run in the
manipulation's working encoding, inside the colour boundary of
engines/local.py), what a request carries, the models it needs and its
file-level pipeline (engines/files.py). LocalEngine and RemoteEngine run any
entry with `run(name, ...)` and offer the named calls of `OperationCalls`;
the server builds its jobs and lists its operations from the entries; the
cluster splits the entries with `on_cluster`; the CLI's commands call the
entries' file pipelines. A new operation is one entry (and one named call)
in this file.

The manipulation packages are imported only when an operation runs (the
entries name them), so listing the registry costs nothing.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from priorfx.errors import NotFoundError

if TYPE_CHECKING:
    from priorfx.colour import Boundary
    from priorfx.config import Settings


@dataclass(frozen=True)
class Operation:
    """One operation an engine runs.

    name : the operation's name on the wire, in the CLI and the cluster
    package : the manipulation package: it holds `params` and `WORKING_ENCODING`
    params : the name of its parameters dataclass in `package`
    takes : "image" (one image in, one result out) or "clip" (a list of frames)
    streamed : a clip's results come one per frame as they are ready (matte);
        otherwise one result for the whole clip, which needs every frame first
    guides : it takes guide images (static, or one per frame) beside the frames
    local : run(data, params, boundary, progress, settings, **options): the
        manipulation in this process, its data converted by `boundary`
    colour : the colour wrapper of engines/local.py (`*_managed`) that a
        RemoteEngine applies on the client when the colour config cannot travel
    models : model ids a run with these parameters uses (provenance)
    priors : the ids among them that are registered person priors, which every
        machine resolves in its own store (a server checks them up front)
    on_cluster : a clip pipeline the Dask cluster can split into chunks
    files : the file-level pipeline in engines/files.py (files in, files out)
    """

    name: str
    package: str
    params: str
    takes: str
    streamed: bool
    local: Callable[..., Any]
    colour: str
    files: str
    guides: bool = False
    models: Callable[[Any], list[str]] = field(default=lambda params: [])
    priors: Callable[[Any], list[str]] = field(default=lambda params: [])
    on_cluster: bool = False

    def module(self):
        try:
            return importlib.import_module(self.package)
        except ImportError:
            raise NotFoundError(f"this priorfx cannot run {self.name}: {self.package} is not available",
                                "upgrade priorfx") from None

    def params_class(self) -> type:
        """The parameters dataclass, or NotFoundError when this install lacks it."""
        cls = getattr(self.module(), self.params, None)
        if cls is None:
            raise NotFoundError(f"this priorfx cannot run {self.name}: {self.package} has no {self.params}",
                                "upgrade priorfx")
        return cls

    def working_encoding(self) -> str:
        return self.module().WORKING_ENCODING

    def colour_wrapper(self) -> Callable[..., Any]:
        from priorfx.engines import local
        return getattr(local, self.colour)

    def pipeline(self) -> Callable[..., Any]:
        from priorfx.engines import files
        return getattr(files, self.files)

    def request_fields(self) -> set[str]:
        """The fields of a request besides `params` and `colour`."""
        if self.takes == "image":
            return {"image"}
        return {"frames", "more", "total"} | ({"guides"} if self.guides else set())


# ---------------------------------------------------------------- local runs
# Each runs the manipulation's own function inside the colour boundary.

def _deshutter(frames, params, boundary: "Boundary", progress, settings: "Settings", keep: range | None = None):
    """keep: only these frames' results (a cluster chunk drops its warm-up)."""
    from priorfx.engines.local import deshutter_managed
    from priorfx.shutter import correct_clip

    return deshutter_managed(lambda f: correct_clip(f, params, progress=progress, keep=keep), frames, boundary,
                             first=keep.start if keep is not None else 0)


def _undistort(image, params, boundary: "Boundary", progress, settings: "Settings"):
    from priorfx.engines.local import undistort_managed
    from priorfx.portrait import undistort

    return undistort_managed(lambda im: undistort(im, params, progress=progress), image, boundary)


def _matte(frames, params, boundary: "Boundary", progress, settings: "Settings", guides=None, threads: int = 0):
    """threads: the prior's runtime threads (a cluster worker's share; 0: all)."""
    from priorfx.engines.local import matte_managed
    from priorfx.matting import matte_clip

    return matte_managed(lambda f: matte_clip(f, params, guides=guides, progress=progress, threads=threads,
                                              device=settings.device), frames, boundary)


def _portrait_models(params) -> list[str]:
    from priorfx.portrait import MODELS
    return list(MODELS)


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("deshutter", "priorfx.shutter", "ShutterParams", takes="clip", streamed=False,
              local=_deshutter, colour="deshutter_managed", files="deshutter_files", on_cluster=True),
    Operation("undistort", "priorfx.portrait", "PortraitParams", takes="image", streamed=False,
              local=_undistort, colour="undistort_managed", files="undistort_file", models=_portrait_models),
    Operation("matte", "priorfx.matting", "MattingParams", takes="clip", streamed=True, guides=True,
              local=_matte, colour="matte_managed", files="matte_files", models=lambda p: [p.prior],
              priors=lambda p: [p.prior], on_cluster=True),
)}


def operation(name: str) -> Operation:
    """The registry entry of `name`, or NotFoundError naming the known ones."""
    op = OPERATIONS.get(name)
    if op is None:
        raise NotFoundError(f"unknown operation {name!r}", f"use one of: {', '.join(OPERATIONS)}")
    return op


class OperationCalls:
    """The named calls of the registered operations, for an engine with `run()`.

    `engine.deshutter(frames, params)` is `engine.run("deshutter", frames, params)`;
    the names and argument orders are the Engine protocol's.
    """

    def run(self, name: str, data: Any, params: Any, progress=None, colour=None, **options: Any) -> Any:
        raise NotImplementedError

    def deshutter(self, frames, params, progress=None, colour=None):
        """Correct a clip (list of RGB float32 frames); returns frames + readout estimate."""
        return self.run("deshutter", frames, params, progress, colour)

    def undistort(self, image, params, progress=None, colour=None):
        """Re-render a close-up portrait as if shot from `params.distance_m`."""
        return self.run("undistort", image, params, progress, colour)

    def matte(self, frames, params, guides=None, progress=None, colour=None):
        """Alpha, clean foreground and confidence for each frame of a shot."""
        return self.run("matte", frames, params, progress, colour, guides=guides)
