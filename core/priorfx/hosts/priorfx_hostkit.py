"""priorfx host kit: the one contract by which a host adapter runs the priorfx core.

GIMP's, OBS's and Nuke's Pythons cannot import priorfx (no numpy, another
interpreter), so each adapter starts the `priorfx` command as a child process.
This module is everything the three share about that, and nothing about any
one host:

- where the core is: ``$PRIORFX_EXE`` (a path, or a JSON list for a command
  with arguments), else what `priorfx install HOST` recorded beside the
  adapter in ``priorfx_host.json``;
- the child's environment: the host's own Python settings removed, the
  variables recorded at install time added (a host started from a desktop menu
  does not see the shell's), the host's library folders taken off the loader
  path;
- running the core with progress (``--progress json`` lines on stderr) and
  cancel (SIGINT first, so a remote job is cancelled on the server too);
- turning the CLI's ``priorfx: error:`` / ``priorfx: hint:`` lines and exit
  code into one exception, `CoreError`;
- asking the core what it is (``priorfx info --json``: version, operations,
  flags, the server's version when remote), so no adapter parses ``--help``
  or speaks HTTP.

Standard library only, Python 3.7 or later (Nuke 13 is the oldest host).
`priorfx install HOST` copies this file beside the adapter; it lives in the
core at ``priorfx/hosts/priorfx_hostkit.py`` so the two never drift apart.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

RECORD_NAME = "priorfx_host.json"
EXE_ENV = "PRIORFX_EXE"
# Set by hosts for their embedded Python; they would break the core's own Python.
HOST_PYTHON_VARS = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")
LOADER_PATH_VARS = ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")

EXIT_CANCELLED = 130
EXIT_NO_FACE = 6

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]


class CoreError(Exception):
    """The core could not be started or failed; `message` and `hint` are for the user."""

    def __init__(self, message: str, hint: str = "", exit_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    @property
    def cancelled(self) -> bool:
        return self.exit_code == EXIT_CANCELLED

    @property
    def no_face(self) -> bool:
        return self.exit_code == EXIT_NO_FACE

    def __str__(self) -> str:
        return "{} ({})".format(self.message, self.hint) if self.hint else self.message


# --------------------------------------------------------------------------- where the core is

def load_record(folder: str) -> Dict[str, Any]:
    """What `priorfx install HOST` recorded in `folder` (empty when nothing was)."""
    path = os.path.join(folder, RECORD_NAME)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CoreError("cannot read {}: {}".format(path, exc),
                        "run `priorfx install` for this host again") from None
    if not isinstance(record, dict):
        raise CoreError("{} is not a priorfx install record".format(path),
                        "run `priorfx install` for this host again")
    return record


def find_core(record: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """The command that starts the core: $PRIORFX_EXE, else the recorded one."""
    environ = os.environ if environ is None else environ
    text = environ.get(EXE_ENV, "").strip()
    if text:
        cmd = _command_from_text(text)
        where = "{} ({})".format(EXE_ENV, text)
    else:
        cmd = [str(c) for c in (record.get("command") or [])]
        where = "the install record"
    if not cmd:
        raise CoreError("cannot find the priorfx command",
                        "run `priorfx install` for this host (it records where priorfx is), "
                        "or set {} to the priorfx executable".format(EXE_ENV))
    if os.path.isabs(cmd[0]) and not os.path.isfile(cmd[0]):
        raise CoreError("{} names {}, which does not exist".format(where, cmd[0]),
                        "run `priorfx install` for this host again, or fix {}".format(EXE_ENV))
    return cmd


def _command_from_text(text: str) -> List[str]:
    """A path (spaces allowed, no quoting needed) or a JSON list of arguments."""
    if text.startswith("["):
        try:
            cmd = json.loads(text)
        except ValueError:
            raise CoreError("{} is not a JSON list of arguments: {}".format(EXE_ENV, text),
                            'write it as ["/path/to/priorfx"] or as a plain path') from None
        if not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
            raise CoreError("{} must list strings: {}".format(EXE_ENV, text),
                            'write it as ["/path/to/priorfx"] or as a plain path')
        return cmd
    return [text]


def child_env(record: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None,
              host_dir: str = "", drop: Sequence[str] = ()) -> Dict[str, str]:
    """The core's environment: ours without the host's Python, plus the recorded variables.

    `host_dir`: the host's install folder; its libraries (its own OpenEXR,
    OCIO, Qt, Python) come off the loader path so the core loads its own.
    `drop`: further variables the adapter decides itself (for example
    PRIORFX_REMOTE, when a knob chooses the engine).
    """
    environ = os.environ if environ is None else environ
    skip = set(HOST_PYTHON_VARS) | set(drop)
    env = {k: v for k, v in environ.items() if k not in skip}
    recorded = record.get("env") or {}
    if isinstance(recorded, dict):
        env.update({str(k): str(v) for k, v in recorded.items() if k not in env})
    if host_dir:
        host = os.path.normcase(os.path.abspath(host_dir))
        for var in LOADER_PATH_VARS:
            if var in env:
                keep = [p for p in env[var].split(os.pathsep)
                        if p and not os.path.normcase(os.path.abspath(p)).startswith(host)]
                if keep:
                    env[var] = os.pathsep.join(keep)
                else:
                    del env[var]
    return env


# --------------------------------------------------------------------------- what the core says

def error_from_output(stderr: str, returncode: int, what: str = "priorfx") -> CoreError:
    """One CoreError from the CLI's `priorfx: error:` / `priorfx: hint:` lines."""
    message, hint = "", ""
    for line in stderr.splitlines():
        if line.startswith("priorfx: error:"):
            message = line.split(":", 2)[2].strip()
        elif line.startswith("priorfx: hint:"):
            hint = line.split(":", 2)[2].strip()
    if not message:
        if returncode == EXIT_CANCELLED:
            message = "cancelled"
        else:
            tail = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()][-3:]
            message = "{} failed with exit code {}".format(what, returncode)
            if tail:
                message += ": " + " | ".join(tail)
    return CoreError(message, hint, returncode)


def parse_progress(line: str) -> Optional[Tuple[int, int, str]]:
    """(done, total, message) from one `--progress json` line, or None for other lines."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("progress"), dict):
        obj = obj["progress"]
    if not isinstance(obj, dict) or "done" not in obj or "total" not in obj:
        return None
    try:
        return int(obj["done"]), int(obj["total"]), str(obj.get("message") or "")
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- running it

def popen_options() -> Dict[str, Any]:
    """No console window on Windows; our own process group, so the host's Ctrl-C is not ours."""
    if os.name == "nt":
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        return {"creationflags": flags}
    return {"start_new_session": True}


def start_error(cmd: Sequence[str], exc: OSError) -> CoreError:
    return CoreError("cannot start {}: {}".format(cmd[0], exc.strerror or exc),
                     "run `priorfx install` for this host again, or set {}".format(EXE_ENV))


def run_core(cmd: Sequence[str], env: Mapping[str, str], on_progress: Optional[ProgressFn] = None,
             is_cancelled: Optional[CancelFn] = None, poll: Optional[Callable[[], None]] = None,
             poll_s: float = 0.2, on_line: Optional[Callable[[str], None]] = None) -> str:
    """Run one core command to the end and return its stdout.

    `on_progress(done, total, message)` gets each `--progress json` line;
    `on_line(line)` each other line the core writes on stderr (what it tells
    the user, such as the distance of each face);
    `poll()` is called every `poll_s` while the core works (a host's progress
    pulse); `is_cancelled()` returning True interrupts the core (which then
    cancels its server job and keeps no partial output) and raises CoreError
    with exit code 130. A failure raises CoreError with the CLI's message.
    """
    try:
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env), **popen_options())  # type: ignore[call-overload]
    except OSError as exc:
        raise start_error(cmd, exc) from None
    out_chunks = []  # type: List[bytes]
    err_lines = []  # type: List[str]
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None

    def read_stdout() -> None:
        out_chunks.append(stdout.read())

    def read_stderr() -> None:
        for raw in stderr:
            line = raw.decode("utf-8", "replace")
            event = parse_progress(line)
            if event is None:
                err_lines.append(line)
                if on_line is not None:
                    on_line(line)
            elif on_progress is not None:
                on_progress(*event)

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=read_stderr, daemon=True)]
    for t in readers:
        t.start()
    try:
        while True:
            try:
                proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            if is_cancelled is not None and is_cancelled():
                stop(proc)
                raise CoreError("cancelled", "", EXIT_CANCELLED)
            if poll is not None:
                poll()
    except BaseException:
        stop(proc)
        raise
    finally:
        for t in readers:
            t.join(timeout=5)
    if proc.returncode != 0:
        raise error_from_output("".join(err_lines), proc.returncode)
    return b"".join(out_chunks).decode("utf-8", "replace")


def stop(proc: "subprocess.Popen") -> None:
    """Interrupt (so a remote job is cancelled on the server), then terminate, then kill."""
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


_info_cache = {}  # type: Dict[Tuple[str, ...], Dict[str, Any]]


def core_info(cmd: Sequence[str], env: Mapping[str, str], remote: str = "") -> Dict[str, Any]:
    """`priorfx info --json [--remote URL]`, asked once per command and server.

    Keys: priorfx_version, commands (name -> the long options it takes), and
    with a remote, server (its priorfx_version). A dead server or a wrong
    token is a CoreError with the core's own message.
    """
    args = list(cmd) + ["info", "--json"] + (["--remote", remote] if remote else [])
    key = tuple(args)
    if key not in _info_cache:
        text = run_core(args, env)
        try:
            info = json.loads(text)
        except ValueError:
            raise CoreError("{} did not answer `info --json` with JSON".format(cmd[0]),
                            "install a priorfx of the same release as this plug-in") from None
        if not isinstance(info, dict) or "priorfx_version" not in info:
            raise CoreError("{} answered `info --json` without a version".format(cmd[0]),
                            "install a priorfx of the same release as this plug-in")
        _info_cache[key] = info
    return _info_cache[key]
