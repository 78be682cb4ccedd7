"""`priorfx publish RESULTS_DIR --to SHOT_DIR [--plate PLATE]`."""
from __future__ import annotations

import argparse
import json
import sys

from priorfx.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish", help="validate results and publish them into a shot folder as a new version",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the pyblish plug-ins in plugins/ over RESULTS_DIR (the output of `priorfx matte`\n"
            "or `priorfx undistort`, or a Nuke node's folder): collect the sequences and images,\n"
            "validate them (frames, format vs. plate, alpha range, NaN/Inf, premultiplication,\n"
            "channels, colour space, provenance, empty matte; flicker only warns), and only when\n"
            "every check passes copy them to SHOT_DIR/<name>/vNNN with a manifest.json (sha256 of\n"
            "each file, provenance, validation results). A failed check writes nothing; exit code 3."),
        epilog="example:\n  priorfx publish renders/sh010 --to shots/sh010 --plate 'plates/sh010.%04d.exr'")
    p.add_argument("results", metavar="RESULTS_DIR", help="folder with the results to publish")
    p.add_argument("--to", dest="shot", metavar="SHOT_DIR", required=True, help="shot folder to publish into")
    p.add_argument("--plate", metavar="PLATE",
                   help="source footage to compare with: sequence pattern (dir/plate.%%04d.exr), folder, image "
                        "or video")
    p.add_argument("--flicker-threshold", type=float, default=None, metavar="X",
                   help="warn when the matte's temporal flicker exceeds X (default 0.005)")
    p.add_argument("--dry-run", action="store_true", help="validate only; write nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from priorfx.cli.common import progress_bar
    from priorfx.publish import PublishParams, publish

    params = PublishParams() if args.flicker_threshold is None else \
        PublishParams(flicker_threshold=args.flicker_threshold)
    with progress_bar("publish", unit="file", quiet=args.quiet) as prog:
        report = publish(args.results, args.shot, plate=args.plate, params=params, dry_run=args.dry_run,
                         progress=prog)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(report.format())
    sys.stdout.flush()
    if not report.ok:
        where = "validation" if report.stage == "validate" else report.stage
        raise InputError(f"publish failed in {where}; see the report above",
                         "fix what the report lists and publish again" +
                         ("; nothing was written to the shot folder" if report.stage == "validate" else ""))
    return 0
