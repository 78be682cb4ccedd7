"""`priorfx matte`: alpha matte and clean foreground of people, no screen needed."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from priorfx.cli.common import add_cluster_option, check_cluster_engine, add_engine_options, engine_from_args, parse_frame_range, progress_bar
from priorfx.errors import UsageError
from priorfx.progress import Progress

DESCRIPTION = """Pulls an alpha matte of the people in a plate (no green screen): a learned
person prior (RVM, recurrent, so steady across frames) gives a confident guess,
a band around its edges is re-solved at full resolution (closed-form matting),
and the foreground colours are cleaned of the old background.

IN: an image, a video, an image sequence (dir/frame_%04d.exr or ####) or a folder.
OUT:
  .exr  R,G,B = premultiplied clean foreground, A = alpha, matte.alpha,
        matte.confidence, fg.R/G/B = unpremultiplied foreground (half float)
  .png  RGBA, straight alpha (clean foreground + alpha); .tif likewise
  a pattern (out/matte_%04d.exr) for a clip; a video file (.mp4) gets the
  alpha as a grey video.
Guides (image files, or patterns/videos with one frame per plate frame):
  --guide TRIMAP    black = background, white = foreground, grey = unknown;
                    mattes objects that are not people too
  --holdout MASK    white = always foreground (alpha exactly 1)
  --garbage MASK    white = always background (alpha exactly 0)
  --subject X,Y     matte only the person under this point (pixels from the
                    top-left), or X0,Y0,X1,Y1: only the one(s) in this box
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
    p.add_argument("--no-unpremult", action="store_true",
                   help="EXR: leave out the fg.R/G/B (unpremultiplied) layer")
    p.add_argument("--fps", type=float, default=None, help="frame rate of a sequence input")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="progress on stderr: a bar (default), one JSON object per line "
                        '({"progress": {"done", "total", "message"}}, for hosts), or none')
    p.add_argument("--quiet", action="store_true", help="no progress bar (same as --progress none)")
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


@contextmanager
def _progress(args: argparse.Namespace) -> Iterator[Progress]:
    """The Progress the chosen --progress style reports to."""
    if args.progress == "json" and not args.quiet:
        def emit(done: int, total: int, message: str) -> None:
            line = json.dumps({"progress": {"done": done, "total": total, "message": message}})
            print(line, file=sys.stderr, flush=True)
        yield Progress(emit)
    else:
        with progress_bar("matte", quiet=args.quiet or args.progress == "none") as prog:
            yield prog


def _output_colorspace(frames) -> str | None:
    """The colour space the matte's colour channels are in: the plate's.

    EXR plates carry their own (oiio:ColorSpace) and it is passed on; PNG,
    JPEG, TIFF and video frames are display-encoded sRGB. Publishing checks
    that results and plate agree.
    """
    from priorfx import io as pio

    first = frames.paths[0] if getattr(frames, "paths", None) else None
    if first is not None and first.suffix.lower() == ".exr":
        return pio.read_image_info(first).colorspace
    return "sRGB"


def _run(args: argparse.Namespace) -> int:
    from priorfx import io as pio
    from priorfx.matting import MattingParams
    from priorfx.matting.outputs import write_matte
    from priorfx.io.video import is_sequence_pattern

    params = MattingParams(quality=args.quality, band_px=args.band, temporal=args.temporal,
                           cleanup=not args.no_cleanup, subject=args.subject).validate()
    frame_range = parse_frame_range(args.frames)
    still_in = _is_still(args.input)
    if still_in and frame_range is not None:
        raise UsageError("--frames applies to videos and image sequences, not to a single image")
    frames = pio.read_frames(args.input, frame_range, fps=args.fps)
    out = args.output
    out_is_clip = is_sequence_pattern(out) or Path(out).suffix.lower() in pio.video.VIDEO_SUFFIXES
    if len(frames) > 1 and not out_is_clip:
        raise UsageError(f"{args.input} has {len(frames)} frames but {out} is a single image",
                         "write a sequence (e.g. out/matte_%04d.exr) or a video file")
    if Path(out).suffix.lower() in (".jpg", ".jpeg"):
        raise UsageError("JPEG cannot store alpha", "write the matte as .exr or .png")
    guides = {k: _load_guide(v, k, frame_range, len(frames))
              for k, v in (("trimap", args.guide), ("holdout", args.holdout), ("garbage", args.garbage))}
    guides = {k: v for k, v in guides.items() if v is not None}
    check_cluster_engine(args)
    if args.cluster:
        from priorfx.cluster import run_clip_on_cluster
        with _progress(args) as prog:
            summary = run_clip_on_cluster("matte", args.input, out, params, args.cluster, prog,
                                          frame_range=frame_range, fps=args.fps, guides=guides or None,
                                          unpremult=not args.no_unpremult)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print(f"wrote {summary['frames']} matte frame(s) to {out} "
                  f"({summary['chunks']} segment(s) on the cluster)", file=sys.stderr)
        return 0
    engine = engine_from_args(args)
    unpremult = not args.no_unpremult
    numbers = list(getattr(frames, "frame_numbers", range(len(frames))))
    cuts: list[int] = []
    space = _output_colorspace(frames)
    colour = {"oiio:ColorSpace": space} if space else None
    with _progress(args) as prog:
        results = engine.matte(frames, params, guides=guides or None, progress=prog)
        if out_is_clip:
            from priorfx.matting.core import OPERATION
            from priorfx.matting.outputs import channel_names, matte_pixels
            from priorfx.priors.person import MODEL_ID
            from priorfx.provenance import provenance

            prov = provenance(OPERATION, params, [MODEL_ID], input=str(args.input))
            if numbers:
                prov["frame_range"] = [numbers[0], numbers[-1]]
            written = 0
            # The writer stages frames in a hidden folder and moves them in only
            # when the block ends cleanly: Ctrl-C or an error leaves nothing.
            with pio.FrameWriter(out, fps=frames.fps, start=numbers[0] if numbers else 1,
                                 provenance=prov, channel_names=channel_names(out, unpremult),
                                 metadata=colour) as writer:
                for r in results:
                    writer.write(matte_pixels(r, out, unpremult), numbers[r.index] if numbers else None)
                    if r.cut:
                        cuts.append(numbers[r.index])
                    written += 1
        else:
            r = next(iter(results))
            prov = dict(r.provenance)
            prov["input"] = str(args.input)
            write_matte(out, r, unpremult=unpremult, provenance=prov, metadata=colour)
            written = 1
    summary = {"output": out, "frames": written, "cuts": cuts, "parameters": params.to_json()}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {written} matte frame(s) to {out}", file=sys.stderr)
    return 0
