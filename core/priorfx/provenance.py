"""Provenance carried by every output: what made it, with which settings."""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, is_dataclass
from typing import Any

import priorfx


def provenance(operation: str, params: Any = None, models: list[str] | None = None,
               **extra: Any) -> dict:
    """A JSON-able dict: operation, parameters, model ids, priorfx version, time."""
    if is_dataclass(params):
        params = asdict(params)
    record = {
        "software": "priorfx",
        "priorfx_version": priorfx.__version__,
        "operation": operation,
        "parameters": params or {},
        "models": list(models or []),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(extra)
    return record


def provenance_json(record: dict) -> str:
    return json.dumps(record, sort_keys=True, default=str)
