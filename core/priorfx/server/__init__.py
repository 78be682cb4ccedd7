"""The priorfx inference server and its client.

`priorfx serve` runs `app.create_app()` on uvicorn; `client.RemoteEngine`
offers the same calls as `priorfx.engine.LocalEngine` over HTTP (jobs) and a
WebSocket (live shutter streams). `protocol` defines the binary wire format
both sides share. Nothing here is imported by the core unless a remote URL is
configured or the server is started.
"""
from priorfx.server.protocol import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
