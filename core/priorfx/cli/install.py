"""`priorfx install HOST`: put a host plug-in where the host finds it."""
from __future__ import annotations

import argparse

from priorfx.cli.common import present_modules

HOSTS = {
    "gimp": "the GIMP 3 'Undistort Selfie' filter",
    "obs": "the OBS 'Rolling Shutter Correction' filter script",
    "nuke": "the Nuke 'PriorfxMatte' node",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install", help="install a host plug-in (gimp, obs, nuke)")
    hsub = p.add_subparsers(dest="host", metavar="HOST", required=True)
    for name, module in present_modules("priorfx.install", HOSTS):
        h = hsub.add_parser(name, help=f"install {HOSTS[name]}")
        module.add_arguments(h)
        h.set_defaults(func=module.run)
