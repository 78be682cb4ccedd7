"""Run the matting core on exported frames: locally or on a priorfx server.

No `nuke` here and no third-party imports (Nuke's Python has none of them):
both engines start `priorfx matte ...` as a subprocess, the remote one with
``--remote URL`` (the core's RemoteEngine speaks HTTP to `priorfx serve`);
urllib only checks the server's /v1/health first. `process_range` is the
whole job path after the internal Writes have rendered the inputs: hash the
frames, skip what the cache already holds, run the core, and publish the
result sequence the internal Read shows.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from . import logic
from .logic import AdapterError, CancelledByUser, MatteSettings

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]

POLL_S = 0.2


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

    _probe_cache = {}  # type: Dict[Tuple[str, ...], Tuple[str, List[str]]]

    def __init__(self, exe: Sequence[str], env: Optional[Mapping[str, str]] = None,
                 remote_url: str = "") -> None:
        self.exe = list(exe)
        self.env = dict(env if env is not None else os.environ)
        self.remote_url = remote_url.rstrip("/")
        self.name = "remote" if remote_url else "local"

    def _probe(self) -> Tuple[str, List[str]]:
        """(version, flags of `priorfx matte`), asked once per executable."""
        key = tuple(self.exe)
        if key not in self._probe_cache:
            version = self._run_quick(["--version"]).strip().split()[-1]
            flags = logic.supported_flags(self._run_quick(["matte", "--help"]))
            self._probe_cache[key] = (version, flags)
        return self._probe_cache[key]

    def _run_quick(self, args: List[str]) -> str:
        try:
            proc = subprocess.run(self.exe + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, env=self.env, timeout=120)
        except OSError as exc:
            raise AdapterError("cannot start {}: {}".format(self.exe[0], exc),
                               "run `priorfx install nuke` again or set PRIORFX_EXE") from None
        if proc.returncode != 0:
            raise logic.parse_cli_error(proc.stderr, proc.returncode)
        return proc.stdout

    def identity(self) -> Identity:
        """Engine name, the version of the core that computes, the model id.

        Remote: the server's version (asked over HTTP), since it does the work.
        """
        version, _flags = self._probe()
        if self.remote_url:
            version = server_version(self.remote_url)
        return Identity(self.name, version, logic.MODEL_ID)

    def run(self, inputs: Mapping[str, str], first: int, last: int, out_pattern: str,
            settings: MatteSettings, on_progress: ProgressFn, is_cancelled: CancelFn) -> None:
        cmd = logic.matte_command(self.exe, inputs, out_pattern, first, last, settings,
                                  supported=self._probe()[1], remote_url=self.remote_url)
        popen_kw = {}  # type: Dict[str, object]
        if os.name == "nt":
            popen_kw["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        else:
            popen_kw["start_new_session"] = True  # Ctrl-C in Nuke's terminal is not ours to get
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    universal_newlines=True, env=self.env, **popen_kw)  # type: ignore[call-overload]
        except OSError as exc:
            raise AdapterError("cannot start {}: {}".format(cmd[0], exc),
                               "run `priorfx install nuke` again or set PRIORFX_EXE") from None
        total = last - first + 1
        events = []  # type: List[logic.ProgressEvent]
        err_lines = []  # type: List[str]

        def read(stream, sink: Optional[List[str]]) -> None:
            for line in stream:
                ev = logic.parse_progress_line(line)
                if ev is not None:
                    events.append(ev)
                elif sink is not None:
                    sink.append(line)

        readers = [threading.Thread(target=read, args=(proc.stdout, None), daemon=True),
                   threading.Thread(target=read, args=(proc.stderr, err_lines), daemon=True)]
        for t in readers:
            t.start()
        last_done = -1
        try:
            while proc.poll() is None:
                if is_cancelled():
                    raise CancelledByUser()
                if events:
                    ev = events[-1]
                    done, msg = ev.done, ev.message
                else:  # no progress stream: count the finished frames on disk
                    done, msg = _count_frames(out_pattern, first, last), ""
                if done != last_done:
                    on_progress(done, total, msg)
                    last_done = done
                time.sleep(POLL_S)
        except BaseException:
            _stop(proc)
            raise
        finally:
            for t in readers:
                t.join(timeout=5)
        if proc.returncode != 0:
            raise logic.parse_cli_error("".join(err_lines), proc.returncode)
        on_progress(total, total, "")


def server_version(url: str, timeout: float = 10.0) -> str:
    """The priorfx version of a `priorfx serve` (GET /v1/health, no token needed)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/health", timeout=timeout) as resp:
            body = json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise AdapterError("cannot reach the priorfx server at {}: {}".format(url, exc),
                           "check the server URL knob and that `priorfx serve` runs there") from None
    version = body.get("priorfx_version") if isinstance(body, dict) else None
    if not version:
        raise AdapterError("{} did not answer like a priorfx server".format(url),
                           "check the server URL knob")
    return str(version)


def _stop(proc: "subprocess.Popen[str]") -> None:
    """Interrupt (so a remote job is cancelled on the server), then terminate."""
    if proc.poll() is not None:
        return
    if os.name != "nt":
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _count_frames(pattern: str, first: int, last: int) -> int:
    """Frames written so far, also counting those a writer stages in a hidden
    subfolder before moving them in (the job folder is this job's alone)."""
    names = {os.path.basename(logic.frame_path(pattern, f)) for f in range(first, last + 1)}
    found = set()
    for _dir, _subdirs, files in os.walk(os.path.dirname(pattern)):
        found.update(names.intersection(files))
    return len(found)


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


def make_engine(kind: str, remote_url: str, environ: Mapping[str, str], host_dir: str = "",
                which: Optional[str] = None) -> CoreEngine:
    """The engine a node's knobs ask for (both start the local `priorfx`)."""
    if kind not in logic.ENGINES:
        raise AdapterError("engine {!r} is not local or remote".format(kind))
    exe = logic.find_core(environ, which if which is not None else shutil.which("priorfx"))
    remote = kind == "remote"
    return CoreEngine(exe, logic.clean_env(environ, host_dir, local=not remote), remote_url if remote else "")
