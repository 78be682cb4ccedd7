"""`priorfx worker shutter`: the process the OBS filter starts and talks to.

Not meant to be run by hand: the OBS script makes a slot file, starts this
command with `--shm PATH`, and writes one byte to its stdin per frame. See
priorfx.streaming.shm for the protocol and priorfx.streaming.worker for the loop.
"""
from __future__ import annotations

import argparse
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
                        "higher keeps OBS smoother on a busy machine, lower corrects more frames)")
    add_engine_options(s)
    s.set_defaults(func=_run_shutter)


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
