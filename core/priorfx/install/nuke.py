"""`priorfx install nuke`: make Nuke load the PriorfxMatte node.

Adds a marked block to the user's ~/.nuke/init.py (or `--nuke-dir`) that puts
the plug-in folder on Nuke's plug-in path and records which `priorfx` command
the node starts. Running it again replaces the block (idempotent); `--print`
only shows the lines to paste (e.g. into a studio-wide init.py).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from priorfx.atomic import write_bytes_atomic
from priorfx.errors import InputError, OutputError

BEGIN = "# >>> priorfx (managed by `priorfx install nuke`) >>>"
END = "# <<< priorfx <<<"


def plugin_dir() -> Path:
    """The `nuke/` folder of this priorfx (a source checkout or editable install)."""
    env = os.environ.get("PRIORFX_NUKE_PLUGIN")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "nuke")
    for c in candidates:
        if (c / "priorfx_nuke" / "node.py").is_file() and (c / "menu.py").is_file():
            return c.resolve()
    raise InputError("the Nuke plug-in folder (nuke/priorfx_nuke) was not found next to this priorfx",
                     "install priorfx from its source tree (pip install -e .) or set "
                     "PRIORFX_NUKE_PLUGIN to the nuke/ folder")


def priorfx_command() -> str:
    """The `priorfx` executable of this installation (what the node will start)."""
    exe = Path(sys.executable).with_name("priorfx.exe" if os.name == "nt" else "priorfx")
    if exe.is_file():
        return str(exe)
    found = shutil.which("priorfx")
    if found:
        return str(Path(found).resolve())
    raise InputError("the priorfx command was not found", "install priorfx with pip first")


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
    p.add_argument("--nuke-dir", type=Path, default=Path.home() / ".nuke",
                   help="Nuke's user folder holding init.py (default: ~/.nuke)")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="only print the lines to add; change nothing")


def run(args: argparse.Namespace) -> int:
    text = block(plugin_dir(), priorfx_command())
    if args.print_only:
        print(f"# add to {args.nuke_dir / 'init.py'}:")
        print(text, end="")
        return 0
    nuke_dir: Path = args.nuke_dir.expanduser()
    try:
        nuke_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {nuke_dir}: {exc.strerror}",
                          "use --nuke-dir, or --print and add the lines by hand") from None
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
