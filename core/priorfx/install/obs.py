"""`priorfx install obs`: install the "Rolling Shutter Correction" OBS filter script.

Copies the script and its protocol module into a folder of OBS's config
directory, records how to start the worker (this installation's `priorfx`),
and adds the script to OBS's scene collections so OBS loads it at start-up
(what Tools > Scripts > + would do). OBS must be closed: it rewrites the
scene collection files when it exits.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import priorfx
from priorfx.atomic import write_bytes_atomic
from priorfx.errors import InputError, OutputError

SCRIPT_NAME = "priorfx_rolling_shutter.py"
PROTOCOL_NAME = "priorfx_shm.py"
CONFIG_NAME = "priorfx_obs.json"


def obs_config_dir() -> Path:
    """OBS Studio's per-user config folder on this platform."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "obs-studio"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "obs-studio"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "obs-studio"


def script_source() -> Path:
    """The OBS script in this source tree (obs/ beside core/)."""
    here = Path(priorfx.__file__).resolve().parents[2] / "obs" / SCRIPT_NAME
    if not here.is_file():
        raise InputError(f"the OBS script is not in this installation (looked for {here})",
                         "install priorfx from a source checkout: pip install -e /path/to/priorfx")
    return here


def worker_command() -> list[str]:
    """How the script starts `priorfx` (this very installation)."""
    exe = Path(sys.executable).with_name("priorfx.exe" if os.name == "nt" else "priorfx")
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from priorfx.cli import main; sys.exit(main())"]


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
    """Copy the files, record the worker command, register with scene collections."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        src = script_source()
        shutil.copyfile(src, dest / SCRIPT_NAME)
        shutil.copyfile(Path(priorfx.__file__).parent / "streaming" / "shm.py", dest / PROTOCOL_NAME)
        record = {"worker": worker_command(), "priorfx_version": priorfx.__version__,
                  "python": sys.executable}
        write_bytes_atomic(dest / CONFIG_NAME, json.dumps(record, indent=2).encode())
    except OSError as exc:
        raise OutputError(f"cannot write the OBS script to {dest}: {exc}",
                          "pick a writable folder with --dest") from None
    changed = []
    scenes = sorted((config_dir / "basic" / "scenes").glob("*.json")) if collections else []
    for sc in scenes:
        if add_to_scene_collection(sc, dest / SCRIPT_NAME):
            changed.append(str(sc))
    return {"script": str(dest / SCRIPT_NAME), "worker": record["worker"],
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
    if "com.obsproject.Studio" in str(config_dir):
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
