"""The host plug-ins shipped inside the priorfx package, and where to find them.

The repository keeps each host's adapter at the top level, where the people who
build for that host look (`gimp/`, `obs/`, `nuke/`, `plugins/`). pyproject.toml
maps those folders into this package (`priorfx.hosts.gimp`, `.obs`, `.nuke`,
`priorfx.publish.plugins`), so a wheel carries them and `priorfx install HOST`
finds them with importlib.resources, whether priorfx runs from a checkout or
from `pip install priorfx`. `priorfx_hostkit.py` beside this file is the
standard-library process contract that the installers copy beside each adapter.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from priorfx.errors import InputError

HOSTKIT_NAME = "priorfx_hostkit.py"
PACKAGES = {"gimp": "priorfx.hosts.gimp", "obs": "priorfx.hosts.obs", "nuke": "priorfx.hosts.nuke",
            "publish-plugins": "priorfx.publish.plugins"}


def host_dir(host: str) -> Path:
    """The folder holding a host's shipped files (a real folder: installers copy from it)."""
    try:
        folder = resources.files(PACKAGES[host])
    except ImportError:
        folder = None
    # installed packages are plain folders; a zipped install could not be copied from
    if not isinstance(folder, Path) or not folder.is_dir():
        raise InputError(f"the {host} files are missing from this priorfx installation",
                         "reinstall priorfx (pip install --force-reinstall priorfx)")
    return folder


def hostkit_path() -> Path:
    """The host kit that installers copy beside each adapter."""
    return Path(__file__).with_name(HOSTKIT_NAME)
