"""`priorfx serve`: the inference server for remote engines."""
from __future__ import annotations

import argparse
import math
import os
import sys

from priorfx.config import DEVICES
from priorfx.errors import UsageError

SERVER_EXTRA = ("starlette", "uvicorn")   # pyproject's [server] extra


EPILOG = """clients: priorfx COMMAND --remote http://HOST:PORT with PRIORFX_TOKEN (or the
config file; PRIORFX_REMOTE too); in Python, priorfx.engines.get_engine().

API (v1; pixels travel as binary bundles, see priorfx/engines/protocol.py):
  GET  /v1/health  /v1/info  /v1/models  /v1/jobs
  POST /v1/run/{deshutter|undistort|matte}    (one request, results in the answer)
  POST /v1/jobs/{deshutter|undistort|matte}   GET|DELETE /v1/jobs/ID
  GET  /v1/jobs/ID/parts/N                    WS /v1/shutter/stream
POST bodies are bundles sent as Content-Type: application/x-priorfx-bundle (anything
else is 415); requests from a browser page (an Origin header) are refused."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the inference server (RemoteEngine, other machines)",
        description="Serve the three manipulations over HTTP and live shutter streams over a "
                    "WebSocket. Listens on 127.0.0.1 unless told otherwise, and refuses any other "
                    "address without a token. Stop with Ctrl-C or SIGTERM.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)")
    p.add_argument("--token-file", metavar="PATH",
                   help="clients must send the token in this file (first line; keep it 0600). "
                        "Default: $PRIORFX_TOKEN")
    p.add_argument("--token", help="the token itself; visible to every local user in the process "
                                   "list, so prefer --token-file or PRIORFX_TOKEN")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests addressed to NAME (Host header) and pages served "
                        "from NAME (Origin). Loopback names, IP addresses and --host are always "
                        "answered; '*' answers any name (repeatable)")
    p.add_argument("--workers", type=int, default=1,
                   help="jobs computed at the same time (default: 1). Workers are threads of this "
                        "one process, which holds the jobs, their results and the live sessions, "
                        "so every status, cancel and fetch reaches the right job")
    lim = p.add_argument_group("limits (over a limit: HTTP 413 with a JSON error)")
    lim.add_argument("--max-body-mb", type=float, default=512.0,
                     help="largest request or stream message in MB (default: %(default)g)")
    lim.add_argument("--max-side", type=int, default=16384,
                     help="largest image side in pixels (default: %(default)d)")
    lim.add_argument("--max-pixels", type=float, default=50e6,
                     help="largest image in pixels (default: %(default).0f)")
    lim.add_argument("--max-frames", type=int, default=2000,
                     help="most frames in one job (default: %(default)d)")
    lim.add_argument("--max-jobs", type=int, default=32,
                     help="most jobs queued or running (default: %(default)d)")
    lim.add_argument("--max-streams", type=int, default=8,
                     help="most live shutter sessions (default: %(default)d)")
    lim.add_argument("--max-inflight-mb", type=float, default=None,
                     help="bytes being uploaded by all clients at once, in MB (default: --max-body-mb)")
    lim.add_argument("--body-timeout", type=float, default=60.0, metavar="S",
                     help="refuse a request body that sends nothing for S seconds (default: %(default)g)")
    lim.add_argument("--hello-timeout", type=float, default=15.0, metavar="S",
                     help="close a live session that sends no opening message in S seconds "
                          "(default: %(default)g)")
    p.add_argument("--device", choices=DEVICES, default=None,
                   help="where the learned priors run: auto (a GPU the runtime offers, else the CPU), cpu, "
                        "cuda, ... (default: $PRIORFX_DEVICE, the config file, or auto)")
    p.add_argument("--tls-cert", metavar="PEM",
                   help="serve HTTPS/WSS with this certificate (recommended beyond one machine: "
                        "the token then never crosses the network in clear)")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert (if not in the same file)")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        from priorfx.server.app import ServerConfig, serve
    except ModuleNotFoundError as exc:
        if exc.name not in SERVER_EXTRA:
            raise
        raise UsageError(f"`priorfx serve` needs the server extra ({exc.name} is not installed)",
                         "pip install 'priorfx[server]'") from None

    token = _token(args)
    for name in ("workers", "max_side", "max_frames", "max_jobs", "max_streams"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    for name, low in (("max_body_mb", 0.0), ("max_pixels", 1.0), ("max_inflight_mb", 0.0),
                      ("body_timeout", 0.0), ("hello_timeout", 0.0)):
        value = getattr(args, name)
        # `not value > low` also refuses nan; inf would disable the limit.
        if value is not None and not (math.isfinite(value) and value > low):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number above {low:g}, got {value}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port (0-65535)")
    cfg = ServerConfig(token=token, workers=args.workers, max_body_mb=args.max_body_mb,
                       max_side=args.max_side, max_pixels=int(args.max_pixels),
                       max_frames=args.max_frames, max_jobs=args.max_jobs,
                       max_streams=args.max_streams, max_inflight_mb=args.max_inflight_mb,
                       body_timeout_s=args.body_timeout, hello_timeout_s=args.hello_timeout,
                       allow_hosts=tuple(args.allow_host), device=args.device)

    def announce(line: str) -> None:
        print(line, flush=True)

    serve(args.host, args.port, cfg, log_level=args.log_level, announce=announce,
          tls_cert=args.tls_cert, tls_key=args.tls_key)
    sys.stdout.flush()
    return 0


def _token(args: argparse.Namespace) -> str | None:
    """--token-file, else PRIORFX_TOKEN, else --token (with a warning: `ps` shows it)."""
    if args.token_file and args.token:
        raise UsageError("give --token-file or --token, not both")
    if args.token_file:
        from priorfx.config import read_secret_file
        return read_secret_file(args.token_file, "--token-file")
    if args.token:
        print("priorfx serve: warning: --token is visible to every user of this machine in the "
              "process list; use --token-file PATH or PRIORFX_TOKEN instead", file=sys.stderr)
        return args.token
    return os.environ.get("PRIORFX_TOKEN") or None
