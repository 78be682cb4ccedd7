"""What the three host installers share: the core command, the install record, copying.

Every installer puts the adapter and the host kit (`priorfx_hostkit.py`) into the
host's folder and writes `priorfx_host.json` beside them: the `priorfx` command
to start, an optional server URL, and the PRIORFX_* variables set now (a host
started from a desktop menu does not see the shell's environment). The record
can hold a token, so it is written readable by its owner only.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import priorfx
from priorfx.atomic import write_bytes_atomic
from priorfx.errors import OutputError, UsageError
from priorfx.hosts import hostkit_path
from priorfx.hosts.priorfx_hostkit import RECORD_NAME

# Recorded at install time when set, so that the host's adapter sees the same store and server.
RECORDED_ENV = ("PRIORFX_HOME", "PRIORFX_CONFIG", "PRIORFX_THREADS", "PRIORFX_TOKEN")


def executable_name(platform: str = sys.platform) -> str:
    return "priorfx.exe" if platform == "win32" else "priorfx"


def this_priorfx() -> list[str]:
    """The command that runs this very installation of priorfx.

    The console script beside this interpreter (bin/priorfx, or Scripts\\priorfx.exe
    on Windows); else this interpreter running the CLI module, which works for any
    install layout.
    """
    exe = Path(sys.executable).with_name(executable_name())
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-m", "priorfx.cli"]


def chosen_command(path: str | None) -> list[str]:
    """--priorfx PATH if given (checked to run as priorfx), else this installation's."""
    if not path:
        return this_priorfx()
    cmd = [str(Path(path).expanduser().absolute())]
    try:
        check = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=120)
        ok = check.returncode == 0 and check.stdout.startswith("priorfx ")
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        raise UsageError(f"{cmd[0]} does not run as `priorfx --version`",
                         "give the priorfx executable with --priorfx PATH")
    return cmd


def check_remote(url: str | None) -> None:
    if url and not url.startswith(("http://", "https://")):
        raise UsageError(f"remote URL {url!r} must start with http:// or https://",
                         "e.g. --remote http://gpu-box:8765")


def record(command: list[str], remote: str | None = None, environ: dict | None = None) -> dict:
    """What the adapter reads to reach the core (see priorfx_hostkit.load_record)."""
    environ = os.environ if environ is None else environ
    return {"command": list(command), "remote": remote,
            "env": {k: environ[k] for k in RECORDED_ENV if environ.get(k)},
            "priorfx_version": priorfx.__version__}


def make_dir(folder: Path, hint: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror}", hint) from None


def place(dest: Path, files: dict[str, Path], command: list[str], remote: str | None = None,
          executable: tuple[str, ...] = ()) -> Path:
    """Copy `files` (name in dest -> source) and the host kit into `dest`, write the record.

    Each file is written atomically; `executable` names get mode 0755 (GIMP runs
    only executable plug-ins on Unix); the record is 0600 (it may hold a token).
    Returns the record's path.
    """
    for name, src in {**files, "priorfx_hostkit.py": hostkit_path()}.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, src.read_bytes())
        if name in executable:
            target.chmod(0o755)
    path = dest / RECORD_NAME
    write_bytes_atomic(path, (json.dumps(record(command, remote), indent=2) + "\n").encode(), mode=0o600)
    return path


def remove(dest: Path, marker: str) -> bool:
    """Remove an installed adapter folder (only if it holds `marker`)."""
    if not (dest / marker).is_file():
        return False
    shutil.rmtree(dest)
    return True
