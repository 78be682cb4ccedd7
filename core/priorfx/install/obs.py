"""`priorfx install obs`: install the "Rolling Shutter Correction" OBS filter script.

Copies the script (shipped in the package as priorfx.hosts.obs), the core
modules it loads (slot protocol, worker supervision, host kit) into a folder
of OBS's config directory, records how to start the worker (this
installation's `priorfx`, see install/common.py),
and adds the script to OBS's scene collections so OBS loads it at start-up
(what Tools > Scripts > + would do). OBS must be closed: it rewrites the
scene collection files when it exits.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from priorfx.atomic import write_bytes_atomic
from priorfx.errors import InputError, OutputError
from priorfx.hosts import host_dir
from priorfx.install.common import place, this_priorfx

SCRIPT_NAME = "priorfx_rolling_shutter.py"
# Core modules the script loads from beside itself: name there -> file in the package.
STREAMING = Path(__file__).resolve().parents[1] / "streaming"
CORE_MODULES = {"priorfx_shm.py": STREAMING / "shm.py", "priorfx_supervisor.py": STREAMING / "supervisor.py"}
FLATPAK_ID = "com.obsproject.Studio"


def obs_config_dir(platform: str = sys.platform, environ: dict | None = None,
                   home: Path | None = None) -> Path:
    """OBS Studio's per-user config folder: %APPDATA%\\obs-studio, ~/Library/Application
    Support/obs-studio, $XDG_CONFIG_HOME/obs-studio (or the Flatpak's, when only it has run)."""
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    if platform == "win32":
        return Path(environ.get("APPDATA") or home / "AppData" / "Roaming") / "obs-studio"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "obs-studio"
    native = Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "obs-studio"
    flatpak = home / ".var" / "app" / FLATPAK_ID / "config" / "obs-studio"
    return flatpak if not native.is_dir() and flatpak.is_dir() else native


def script_source() -> Path:
    """The OBS script shipped with this priorfx."""
    return host_dir("obs") / SCRIPT_NAME


def obs_running() -> bool:
    """True when an OBS process runs (Linux; elsewhere unknown -> False)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for comm in proc.glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "obs":
                return True
        except OSError:
            continue
    return False


def add_to_scene_collection(path: Path, script: Path) -> bool:
    """List `script` under modules.scripts-tool of one scene collection; True if changed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read OBS scene collection {path}: {exc}",
                         "open and close OBS once, or add the script by hand (Tools > Scripts > +)") from None
    scripts = data.setdefault("modules", {}).setdefault("scripts-tool", [])
    target = str(script)
    if any(Path(s.get("path", "")) == script for s in scripts if isinstance(s, dict)):
        return False
    scripts.append({"path": target, "settings": {}})
    write_bytes_atomic(path, json.dumps(data, indent=4).encode())
    return True


def install(dest: Path, config_dir: Path, collections: bool = True) -> dict:
    """Copy the script and the core modules it loads, record the core, register with scene collections."""
    command = this_priorfx()
    try:
        dest.mkdir(parents=True, exist_ok=True)
        place(dest, {SCRIPT_NAME: script_source(), **CORE_MODULES}, command)
    except OSError as exc:
        raise OutputError(f"cannot write the OBS script to {dest}: {exc}",
                          "pick a writable folder with --dest") from None
    changed = []
    scenes = sorted((config_dir / "basic" / "scenes").glob("*.json")) if collections else []
    for sc in scenes:
        if add_to_scene_collection(sc, dest / SCRIPT_NAME):
            changed.append(str(sc))
    return {"script": str(dest / SCRIPT_NAME), "worker": command,
            "scene_collections": [str(s) for s in scenes], "changed": changed}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--obs-config", type=Path, default=None, metavar="DIR",
                   help=f"OBS Studio's config folder (default: {obs_config_dir()})")
    p.add_argument("--dest", type=Path, default=None, metavar="DIR",
                   help="where to put the script (default: OBS_CONFIG/priorfx)")
    p.add_argument("--no-scene-collections", action="store_true",
                   help="only copy the script; add it in OBS yourself (Tools > Scripts > +)")


def run(args: argparse.Namespace) -> int:
    config_dir = args.obs_config or obs_config_dir()
    dest = args.dest or config_dir / "priorfx"
    if FLATPAK_ID in str(config_dir):
        print("note: Flatpak OBS runs its own Python and cannot start this priorfx; "
              "use a distribution package of OBS", file=sys.stderr)
    running = obs_running()
    res = install(dest, config_dir, collections=not args.no_scene_collections)
    print(f"installed {res['script']}")
    print(f"worker: {' '.join(res['worker'])} worker shutter (started by the script)")
    for sc in res["changed"]:
        print(f"added the script to scene collection {sc}")
    if res["scene_collections"] and not res["changed"]:
        print("the script was already listed in every scene collection")
    steps = []
    if not res["scene_collections"] or args.no_scene_collections:
        steps.append(f"In OBS: Tools > Scripts > + and pick {res['script']}")
    if sys.platform == "win32":
        steps.insert(0, "In OBS: Tools > Scripts > Python Settings: pick a Python 3.11 or 3.12 (64-bit) install")
    elif sys.platform == "darwin":
        steps.insert(0, "In OBS: Tools > Scripts > Python Settings: pick a Python 3.11 install")
    steps.append("Right-click your webcam source > Filters > + (Audio/Video Filters) > "
                 "Rolling Shutter Correction")
    if res["changed"] and running:
        print("warning: OBS is running and will overwrite its scene collections when it quits; "
              "add the script there too (Tools > Scripts > +) or quit OBS and install again", file=sys.stderr)
    if res["changed"]:
        steps.insert(0, "Start OBS (the script loads with your scene collection)")
    for i, s in enumerate(steps, 1):
        print(f"{i}. {s}")
    return 0
