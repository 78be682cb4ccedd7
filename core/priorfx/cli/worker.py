"""`priorfx worker shutter|portrait`: processes host plug-ins start and talk to.

Not meant to be run by hand. shutter: the OBS script makes a slot file, starts
this command with `--shm PATH`, and writes one byte to its stdin per frame (see
priorfx.streaming.shm for the protocol and priorfx.streaming.worker for the
loop). portrait: the GIMP dialog starts it when it opens and sends one JSON
request per line (an image file to undistort: the reduced copy of its
Preview); the models stay loaded between requests, so a Preview after the
first costs the filter's own time, not a Python start and a model load.
"""
from __future__ import annotations

import argparse
import json
import sys

from priorfx.cli.common import add_engine_options
from priorfx.errors import InputError, PriorfxError, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="long-lived worker for a host's live video (started by the OBS filter)",
                       description="Workers behind live host plug-ins; hosts start them, not users.")
    wsub = p.add_subparsers(dest="worker", metavar="KIND", required=True)
    s = wsub.add_parser("shutter", help="rolling-shutter correction for the OBS filter",
                        description="Attach to the OBS filter's shared-memory slot file and correct the "
                                    "newest frame each time a byte arrives on stdin. Exits when stdin closes.")
    s.add_argument("--shm", required=True, metavar="PATH", help="slot file made by the OBS script")
    s.add_argument("--parent", type=int, default=None, metavar="PID",
                   help="exit when this process is gone (the OBS process)")
    s.add_argument("--nice", type=int, default=None, metavar="N",
                   help="run N steps below the host's priority (Unix nice, 0-19; default 2; "
                        "higher keeps OBS smoother on a busy machine, lower corrects more frames). "
                        "On Linux only the calibration runs N below; the frame path keeps the host's "
                        "priority and the motion estimate runs max(N, 10) below it")
    add_engine_options(s)
    s.set_defaults(func=_run_shutter)
    pt = wsub.add_parser("portrait", help="selfie undistortion requests for the GIMP dialog (Preview)",
                         description="Read one JSON request per line on stdin: {\"input\": IN, \"output\": OUT, "
                                     "\"distance\": M, \"strength\": S, \"focal_mm\": F or null}; undistort IN "
                                     "into OUT as `priorfx undistort` does and answer one JSON line on stdout: "
                                     "{\"ok\": true, \"faces\": [...], \"messages\": [one line per face]} or "
                                     "{\"ok\": false, \"error\", \"message\", \"hint\"}. Exits when stdin closes.")
    add_engine_options(pt)
    pt.set_defaults(func=_run_portrait)


def _run_shutter(args: argparse.Namespace) -> int:
    from priorfx.streaming import shm
    from priorfx.streaming.worker import StdinWaker, serve, shutter_session_factory, yield_to_host

    if args.nice is not None and not 0 <= args.nice <= 19:
        raise UsageError(f"--nice {args.nice} is outside 0..19", "use e.g. --nice 2 (the default) or --nice 10")
    try:
        channel = shm.Channel.attach(args.shm)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot attach to slot file {args.shm}: {exc}",
                         "this command is started by the OBS filter; restart the filter") from None
    yield_to_host(args.threads, **({} if args.nice is None else {"nice": args.nice}))
    try:
        make = shutter_session_factory(args.remote, args.token, args.threads)
        return serve(channel, make, StdinWaker(), parent_pid=args.parent)
    except PriorfxError as err:
        # Tell the host why (it shows this in the OBS log) and fail the usual way.
        channel.set_state(shm.FAILED, error=str(err))
        raise
    except BaseException as exc:
        channel.set_state(shm.FAILED, error=f"{type(exc).__name__}: {exc}")
        if isinstance(exc, KeyboardInterrupt):
            raise
        print(f"priorfx worker: crashed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise
    finally:
        channel.close(unlink=False)


def _run_portrait(args: argparse.Namespace) -> int:
    from priorfx.cli import undistort as command
    from priorfx.cli.common import engine_from_args

    parser = argparse.ArgumentParser(prog="priorfx")
    command.register(parser.add_subparsers())
    engine = engine_from_args(args)          # one engine: the models stay loaded between requests
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(portrait_request(line, parser, engine)), flush=True)
    return 0


def portrait_request(line: str, parser: argparse.ArgumentParser, engine) -> dict:
    """One `priorfx worker portrait` request (a JSON line) -> its reply (a dict)."""
    from priorfx.cli import undistort as command
    from priorfx.portrait import face_message

    try:
        req = json.loads(line)
        argv = ["undistort", "-o", str(req["output"]), "--progress", "none"]
        for key, flag in (("distance", "--distance"), ("strength", "--strength"), ("focal_mm", "--focal-mm")):
            if req.get(key) is not None:   # absent: the command's own default
                argv += [flag, repr(float(req[key]))]
        argv += ["--", str(req["input"])]      # a path is never read as an option
        args = parser.parse_args(argv)
    except (ValueError, KeyError, TypeError, AttributeError, SystemExit) as exc:
        return {"ok": False, "error": "usage", "message": f"bad worker request {line.strip()[:200]!r}: {exc!r}",
                "hint": "one JSON object per line with input, output, distance, strength, focal_mm"}
    try:
        # A preview lives a second: no compression (deflate costs more than the filter on the copy).
        summary = command.undistort_command(args, engine, compression="none")
    except PriorfxError as err:
        return {"ok": False, **err.to_json()}
    faces = summary["faces"]
    return {"ok": True, "output": summary["output"], "faces": faces,
            "messages": [face_message(i, f) for i, f in enumerate(faces)]}
