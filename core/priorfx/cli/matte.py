"""`priorfx matte`: alpha matte and clean foreground of people, no screen needed."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from priorfx.cli.common import (add_cluster_option, add_colour_options, add_engine_options, add_progress_options,
                                add_video_output_options, check_cluster_engine, check_output, colour_from_args,
                                engine_from_args, parse_frame_range, progress_from_args,
                                video_output_options)
from priorfx.config import DEVICES
from priorfx.errors import UsageError
from priorfx.models.contract import DEFAULT_PRIOR as MODEL_ID

DESCRIPTION = """Pulls an alpha matte of the people in a plate (no green screen): a learned
person prior (RVM, recurrent, so steady across frames) gives a confident guess,
a band around its edges is re-solved at full resolution (closed-form matting),
and the foreground colours are cleaned of the old background.

IN: an image, a video, an image sequence (dir/frame_%04d.exr or ####) or a folder.
OUT:
  .exr  R,G,B = premultiplied clean foreground, A = alpha, matte.alpha,
        matte.confidence, fg.R/G/B = unpremultiplied foreground (half float)
  .png  RGBA, straight alpha (clean foreground + alpha); .tif likewise
  a pattern (out/matte_%04d.exr) for a clip; a video file gets, by
  --video-alpha: grey (default) the alpha as a grey video; alpha the clean
  foreground with straight alpha (.mov ProRes 4444 or .mkv FFV1); premult
  the premultiplied foreground. A video OUT keeps the input's sound (copied
  over the frames taken), timestamps, colour tags and timecode; a phone clip's
  rotation is applied (people are matted upright) and the result is upright.
Guides (image files, or patterns/videos with one frame per plate frame):
  --guide TRIMAP    black = background, white = foreground, grey = unknown;
                    mattes objects that are not people too
  --holdout MASK    white = always foreground (alpha exactly 1)
  --garbage MASK    white = always background (alpha exactly 0)
  --subject X,Y     matte only the person under this point (pixels from the
                    top-left), or X0,Y0,X1,Y1: only the one(s) in this box
Colour: the plate goes to the person prior display-encoded and the
foreground comes back in the plate's own colour space (--colorspace, default
auto: the file's metadata, else EXR = the config's scene_linear, PNG/JPEG/TIFF
= sRGB, video = Rec.709; --ocio or $OCIO picks the OCIO config). EXR outputs
name their colour space in the header (oiio:ColorSpace).
Ctrl-C cancels and leaves no partial output."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matte", help="alpha matte + clean foreground of people (no screen)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="image, video, image-sequence pattern or folder")
    p.add_argument("-o", "--output", metavar="OUT", required=True,
                   help="output image (.exr/.png/.tif), sequence pattern, or video")
    p.add_argument("--guide", metavar="TRIMAP", help="user trimap (image, or pattern per frame)")
    p.add_argument("--holdout", metavar="MASK", help="always-foreground mask")
    p.add_argument("--garbage", metavar="MASK", help="always-background mask")
    p.add_argument("--subject", metavar="X,Y", type=_subject,
                   help="matte only this subject: a point X,Y or a box X0,Y0,X1,Y1 in pixels")
    p.add_argument("--no-cleanup", action="store_true",
                   help="keep the person prior's fragments and holes as they are")
    p.add_argument("--frames", metavar="A-B", help="frame range of a video/sequence (inclusive)")
    p.add_argument("--quality", choices=("fast", "best"), default="best",
                   help="refinement effort (default: best)")
    p.add_argument("--band", type=int, default=None, metavar="PX",
                   help="half-width of the refinement band in pixels (default: from the resolution)")
    p.add_argument("--temporal", type=float, default=0.5, metavar="S",
                   help="temporal smoothing 0..1 (default 0.5)")
    p.add_argument("--prior", default=MODEL_ID, metavar="ID",
                   help=f"the person prior: a model registered with a person-matting or person-segmentation "
                        f"role (`priorfx models list`; default: the built-in {MODEL_ID})")
    p.add_argument("--device", choices=DEVICES, default=None,
                   help="where the prior runs: auto (a GPU the runtime offers, else the CPU), cpu, cuda, "
                        "mps (torch), directml, coreml (default: $PRIORFX_DEVICE, the config file, or auto)")
    p.add_argument("--no-unpremult", action="store_true",
                   help="EXR: leave out the fg.R/G/B (unpremultiplied) layer")
    p.add_argument("--video-alpha", choices=("grey", "alpha", "premult"), default="grey",
                   help="a video OUT holds: the alpha as grey (default), foreground + alpha (ProRes 4444 "
                        ".mov / FFV1 .mkv), or the premultiplied foreground")
    p.add_argument("--fps", type=float, default=None, help="frame rate of a sequence input")
    p.add_argument("--cache", metavar="DIR",
                   help="reuse results from DIR when the inputs, settings, models and version are the "
                        "same (per frame, chained through the range), and store new ones there; "
                        "image and sequence outputs")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_progress_options(p)
    add_colour_options(p)
    add_video_output_options(p)
    add_engine_options(p)
    add_cluster_option(p)
    p.set_defaults(func=_run)


def _subject(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) not in (2, 4):
        raise argparse.ArgumentTypeError(f"{text!r}: give X,Y (a point) or X0,Y0,X1,Y1 (a box) in pixels")
    return vals


def _is_still(path: str) -> bool:
    from priorfx.io.video import IMAGE_SUFFIXES, is_sequence_pattern

    return not is_sequence_pattern(path) and Path(path).suffix.lower() in IMAGE_SUFFIXES \
        and not Path(path).is_dir()


def _load_guide(src: str | None, name: str, frame_range, n_frames: int) -> Any:
    """An image file -> one array for every frame; a clip -> a per-frame reader."""
    if src is None:
        return None
    from priorfx import io as pio

    if _is_still(src):
        if not Path(src).is_file():
            from priorfx.errors import InputError
            raise InputError(f"{src}: no such {name} file", "check the path")
        return pio.read_image(src)
    clip = pio.read_frames(src, frame_range)
    if len(clip) != n_frames:
        from priorfx.errors import InputError
        raise InputError(f"the {name} clip {src} has {len(clip)} frames, the plate has {n_frames}",
                         "give one guide frame per plate frame, or a single image")
    return lambda i: clip[i]


def _run(args: argparse.Namespace) -> int:
    from priorfx import io as pio
    from priorfx.engines.files import check_matte_output, is_clip_output, matte_files, open_matte_writer
    from priorfx.matting import MattingParams

    params = MattingParams(quality=args.quality, band_px=args.band, temporal=args.temporal,
                           prior=args.prior, cleanup=not args.no_cleanup, subject=args.subject).validate()
    frame_range = parse_frame_range(args.frames)
    still_in = _is_still(args.input)
    if still_in and frame_range is not None:
        raise UsageError("--frames applies to videos and image sequences, not to a single image")
    out = args.output
    check_output(out, [args.input, args.guide, args.holdout, args.garbage])  # before any work
    # a phone clip is turned upright: the person prior knows people standing up
    frames = pio.read_frames(args.input, frame_range, fps=args.fps, orient=True)
    video_opts = video_output_options(args)
    check_matte_output(args.input, len(frames), out)
    guides = {k: _load_guide(v, k, frame_range, len(frames))
              for k, v in (("trimap", args.guide), ("holdout", args.holdout), ("garbage", args.garbage))}
    guides = {k: v for k, v in guides.items() if v is not None}
    colour = colour_from_args(args, frames)
    check_cluster_engine(args)
    cached = _CacheRun.plan(args, frames, params, out) if args.cache else None
    if cached is not None and cached.complete():
        written = cached.restore(getattr(frames, "frame_numbers", None) or [None])
        _report(args, {"output": out, "frames": written, "cached": written, "cuts": [],
                       "parameters": params.to_json()})
        return 0
    if args.cluster and args.video_alpha != "grey":
        raise UsageError("--video-alpha alpha/premult is not available with --cluster",
                         "write an EXR sequence on the cluster, or run without --cluster")
    writer = None
    if is_clip_output(out):  # checks codec and streams before the work, not after it
        writer = open_matte_writer(frames, out, args.video_alpha, note=lambda m: print(m, file=sys.stderr),
                                   **video_opts)
    if args.cluster:
        from priorfx.cluster import run_clip_on_cluster
        with progress_from_args(args, "matte") as prog:
            summary = run_clip_on_cluster("matte", args.input, out, params, args.cluster, prog,
                                          frame_range=frame_range, fps=args.fps, guides=guides or None,
                                          unpremult=not args.no_unpremult, colour=colour, **video_opts)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print(f"wrote {summary['frames']} matte frame(s) to {out} "
                  f"({summary['chunks']} segment(s) on the cluster)", file=sys.stderr)
        return 0
    engine = engine_from_args(args)
    with progress_from_args(args, "matte") as prog:
        summary = matte_files(args.input, out, params, engine, frames=frames, guides=guides, colour=colour,
                              progress=prog, unpremult=not args.no_unpremult, video_alpha=args.video_alpha,
                              writer=writer)
    if cached is not None:
        cached.save(summary["files"])
    _report(args, {"output": out, "frames": summary["frames"], "cached": 0, "cuts": summary["cuts"],
                   "parameters": summary["parameters"]})
    return 0


def _report(args: argparse.Namespace, summary: dict) -> None:
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        reused = f" ({summary['cached']} from the cache)" if summary["cached"] else ""
        print(f"wrote {summary['frames']} matte frame(s) to {summary['output']}{reused}", file=sys.stderr)


class _CacheRun:
    """`--cache DIR` for one run: the frames' keys, and moving results in and out of the store."""

    def __init__(self, frame_cache, keys: list[str], out: str, suffix: str):
        self.cache, self.keys, self.out, self.suffix = frame_cache, keys, out, suffix

    @classmethod
    def plan(cls, args: argparse.Namespace, frames, params, out: str) -> "_CacheRun":
        import priorfx
        from priorfx import cache
        from priorfx.io.video import VIDEO_SUFFIXES
        from priorfx.models import manifest

        suffix = Path(out).suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            raise UsageError("--cache keeps one file per frame and cannot serve a video output",
                             "write an image sequence (out/matte_%04d.exr) or leave out --cache")
        inputs = {"plate": _digests(frames, args.input)}
        for name, src in (("trimap", args.guide), ("holdout", args.holdout), ("garbage", args.garbage)):
            if src is not None:
                inputs[name] = _digests(None, src, n=len(frames), frame_range=parse_frame_range(args.frames))
        # the prior by id and file: a model registered again under the same id is a new recipe
        known = manifest.entries().get(params.prior)
        prior = f"{params.prior}@{known.sha256 if known else 'unknown'}"
        recipe = cache.recipe("matte", params.to_json(), [prior], priorfx.__version__, suffix,
                              unpremult=not args.no_unpremult)
        per_frame = [{name: d[i] for name, d in inputs.items()} for i in range(len(frames))]
        return cls(cache.FrameCache(args.cache), cache.frame_keys(recipe, per_frame), out, suffix)

    def complete(self) -> bool:
        return self.cache.has_all(self.keys, self.suffix)

    def _targets(self, numbers: list) -> list[Path]:
        from priorfx.io.video import frame_file, is_sequence_pattern

        if not is_sequence_pattern(self.out):
            return [Path(self.out)]
        return [frame_file(self.out, n) for n in numbers]

    def restore(self, numbers: list) -> int:
        """Every frame from the store into its output name; all or none appear."""
        import shutil
        import uuid
        from priorfx.errors import OutputError

        targets = self._targets(numbers)
        folder = targets[0].parent
        if not folder.is_dir():
            raise OutputError(f"output folder {folder} does not exist", "create it first or choose another output path")
        stage = folder / f".priorfx-cache-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
        try:
            staged = []
            for key, target in zip(self.keys, targets):
                self.cache.get(key, stage / target.name)
                staged.append((stage / target.name, target))
            for tmp, target in staged:
                tmp.replace(target)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return len(targets)

    def save(self, files: list[Path]) -> None:
        """The run's output files into the store, one per key."""
        for key, path in zip(self.keys, files):
            self.cache.put(key, path)


def _digests(frames, src: str, n: int | None = None, frame_range=None) -> list[str]:
    """Per-frame sha256 of an input: its files' bytes, or a video's decoded pixels;
    a single image guide counts for every frame."""
    from priorfx import cache
    from priorfx import io as pio

    if frames is None and _is_still(src):
        return [cache.file_digest(src)] * int(n or 1)
    frames = frames if frames is not None else pio.read_frames(src, frame_range)
    paths = getattr(frames, "paths", None)
    if paths and len(paths) == len(frames):
        return [cache.file_digest(p) for p in paths]
    return [cache.pixels_digest(f) for f in frames]
