"""`priorfx info`: what this core is, for people and for host plug-ins.

`--json` is the adapters' one question to the core (see
priorfx/hosts/priorfx_hostkit.py: core_info): the version, each command with
the long options it takes, and with `--remote URL` the server's version, so no
adapter parses `--help` or speaks HTTP itself.
"""
from __future__ import annotations

import argparse
import json

import priorfx
from priorfx.cli.common import add_engine_options, engine_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="version, commands and their options (and a server's version)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print JSON (what host plug-ins read)")
    add_engine_options(p)
    p.set_defaults(func=_run)


def command_options(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each subcommand of `parser` -> the sorted long options it accepts."""
    found: dict[str, list[str]] = {}
    for action in parser._actions:   # argparse keeps its subparsers here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sorted(opt for a in sub._actions for opt in a.option_strings
                                     if opt.startswith("--") and opt != "--help")
    return found


def _run(args: argparse.Namespace) -> int:
    from priorfx.cli import build_parser

    info = {"priorfx_version": priorfx.__version__, "commands": command_options(build_parser())}
    if args.remote:
        server = engine_from_args(args).info().get("server") or {}
        info["server"] = {"url": args.remote, "priorfx_version": server.get("priorfx_version")}
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    print(f"priorfx {info['priorfx_version']}")
    if "server" in info:
        print(f"server {info['server']['url']}: priorfx {info['server']['priorfx_version']}")
    for name, opts in sorted(info["commands"].items()):
        print(f"  {name}: {' '.join(opts)}")
    return 0
