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
from priorfx.engines import Engine, get_engine
from priorfx.errors import UsageError
from priorfx.progress import Progress


def add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--remote", metavar="URL",
                   help="run on a `priorfx serve` at URL (default: $PRIORFX_REMOTE, the config file, or local)")
    g.add_argument("--token", help="token for the remote server (default: $PRIORFX_TOKEN or the config "
                                   "file; prefer those: a --token shows in the process list)")
    g.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")


def add_colour_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("colour")
    g.add_argument("--colorspace", metavar="NAME|auto", default="auto",
                   help="the input's colour space: an OCIO name, alias or role (ACEScg, lin_rec709, "
                        "'sRGB - Texture', ACEScct, scene_linear, ...); auto (default): the file's "
                        "metadata, else its format (EXR: scene_linear; PNG/JPEG/TIFF: sRGB; video: Rec.709)")
    g.add_argument("--ocio", metavar="CONFIG",
                   help="OCIO config file or built-in (ocio://studio-config-latest, ...); "
                        "default: $OCIO, else ocio://default")


def colour_from_args(args: argparse.Namespace, source, info=None):
    """The input's ColourSpec from --colorspace/--ocio; `source` is the input
    path or a priorfx.io Frames (its first file decides for a sequence)."""
    from priorfx.colour import input_spec

    paths = getattr(source, "paths", None)
    path = paths[0] if paths else getattr(source, "source", source)
    return input_spec(path, args.colorspace, args.ocio, info)


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


def check_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None],
                 kinds: tuple[str, ...] = ("image", "clip")) -> None:
    """Everything about the output path that can be checked before any work runs.

    A known extension for what the command writes (`kinds`: "image" and/or
    "clip"), an existing, writable folder, and no overlap with an input: writing
    over the source (the same file, a link to it, or sequence frames with the
    input frames' names) would destroy it, so that is a usage error up front.
    """
    from pathlib import Path

    from priorfx.errors import OutputError
    from priorfx.io import images, video

    out = str(output)
    suffix = Path(out).suffix.lower()
    if video.is_sequence_pattern(out) or suffix in video.VIDEO_SUFFIXES:
        kind, known = "clip", suffix in images.WRITE_FORMATS or suffix in video.VIDEO_SUFFIXES
    else:
        kind, known = "image", suffix in images.WRITE_FORMATS
    if not known or kind not in kinds:
        wanted = {"image": f"an image ({', '.join(images.WRITE_FORMATS)})",
                  "clip": f"a video ({', '.join(video.VIDEO_SUFFIXES)}) or a sequence pattern "
                          "like out/frame_%04d.exr"}
        raise UsageError(f"cannot write {out}: {suffix or 'no extension'} is not a format this "
                         "command writes", "write " + " or ".join(wanted[k] for k in kinds))
    folder = Path(out).parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist",
                          "create it first or choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable", "choose another output path")
    for inp in inputs:
        if inp is not None and _overlaps(out, str(inp)):
            raise UsageError(f"output {out} is the input {inp}: writing it would destroy the source",
                             "choose another output name (the result is written beside, never over, the input)")


def _overlaps(out: str, inp: str) -> bool:
    """True when writing `out` would replace a file of the input `inp` (a file,
    a folder of frames or a sequence pattern)."""
    import re
    from pathlib import Path

    from priorfx.io import video

    def names(path: str) -> tuple[Path, re.Pattern | None]:
        """(folder, pattern of frame names) of a sequence pattern; (path, None) otherwise."""
        if video.is_sequence_pattern(path):
            printf = video._to_printf(path)
            return Path(printf).parent.resolve(), video._pattern_regex(printf)
        return Path(path).resolve(), None

    out_at, out_re = names(out)
    in_at, in_re = names(inp)
    if in_re is None and in_at.is_dir():  # a folder of frames: every image in it is input
        in_re = re.compile(r".*")
    if in_re is None:  # one input file
        if out_re is None:
            return out_at == in_at or (Path(out).exists() and os.path.samefile(out, inp))
        return in_at.parent == out_at and bool(out_re.match(in_at.name))
    if out_re is None:  # one output file among the input's frames
        return out_at.parent == in_at and out_at.exists() and bool(in_re.match(out_at.name))
    if out_at != in_at:
        return False
    if out_re.pattern == in_re.pattern:
        return True
    return any(in_re.match(p.name) and out_re.match(p.name) for p in in_at.iterdir()
               if p.suffix.lower() in video.IMAGE_SUFFIXES)
