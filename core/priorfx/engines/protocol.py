"""Wire format shared by the server and RemoteEngine.

Pixels travel as raw little-endian planes, never as base64 JSON. One message
(an HTTP body, one part of a job's results, or one WebSocket message) is a
*bundle*::

    offset  size  field
    0       4     magic b"PFXB"
    4       2     protocol version (uint16, little-endian)
    6       2     flags (0)
    8       4     J = length of the JSON header in bytes (uint32)
    12      8     total length of the bundle in bytes (uint64)
    20      J     JSON header, UTF-8: {"tree": ..., "arrays": [...]}
    ...           zero padding, then each array's bytes at a 64-byte aligned
                  offset (so the receiver maps them with np.frombuffer, no copy)

`arrays[i]` is {"dtype", "shape", "offset", "nbytes"} and optionally
"as": "float32/255" for a float32 array sent losslessly as uint8 (used only
when every value is exactly k/255, which is what 8-bit sources decode to).
`tree` is JSON where an array is {"$a": i}, a bytes buffer {"$b": i}, a tuple
{"$t": [...]}, a non-finite float {"$f": "nan"|"inf"|"-inf"}, a dict with a
key starting with "$" {"$d": [[k, v], ...]} and a result dataclass
{"$dc": "module:Class", "f": {...}}. float32 planes are sent bit for bit, so
local and remote results are identical.

Parameters are the manipulation's dataclass as `dataclasses.asdict`; the
receiver rebuilds them with `params_from_json`, which checks every field
against the dataclass's annotations.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import struct
import sys
import types
import typing
from typing import Any

import numpy as np

from priorfx.errors import InputError, LimitError, UsageError, VersionMismatchError

PROTOCOL_VERSION = 1
CONTENT_TYPE = "application/x-priorfx-bundle"
PROTOCOL_HEADER = "X-Priorfx-Protocol"

MAGIC = b"PFXB"
_HEAD = struct.Struct("<4sHHIQ")
ALIGN = 64
MAX_JSON_BYTES = 4 << 20
MAX_NDIM = 4
MAX_DIM = 1 << 31  # one axis

# Only plain numeric dtypes cross the wire (no objects, no structured types),
# little-endian. Decoded arrays get the native dtype object ('=' not '<'):
# some bindings (OpenImageIO's) refuse an explicitly little-endian dtype.
DTYPES = {name: np.dtype(name).newbyteorder("<") for name in
          ("bool", "uint8", "uint16", "int32", "int64", "float16", "float32", "float64")}
_NATIVE_LE = sys.byteorder == "little"
_PACKED_U8 = "float32/255"
_INV255 = np.float32(255.0)


def _bad(msg: str) -> InputError:
    return InputError(f"message is not a valid priorfx bundle: {msg}",
                      "send bodies made by priorfx.engines.protocol.pack (RemoteEngine does)")


# ---------------------------------------------------------------- arrays

def _wire_name(dtype: np.dtype) -> str:
    for name, dt in DTYPES.items():
        if dt.kind == dtype.kind and dt.itemsize == dtype.itemsize:
            return name
    raise UsageError(f"arrays of dtype {dtype} cannot be sent to a priorfx server",
                     "use float32 images in [0, 1] (or uint8)")


def _try_pack_u8(a: np.ndarray) -> np.ndarray | None:
    """uint8 codes whose decode is bit-identical to `a`, or None."""
    if a.dtype != np.float32 or a.size < 4096:
        return None
    scaled = a * _INV255
    np.rint(scaled, out=scaled)
    if not (scaled.min() >= 0.0 and scaled.max() <= 255.0):  # also False for NaN
        return None
    codes = scaled.astype(np.uint8)
    if not np.array_equal(unpack_u8(codes), a):
        return None
    return codes


def unpack_u8(codes: np.ndarray) -> np.ndarray:
    """The float32 image that packed uint8 codes stand for (k / 255, correctly rounded)."""
    out = codes.astype(np.float32)
    out /= _INV255
    return out


# ---------------------------------------------------------------- tree codec

class _Encoder:
    def __init__(self, pack_u8: bool):
        self.pack_u8 = pack_u8
        self.arrays: list[tuple[np.ndarray, str | None]] = []

    def add(self, a: np.ndarray, as_: str | None = None) -> int:
        self.arrays.append((a, as_))
        return len(self.arrays) - 1

    def tree(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"$f": repr(obj)}
        if isinstance(obj, np.ndarray):
            if obj.dtype.byteorder == ">" or not obj.flags.c_contiguous:
                obj = np.ascontiguousarray(obj, dtype=obj.dtype.newbyteorder("<"))
            _wire_name(obj.dtype)
            if self.pack_u8:
                codes = _try_pack_u8(obj)
                if codes is not None:
                    return {"$a": self.add(codes, _PACKED_U8)}
            return {"$a": self.add(obj)}
        if isinstance(obj, np.generic):
            return self.tree(obj.item())
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return {"$b": self.add(np.frombuffer(obj, dtype=np.uint8))}
        if isinstance(obj, tuple):
            return {"$t": [self.tree(v) for v in obj]}
        if isinstance(obj, list):
            return [self.tree(v) for v in obj]
        if isinstance(obj, dict):
            if not all(isinstance(k, str) for k in obj):
                raise UsageError("only dicts with string keys can be sent to a priorfx server")
            if any(k.startswith("$") for k in obj):
                return {"$d": [[k, self.tree(v)] for k, v in obj.items()]}
            return {k: self.tree(v) for k, v in obj.items()}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            cls = type(obj)
            return {"$dc": f"{cls.__module__}:{cls.__qualname__}",
                    "f": {f.name: self.tree(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
        raise UsageError(f"a {type(obj).__name__} cannot be sent to a priorfx server",
                         "send arrays, numbers, strings and lists/dicts of them (never file paths)")


def pack(obj: Any, pack_u8: bool = False) -> bytes:
    """Encode a tree of JSON values, numpy arrays and bytes as one bundle.

    `pack_u8=True` sends float32 arrays whose values are all exactly k/255 as
    uint8 (4x fewer bytes, still bit-exact on arrival).
    """
    enc = _Encoder(pack_u8)
    tree = enc.tree(obj)
    # The header holds the array offsets, whose digits depend on where the data
    # starts: reserve room for the header, and grow the reservation if needed.
    reserve = len(json.dumps(tree, separators=(",", ":"))) + 160 * len(enc.arrays) + 64
    while True:
        data_start = _align(_HEAD.size + reserve) if enc.arrays else 0
        descs, offset = [], data_start
        for a, as_ in enc.arrays:
            d = {"dtype": _wire_name(a.dtype), "shape": list(a.shape), "offset": offset,
                 "nbytes": a.nbytes}
            if as_:
                d["as"] = as_
            descs.append(d)
            offset = _align(offset + a.nbytes)
        header = json.dumps({"tree": tree, "arrays": descs}, separators=(",", ":"),
                            allow_nan=False).encode()
        if not enc.arrays or _HEAD.size + len(header) <= data_start:
            break
        reserve = 2 * len(header)
    total = offset if enc.arrays else _HEAD.size + len(header)
    parts = [_HEAD.pack(MAGIC, PROTOCOL_VERSION, 0, len(header), total), header]
    pos = _HEAD.size + len(header)
    for d, (a, _as) in zip(descs, enc.arrays):
        parts.append(bytes(d["offset"] - pos))
        # A uint8 view works for every dtype (bool included) without a copy.
        parts.append(a.reshape(-1).view(np.uint8).data)
        pos = d["offset"] + a.nbytes
    parts.append(bytes(total - pos))
    return b"".join(parts)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def bundle_length(buf) -> int:
    """Total length of the bundle at the start of `buf` (reads only the fixed header)."""
    if len(buf) < _HEAD.size:
        raise _bad(f"{len(buf)} bytes is shorter than the {_HEAD.size}-byte header")
    magic, version, _flags, _jlen, total = _HEAD.unpack_from(buf, 0)
    if magic != MAGIC:
        raise _bad("wrong magic bytes (is this a priorfx client?)")
    if version != PROTOCOL_VERSION:
        raise VersionMismatchError(
            f"peer speaks priorfx protocol {version}, this side speaks {PROTOCOL_VERSION}",
            "install the same priorfx version on the client and the server")
    return total


def unpack(buf, allow_dataclasses: bool = False, max_arrays: int = 100_000,
           bytes_as_views: bool = False) -> Any:
    """Decode a bundle made by `pack`.

    Arrays are views into `buf` (writeable when `buf` is a bytearray); byte
    buffers are `bytes` copies, or memoryviews into `buf` with
    `bytes_as_views` (the live stream: no copy per frame). The server passes
    `allow_dataclasses=False`: a request can name no class to import. Every
    malformed input raises InputError, never another exception.
    """
    total = bundle_length(buf)
    jlen = _HEAD.unpack_from(buf, 0)[3]
    if total != len(buf):
        raise _bad(f"header says {total} bytes, the message has {len(buf)}")
    if jlen > MAX_JSON_BYTES or _HEAD.size + jlen > len(buf):
        raise _bad("JSON header length is out of range")
    try:
        head = json.loads(bytes(buf[_HEAD.size:_HEAD.size + jlen]), parse_constant=_no_constant,
                          parse_float=_finite_float)
    except RecursionError:
        raise _bad("JSON header is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"JSON header does not parse ({exc})") from None
    if not isinstance(head, dict) or not isinstance(head.get("arrays"), list) or "tree" not in head:
        raise _bad("JSON header lacks 'tree' and 'arrays'")
    if len(head["arrays"]) > max_arrays:
        raise LimitError(f"message holds {len(head['arrays'])} arrays, the limit is {max_arrays}")
    mv = memoryview(buf)
    arrays = [_array(mv, d, _HEAD.size + jlen) for d in head["arrays"]]
    return _Decoder(arrays, allow_dataclasses, bytes_as_views).tree(head["tree"], 0)


def unpack_all(buf, **kw) -> list:
    """Decode several bundles sent back to back (the answer of POST /v1/run/matte)."""
    mv = memoryview(buf)
    out = []
    while len(mv):
        n = bundle_length(mv)
        if n < _HEAD.size or n > len(mv):
            raise _bad(f"bundle of {n} bytes in {len(mv)} remaining")
        out.append(unpack(mv[:n], **kw))
        mv = mv[n:]
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    # 1e400 parses to inf: non-finite numbers travel only as {"$f": ...}.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _array(mv: memoryview, d: Any, data_start: int) -> np.ndarray:
    if not isinstance(d, dict):
        raise _bad("array descriptor is not an object")
    dtype, shape, off, nbytes = d.get("dtype"), d.get("shape"), d.get("offset"), d.get("nbytes")
    if dtype not in DTYPES:
        raise _bad(f"array dtype {dtype!r} is not one of {sorted(DTYPES)}")
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(type(s) is int and 0 <= s <= MAX_DIM for s in shape)):
        raise _bad(f"array shape {shape!r} is not a list of at most {MAX_NDIM} sizes")
    if type(off) is not int or type(nbytes) is not int or off < data_start or off + nbytes > len(mv):
        raise _bad("array bytes lie outside the message")
    dt = DTYPES[dtype]
    if math.prod(shape) * dt.itemsize != nbytes:
        raise _bad(f"array of shape {shape} and dtype {dtype} cannot have {nbytes} bytes")
    try:  # numpy refuses some zero-size shapes whose other axes multiply past its limit
        if _NATIVE_LE:
            a = np.frombuffer(mv[off:off + nbytes], dtype=np.dtype(dtype)).reshape(shape)
        else:  # a big-endian machine: convert (a copy) so the core sees native numbers
            a = np.frombuffer(mv[off:off + nbytes], dtype=dt).reshape(shape).astype(np.dtype(dtype))
    except ValueError:
        raise _bad(f"array shape {shape} is too large") from None
    as_ = d.get("as")
    if as_ is None:
        return a
    if as_ != _PACKED_U8 or dt != np.uint8:
        raise _bad(f"unknown array encoding {as_!r}")
    return unpack_u8(a)


class _Decoder:
    def __init__(self, arrays: list[np.ndarray], allow_dataclasses: bool, bytes_as_views: bool):
        self.arrays = arrays
        self.allow_dataclasses = allow_dataclasses
        self.bytes_as_views = bytes_as_views

    def tree(self, node: Any, depth: int) -> Any:
        if depth > 32:
            raise _bad("tree is nested too deeply")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.tree(v, depth + 1) for v in node]
        if not isinstance(node, dict):
            raise _bad(f"unexpected JSON value {type(node).__name__}")
        if len(node) == 1:
            (key, val), = node.items()
            if key in ("$a", "$b"):
                if type(val) is not int or not 0 <= val < len(self.arrays):
                    raise _bad(f"array reference {val!r} is out of range")
                a = self.arrays[val]
                if key == "$a":
                    return a
                return a.data if self.bytes_as_views else a.tobytes()
            if key == "$t":
                if not isinstance(val, list):
                    raise _bad("tuple is not a list")
                return tuple(self.tree(v, depth + 1) for v in val)
            if key == "$f":
                if val not in ("nan", "inf", "-inf"):
                    raise _bad(f"unknown float {val!r}")
                return float(val)
            if key == "$d":
                if not isinstance(val, list) or not all(
                        isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], str) for kv in val):
                    raise _bad("escaped dict is not a list of [key, value] pairs")
                return {k: self.tree(v, depth + 1) for k, v in val}
        if "$dc" in node:
            return self._dataclass(node, depth)
        if any(k.startswith("$") for k in node):
            raise _bad(f"unknown marker in {sorted(node)}")
        return {k: self.tree(v, depth + 1) for k, v in node.items()}

    def _dataclass(self, node: dict, depth: int) -> Any:
        if not self.allow_dataclasses:
            raise _bad("requests cannot contain objects")
        name, fields = node.get("$dc"), node.get("f")
        if not isinstance(name, str) or ":" not in name or not isinstance(fields, dict):
            raise _bad("malformed object")
        module, qualname = name.split(":", 1)
        # Only priorfx's own result types are rebuilt; anything else stays a dict.
        if module.split(".")[0] != "priorfx":
            raise _bad(f"object type {name} is not a priorfx type")
        try:
            cls = getattr(importlib.import_module(module), qualname)
        except (ImportError, AttributeError):
            raise _bad(f"this priorfx has no type {name}; upgrade the client") from None
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise _bad(f"{name} is not a result type")
        return cls(**{k: self.tree(v, depth + 1) for k, v in fields.items()})


# ---------------------------------------------------------------- parameters

def params_to_json(params: Any) -> dict:
    """A parameters dataclass as a dict of JSON scalars."""
    if not (dataclasses.is_dataclass(params) and not isinstance(params, type)):
        raise UsageError(f"parameters must be a dataclass instance, got {type(params).__name__}")
    return dataclasses.asdict(params)


def params_from_json(cls: type, data: Any) -> Any:
    """Rebuild `cls(**data)` after checking every field against its annotation.

    Unknown fields, wrong types, non-finite numbers and strings that look like
    file paths are refused with a UsageError naming the field: a request can
    never point the server at a file on its own disk.
    """
    if not isinstance(data, dict):
        raise UsageError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}",
                         f"known fields: {', '.join(sorted(known))}")
    kwargs = {name: _coerce(f"{cls.__name__}.{name}", value, hints.get(name, Any))
              for name, value in data.items()}
    try:
        params = cls(**kwargs)
        # Some parameter classes check themselves in validate() rather than
        # __post_init__: run it now so a bad request fails before any work.
        if callable(getattr(params, "validate", None)):
            params.validate()
        return params
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {cls.__name__}: {exc}") from None


def _coerce(where: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise UsageError(f"{where} must be a number, string or boolean")
        return _coerce_scalar(where, value, type(value))
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(where, value, arg)
            except UsageError as exc:
                errors.append(exc.message)
        raise UsageError(errors[0] if len(errors) == 1 else
                         f"{where} has the wrong type ({'; '.join(errors)})")
    if origin is typing.Literal:
        if value not in args or type(value) is bool and not any(a is value for a in args):
            raise UsageError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise UsageError(f"{where} must be a list, got {type(value).__name__}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(f"{where}[{i}]", v, args[0]) for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise UsageError(f"{where} must have {len(args)} items, got {len(value)}")
            items = [_coerce(f"{where}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args))]
        else:
            inner = args[0] if args else Any
            items = [_coerce(f"{where}[{i}]", v, inner) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is type(None):
        if value is not None:
            raise UsageError(f"{where} must be null")
        return None
    if isinstance(tp, type):
        return _coerce_scalar(where, value, tp)
    raise UsageError(f"{where} has a type ({tp}) that cannot be set remotely")


def _coerce_scalar(where: str, value: Any, tp: type) -> Any:
    if tp is bool:
        if type(value) is not bool:
            raise UsageError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if type(value) is not int:
            raise UsageError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise UsageError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UsageError(f"{where} must be a string, got {value!r}")
        if len(value) > 256 or any(c in value for c in "/\\\0") or value.startswith(("~", ".")):
            raise UsageError(f"{where}={value!r} looks like a file path; the server never opens "
                             "paths from a request", "send pixels in the request body instead")
        return value
    raise UsageError(f"{where} must be a {tp.__name__}, got {value!r}")
