"""`priorfx readout`: measure a camera's rolling-shutter readout time from a clip."""
from __future__ import annotations

import argparse
import json

from priorfx.cli.common import parse_frame_range, progress_bar

DESCRIPTION = """Measures the readout time g of the camera that filmed IN (a fraction of the
frame time: row y is exposed g * y / H after the top row) and prints it with
its 95 % interval. Film a few seconds while shaking or jerking the camera, or
waving a hand in front of it; a steady pan or a still shot cannot tell g and
the interval says so. Use the value with `priorfx deshutter --readout G` or in
the OBS filter."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("readout", help="measure a camera's readout time from a clip",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="video file, sequence pattern (dir/%%04d.png) or folder")
    p.add_argument("--scan", choices=("down", "up"), default="down", help="readout direction (default down)")
    p.add_argument("--mode", choices=("rs", "rsgr"), default="rs",
                   help="rs: rolling shutter (default); rsgr: global reset + rolling readout")
    p.add_argument("--frames", metavar="A-B", help="only frames A to B (inclusive)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of an image-sequence input (default 24)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from priorfx import io as pio
    from priorfx.errors import InputError
    from priorfx.shutter import ShutterParams
    from priorfx.shutter.clip import clip_readout
    from priorfx.shutter.corrector import FrameCorrector, check_frame

    frames = list(pio.read_frames(args.input, parse_frame_range(args.frames), fps=args.fps))
    if len(frames) < 4:
        raise InputError(f"{args.input} holds {len(frames)} frame(s)",
                         "measuring the readout needs a few seconds of a moving camera (at least 4 frames)")
    params = ShutterParams(readout=None, scan=args.scan, mode=args.mode)
    first = check_frame(frames[0], "frame 0")
    corr = FrameCorrector(params, first.shape[1], first.shape[0], live=False)
    with progress_bar("readout", quiet=args.quiet) as prog:
        est = clip_readout(frames, corr, params, prog)
    if args.json:
        print(json.dumps(dict(est.as_dict(), input=str(args.input), scan=args.scan, mode=args.mode), indent=2))
    elif est.informative:
        print(f"readout: {est.g:.3f} of the frame time (95 % interval {est.low:.3f}-{est.high:.3f}, "
              f"confidence {est.confidence:.2f}, {est.pairs} frame pairs)")
    else:
        print(f"readout: not measurable from this clip (95 % interval {est.low:.3f}-{est.high:.3f}); "
              f"shake or jerk the camera for a few seconds and measure again")
    return 0
