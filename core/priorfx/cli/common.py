"""Helpers shared by the subcommands: engine options, progress bars, frame ranges."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Iterable, Iterator

from priorfx.config import load_settings
from priorfx.engine import Engine, get_engine
from priorfx.errors import UsageError
from priorfx.progress import Progress


def add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--remote", metavar="URL",
                   help="run on a `priorfx serve` at URL (default: $PRIORFX_REMOTE, the config file, or local)")
    g.add_argument("--token", help="token for the remote server (default: $PRIORFX_TOKEN)")
    g.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")


def add_cluster_option(p: argparse.ArgumentParser) -> None:
    # The environment variable lets a farm wrapper (Nuke's farm.py --cluster)
    # send every core job it starts to the cluster without changing commands.
    p.add_argument("--cluster", metavar="ADDRESS", default=os.environ.get("PRIORFX_CLUSTER") or None,
                   help="spread the clip over a Dask cluster (tcp://HOST:8786; default $PRIORFX_CLUSTER); "
                        "needs pip install 'priorfx[cluster]'")


def check_cluster_engine(args: argparse.Namespace) -> None:
    """A clip goes either to one engine or across a cluster, never both.

    --remote with --cluster is a usage error; a remote engine that comes
    from $PRIORFX_REMOTE or the config file is not used on the cluster, and
    the user is told so rather than left to wonder which machine ran it."""
    if not args.cluster:
        return
    if args.remote:
        raise UsageError("--remote and --cluster both given: a clip runs on one remote server or across "
                         "a Dask cluster, not both", "drop one of the two options")
    settings = load_settings()
    if settings.remote:
        print(f"note: the clip runs on the Dask workers at {args.cluster}; the remote engine "
              f"{settings.remote} (from $PRIORFX_REMOTE or the config file) is not used", file=sys.stderr)


def engine_from_args(args: argparse.Namespace) -> Engine:
    return get_engine(load_settings(remote=args.remote, token=args.token, threads=args.threads,
                                    device=getattr(args, "device", None)))


@contextmanager
def progress_bar(desc: str, unit: str = "frame", quiet: bool = False) -> Iterator[Progress]:
    """A Progress that draws a tqdm bar on stderr (nothing when quiet or not a TTY)."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, disable=quiet or None, leave=False)

    def update(done: int, total: int, message: str) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield Progress(update)
    finally:
        bar.close()


def add_progress_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="progress on stderr: a bar (default), one JSON object per line "
                        '({"progress": {"done", "total", "message"}}, for host plug-ins), or none')
    p.add_argument("--quiet", action="store_true", help="no progress bar (same as --progress none)")


@contextmanager
def progress_from_args(args: argparse.Namespace, desc: str, unit: str = "frame") -> Iterator[Progress]:
    """The Progress the chosen --progress style reports to."""
    if args.progress == "json" and not args.quiet:
        def emit(done: int, total: int, message: str) -> None:
            line = json.dumps({"progress": {"done": done, "total": total, "message": message}})
            print(line, file=sys.stderr, flush=True)
        yield Progress(emit)
    else:
        with progress_bar(desc, unit=unit, quiet=args.quiet or args.progress == "none") as prog:
            yield prog


def parse_frame_range(text: str | None) -> tuple[int, int] | None:
    """'A-B' (inclusive) or 'N' -> (A, B); None -> None."""
    if text is None:
        return None
    try:
        if "-" in text.strip("-"):
            a, b = text.split("-", 1)
            first, last = int(a), int(b)
        else:
            first = last = int(text)
    except ValueError:
        raise UsageError(f"frame range {text!r} is not A-B", "e.g. --frames 1001-1100") from None
    if last < first:
        raise UsageError(f"frame range {text!r} is empty (last frame before first)",
                         "give the first frame, then the last, e.g. 1001-1100")
    return first, last


def present_modules(package: str, names: Iterable[str]) -> Iterator[tuple[str, ModuleType]]:
    """(name, module) for each `package.name` that exists in this install.

    Optional parts (a benchmark whose extra is not installed, a command not in
    this build) are skipped; an import error *inside* a module still raises.
    """
    for name in names:
        try:
            yield name, importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise
