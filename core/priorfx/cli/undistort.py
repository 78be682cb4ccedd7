"""`priorfx undistort`: selfie perspective undistortion of one image."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from priorfx.cli.common import (add_colour_options, add_engine_options, add_progress_options, check_output,
                                colour_from_args, engine_from_args, progress_from_args)

DESCRIPTION = """Re-renders a close-up portrait as if the camera had been farther away
(a dolly zoom: the camera moves back, the focal length grows, the face keeps
its size). A metric 3D face is fitted to each face under full perspective to
estimate the camera distance. Without --focal-mm the distance and the focal
length are estimated together from the face's perspective, the file's EXIF
(FocalLengthIn35mmFilm) weighed in as a prior; --focal-mm is a hard override.
Each face gets a distance interval; a face that may already be as far as the
target (or is beyond about 1 m) is left unchanged.
16-bit PNG/TIFF and float EXR keep their precision; alpha is warped along.
Colour: the face priors see the picture display-encoded; the result stays
in the input's colour space (--colorspace, default auto from the file; --ocio).
Exit code 6 (and no output file) when no face is found."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("undistort", help="fix selfie perspective (camera too close)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", type=Path, help="image file (JPEG, PNG, TIFF, EXR)")
    p.add_argument("-o", "--output", metavar="OUT", type=Path, required=True, help="output image file")
    p.add_argument("--distance", type=float, default=1.5, metavar="M",
                   help="target camera-to-face distance in metres (default 1.5)")
    p.add_argument("--focal-mm", type=float, default=None, metavar="F",
                   help="35 mm-equivalent focal length, a hard override (default: estimated from the "
                        "face's perspective, with the EXIF value as a prior)")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="0..1: 0 = unchanged, 1 = full correction (default 1)")
    p.add_argument("--face", type=int, default=None, metavar="N",
                   help="correct only face N (0 = largest); default: all faces")
    p.add_argument("--debug-overlay", action="store_true",
                   help="also write OUT's name + '.debug.png' with landmarks, head proxy and distances")
    p.add_argument("--json", action="store_true", help="print the faces found and the settings used as JSON")
    p.add_argument("--png-compression", type=int, default=None, metavar="N", choices=range(10),
                   help="deflate level of a PNG output, 0 (none, fastest) to 9 (smallest); default 6. "
                        "The GIMP filter hands its result back at 1 (a 12 MP PNG in about a fifth of the time)")
    add_progress_options(p)
    add_colour_options(p)
    add_engine_options(p)
    p.set_defaults(func=_run)


def debug_path(output: Path) -> Path:
    return output.with_name(output.stem + ".debug.png")


def _run(args: argparse.Namespace) -> int:
    from priorfx.portrait import face_message

    summary = undistort_command(args, engine_from_args(args))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for i, f in enumerate(summary["faces"]):
            print(f"{face_message(i, f)} (focal {f['focal_mm']:.0f} mm, {f['focal_source']})", file=sys.stderr)
    return 0


def undistort_command(args: argparse.Namespace, engine, compression: str | None = None) -> dict:
    """One image file through the core's `undistort_file` with the command's options
    (`args`); returns the JSON summary. Shared by the command and `priorfx worker
    portrait` (which writes its previews uncompressed: `compression`, see io.write_image)."""
    from priorfx import io as pio
    from priorfx.engines.files import undistort_file
    from priorfx.errors import UsageError
    from priorfx.portrait import PortraitParams

    check_output(args.output, [args.input], kinds=("image",))  # before any work
    level = getattr(args, "png_compression", None)
    if level is not None:
        if args.output.suffix.lower() != ".png":
            raise UsageError(f"--png-compression is for PNG output, not {args.output.name}",
                             "drop --png-compression, or write a .png")
        compression = compression or f"zip:{level}"
    info = pio.read_image_info(args.input)
    focal, source = args.focal_mm, "user"
    exif = None
    if focal is None:
        exif = info.focal_35mm or None
        source = "exif" if exif else "perspective"
    params = PortraitParams(distance_m=args.distance, focal_mm=focal, exif_focal_mm=exif, strength=args.strength,
                            face=args.face, debug_overlay=args.debug_overlay)
    colour = colour_from_args(args, args.input, info)
    with progress_from_args(args, "undistort", unit="step") as prog:
        result = undistort_file(args.input, args.output, params, engine, colour=colour, progress=prog, info=info,
                                compression=compression, focal_source=source)
    dbg = None
    if args.debug_overlay and result.debug is not None:
        from priorfx.demo import save_png
        dbg = debug_path(args.output)
        save_png(dbg, result.debug)
    return {"output": str(args.output), "debug_overlay": str(dbg) if dbg else None,
            "focal_mm": focal, "exif_focal_mm": exif, "focal_source": source,
            "faces": result.faces}
