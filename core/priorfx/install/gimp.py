"""`priorfx install gimp`: put the "Undistort Selfie" filter into GIMP 3.

Copies the plug-in (shipped in the package as priorfx.hosts.gimp) and the host
kit into GIMP's user plug-ins folder (or the one given) and records how to
reach the core there (see install/common.py). Running it again updates the
plug-in and the recorded settings.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from priorfx.hosts import host_dir
from priorfx.install.common import check_remote, chosen_command, make_dir, place, remove

PLUGIN = "priorfx-undistort"
FLATPAK_ID = "org.gimp.GIMP"


def default_plugins_dir(platform: str = sys.platform, environ: dict | None = None,
                        home: Path | None = None) -> Path:
    """GIMP 3's per-user plug-ins folder.

    GIMP3_DIRECTORY wins (GIMP's own override). Windows: %APPDATA%\\GIMP\\3.0;
    macOS: ~/Library/Application Support/GIMP/3.0; Linux: $XDG_CONFIG_HOME/GIMP/3.0,
    or the Flatpak's config when only the Flatpak GIMP has run here.
    """
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    if environ.get("GIMP3_DIRECTORY"):
        return Path(environ["GIMP3_DIRECTORY"]) / "plug-ins"
    if platform == "win32":
        base = Path(environ.get("APPDATA") or home / "AppData" / "Roaming")
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
        flatpak = home / ".var" / "app" / FLATPAK_ID / "config"
        if not (base / "GIMP" / "3.0").is_dir() and (flatpak / "GIMP" / "3.0").is_dir():
            base = flatpak
    return base / "GIMP" / "3.0" / "plug-ins"


def plugin_source() -> Path:
    """The plug-in script shipped with this priorfx."""
    return host_dir("gimp") / PLUGIN / f"{PLUGIN}.py"


def install(plugins_dir: Path, command: list[str], remote: str | None = None) -> Path:
    """Copy the plug-in into `plugins_dir/priorfx-undistort/` and record the core. Returns the script."""
    make_dir(plugins_dir, "give a writable folder with --plugins-dir")
    dst = plugins_dir / PLUGIN
    script = f"{PLUGIN}.py"
    place(dst, {script: plugin_source()}, command, remote, executable=(script,))
    return dst / script


def uninstall(plugins_dir: Path) -> bool:
    return remove(plugins_dir / PLUGIN, f"{PLUGIN}.py")


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
    check_remote(args.remote)
    command = chosen_command(args.priorfx)
    if FLATPAK_ID in str(plugins_dir):
        print("note: Flatpak GIMP runs in a sandbox with its own Python and may not be able to start "
              f"{command[0]}; a distribution or installer GIMP is the tested host", file=sys.stderr)
    script = install(plugins_dir, command, args.remote)
    where = f"the server at {args.remote}" if args.remote else "this computer"
    print(f"installed {script}")
    print(f"the filter runs {' '.join(command)} on {where}; restart GIMP and use "
          "Filters > Distorts > Undistort Selfie...")
    return 0
