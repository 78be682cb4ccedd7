"""`priorfx install gimp`: put the "Undistort Selfie" filter into GIMP 3.

Copies `gimp/priorfx-undistort/` into GIMP's user plug-ins folder (or the one
given) and writes `priorfx-undistort.json` next to the plug-in, which tells it
how to reach the core: the `priorfx` executable to run (this environment's by
default), an optional remote server URL, and the PRIORFX_* variables set now
(GIMP started from a desktop menu does not see the shell's environment).
Running it again updates the plug-in and the recorded settings.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import priorfx
from priorfx.atomic import write_bytes_atomic
from priorfx.errors import InputError, OutputError, UsageError

PLUGIN = "priorfx-undistort"
CONFIG_NAME = "priorfx-undistort.json"
# Recorded at install time when set, so that GIMP's plug-in sees the same store.
RECORDED_ENV = ("PRIORFX_HOME", "PRIORFX_CONFIG", "PRIORFX_THREADS", "PRIORFX_TOKEN")


def default_plugins_dir() -> Path:
    """GIMP 3's per-user plug-ins folder on this platform (honours GIMP3_DIRECTORY)."""
    if os.environ.get("GIMP3_DIRECTORY"):
        return Path(os.environ["GIMP3_DIRECTORY"]) / "plug-ins"
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "GIMP" / "3.0" / "plug-ins"


def plugin_source() -> Path:
    """The plug-in folder shipped with this checkout."""
    src = Path(priorfx.__file__).resolve().parents[2] / "gimp" / PLUGIN
    if not (src / f"{PLUGIN}.py").is_file():
        raise InputError(f"the GIMP plug-in is not in this installation (looked in {src})",
                         "install priorfx from a source checkout: pip install -e <checkout>")
    return src


def default_priorfx() -> str | None:
    """This environment's `priorfx` executable (the one running now)."""
    name = "priorfx.exe" if sys.platform == "win32" else "priorfx"
    here = Path(sys.executable).with_name(name)
    if here.is_file():
        return str(here)
    found = shutil.which("priorfx")
    return str(Path(found).resolve()) if found else None


def core_config(priorfx_exe: str, remote: str | None, environ: dict | None = None) -> dict:
    """What the plug-in reads to reach the core."""
    environ = os.environ if environ is None else environ
    return {"priorfx": priorfx_exe, "remote": remote,
            "env": {k: environ[k] for k in RECORDED_ENV if environ.get(k)},
            "priorfx_version": priorfx.__version__}


def install(plugins_dir: Path, priorfx_exe: str, remote: str | None = None) -> Path:
    """Copy the plug-in into `plugins_dir/priorfx-undistort/` and record the core. Returns the script."""
    src = plugin_source()
    if not plugins_dir.is_dir():
        try:
            plugins_dir.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"cannot create GIMP plug-ins folder {plugins_dir}: {exc.strerror}",
                              "give a writable folder with --plugins-dir") from None
    dst = plugins_dir / PLUGIN
    dst.mkdir(exist_ok=True)
    script = dst / f"{PLUGIN}.py"
    write_bytes_atomic(script, (src / f"{PLUGIN}.py").read_bytes())
    script.chmod(0o755)  # GIMP only runs executable plug-ins on Unix
    cfg = core_config(priorfx_exe, remote)
    # The record may hold PRIORFX_TOKEN: only its owner (who runs GIMP) reads it.
    write_bytes_atomic(dst / CONFIG_NAME, (json.dumps(cfg, indent=2) + "\n").encode(), mode=0o600)
    return script


def uninstall(plugins_dir: Path) -> bool:
    dst = plugins_dir / PLUGIN
    if not (dst / f"{PLUGIN}.py").is_file():
        return False
    shutil.rmtree(dst)
    return True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Install the GIMP 3 filter Filters > Distorts > Undistort Selfie. "
                     "Restart GIMP afterwards.")
    p.add_argument("--plugins-dir", type=Path, default=None,
                   help=f"GIMP 3 plug-ins folder (default: {default_plugins_dir()})")
    p.add_argument("--priorfx", metavar="PATH", default=None,
                   help="priorfx executable the filter runs (default: this environment's)")
    p.add_argument("--remote", metavar="URL", default=None,
                   help="run the filter on a `priorfx serve` at URL instead of this computer")
    p.add_argument("--uninstall", action="store_true", help="remove the filter instead")


def run(args: argparse.Namespace) -> int:
    plugins_dir = (args.plugins_dir or default_plugins_dir()).expanduser()
    if args.uninstall:
        removed = uninstall(plugins_dir)
        print(f"removed {plugins_dir / PLUGIN}" if removed else f"nothing installed in {plugins_dir}")
        return 0
    if args.remote and not args.remote.startswith(("http://", "https://")):
        raise UsageError(f"remote URL {args.remote!r} must start with http:// or https://",
                         "e.g. --remote http://gpu-box:8765")
    exe = args.priorfx or default_priorfx()
    if not exe:
        raise UsageError("cannot tell where the priorfx executable is", "give it with --priorfx PATH")
    exe = str(Path(exe).expanduser().absolute())
    try:
        check = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
        ok = check.returncode == 0
    except OSError:
        ok = False
    if not ok:
        raise UsageError(f"{exe} does not run as `priorfx --version`",
                         "give the priorfx executable with --priorfx PATH")
    script = install(plugins_dir, exe, args.remote)
    where = f"the server at {args.remote}" if args.remote else "this computer"
    print(f"installed {script}")
    print(f"the filter runs {exe} on {where}; restart GIMP and use "
          "Filters > Distorts > Undistort Selfie...")
    return 0
