"""`priorfx bench NAME`: speed and quality benchmarks with peers, as JSON."""
from __future__ import annotations

import argparse
import json
import sys

from priorfx.atomic import write_bytes_atomic
from priorfx.bench.common import environment
from priorfx.cli.common import present_modules

BENCHES = {
    "shutter": "rolling-shutter correction vs. input and a global-motion peer",
    "portrait": "selfie undistortion vs. input and a 2D peer",
    "matting": "matting vs. raw RVM, closed-form and KNN",
    "server": "HTTP server load test on loopback",
    "obs": "OBS filter in real libobs: callback time, lagged/passthrough frames, latency",
    "scale": "cluster scale-out: 1 vs 2 local workers",
    "colour": "the same matte, warp and correction from sRGB, linear, ACEScg and ACEScct plates",
    "video": "1080p video decode + write (PyAV, H.264 + sound) vs. the former OpenCV path, next to deshutter",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print JSON",
                       description="Each benchmark measures priorfx and its peers in the same run "
                                   "and prints JSON with a `summary` object.")
    bsub = p.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, module in present_modules("priorfx.bench", BENCHES):
        b = bsub.add_parser(name, help=BENCHES[name])
        b.add_argument("--quick", action="store_true", help="small data, few repeats (minutes -> seconds)")
        b.add_argument("--json", metavar="OUT", help="also write the JSON to this file")
        module.add_arguments(b)
        b.set_defaults(func=_run, bench_module=module)


# Benchmark peers that only `priorfx bench` needs: pyproject's [bench] extra.
BENCH_EXTRA = ("pymatting",)


def _run(args: argparse.Namespace) -> int:
    try:
        result = args.bench_module.run(args)
    except ModuleNotFoundError as exc:
        if exc.name not in BENCH_EXTRA:
            raise
        from priorfx.errors import UsageError
        raise UsageError(f"this benchmark's peers need {exc.name}, which is not installed",
                         "pip install 'priorfx[bench]'") from None
    result = {"benchmark": args.bench, "quick": bool(args.quick), "environment": environment(), **result}
    text = json.dumps(result, indent=2, default=float)
    if args.json:
        write_bytes_atomic(args.json, text.encode())
    print(text)
    sys.stdout.flush()
    return 0
