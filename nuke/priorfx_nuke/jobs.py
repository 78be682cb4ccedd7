"""Run the matting core on exported frames: locally or on a priorfx server.

No `nuke` here and no third-party imports (Nuke's Python has none of them):
both engines start `priorfx matte ...` through priorfx's host kit (finding the
core, its environment, progress, cancel and errors), the remote one with
``--remote URL`` (the core's RemoteEngine speaks HTTP to `priorfx serve`; the
node never does). `process_range` is the whole job path after the internal
Writes have rendered the inputs: hash the frames, skip what the cache already
holds, run the core, and publish the result sequence the internal Read shows.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from typing import Callable, Dict, Mapping, NamedTuple, Optional, Sequence

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
            settings: MatteSettings, on_progress: ProgressFn, is_cancelled: CancelFn) -> None:
        cmd = logic.matte_command(self.exe, inputs, out_pattern, first, last, settings,
                                  remote_url=self.remote_url)
        total = last - first + 1
        try:
            kit.run_core(cmd, self.env, on_progress=on_progress, is_cancelled=is_cancelled)
        except kit.CoreError as err:
            if err.cancelled:
                raise CancelledByUser() from None
            raise
        on_progress(total, total, "")


class Result(NamedTuple):
    first: int
    last: int
    cached: int
    made: int
    seconds: float
    identity: Identity
    out_pattern: str
    keys: Dict[int, str]

    def status(self) -> str:
        return logic.status_done(self.last - self.first + 1, self.cached, self.seconds,
                                 self.identity.engine, self.identity.version)


def process_range(engine, layout: logic.CacheLayout, inputs: Mapping[str, str],
                  first: int, last: int, settings: MatteSettings,
                  on_progress: Optional[ProgressFn] = None,
                  is_cancelled: Optional[CancelFn] = None) -> Result:
    """Hash the exported frames, run what the cache lacks, publish the sequence.

    Parameters
    ----------
    engine : CoreEngine (or anything with identity() and run())
    layout : where this node's files live
    inputs : input name -> exported EXR pattern (plate required; guides optional)
    first, last : inclusive frame range
    settings : the knobs that change the pixels

    Returns a Result; the frames are at `layout.out_pattern()` when it returns.
    Raises CancelledByUser or AdapterError; on either the previously published
    sequence is left as it was.
    """
    report = on_progress or (lambda d, t, m: None)
    cancelled = is_cancelled or (lambda: False)
    settings.validate()
    t0 = time.time()
    frames = list(range(first, last + 1))
    report(0, len(frames), "hashing inputs")
    digests = {}  # type: Dict[int, Dict[str, str]]
    for f in frames:
        if cancelled():
            raise CancelledByUser()
        digests[f] = {name: logic.file_digest(logic.frame_path(pat, f)) for name, pat in inputs.items()}
    ident = engine.identity()
    keys = logic.frame_keys(frames, digests, settings, ident.model_id, ident.version)
    have = [k for k in set(keys.values()) if os.path.exists(layout.store_path(k))]
    plan = logic.plan_work(keys, have)
    for run_first, run_last in plan.runs:
        _run_into_store(engine, layout, inputs, run_first, run_last, settings, keys, report, cancelled)
    _publish(layout, keys, ident, settings)
    report(len(frames), len(frames), "")
    return Result(first, last, len(plan.cached), len(plan.todo), time.time() - t0, ident,
                  layout.out_pattern(), keys)


def _run_into_store(engine, layout: logic.CacheLayout, inputs: Mapping[str, str],
                    first: int, last: int, settings: MatteSettings, keys: Mapping[int, str],
                    report: ProgressFn, cancelled: CancelFn) -> None:
    os.makedirs(layout.jobs_dir(), exist_ok=True)
    job_dir = os.path.join(layout.jobs_dir(), uuid.uuid4().hex[:12])
    os.makedirs(job_dir)
    out_pattern = os.path.join(job_dir, "matte." + logic.FRAME_PATTERN + ".exr")
    try:
        engine.run(inputs, first, last, out_pattern, settings, report, cancelled)
        missing = [f for f in range(first, last + 1) if not os.path.exists(logic.frame_path(out_pattern, f))]
        if missing:
            raise AdapterError("the core finished without frames " + logic.format_ranges(missing),
                               "check the frame range of the plate")
        for f in range(first, last + 1):
            dst = layout.store_path(keys[f])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(logic.frame_path(out_pattern, f), dst)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def _publish(layout: logic.CacheLayout, keys: Mapping[int, str], ident: Identity,
             settings: MatteSettings) -> None:
    """Point the node's output sequence at the stored results, frame by frame.

    Hard links when the file system allows (no copy of 4K EXRs), else copies;
    each frame is swapped in with a rename so a Read never sees half a file.
    Frames outside the range are removed so the Read shows black there.
    """
    out_pattern = layout.out_pattern()
    out_dir = os.path.dirname(out_pattern)
    os.makedirs(out_dir, exist_ok=True)
    wanted = {os.path.basename(logic.frame_path(out_pattern, f)) for f in keys}
    for name in os.listdir(out_dir):
        if name.startswith("matte.") and name.endswith(".exr") and name not in wanted:
            os.remove(os.path.join(out_dir, name))
    for f, key in keys.items():
        dst = logic.frame_path(out_pattern, f)
        tmp = os.path.join(out_dir, ".tmp-{}-{}".format(uuid.uuid4().hex[:8], os.path.basename(dst)))
        try:
            os.link(layout.store_path(key), tmp)
        except OSError:
            shutil.copyfile(layout.store_path(key), tmp)
        os.replace(tmp, dst)
    manifest = {"frames": {str(f): k for f, k in sorted(keys.items())},
                "engine": ident.engine, "priorfx_version": ident.version, "model": ident.model_id,
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
