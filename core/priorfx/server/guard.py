"""What the server checks before a request reaches an endpoint.

`RequestPolicy` decides from the headers alone (no body read yet):

- **Host**: a server without a token answers only requests addressed to a
  loopback name, an IP literal, the name it was bound to or a name given with
  `--allow-host`. A web page that rebinds its own DNS name to 127.0.0.1 sends
  its own name as Host and is refused, so it cannot read jobs or pixels.
  With a token the check is moot (the page cannot know the token) and skipped.
- **Origin**: browsers add Origin to cross-site requests and to every
  WebSocket handshake; priorfx clients never send one. A request whose Origin
  is not this server itself (or an `--allow-host` name) is refused, token or not.
- **Content-Type** of a POST must be the bundle type: a web form or a
  `text/plain` fetch (which a browser sends cross-site without asking) is
  refused with 415 before its body is read.

`BodyReader` reads a request body in the chunks the connection delivers:
nothing is reserved from Content-Length, the bytes being received by all
connections together are capped, and a body that stops arriving times out.
"""
from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect, Request

from priorfx.errors import (BodyTimeoutError, ForbiddenError, InputError, LimitError,
                            UnsupportedMediaError)

MB = 1 << 20
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
BODY_TYPES = frozenset({"application/x-priorfx-bundle", "application/octet-stream"})


def split_host(value: str) -> str:
    """The host name of a Host header or URL netloc, lower case, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class RequestPolicy:
    """Host, Origin and Content-Type rules of one server (see the module docstring)."""

    token_required: bool
    bound_host: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()

    def host_allowed(self, name: str) -> bool:
        if "*" in self.allow_hosts:
            return True
        return (name in LOOPBACK_NAMES or name.endswith(".localhost") or _is_ip(name)
                or name == split_host(self.bound_host) or name in {split_host(h) for h in self.allow_hosts})

    def check(self, headers: dict[str, str], scheme: str) -> None:
        """Host and Origin: before anything else, token or not."""
        host_header = headers.get("host", "")
        host = split_host(host_header)
        if not self.token_required and host_header and not self.host_allowed(host):
            raise ForbiddenError(
                f"this priorfx server answers requests addressed to itself, not to {host!r} "
                "(a web page rebinding its name to this machine would look like this)",
                f"connect with 127.0.0.1 or the server's address, or start it with --allow-host {host}")
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host_header, scheme):
            raise ForbiddenError(f"requests from the web page {origin!r} are refused",
                                 "priorfx clients send no Origin; to allow a page, start the "
                                 "server with --allow-host naming the page's host")

    def check_body_type(self, headers: dict[str, str], method: str) -> None:
        """A POST carries a bundle (after auth: strangers learn nothing more)."""
        if method == "POST":
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype not in BODY_TYPES:
                raise UnsupportedMediaError(
                    f"a POST body must be a priorfx bundle (Content-Type {sorted(BODY_TYPES)[1]}), "
                    f"not {ctype or 'untyped'}", "send bodies made by priorfx.engines.protocol.pack "
                    "with that Content-Type (RemoteEngine does)")

    def _origin_allowed(self, origin: str, host_header: str, scheme: str) -> bool:
        parts = urlsplit(origin)
        if not parts.netloc:
            return False  # "null" (a sandboxed page or a file://) is nobody's own origin
        own_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        if parts.scheme == own_scheme and parts.netloc.lower() == host_header.strip().lower():
            return True
        return split_host(parts.netloc) in {split_host(h) for h in self.allow_hosts}


class BodyBudget:
    """Bytes being received by all connections together, capped at `limit`."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight = 0

    def take(self, n: int) -> None:
        if self.in_flight + n > self.limit:
            raise LimitError(f"the server is already receiving {self.in_flight / MB:.0f} MB of "
                             f"uploads (its limit is {self.limit / MB:g} MB at once)",
                             "retry when the other uploads are done, or raise --max-inflight-mb",
                             ) from None
        self.in_flight += n

    def give_back(self, n: int) -> None:
        self.in_flight -= n


async def read_body(request: Request, limit: int, budget: BodyBudget, idle_timeout_s: float) -> bytearray:
    """The request body as a writeable buffer, read as it arrives.

    Refused (413) once it passes `limit` or a Content-Length over `limit`;
    refused when all uploads together pass the budget; a body that sends
    nothing for `idle_timeout_s` ends with 408. A client that disconnects
    raises ClientDisconnect, which the app answers quietly.
    """
    over = LimitError(f"request body is over this server's limit of {limit / MB:g} MB",
                      "send fewer frames per job or smaller images, or raise --max-body-mb")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise InputError("Content-Length is not a number")
        if int(length) > limit:
            raise over
    buf = bytearray()
    chunks = request.stream().__aiter__()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), idle_timeout_s)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise BodyTimeoutError(f"the request body stopped arriving for {idle_timeout_s:g} s "
                                       f"after {len(buf)} bytes", "send the whole body without pausing") from None
            if len(buf) + len(chunk) > limit:
                raise over
            budget.take(len(chunk))
            buf += chunk
    finally:
        budget.give_back(len(buf))
    if length is not None and len(buf) != int(length):
        raise InputError(f"request body ended after {len(buf)} of {int(length)} bytes")
    return buf


__all__ = ["RequestPolicy", "BodyBudget", "read_body", "split_host", "ClientDisconnect"]
