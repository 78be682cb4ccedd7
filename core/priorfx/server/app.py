"""The priorfx HTTP service: a Starlette app run by uvicorn (`priorfx serve`).

Endpoints (all JSON unless marked *bundle*, see priorfx/engines/protocol.py)::

    GET    /v1/health                 no auth: status, protocol, priorfx version
    GET    /v1/info                   limits, workers, operations, jobs, memory
    GET    /v1/models                 the models in the server's own store
    GET    /v1/jobs                   status of every job the server holds
    POST   /v1/run/{op}               bundle in -> bundle(s) out, in one request (stills, short clips)
    POST   /v1/jobs/{op}              bundle in -> 202 {"id", ...}; op: an operation of the registry
    GET    /v1/jobs/{id}?since=V&wait=S   status, long-polled until it changes
    GET    /v1/jobs/{id}/parts/{i}    bundle: result i (releases results before i)
    POST   /v1/jobs/{id}/frames       bundle: more frames of a job submitted with more=true
    DELETE /v1/jobs/{id}              cancel if running, release results
    WS     /v1/shutter/stream         live shutter correction session

Every request except health needs `Authorization: Bearer TOKEN` when the
server has a token. Errors are `PriorfxError.to_json()` with the class's HTTP
status. Requests carry pixels only: the server never opens a path it is sent.
What a request for each operation may hold, and how it becomes a job, is
work.py (from the registry, priorfx/engines/operations.py); here are the
endpoints' handlers, sharing a ServerState on `app.state.server`.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import priorfx
from priorfx.config import load_settings
from priorfx.engines import LocalEngine, protocol
from priorfx.errors import (AuthError, BodyTimeoutError, CancelledError, InputError, LimitError, NotFoundError,
                            PriorfxError, UsageError, VersionMismatchError)
from priorfx.server.guard import BodyBudget, RequestPolicy, read_body
from priorfx.server.jobs import JobManager
from priorfx.server.work import (Limits, available_ops, build_work, chunk_guides, params_class,
                                 required_field)

MB = 1 << 20


@dataclass(frozen=True)
class ServerConfig:
    """What `priorfx serve` was started with (limits apply to every request)."""

    token: str | None = None
    workers: int = 1                  # jobs computed at the same time
    max_body_mb: float = 512.0        # one request body / one WebSocket message
    max_side: int = 16384             # pixels along either image side
    max_pixels: int = 50_000_000      # pixels in one image (a 12 MP still fits 4x)
    max_frames: int = 2000            # frames in one job
    max_jobs: int = 32                # jobs queued or running
    max_streams: int = 8              # live shutter sessions open at once
    job_ttl_s: float = 600.0          # jobs nobody asks about are dropped after this
    result_ttl_s: float = 120.0       # results of a finished job nobody fetches, after this
    max_inflight_mb: float | None = None  # bytes being received by all uploads; None: max_body_mb
    body_timeout_s: float = 60.0      # a body that sends nothing for this long is refused
    hello_timeout_s: float = 15.0     # a live session must send its opening message by then
    bound_host: str = "127.0.0.1"     # the address it listens on (a Host it always answers)
    allow_hosts: tuple[str, ...] = ()  # more Host / Origin names it answers (--allow-host)
    device: str | None = None         # where priors run (None: $PRIORFX_DEVICE, config, auto)

    @property
    def max_body(self) -> int:
        return int(self.max_body_mb * MB)

    @property
    def max_inflight(self) -> int:
        return int((self.max_inflight_mb or self.max_body_mb) * MB)

    def policy(self) -> RequestPolicy:
        return RequestPolicy(bool(self.token), self.bound_host, self.allow_hosts)

    def limits(self) -> dict[str, Any]:
        return {"max_body_bytes": self.max_body, "max_side": self.max_side,
                "max_pixels": self.max_pixels, "max_frames": self.max_frames,
                "max_jobs": self.max_jobs, "max_streams": self.max_streams,
                "max_inflight_bytes": self.max_inflight}


# ---------------------------------------------------------------- HTTP plumbing

def error_response(err: PriorfxError, status: int | None = None) -> JSONResponse:
    return JSONResponse(err.to_json(), status_code=status or err.http_status)


def check_request_headers(headers, cfg: ServerConfig) -> None:
    """Token and protocol version of an HTTP request or WebSocket handshake."""
    proto = headers.get(protocol.PROTOCOL_HEADER.lower())
    if proto is not None and proto != str(protocol.PROTOCOL_VERSION):
        raise VersionMismatchError(
            f"client speaks priorfx protocol {proto}, this server (priorfx {priorfx.__version__}) "
            f"speaks {protocol.PROTOCOL_VERSION}",
            "install the same priorfx version on the client and the server")
    if cfg.token:
        auth = headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if not auth:
            raise AuthError("this priorfx server needs a token",
                            "set PRIORFX_TOKEN (or token in the config file) on the client")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), cfg.token.encode()):
            raise AuthError("the token was refused by the priorfx server",
                            "use the token the server was started with (--token-file / PRIORFX_TOKEN)")


class Guard:
    """ASGI middleware: Host, Origin and Content-Type (guard.RequestPolicy) for HTTP
    and WebSocket handshakes, then auth + protocol version for HTTP; JSON errors."""

    def __init__(self, app, cfg: ServerConfig):
        self.app = app
        self.cfg = cfg
        self.policy = cfg.policy()

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                self.policy.check(headers, scope.get("scheme", "http"))
                if scope["type"] == "http" and scope["path"] != "/v1/health":
                    check_request_headers(headers, self.cfg)
                    self.policy.check_body_type(headers, scope["method"])
            except PriorfxError as err:
                if scope["type"] == "websocket":  # refuse the handshake (HTTP 403)
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await error_response(err)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux), else None."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- the app

class ServerState:
    """What the handlers share, kept on the app (`app.state.server`): the
    settings, the engine, the jobs, the budget of upload bytes in flight and
    the live sessions."""

    def __init__(self, cfg: ServerConfig, engine: LocalEngine):
        self.cfg = cfg
        self.engine = engine
        self.limits = Limits(cfg)
        self.jobs = JobManager(workers=cfg.workers, max_active=cfg.max_jobs, ttl_s=cfg.job_ttl_s,
                               result_ttl_s=cfg.result_ttl_s)
        self.budget = BodyBudget(cfg.max_inflight)
        self.stream_slots = anyio.CapacityLimiter(cfg.max_streams)
        self.open_streams = 0

    async def body(self, request: Request) -> Any:
        """The request's bundle, decoded; a dict or an InputError."""
        cfg = self.cfg
        req = protocol.unpack(await read_body(request, cfg.max_body, self.budget, cfg.body_timeout_s))
        if not isinstance(req, dict):
            raise InputError(f"the request bundle holds a {type(req).__name__}, not an object of fields",
                             "send bodies made by RemoteEngine (a mapping of request fields)")
        return req


def create_app(cfg: ServerConfig | None = None, engine: LocalEngine | None = None) -> Starlette:
    """The Starlette app of `priorfx serve`: the routes below, with their state on `app.state.server`."""
    cfg = cfg or ServerConfig()
    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers={
        PriorfxError: _priorfx_error, ClientDisconnect: _client_gone, 404: _not_found, 405: _not_allowed,
        Exception: _internal_error})
    app.state.server = ServerState(cfg, engine or LocalEngine(load_settings(device=cfg.device)))
    app.add_middleware(Guard, cfg=cfg)
    return app


def _state(conn: Request | WebSocket) -> ServerState:
    return conn.app.state.server


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    state: ServerState = app.state.server
    cfg = state.cfg

    async def reaper():
        while True:
            await asyncio.sleep(min(30.0, cfg.job_ttl_s / 4, cfg.result_ttl_s / 4))
            state.jobs.reap()
    task = asyncio.create_task(reaper())
    try:
        yield
    finally:
        task.cancel()
        state.jobs.shutdown()


async def health(request: Request):
    return JSONResponse({"status": "ok", "service": "priorfx", "protocol": protocol.PROTOCOL_VERSION,
                         "priorfx_version": priorfx.__version__, "auth": bool(_state(request).cfg.token)})


async def info(request: Request):
    state = _state(request)
    cfg = state.cfg
    return JSONResponse({
        "service": "priorfx", "protocol": protocol.PROTOCOL_VERSION,
        "priorfx_version": priorfx.__version__, "python": sys.version.split()[0],
        "workers": cfg.workers, "device": getattr(getattr(state.engine, "settings", None), "device", None),
        "limits": cfg.limits(), "operations": available_ops(),
        "jobs": state.jobs.counts(), "streams": state.open_streams, "rss_mb": rss_mb(),
        "upload_bytes_in_flight": state.budget.in_flight})


async def models(request: Request):
    rows = await anyio.to_thread.run_sync(_state(request).engine.models)
    return JSONResponse(rows)


async def submit(request: Request):
    state = _state(request)
    op = request.path_params["op"]
    params_class(op)  # unknown or missing operation: fail before reading pixels
    req = await state.body(request)
    work, feed = build_work(op, req, state.limits, state.engine)
    try:
        job = state.jobs.submit(op, work, feed)
    except LimitError as err:
        return error_response(err, 429)  # busy, not too big: worth retrying later
    return JSONResponse(job.status(), status_code=202)


async def run_now(request: Request):
    """One request, one answer: the job's results as concatenated bundles.

    For simple clients (curl, a host's own HTTP code); a client that goes
    away cancels the work. Long work should use the jobs API instead.
    """
    state = _state(request)
    op = request.path_params["op"]
    params_class(op)
    req = await state.body(request)
    if req.get("more"):
        raise UsageError("a shot in several uploads needs the jobs API (POST /v1/jobs/matte)")
    work, _feed = build_work(op, req, state.limits, state.engine)
    try:
        job = state.jobs.submit(op, work)
    except LimitError as err:
        return error_response(err, 429)
    parts: list[bytes] = []
    try:
        while True:
            since = job.version
            ended = job.state not in ("queued", "running")  # read before collecting
            parts += job.take_new_parts(len(parts))
            if ended:
                break
            await job.wait_change(since, 0.5)
            if await request.is_disconnected():
                raise CancelledError("the client went away")
        if job.state != "done":
            raise PriorfxError.from_json(job.error or {})
        return Response(b"".join(parts), media_type=protocol.CONTENT_TYPE,
                        headers={"X-Priorfx-Parts": str(len(parts))})
    finally:
        with contextlib.suppress(NotFoundError):
            state.jobs.release(job.id)


async def job_list(request: Request):
    jobs = _state(request).jobs
    jobs.reap()
    return JSONResponse([j.status() for j in list(jobs.jobs.values())])


async def job_status(request: Request):
    job = _state(request).jobs.get(request.path_params["id"])
    since = _int_query(request, "since", -1)
    wait = min(max(_float_query(request, "wait", 0.0), 0.0), 30.0)
    if job.state in ("queued", "running"):
        await job.wait_change(since, wait)
    return JSONResponse(job.status())


async def job_part(request: Request):
    job = _state(request).jobs.get(request.path_params["id"])
    index = request.path_params["index"]
    data = job.take_part(index)
    if data is None:
        if job.error:
            raise PriorfxError.from_json(job.error)
        raise NotFoundError(f"result {index} of job {job.id} is not available",
                            f"the job has {job.parts_ready} result(s) ready; earlier ones are "
                            "released once a later one is fetched")
    return Response(data, media_type=protocol.CONTENT_TYPE)


async def job_frames(request: Request):
    """More frames for a job whose frames come in several uploads."""
    state = _state(request)
    cfg, limits = state.cfg, state.limits
    job = state.jobs.get(request.path_params["id"])
    feed = job.feed
    if feed is None or feed.closed:
        raise UsageError(f"job {job.id} takes no more frames",
                         "only a job submitted with more=true takes further uploads")
    if job.state not in ("queued", "running"):
        raise PriorfxError.from_json(job.error) if job.error else UsageError(
            f"job {job.id} has ended")
    if not feed.hold_all and feed.pending_bytes() > cfg.max_body:
        raise LimitError("frames are arriving faster than the server mattes them",
                         "wait until earlier frames are done (RemoteEngine does)")
    req = await state.body(request)
    extra = sorted(set(req) - {"frames", "guides", "more"})
    if extra:
        raise UsageError(f"unknown upload field(s): {', '.join(extra)}")
    more = req.get("more", False)
    raw = required_field(req, "frames")
    # The last upload may be empty when the client could not know it was the last.
    frames = [] if isinstance(raw, list) and not raw and more is False else limits.frames("frames", raw)
    guides = limits.guides(req.get("guides"))
    if set(guides or {}) - set(feed.per_frame_guides):
        raise UsageError("later uploads may only carry the per-frame guides of the first one: "
                         f"{', '.join(feed.per_frame_guides) or 'none'}")
    if type(more) is not bool:
        raise UsageError("'more' must be true or false")
    if feed.total is not None and feed.received + len(frames) > feed.total:
        raise UsageError(f"job {job.id} was announced with {feed.total} frames; this upload "
                         f"would make {feed.received + len(frames)}")
    if feed.received + len(frames) > cfg.max_frames:
        raise LimitError(f"a job of more than {cfg.max_frames} frames; this server takes at "
                         f"most {cfg.max_frames} in one job", "split the shot at a cut")
    feed.add(frames, chunk_guides(guides, feed.per_frame_guides, len(frames)), more)
    return JSONResponse(job.status())


async def job_delete(request: Request):
    return JSONResponse(_state(request).jobs.release(request.path_params["id"]))


# ---------------------------------------------------------------- live sessions

async def shutter_stream(ws: WebSocket):
    """A live shutter session: the opening message names the parameters, then
    each binary message is one call of the session (`_stream_call`)."""
    state = _state(ws)
    cfg = state.cfg
    await ws.accept()
    try:
        check_request_headers(ws.headers, cfg)
    except PriorfxError as err:
        await _send_error(ws, err)
        await ws.close(4000 + err.http_status)
        return
    if state.open_streams >= cfg.max_streams:
        await _send_error(ws, LimitError(f"this server already has {cfg.max_streams} live sessions",
                                         "close another session or raise --max-streams"))
        await ws.close(4413)
        return
    state.open_streams += 1
    session = None
    try:
        try:
            hello = protocol.unpack(await _receive_bundle(ws, cfg.hello_timeout_s))
            params = protocol.params_from_json(params_class("deshutter"), required_field(hello, "params"))
            session = await anyio.to_thread.run_sync(state.engine.shutter_stream, params)
        except PriorfxError as err:
            await _send_error(ws, err)
            await ws.close(4000 + err.http_status)
            return
        methods = [m for m in STREAM_METHODS if callable(getattr(session, m, None))]
        await ws.send_bytes(protocol.pack({"ok": True, "priorfx_version": priorfx.__version__,
                                           "methods": methods}))
        while True:
            try:
                message = await _receive_bundle(ws)
                # Frames are decoded in place (read-only views, no copy): the session
                # only reads its input, as with a camera's shared-memory buffer.
                call = _stream_call(protocol.unpack(message, bytes_as_views=True),
                                    session, methods, state.limits)
                reply = await anyio.to_thread.run_sync(call, limiter=state.stream_slots)
            except WebSocketDisconnect:
                raise
            except PriorfxError as err:
                reply = protocol.pack({"error": err.to_json()})
            except Exception as exc:  # a bug in the session: report it, keep serving
                import traceback
                traceback.print_exc(file=sys.stderr)
                reply = protocol.pack({"error": PriorfxError(
                    f"internal error in the shutter session: {type(exc).__name__}: {exc}",
                    "this is a bug in priorfx; report it with the server log").to_json()})
            await ws.send_bytes(reply)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away (RuntimeError: receive after disconnect)
    finally:
        state.open_streams -= 1
        close = getattr(session, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


async def _send_error(ws: WebSocket, err: PriorfxError) -> None:
    await ws.send_bytes(protocol.pack({"error": err.to_json()}))


async def _receive_bundle(ws: WebSocket, timeout: float | None = None) -> bytes:
    """The next binary message; InputError for a text one, BodyTimeoutError after `timeout`."""
    try:
        message = await asyncio.wait_for(ws.receive(), timeout)
    except asyncio.TimeoutError:
        raise BodyTimeoutError(f"a live session must send its opening message within "
                               f"{timeout:g} s", "send it right after connecting") from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("bytes") is None:
        raise InputError("a live session takes binary priorfx bundles, not text messages",
                         "send bundles made by priorfx.engines.protocol.pack "
                         "(RemoteShutterSession does)")
    return message["bytes"]


ROUTES = [Route("/v1/health", health), Route("/v1/info", info), Route("/v1/models", models),
          Route("/v1/jobs", job_list, methods=["GET"]),
          Route("/v1/run/{op:str}", run_now, methods=["POST"]),
          Route("/v1/jobs/{op:str}", submit, methods=["POST"]),
          Route("/v1/jobs/{id:str}", job_status, methods=["GET"]),
          Route("/v1/jobs/{id:str}", job_delete, methods=["DELETE"]),
          Route("/v1/jobs/{id:str}/parts/{index:int}", job_part, methods=["GET"]),
          Route("/v1/jobs/{id:str}/frames", job_frames, methods=["POST"]),
          WebSocketRoute("/v1/shutter/stream", shutter_stream)]


# Methods of the core's ShutterSession a client may call over the stream.
STREAM_METHODS = ("push", "push_buffer", "flush")
# Session attributes sent back with every reply (RemoteShutterSession mirrors them).
STREAM_STATE = ("readout", "readout_estimated", "frames_in")


def _stream_call(msg: Any, session: Any, methods: list[str], limits: Limits) -> Callable[[], bytes]:
    method = required_field(msg, "method")
    if method not in methods:
        raise NotFoundError(f"a shutter session has no method {method!r}",
                            f"use one of: {', '.join(methods)}")
    args, kwargs = msg.get("args", []), msg.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise InputError("stream call needs 'args' as a list and 'kwargs' as a mapping")
    fn = getattr(session, method)
    try:  # wrong arguments are the client's mistake, not an internal error
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        raise UsageError(f"{method}(): {exc}") from None
    import numpy as np

    for i, a in enumerate([*args, *kwargs.values()]):
        if isinstance(a, np.ndarray) and a.ndim >= 2:
            limits.image(f"argument {i}", a)
        elif isinstance(a, dict):
            raise InputError("stream call arguments must be arrays, buffers, numbers or strings")
    if method == "push_buffer":
        # push_buffer(buf, fmt, width, height, strides=None): the size is given, not
        # measured, so check it against the limits before anything is allocated.
        named = dict(zip(("buf", "fmt", "width", "height", "strides"), args)) | kwargs
        if "out" in named:
            raise UsageError("push_buffer's out= is applied by the client, not sent")
        w, h = named.get("width"), named.get("height")
        if type(w) is not int or type(h) is not int or w < 1 or h < 1:
            raise InputError(f"push_buffer needs whole positive width and height, got {w!r} x {h!r}")
        limits.size("frame", h, w)

    def call() -> bytes:
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        compute_ms = (time.perf_counter() - t0) * 1000.0
        state = {k: getattr(session, k) for k in STREAM_STATE if hasattr(session, k)}
        # compute_ms lets a client tell the server's work from the transport's.
        return protocol.pack({"result": result, "state": state, "compute_ms": compute_ms})
    return call


def _int_query(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        raise UsageError(f"query parameter {name} must be an integer") from None


def _float_query(request: Request, name: str, default: float) -> float:
    try:
        value = float(request.query_params.get(name, default))
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"query parameter {name} must be a finite number")
    return value


async def _priorfx_error(request: Request, err: PriorfxError):
    return error_response(err)


async def _client_gone(request: Request, exc: ClientDisconnect):
    return Response(status_code=400)  # nobody reads it: the client left mid-body


async def _not_found(request: Request, exc):
    return error_response(NotFoundError(f"no endpoint {request.method} {request.url.path}",
                                        "see `priorfx serve --help` for the API"))


async def _not_allowed(request: Request, exc):
    return error_response(UsageError(f"{request.method} is not allowed on {request.url.path}"), 405)


async def _internal_error(request: Request, exc: Exception):
    import traceback
    traceback.print_exception(exc, file=sys.stderr)
    return error_response(PriorfxError(f"internal server error: {type(exc).__name__}: {exc}",
                                       "this is a bug in priorfx; report it with the server log"))


# ---------------------------------------------------------------- running it

def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        raise UsageError(f"cannot resolve host {host!r}", "use an IP address such as 127.0.0.1") from None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def bind(host: str, port: int, cfg: ServerConfig):
    """A listening socket, after the security checks on where it listens."""
    import socket

    if not cfg.token and not is_loopback(host):
        raise UsageError(f"refusing to listen on {host} without a token: anyone on the network "
                         "could use this machine's inference",
                         "pass --token-file PATH (or set PRIORFX_TOKEN), or listen on 127.0.0.1")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}",
                         "choose another --port (0 picks a free one) or stop the other server") from None
    # Listen now so clients that read the "listening" line can connect at once;
    # uvicorn accepts from this backlog when its loop starts.
    sock.listen(2048)
    return sock


def serve(host: str = "127.0.0.1", port: int = 8765, cfg: ServerConfig | None = None,
          log_level: str = "warning", announce: Callable[[str], None] = print,
          tls_cert: str | None = None, tls_key: str | None = None) -> None:
    """Run the server until SIGINT/SIGTERM; returns after a clean shutdown.

    With `tls_cert` (and `tls_key` unless the key is in the same PEM file) it
    speaks HTTPS / WSS, so the token and pixels are not readable on the wire.
    """
    import ssl

    import uvicorn

    cfg = replace(cfg or ServerConfig(), bound_host=host)
    if tls_key and not tls_cert:
        raise UsageError("--tls-key needs --tls-cert")
    if tls_cert:
        try:  # check the files now: a clear error instead of a uvicorn traceback
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use TLS certificate {tls_cert}: {exc}",
                             "give a PEM certificate (--tls-cert) and its private key (--tls-key)") from None
    sock = bind(host, port, cfg)
    real_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host

    class _Server(uvicorn.Server):
        # uvicorn re-raises the signal after shutting down; a clean stop is the
        # whole point of handling it, so the command exits 0 instead.
        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            getattr(self, "_captured_signals", []).clear()

    config = uvicorn.Config(
        create_app(cfg), log_level=log_level, access_log=False, lifespan="on",
        ws_max_size=cfg.max_body + (1 << 16), ws_per_message_deflate=False,
        ws_ping_interval=20.0, ws_ping_timeout=60.0, timeout_graceful_shutdown=3,
        timeout_keep_alive=30, ssl_certfile=tls_cert, ssl_keyfile=tls_key)
    server = _Server(config)
    scheme = "https" if tls_cert else "http"
    if not tls_cert and not is_loopback(host):
        print(f"priorfx serve: warning: plain HTTP on {host}: the token and the pixels cross the "
              "network unencrypted (use --tls-cert, an SSH tunnel or a TLS proxy)", file=sys.stderr)
    announce(f"priorfx serve: listening on {scheme}://{shown}:{real_port} "
             f"(priorfx {priorfx.__version__}, protocol {protocol.PROTOCOL_VERSION}, "
             f"{cfg.workers} worker(s), token {'required' if cfg.token else 'not required'})")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    announce("priorfx serve: stopped")
