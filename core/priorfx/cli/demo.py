"""`priorfx demo`: the end-to-end demo on real sample media."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from priorfx.cli.common import add_engine_options, engine_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="fetch models and samples, run everything, write an HTML report",
                       description="Fetches and verifies the models and the sample media, runs each "
                                   "manipulation on real samples and writes OUT/index.html.")
    p.add_argument("--out", type=Path, default=Path("priorfx-demo"), help="report folder (default: ./priorfx-demo)")
    add_engine_options(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from priorfx.demo import run_demo
    report = run_demo(args.out, engine_from_args(args), log=lambda m: print(m, file=sys.stderr))
    print(report.resolve())
    return 0
