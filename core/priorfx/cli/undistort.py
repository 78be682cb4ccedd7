"""`priorfx undistort`: selfie perspective undistortion of one image."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from priorfx.cli.common import add_colour_options, add_engine_options, colour_from_args, engine_from_args, progress_bar

DESCRIPTION = """Re-renders a close-up portrait as if the camera had been farther away
(a dolly zoom: the camera moves back, the focal length grows, the face keeps
its size). A metric 3D face is fitted to each face under full perspective to
estimate the camera distance. The focal length comes from --focal-mm, else the
file's EXIF (FocalLengthIn35mmFilm), else 26 mm (a phone front camera).
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
                   help="35 mm-equivalent focal length (default: EXIF, else 26)")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="0..1: 0 = unchanged, 1 = full correction (default 1)")
    p.add_argument("--face", type=int, default=None, metavar="N",
                   help="correct only face N (0 = largest); default: all faces")
    p.add_argument("--debug-overlay", action="store_true",
                   help="also write OUT's name + '.debug.png' with landmarks, head proxy and distances")
    p.add_argument("--json", action="store_true", help="print the faces found and the settings used as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_colour_options(p)
    add_engine_options(p)
    p.set_defaults(func=_run)


def debug_path(output: Path) -> Path:
    return output.with_name(output.stem + ".debug.png")


def _run(args: argparse.Namespace) -> int:
    from priorfx import io as pio
    from priorfx.portrait import DEFAULT_FOCAL_MM, PortraitParams

    info = pio.read_image_info(args.input)
    focal, source = args.focal_mm, "user"
    if focal is None:
        focal = info.focal_35mm
        source = "exif" if focal else "default"
    params = PortraitParams(distance_m=args.distance, focal_mm=focal, strength=args.strength,
                            face=args.face, debug_overlay=args.debug_overlay)
    colour = colour_from_args(args, args.input, info)
    image = as_rgb(pio.read_image(args.input))
    engine = engine_from_args(args)
    with progress_bar("undistort", unit="step", quiet=args.quiet) as prog:
        result = engine.undistort(image, params, progress=prog, colour=colour)
    prov = dict(result.provenance)
    prov["focal_source"] = source
    prov["input"] = str(args.input)
    prov["colour"] = colour.provenance()
    pio.write_image(args.output, result.image, provenance=prov, metadata=colour.header(args.output),
                    bits=output_bits(info.pixel_type, args.output))
    dbg = None
    if args.debug_overlay and result.debug is not None:
        from priorfx.demo import save_png
        dbg = debug_path(args.output)
        save_png(dbg, result.debug)
    summary = {"output": str(args.output), "debug_overlay": str(dbg) if dbg else None,
               "focal_mm": focal if focal is not None else DEFAULT_FOCAL_MM, "focal_source": source,
               "faces": result.faces}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for i, f in enumerate(result.faces):
            print(f"face {i}: about {f['distance_m'] * 100:.0f} cm from the camera "
                  f"(focal {summary['focal_mm']:g} mm, {source}) -> re-rendered at {f['target_m'] * 100:.0f} cm",
                  file=sys.stderr)
    return 0


_BITS_BY_TYPE = {"uint8": 8, "uint16": 16, "half": 16, "float": 32}
_BITS_BY_SUFFIX = {".png": (8, 16), ".jpg": (8,), ".jpeg": (8,), ".tif": (8, 16, 32), ".tiff": (8, 16, 32),
                   ".exr": (16, 32)}


def output_bits(pixel_type: str, output: Path) -> int | None:
    """The input's bit depth when the output format can store it (16-bit stays 16-bit)."""
    bits = _BITS_BY_TYPE.get(pixel_type)
    return bits if bits in _BITS_BY_SUFFIX.get(output.suffix.lower(), ()) else None


def as_rgb(image):
    """Greyscale (Y) or greyscale + alpha (YA) -> RGB / RGBA; others unchanged."""
    import numpy as np

    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 2:
        return np.concatenate([np.repeat(image[..., :1], 3, axis=2), image[..., 1:]], axis=2)
    return image
