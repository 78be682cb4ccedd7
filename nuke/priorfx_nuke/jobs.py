"""Run the matting core on exported frames: locally or on a priorfx server.

No `nuke` here and no third-party imports (Nuke's Python has none of them):
both engines start `priorfx matte ...` through priorfx's host kit (finding the
core, its environment, progress, cancel and errors), the remote one with
``--remote URL`` (the core's RemoteEngine speaks HTTP to `priorfx serve`; the
node never does). `process_range` is the whole job path after the internal
Writes have rendered the inputs: the core writes the sequence the internal Read
shows, serving unchanged frames from its cache (`--cache`, shared with farm
renders and the CLI), and the node's manifest records what was made.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence

import priorfx_hostkit as kit

from . import logic
from .logic import AdapterError, CancelledByUser, MatteSettings

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]


class Identity(NamedTuple):
    """What the cache keys need to know about the engine."""

    engine: str
    version: str
    model_id: str


class CoreEngine:
    """`priorfx matte` in a subprocess of this Nuke session.

    Local: the core runs on this machine. Remote (`remote_url`): the same
    command with `--remote URL`, so the core's RemoteEngine sends the frames
    to `priorfx serve` and the server's models do the work; the token comes
    from $PRIORFX_TOKEN, never from the command line (visible in `ps`).
    The process boundary keeps a crash in inference out of Nuke. Cancel
    interrupts the process (it then cancels its server job) and the core
    writes each frame atomically, so no partial file is left behind.
    """

    def __init__(self, exe: Sequence[str], env: Optional[Mapping[str, str]] = None,
                 remote_url: str = "") -> None:
        self.exe = list(exe)
        self.env = dict(env if env is not None else os.environ)
        self.remote_url = remote_url.rstrip("/")
        self.name = "remote" if remote_url else "local"

    def identity(self) -> Identity:
        """Engine name, the version of the core that computes, the model id.

        Remote: the server's version, since it does the work (the core asks it).
        """
        info = kit.core_info(self.exe, self.env, self.remote_url)
        server = info.get("server") or {}
        version = server.get("priorfx_version") if self.remote_url else info["priorfx_version"]
        return Identity(self.name, str(version), logic.MODEL_ID)

    def run(self, inputs: Mapping[str, str], first: int, last: int, out_pattern: str,
            settings: MatteSettings, on_progress: ProgressFn, is_cancelled: CancelFn,
            cache_dir: str = "") -> Dict[str, Any]:
        """Run the core; with `cache_dir`, return its JSON summary (frames, cached)."""
        cmd = logic.matte_command(self.exe, inputs, out_pattern, first, last, settings,
                                  remote_url=self.remote_url, cache_dir=cache_dir)
        total = last - first + 1
        try:
            out = kit.run_core(cmd, self.env, on_progress=on_progress, is_cancelled=is_cancelled)
        except kit.CoreError as err:
            if err.cancelled:
                raise CancelledByUser() from None
            raise
        on_progress(total, total, "")
        if not cache_dir:
            return {"frames": total, "cached": 0}
        try:
            summary = json.loads(out)
        except ValueError:
            raise AdapterError("the core did not print its JSON summary",
                               "install a priorfx of the same release as this plug-in") from None
        return summary if isinstance(summary, dict) else {}


class Result(NamedTuple):
    first: int
    last: int
    cached: int
    made: int
    seconds: float
    identity: Identity
    out_pattern: str

    def status(self) -> str:
        return logic.status_done(self.last - self.first + 1, self.cached, self.seconds,
                                 self.identity.engine, self.identity.version)


def process_range(engine, layout: logic.CacheLayout, inputs: Mapping[str, str],
                  first: int, last: int, settings: MatteSettings,
                  on_progress: Optional[ProgressFn] = None,
                  is_cancelled: Optional[CancelFn] = None) -> Result:
    """Run the core into the node's output sequence, through the shared cache.

    Parameters
    ----------
    engine : CoreEngine (or anything with identity() and run())
    layout : where this node's files live
    inputs : input name -> exported EXR pattern (plate required; guides optional)
    first, last : inclusive frame range
    settings : the knobs that change the pixels

    Returns a Result; the frames are at `layout.out_pattern()` when it returns.
    Raises CancelledByUser or AdapterError; on either the previously published
    sequence is left as it was (the core renames its frames in only at the end).
    """
    report = on_progress or (lambda d, t, m: None)
    cancelled = is_cancelled or (lambda: False)
    settings.validate()
    t0 = time.time()
    ident = engine.identity()
    out_pattern = layout.out_pattern()
    os.makedirs(os.path.dirname(out_pattern), exist_ok=True)
    summary = engine.run(inputs, first, last, out_pattern, settings, report, cancelled, cache_dir=layout.root)
    _drop_outside(out_pattern, first, last)
    _write_manifest(layout, first, last, ident, settings, summary)
    total = last - first + 1
    cached = int(summary.get("cached") or 0)
    report(total, total, "")
    return Result(first, last, cached, total - cached, time.time() - t0, ident, out_pattern)


def _drop_outside(out_pattern: str, first: int, last: int) -> None:
    """Frames of an earlier, longer range are removed, so the Read shows black there."""
    out_dir = os.path.dirname(out_pattern)
    wanted = {os.path.basename(logic.frame_path(out_pattern, f)) for f in range(first, last + 1)}
    for name in os.listdir(out_dir):
        if name.startswith("matte.") and name.endswith(".exr") and name not in wanted:
            os.remove(os.path.join(out_dir, name))


def _write_manifest(layout: logic.CacheLayout, first: int, last: int, ident: Identity,
                    settings: MatteSettings, summary: Mapping[str, Any]) -> None:
    manifest = {"frames": [first, last], "cached": summary.get("cached"), "engine": ident.engine,
                "priorfx_version": ident.version, "model": ident.model_id,
                "settings": json.loads(settings.canonical())}
    tmp = layout.manifest_path() + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    os.replace(tmp, layout.manifest_path())


def make_engine(kind: str, remote_url: str, environ: Mapping[str, str], host_dir: str = "") -> CoreEngine:
    """The engine a node's knobs ask for (both start the local `priorfx`: $PRIORFX_EXE,
    set by the lines `priorfx install nuke` adds to init.py). The knob, not
    $PRIORFX_REMOTE, decides where a local job runs."""
    if kind not in logic.ENGINES:
        raise AdapterError("engine {!r} is not local or remote".format(kind))
    exe = kit.find_core({}, environ)
    remote = kind == "remote"
    env = kit.child_env({}, environ, host_dir, drop=() if remote else ("PRIORFX_REMOTE",))
    return CoreEngine(exe, env, remote_url if remote else "")
