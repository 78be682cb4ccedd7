"""Helpers shared by the subcommands: engine options, progress bars, frame ranges."""
from __future__ import annotations

import argparse
import importlib
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


def add_video_output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("video output")
    g.add_argument("--codec", choices=("h264", "hevc", "prores", "ffv1"), default=None,
                   help="video codec (default from OUT: .mp4 H.264 CRF 18, .mov H.264 or ProRes for a "
                        "ProRes source, .mkv FFV1 lossless)")
    g.add_argument("--drop-audio", action="store_true",
                   help="leave the input's sound out (by default it is copied, untouched, over the frames taken)")
    g.add_argument("--drop-streams", action="store_true",
                   help="leave out every stream but the picture: sound, subtitles, data, other video")


def video_output_options(args: argparse.Namespace) -> dict:
    """FrameWriter's codec= and drop= from the options above."""
    drop = ("audio", "subtitle", "data", "video") if args.drop_streams else ("audio",) if args.drop_audio else ()
    return {"codec": args.codec, "drop": drop}


def note_streams_left_out(clip, output: str, drop: Iterable[str] = ()) -> None:
    """An image sequence holds no sound: say so rather than lose it silently."""
    from pathlib import Path

    from priorfx.io.video import VIDEO_SUFFIXES

    info = getattr(clip, "video", None)
    if info is None or Path(output).suffix.lower() in VIDEO_SUFFIXES:
        return
    left = sorted({kind for _, kind, _ in info.streams if kind not in drop})
    if left:
        print(f"note: {output} is an image sequence and holds no {' or '.join(left)}; "
              f"the {' and '.join(left)} of {clip.source} is not in it", file=sys.stderr)


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
    return get_engine(load_settings(remote=args.remote, token=args.token, threads=args.threads))


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
