"""`priorfx deshutter`: rolling-shutter correction of a clip."""
from __future__ import annotations

import argparse
import json
import sys

from priorfx.cli.common import (add_cluster_option, add_colour_options, add_engine_options, add_progress_options,
                                add_video_output_options, check_cluster_engine, check_output, colour_from_args,
                                engine_from_args, parse_frame_range, progress_from_args,
                                video_output_options)

DESCRIPTION = """Removes rolling-shutter skew and wobble (--mode rs) or the row-dependent
brightness and blur of a global-reset sensor (--mode rsgr) from a video or an
image sequence. Every row is moved to one instant along the motion measured by
optical flow. The readout time (a fraction of the frame time) is estimated from
the footage unless --readout gives it; the value used is printed. IN and OUT
are video files (.mp4, .mov, .avi, .mkv) or image sequences (frames/%04d.png).
Colour: the motion is measured on display-encoded pictures; the frames stay in
the input's colour space (--colorspace, default auto; --ocio).
A video OUT keeps the input's sound and other streams (copied, not re-encoded,
over the frames taken), timestamps, rotation flag, colour tags and timecode;
.mp4 is H.264 unless --codec says otherwise. Ctrl-C leaves no partial output."""


def _readout(text: str):
    return None if text.strip().lower() == "auto" else text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deshutter", help="fix rolling-shutter skew and wobble in a clip",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="video file, sequence pattern (dir/%%04d.png) or folder")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="video file or sequence pattern")
    p.add_argument("--readout", metavar="G|auto", type=_readout, default=None,
                   help="readout time as a fraction of the frame time, 0 < G <= 1 (default: auto, estimated)")
    p.add_argument("--mode", choices=("rs", "rsgr"), default="rs",
                   help="rs: rolling shutter (default); rsgr: global reset + rolling readout")
    p.add_argument("--scan", choices=("down", "up"), default="down", help="readout direction (default down)")
    p.add_argument("--lookahead", action="store_true",
                   help="live streams: use the next frame too (clips always use both neighbours)")
    p.add_argument("--target", choices=("middle", "top"), default="middle",
                   help="instant every row is moved to: the middle row's (default) or the top row's")
    p.add_argument("--strength", type=float, default=1.0, metavar="S", help="0..1 (default 1)")
    p.add_argument("--exposure", type=float, default=0.25, metavar="E",
                   help="rsgr: first row's exposure as a fraction of the frame time (default 0.25)")
    p.add_argument("--frames", metavar="A-B", help="only frames A to B (inclusive)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of an image-sequence input (default 24)")
    p.add_argument("--json", action="store_true", help="print the readout and settings as JSON")
    add_progress_options(p)
    add_colour_options(p)
    add_video_output_options(p)
    add_engine_options(p)
    add_cluster_option(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from priorfx import io as pio
    from priorfx.shutter import ShutterParams

    params = ShutterParams(readout=args.readout, mode=args.mode, scan=args.scan, lookahead=args.lookahead,
                           strength=args.strength, target=args.target, exposure=args.exposure)
    check_output(args.output, [args.input], kinds=("clip",))  # fail before the work, not after it
    clip = pio.read_frames(args.input, parse_frame_range(args.frames), fps=args.fps)
    colour = colour_from_args(args, clip)
    check_cluster_engine(args)
    video_opts = video_output_options(args)
    if args.cluster:
        from priorfx.cluster import run_clip_on_cluster
        with progress_from_args(args, "deshutter") as prog:
            summary = run_clip_on_cluster("deshutter", args.input, args.output, params, args.cluster, prog,
                                          frame_range=parse_frame_range(args.frames), fps=args.fps,
                                          colour=colour, **video_opts)
        print(json.dumps(summary, indent=2) if args.json else
              f"readout: {summary['readout']:.3f} of the frame time ({summary['chunks']} chunks on the cluster)")
        return 0
    from priorfx.engines.files import deshutter_files

    engine = engine_from_args(args)
    with progress_from_args(args, "deshutter") as prog:
        summary, result = deshutter_files(args.input, args.output, params, engine, clip=clip, colour=colour,
                                          progress=prog, note=lambda m: print(m, file=sys.stderr), **video_opts)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        low, high = getattr(result, "readout_interval", (result.readout, result.readout))
        how = (f"estimated, 95 % interval {low:.2f}-{high:.2f}, confidence {result.readout_confidence:.2f}"
               if result.readout_estimated else "given")
        print(f"readout: {result.readout:.3f} of the frame time ({how})")
        print(f"wrote {len(result.frames)} frames to {args.output}", file=sys.stderr)
    return 0
