"""`priorfx install nuke`: make Nuke load the PriorfxMatte node.

Adds a marked block to the user's ~/.nuke/init.py (or `--nuke-dir`) that puts
the plug-in folder shipped in the package (priorfx.hosts.nuke) on Nuke's
plug-in path and records in $PRIORFX_EXE which `priorfx` command the node
starts (the host kit's convention; the kit itself is found beside the folder). Running it again replaces the block (idempotent); `--print`
only shows the lines to paste (e.g. into a studio-wide init.py).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from priorfx.atomic import write_bytes_atomic
from priorfx.errors import InputError
from priorfx.hosts import host_dir
from priorfx.install.common import make_dir, this_priorfx

BEGIN = "# >>> priorfx (managed by `priorfx install nuke`) >>>"
END = "# <<< priorfx <<<"


def default_nuke_dir(home: Path | None = None) -> Path:
    """Nuke's user folder: ~/.nuke on every platform (%USERPROFILE%\\.nuke on Windows)."""
    return (Path.home() if home is None else home) / ".nuke"


def exe_setting(command: list[str]) -> str:
    """$PRIORFX_EXE for a command: the plain path, or a JSON list when it has arguments."""
    return command[0] if len(command) == 1 else json.dumps(command)


def block(plugin: Path, exe: str) -> str:
    """The lines that go into init.py (Python that runs in Nuke's interpreter)."""
    return "\n".join([
        BEGIN,
        "import os as _os",
        "import nuke as _nuke",
        "_os.environ.setdefault('PRIORFX_EXE', {!r})".format(exe),
        "_nuke.pluginAddPath({!r})".format(plugin.as_posix()),
        END,
    ]) + "\n"


def merge(existing: str, new_block: str) -> str:
    """`existing` init.py text with our block added, or replaced if present."""
    start = existing.find(BEGIN)
    if start >= 0:
        end = existing.find(END, start)
        if end < 0:
            raise InputError("init.py has the priorfx start marker but no end marker",
                             f"remove the lines from {BEGIN!r} on and run this again")
        end += len(END)
        if existing[end:end + 1] == "\n":
            end += 1
        return existing[:start] + new_block + existing[end:]
    sep = "" if not existing or existing.endswith("\n") else "\n"
    return existing + sep + ("\n" if existing else "") + new_block


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nuke-dir", type=Path, default=default_nuke_dir(),
                   help="Nuke's user folder holding init.py (default: ~/.nuke)")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="only print the lines to add; change nothing")


def run(args: argparse.Namespace) -> int:
    text = block(host_dir("nuke"), exe_setting(this_priorfx()))
    if args.print_only:
        print(f"# add to {args.nuke_dir / 'init.py'}:")
        print(text, end="")
        return 0
    nuke_dir: Path = args.nuke_dir.expanduser()
    make_dir(nuke_dir, "use --nuke-dir, or --print and add the lines by hand")
    init = nuke_dir / "init.py"
    try:
        old = init.read_text(encoding="utf-8") if init.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {init}: {exc}", "fix the file or use --print") from None
    new = merge(old, text)
    if new == old:
        print(f"{init} already loads PriorfxMatte; nothing changed")
        return 0
    write_bytes_atomic(init, new.encode("utf-8"))
    print(f"{init}: PriorfxMatte added (Nodes > priorfx > PriorfxMatte after restarting Nuke)")
    return 0
