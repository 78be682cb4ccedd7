"""The priorfx inference server.

`priorfx serve` runs `app.create_app()` on uvicorn. Its clients are
`priorfx.engines.remote.RemoteEngine` (HTTP jobs, and a WebSocket for live
shutter streams) or any HTTP client speaking the wire format of
`priorfx.engines.protocol`. Nothing here is imported by the core unless the
server is started.
"""
from priorfx.engines.protocol import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
