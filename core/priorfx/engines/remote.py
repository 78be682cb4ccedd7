"""RemoteEngine: the Engine interface over HTTP to a `priorfx serve`.

Same calls and types as `priorfx.engines.LocalEngine`; the work runs as a job
on the server (submit, long-poll the status while mirroring progress, fetch
each result, release). Live shutter correction uses a WebSocket session with
the same push / push_buffer / flush calls as `priorfx.shutter.ShutterSession`.

Failure modes a user sees (all PriorfxError subclasses, as locally):
- server down, connection refused or lost mid-job -> EngineUnreachableError
- missing or wrong token -> AuthError
- client and server priorfx differ -> VersionMismatchError
- job cancelled here (Progress.cancel) or on the server -> CancelledError
- anything the server reports -> the same class the server raised

Only idempotent calls (GET, DELETE) are retried, with exponential backoff; a
job submission is retried only when the connection was never made, so the
server can never run the same job twice because of a retry.
"""
from __future__ import annotations

import os
import time
import urllib.parse
from typing import Any, Iterable, Iterator

import numpy as np
import requests

import priorfx
from priorfx.colour import Boundary, ColourSpec, is_builtin
from priorfx.engines import protocol
from priorfx.engines.operations import Operation, OperationCalls, operation
from priorfx.errors import (AuthError, CancelledError, EngineUnreachableError, LimitError,
                            PriorfxError, UsageError, VersionMismatchError)
from priorfx.progress import Progress

_IDEMPOTENT = ("GET", "HEAD", "DELETE", "OPTIONS")


def _never_connected(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (safe to resend)."""
    import urllib3

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class RemoteEngine(OperationCalls):
    """Runs the manipulations on a `priorfx serve` at `url`.

    Parameters
    ----------
    url : str
        e.g. ``http://gpu-box:8765``.
    token : str, optional
        The server's token (``--token`` / ``PRIORFX_TOKEN`` there).
    timeout : float
        Seconds to wait for a server reply (uploads and downloads get more,
        in proportion to their size).
    connect_timeout : float
        Seconds to wait for a connection.
    retries : int
        Retries of idempotent calls on connection errors, time-outs and
        502/503/504, waiting ``backoff * 2**n`` seconds between them.
    allow_version_skew : bool, optional
        Accept a server running another priorfx version with the same wire
        protocol (its results may then differ from this machine's). Default:
        the environment variable PRIORFX_ALLOW_VERSION_SKEW=1, else False.
    pack_u8 : bool
        Send float32 images whose values are all exactly k/255 (8-bit
        sources) as uint8: 4x fewer bytes, bit-identical on arrival.
    upload_chunk_mb : float
        A matte shot bigger than this goes up in uploads of about this size
        while results come back (one job on the server).

    Notes
    -----
    One RemoteEngine holds one HTTP connection pool; give each thread its own
    (they are cheap) rather than sharing one between threads.
    """

    name = "remote"

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0,
                 connect_timeout: float = 5.0, retries: int = 4, backoff: float = 0.1,
                 poll_s: float = 0.5, allow_version_skew: bool | None = None, pack_u8: bool = True,
                 upload_chunk_mb: float = 64.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(f"remote engine URL {url!r} is not an http(s) URL",
                             "e.g. --remote http://127.0.0.1:8765")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff = backoff
        self.poll_s = poll_s
        if allow_version_skew is None:
            allow_version_skew = os.environ.get("PRIORFX_ALLOW_VERSION_SKEW", "").lower() in ("1", "true", "yes")
        self.allow_version_skew = allow_version_skew
        self.pack_u8 = pack_u8
        self.upload_chunk_mb = upload_chunk_mb
        self._http = requests.Session()
        self._http.headers.update({
            "User-Agent": f"priorfx/{priorfx.__version__}",
            protocol.PROTOCOL_HEADER: str(protocol.PROTOCOL_VERSION)})
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"
        self._server: dict | None = None

    def __repr__(self) -> str:
        return f"RemoteEngine({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RemoteEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ transport

    def _unreachable(self, what: str, exc: BaseException | None) -> EngineUnreachableError:
        detail = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
        return EngineUnreachableError(
            f"priorfx server at {self.url} {what} ({detail})",
            "check that `priorfx serve` runs there and the URL and port are right")

    def _request(self, method: str, path: str, *, data: bytes | None = None,
                 params: dict | None = None, read_timeout: float | None = None,
                 stream: bool = False, what: str = "cannot be reached") -> requests.Response:
        idempotent = method in _IDEMPOTENT
        timeout = (self.connect_timeout, read_timeout or self.timeout)
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self._http.request(method, self.url + path, data=data, params=params,
                                          timeout=timeout, stream=stream,
                                          headers=None if data is None else _BUNDLE_HEADERS)
            except requests.exceptions.SSLError as exc:  # retrying cannot make it trusted
                raise EngineUnreachableError(
                    f"cannot verify the TLS certificate of the priorfx server at {self.url}: "
                    f"{_ssl_reason(exc)}",
                    "set REQUESTS_CA_BUNDLE to the server's certificate (or its CA) in PEM form") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                # ChunkedEncodingError: the server died while sending its answer.
                if not (idempotent or _never_connected(exc)):
                    raise self._unreachable(f"dropped the connection during {method} {path}", exc) from None
                last = exc
                continue
            except requests.Timeout as exc:
                if not idempotent:
                    raise EngineUnreachableError(
                        f"priorfx server at {self.url} did not answer {method} {path} "
                        f"within {timeout[1]:g} s", "the server may be overloaded; try again later") from None
                last = exc
                continue
            except requests.RequestException as exc:  # anything else requests can raise
                raise EngineUnreachableError(f"request to the priorfx server at {self.url} failed: "
                                             f"{type(exc).__name__}: {exc}") from None
            if resp.status_code in (502, 503, 504) and idempotent and attempt < self.retries \
                    and not _is_priorfx_error(resp):
                last = requests.HTTPError(f"HTTP {resp.status_code}")
                resp.close()
                continue
            if resp.status_code >= 400:
                raise _error_from(resp, self.url)
            return resp
        raise self._unreachable(what, last)

    def _json(self, method: str, path: str, **kw) -> Any:
        resp = self._request(method, path, **kw)
        try:
            return resp.json()
        except ValueError:
            raise EngineUnreachableError(f"{self.url} answered {path} with something that is not JSON",
                                         "is this URL a priorfx server?") from None

    def _bundle(self, path: str, what: str) -> Any:
        resp = self._request("GET", path, stream=True, what=what,
                             read_timeout=self.timeout + 1.0)
        try:
            buf = _read_into_bytearray(resp)
        except (requests.RequestException, OSError) as exc:
            raise self._unreachable(f"dropped the connection while sending {path}", exc) from None
        finally:
            resp.close()
        return protocol.unpack(buf, allow_dataclasses=True)

    # ------------------------------------------------------------ handshake

    def _handshake(self) -> dict:
        """Check the server's identity, protocol, version and our token (once)."""
        if self._server is not None:
            return self._server
        health = self._json("GET", "/v1/health")
        if not isinstance(health, dict) or health.get("service") != "priorfx":
            raise EngineUnreachableError(f"{self.url} is not a priorfx server",
                                         "check the URL and port")
        theirs = health.get("priorfx_version")
        if health.get("protocol") != protocol.PROTOCOL_VERSION or (
                theirs != priorfx.__version__ and not self.allow_version_skew):
            raise VersionMismatchError(
                f"the server at {self.url} runs priorfx {theirs} (protocol {health.get('protocol')}), "
                f"this client priorfx {priorfx.__version__} (protocol {protocol.PROTOCOL_VERSION})",
                "install the same priorfx version on both machines" + (
                    "" if health.get("protocol") != protocol.PROTOCOL_VERSION else
                    " (or set PRIORFX_ALLOW_VERSION_SKEW=1 to accept results that may differ)"))
        self._server = self._json("GET", "/v1/info")  # also checks the token
        return self._server

    # ------------------------------------------------------------ Engine API

    def info(self) -> dict[str, Any]:
        server = self._handshake()
        return {"engine": self.name, "priorfx_version": priorfx.__version__, "url": self.url,
                "server": server}

    def models(self) -> list[dict[str, Any]]:
        self._handshake()
        return self._json("GET", "/v1/models")

    def run(self, name: str, data: Any, params: Any, progress: Progress | None = None,
            colour: ColourSpec | None = None, **options: Any) -> Any:
        """Run the operation `name` of the registry on the server; the same
        results as LocalEngine.run.

        An image goes up in one request. A clip larger than `upload_chunk_mb`
        goes up in several uploads into one job: an operation that needs the
        whole clip (deshutter) starts once the last upload is in; a streamed
        one (matte) yields results as they come while the next uploads go up,
        so neither side holds the whole shot, and the prior's state carries
        across uploads exactly as in a local run. The job is submitted now
        with the first frames, so a bad request fails here. `colour`: see
        `_local_colour`.
        """
        op = operation(name)
        local = self._local_colour(colour)
        if local is not None:
            return op.colour_wrapper()(lambda d: self.run(name, d, params, progress, **options), data,
                                       Boundary(local, op.working_encoding()))
        if op.takes == "image":
            tree = {"params": protocol.params_to_json(params), "image": data, **_colour(colour)}
            parts = self._run(name, tree, [data], progress)
        else:
            parts = self._shot(op, data, params, options.get("guides"), progress, colour)
            if op.streamed:
                return parts
        try:
            return next(parts)
        finally:
            parts.close()

    @staticmethod
    def _local_colour(colour: ColourSpec | None) -> ColourSpec | None:
        """The spec to convert with here, on the client: a config file (the
        server never opens paths from a request, and may not have the file)
        stays here; a built-in config travels and the server converts."""
        return colour if colour is not None and not is_builtin(colour.config) else None

    def _shot(self, op: Operation, frames: Iterable[np.ndarray], params, guides: dict[str, Any] | None,
              progress: Progress | None, colour: ColourSpec | None = None) -> Iterator:
        """Submit a sequence as one job, in uploads of about `upload_chunk_mb`.

        An operation whose results are not streamed needs every frame before it
        starts (deshutter), so uploads follow each other at once; otherwise
        (matte) the next upload waits until the server has started on the
        previous one.
        """
        hold_all = not op.streamed
        total = len(frames) if hasattr(frames, "__len__") else None
        source = iter(frames)
        guides = {k: g for k, g in (guides or {}).items() if g is not None}
        # Per-frame guides (a sequence or a callable) travel with their frames.
        per_frame = {k: g for k, g in guides.items() if callable(g) or isinstance(g, (list, tuple))}
        static = {k: g for k, g in guides.items() if k not in per_frame}
        max_body = self._handshake().get("limits", {}).get("max_body_bytes") or (1 << 62)
        budget = min(self.upload_chunk_mb * 2**20, max_body // 2)
        sent = [0]
        _end = object()
        peeked = [next(source, _end)]  # one frame read ahead: tells whether more will follow

        def guide_at(g, i):
            if callable(g):
                return g(i)
            return g[i] if i < len(g) else None

        def next_chunk() -> tuple[list, dict, bool]:
            chunk, size = [], 0
            while peeked[0] is not _end and (not chunk or size < budget):
                chunk.append(peeked[0])
                size += getattr(peeked[0], "nbytes", 0)
                peeked[0] = next(source, _end)
            first = sent[0]
            sent[0] += len(chunk)
            chunk_guides = {k: [guide_at(g, first + i) for i in range(len(chunk))]
                            for k, g in per_frame.items()}
            return chunk, chunk_guides, peeked[0] is not _end

        frames0, guides0, more = next_chunk()
        tree = {"params": protocol.params_to_json(params), "frames": frames0, **_colour(colour)}
        if op.guides:
            tree["guides"] = {**static, **guides0} or None
        if more:
            tree.update(more=True, total=total)
        uploads = [len(frames0)]

        def feeder(job_id: str, status: dict) -> None:
            nonlocal more
            while more and status["state"] in ("queued", "running"):
                if not hold_all and status.get("frames_received", 0) - status["parts_ready"] > uploads[-1]:
                    return  # two uploads' worth would be waiting: let the server catch up
                chunk, chunk_guides, more = next_chunk()
                self._check_limits(chunk)
                if progress is not None:
                    progress.check()
                body = {"frames": chunk, "more": more}
                if chunk_guides:
                    body["guides"] = chunk_guides
                data = protocol.pack(body, pack_u8=self.pack_u8)
                status = self._request("POST", f"/v1/jobs/{job_id}/frames", data=data,
                                       read_timeout=self.timeout + len(data) / 20e6,
                                       what=f"went away while job {job_id[:8]} was receiving frames").json()
                uploads.append(max(1, len(chunk)))

        return self._run(op.name, tree, frames0, progress, feeder if more else None)

    def shutter_stream(self, params) -> "RemoteShutterSession":
        """A live shutter session on the server (a WebSocket), with ShutterSession's calls."""
        self._handshake()
        return RemoteShutterSession(self, params)

    # ------------------------------------------------------------ jobs

    def _check_limits(self, images: list) -> None:
        limits = self._handshake().get("limits", {})
        max_side, max_pixels = limits.get("max_side"), limits.get("max_pixels")
        max_frames = limits.get("max_frames")
        if max_frames and len(images) > max_frames:
            raise LimitError(f"{len(images)} frames in one job; the server at {self.url} accepts "
                             f"at most {max_frames}", "split the sequence into shorter jobs")
        for img in images:
            shape = getattr(img, "shape", ())
            if len(shape) >= 2 and max_side and max_pixels and (
                    max(shape[:2]) > max_side or shape[0] * shape[1] > max_pixels):
                raise LimitError(
                    f"a {shape[1]}x{shape[0]} image is over the limits of the server at {self.url} "
                    f"({max_side} pixels a side, {max_pixels / 1e6:g} MP)",
                    "scale it down, or start the server with higher --max-side/--max-pixels")

    def _run(self, op: str, tree: dict, images: list, progress: Progress | None,
             feeder=None) -> Iterator:
        self._check_limits(images)
        if progress is not None:
            progress.check()
        body = protocol.pack(tree, pack_u8=self.pack_u8)
        max_body = self._handshake().get("limits", {}).get("max_body_bytes")
        if max_body and len(body) > max_body:
            raise LimitError(f"this request is {len(body) / 2**20:.0f} MB; the server at {self.url} "
                             f"accepts at most {max_body / 2**20:g} MB",
                             "send fewer frames per call or smaller images")
        # Big bodies get time in proportion (at a pessimistic 20 MB/s).
        job = self._request("POST", f"/v1/jobs/{op}", data=body,
                            read_timeout=self.timeout + len(body) / 20e6).json()
        del body
        gen = self._follow(job["id"], progress, feeder)
        first = next(gen)  # errors in the job surface at the call, as locally
        return _chain(first, gen)

    def _follow(self, job_id: str, progress: Progress | None, feeder=None) -> Iterator:
        path = f"/v1/jobs/{job_id}"
        since, fetched, last_tick = -1, 0, None
        try:
            while True:
                if progress is not None and progress.cancelled:
                    raise CancelledError("cancelled by the user")
                status = self._json("GET", path, params={"since": since, "wait": self.poll_s},
                                    read_timeout=self.poll_s + self.timeout,
                                    what=f"went away while job {job_id[:8]} was running")
                since = status["version"]
                tick = (status["done"], status["total"], status["message"])
                if progress is not None and tick != last_tick:
                    progress.update(*tick)  # raises CancelledError once cancelled here
                    last_tick = tick
                while fetched < status["parts_ready"]:
                    part = self._bundle(f"{path}/parts/{fetched}",
                                        what=f"went away while sending results of job {job_id[:8]}")
                    fetched += 1
                    yield part
                if feeder is not None:
                    feeder(job_id, status)
                state = status["state"]
                if state == "done" and fetched >= status["parts_ready"]:
                    return
                if state in ("failed", "cancelled"):
                    err = PriorfxError.from_json(status.get("error") or {})
                    if state == "cancelled":
                        raise CancelledError(f"job {job_id[:8]} was cancelled on the server "
                                             f"({err.message})" if err.message else "job was cancelled")
                    raise err
        finally:
            self._release(path)

    def _release(self, path: str) -> None:
        """DELETE the job: cancels it if still running, frees its results. Best effort."""
        try:
            self._http.delete(self.url + path, timeout=(self.connect_timeout, 5.0))
        except requests.RequestException:
            pass


_BUNDLE_HEADERS = {"Content-Type": protocol.CONTENT_TYPE}


def _colour(colour: ColourSpec | None) -> dict[str, Any]:
    """The request field that tells the server the plate's colour space."""
    return {} if colour is None else {"colour": colour.to_json()}


def _ssl_reason(exc: BaseException) -> str:
    import re
    m = re.search(r"certificate verify failed: ([^(\]')\"]+)", str(exc))
    return m.group(1).strip() if m else type(exc).__name__


def _chain(first: Any, rest: Iterator) -> Iterator:
    try:
        yield first
        yield from rest
    finally:
        rest.close()  # releases the job on the server when the caller stops early


def _is_priorfx_error(resp: requests.Response) -> bool:
    return resp.headers.get("content-type", "").startswith("application/json")


def _error_from(resp: requests.Response, url: str) -> PriorfxError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body and "message" in body:
        return PriorfxError.from_json(body)
    if resp.status_code == 401:
        return AuthError(f"{url} refused the request (HTTP 401)", "check the token")
    return EngineUnreachableError(f"{url} answered HTTP {resp.status_code} without a priorfx error",
                                  "is a proxy in the way, or is this URL not a priorfx server?")


def _read_into_bytearray(resp: requests.Response) -> bytearray:
    """Read a streamed body into a writeable buffer (arrays decoded from it are writeable)."""
    length = resp.headers.get("content-length")
    if length is None or not length.isdigit():
        return bytearray(resp.content)
    buf = bytearray(int(length))
    view = memoryview(buf)
    pos = 0
    while pos < len(buf):
        n = resp.raw.readinto(view[pos:])
        if not n:
            raise OSError(f"connection closed after {pos} of {len(buf)} bytes")
        pos += n
    return buf


def _stamped(timestamp_ns: int | None) -> dict:
    """The frame's timestamp as a keyword, sent only when there is one (older servers
    do not take it)."""
    return {"timestamp_ns": int(timestamp_ns)} if timestamp_ns else {}


class RemoteShutterSession:
    """ShutterSession's calls, run by a session on the server over a WebSocket.

    Each call is one binary message each way (a small bundle header plus the
    raw pixels); the session keeps its state on the server between calls.
    """

    def __init__(self, engine: RemoteEngine, params):
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        self._engine = engine
        self.params = params
        self._state: dict = {}
        self.last_compute_ms: float | None = None  # server time of the last call's work
        scheme = "wss" if engine.url.startswith("https") else "ws"
        url = scheme + engine.url[engine.url.index(":"):] + "/v1/shutter/stream"
        headers = {protocol.PROTOCOL_HEADER: str(protocol.PROTOCOL_VERSION),
                   "User-Agent": f"priorfx/{priorfx.__version__}"}
        if engine.token:
            headers["Authorization"] = f"Bearer {engine.token}"
        limit = engine._handshake().get("limits", {}).get("max_body_bytes")
        self._max_message = limit
        ssl_ctx = None
        if scheme == "wss":
            import ssl
            # Trust what requests trusts for the HTTP calls (REQUESTS_CA_BUNDLE for a
            # studio's own certificate authority), else the system's store.
            ssl_ctx = ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE") or None)
        try:
            # Entered as a context manager, the form every websockets version supports.
            self._cm = connect(url, additional_headers=headers, compression=None, ssl=ssl_ctx,
                               open_timeout=engine.connect_timeout, close_timeout=2,
                               max_size=None if limit is None else limit + (1 << 16))
            self._ws = self._cm.__enter__()
        except (OSError, InvalidStatus, WebSocketException, TimeoutError) as exc:
            raise engine._unreachable("refused the stream connection", exc) from None
        self.methods = self._exchange({"op": "open", "params": protocol.params_to_json(params)}).get(
            "methods", [])

    def _exchange(self, message: dict) -> dict:
        from websockets.exceptions import ConnectionClosed

        data = protocol.pack(message)
        if self._max_message and len(data) > self._max_message:
            raise LimitError(f"this frame is {len(data) / 2**20:.1f} MB; the server at {self._engine.url} "
                             f"accepts at most {self._max_message / 2**20:g} MB per message",
                             "send smaller frames, or raise the server's --max-body-mb")
        try:
            self._ws.send(data)
            reply = self._ws.recv(timeout=self._engine.timeout)
        except (ConnectionClosed, OSError) as exc:
            raise self._engine._unreachable("closed the stream", exc) from None
        except TimeoutError:
            raise EngineUnreachableError(f"priorfx server at {self._engine.url} did not answer a "
                                         f"stream call within {self._engine.timeout:g} s") from None
        if isinstance(reply, str):
            raise EngineUnreachableError("the stream answered with text, not a priorfx bundle")
        out = protocol.unpack(bytearray(reply), allow_dataclasses=True)
        if isinstance(out, dict) and isinstance(out.get("error"), dict):
            raise PriorfxError.from_json(out["error"])
        return out

    def _call(self, method: str, *args, **kwargs) -> Any:
        reply = self._exchange({"method": method, "args": list(args), "kwargs": kwargs})
        self._state.update(reply.get("state") or {})
        self.last_compute_ms = reply.get("compute_ms")
        return reply["result"]

    # The session's state as of the last reply (the server sends it with each one).
    @property
    def readout(self) -> float:
        """Readout in use on the server: the given one, or the running estimate."""
        return self._state.get("readout", self.params.readout)

    @property
    def readout_estimated(self) -> bool:
        return self._state.get("readout_estimated", self.params.readout is None)

    @property
    def frames_in(self) -> int:
        return self._state.get("frames_in", 0)

    def push(self, frame: np.ndarray, timestamp_ns: int | None = None):
        """Same as ShutterSession.push: an RGB frame (float32 or uint8) in, the
        corrected frame of the same type out (None first with lookahead)."""
        return self._call("push", frame, **_stamped(timestamp_ns))

    def push_buffer(self, buf, fmt: str, width: int, height: int, strides=None, out=None,
                    timestamp_ns: int | None = None):
        """Same as ShutterSession.push_buffer: a camera buffer (NV12, I420, I422,
        YUY2, BGRA, RGBA) in, its corrected planes out (None first with lookahead).

        `buf` travels as it is (planes of a sequence are sent separately);
        `out`, when given, is filled here with the planes the server returns.
        """
        if isinstance(buf, (list, tuple)):
            buf = [np.asarray(p) if isinstance(p, np.ndarray) else bytes(p) for p in buf]
        elif not isinstance(buf, (bytes, np.ndarray)):
            buf = memoryview(buf)
        planes = self._call("push_buffer", buf, fmt, width, height, strides, **_stamped(timestamp_ns))
        if planes is None or out is None:
            return planes
        from priorfx.io import camera  # the same plane layout the local session writes

        dst = camera.planes(out, camera.normalise_format(fmt), int(width), int(height), strides)
        for src, d in zip(planes, dst):
            np.copyto(d, src)
        return tuple(dst)

    def flush(self) -> list:
        """Same as ShutterSession.flush: frames held back for lookahead."""
        return self._call("flush")

    def close(self, wait: bool = True) -> None:
        """Same as ShutterSession.close (`wait` has no meaning here: nothing runs locally)."""
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> "RemoteShutterSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
