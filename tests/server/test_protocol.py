"""The wire format: exact round trips, and clear errors for every malformed message."""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest

from priorfx.errors import InputError, UsageError, VersionMismatchError
from priorfx.engines import protocol


def test_round_trip_is_bit_exact_for_every_dtype():
    rng = np.random.default_rng(1)
    tree = {
        "f32": rng.random((37, 53, 3), dtype=np.float32),
        "f64": rng.random((5, 2)),
        "f16": rng.random((4, 4)).astype(np.float16),
        "u8": rng.integers(0, 256, (9, 7), dtype=np.uint8),
        "u16": rng.integers(0, 65536, (3, 3), dtype=np.uint16),
        "i64": np.array([-(2 ** 40), 5]),
        "mask": rng.random((6, 6)) > 0.5,
        "strided": rng.random((10, 10), dtype=np.float32)[::2, ::3],
        "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
    }
    out = protocol.unpack(bytearray(protocol.pack(tree)))
    for key, a in tree.items():
        assert out[key].dtype.kind == a.dtype.kind and out[key].shape == a.shape, key
        assert np.array_equal(out[key], a), key
    assert out["f32"].flags.writeable  # decoded from a bytearray: callers may edit in place


def test_scalars_tuples_bytes_and_special_keys_survive():
    tree = {"t": (1, 2.5, "x"), "nan": float("nan"), "inf": float("-inf"), "$weird": {"$a": 3},
            "raw": b"\x00\x01NV12", "np_scalar": np.float32(0.25), "none": None, "flag": True}
    out = protocol.unpack(protocol.pack(tree))
    assert out["t"] == (1, 2.5, "x") and isinstance(out["t"], tuple)
    assert np.isnan(out["nan"]) and out["inf"] == float("-inf")
    assert out["$weird"] == {"$a": 3}  # a user dict that looks like a marker is not mistaken
    assert out["raw"] == b"\x00\x01NV12"
    assert out["np_scalar"] == 0.25 and out["none"] is None and out["flag"] is True


def test_pack_u8_is_lossless_and_smaller_only_for_8bit_images():
    rng = np.random.default_rng(2)
    eight_bit = rng.integers(0, 256, (64, 80, 3)).astype(np.float32) / np.float32(255)
    continuous = rng.random((64, 80, 3), dtype=np.float32)
    packed = protocol.pack({"a": eight_bit}, pack_u8=True)
    assert len(packed) < eight_bit.nbytes / 3
    assert np.array_equal(protocol.unpack(packed)["a"], eight_bit)
    plain = protocol.pack({"a": continuous}, pack_u8=True)
    assert len(plain) > continuous.nbytes
    assert np.array_equal(protocol.unpack(plain)["a"], continuous)


def test_arrays_are_laid_out_at_aligned_offsets():
    msg = protocol.pack({"a": np.ones((3, 5), np.float32), "b": np.zeros(7, np.uint8)})
    head_len = struct.unpack_from("<I", msg, 8)[0]
    head = json.loads(msg[20:20 + head_len])
    assert [d["offset"] % protocol.ALIGN for d in head["arrays"]] == [0, 0]
    assert protocol.bundle_length(msg) == len(msg)


def _rewrite_header(msg: bytes, edit) -> bytes:
    head_len = struct.unpack_from("<I", msg, 8)[0]
    head = json.loads(msg[20:20 + head_len])
    data_start = head["arrays"][0]["offset"]
    edit(head)
    new = json.dumps(head).encode()
    pad = data_start - 20 - len(new)
    return struct.pack("<4sHHIQ", b"PFXB", 1, 0, len(new), len(msg)) + new + b" " * pad + msg[data_start:]


@pytest.mark.parametrize("mutate, words", [
    (lambda m: b"garbage", "shorter than"),
    (lambda m: b"GIF89a" + m[6:], "magic"),
    (lambda m: m[:-10], "header says"),
    (lambda m: m[:20] + b"{not json" + m[29:], "does not parse"),
    (lambda m: _rewrite_header(m, lambda h: h["arrays"][0].update(nbytes=12)), "cannot have"),
    (lambda m: _rewrite_header(m, lambda h: h["arrays"][0].update(offset=10 ** 9)), "outside"),
    (lambda m: _rewrite_header(m, lambda h: h["arrays"][0].update(dtype="object")), "dtype"),
    (lambda m: _rewrite_header(m, lambda h: h["arrays"][0].update(shape=[-1, 4])), "shape"),
    (lambda m: _rewrite_header(m, lambda h: h.update(tree={"x": {"$a": 5}})), "out of range"),
    (lambda m: _rewrite_header(m, lambda h: h.update(tree={"$dc": "os:system", "f": {}})), "objects"),
])
def test_malformed_messages_raise_input_error(mutate, words):
    msg = protocol.pack({"frames": [np.ones((8, 8, 3), np.float32)]})
    with pytest.raises(InputError) as info:
        protocol.unpack(mutate(msg))
    assert words in str(info.value)


def test_other_protocol_version_is_a_version_error():
    msg = bytearray(protocol.pack({"x": 1}))
    struct.pack_into("<H", msg, 4, 99)
    with pytest.raises(VersionMismatchError, match="protocol 99"):
        protocol.unpack(msg)


def test_nothing_but_data_can_be_sent():
    from pathlib import Path
    with pytest.raises(UsageError, match="never file paths"):
        protocol.pack({"guide": Path("/etc/passwd")})
    with pytest.raises(UsageError, match="cannot be sent"):
        protocol.pack({"a": np.array(["text"])})


@dataclass
class _Params:
    readout: float | None = None
    mode: Literal["rs", "rsgr"] = "rs"
    width: int = 320
    lookahead: bool = False
    name: str = "default"
    pair: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        if self.width < 16:
            raise ValueError("width must be at least 16")


def test_params_round_trip_and_validation():
    p = _Params(readout=0.5, mode="rsgr", width=640, lookahead=True, name="cam", pair=(0.25, 2.0))
    wire = json.loads(json.dumps(protocol.params_to_json(p)))
    assert protocol.params_from_json(_Params, wire) == p
    assert protocol.params_from_json(_Params, {"readout": 1}).readout == 1.0  # JSON int for a float


@pytest.mark.parametrize("data, words", [
    ({"bogus": 1}, "unknown _Params field(s): bogus"),
    ({"width": 3.5}, "_Params.width must be an integer"),
    ({"width": True}, "_Params.width must be an integer"),
    ({"lookahead": "yes"}, "_Params.lookahead must be true or false"),
    ({"mode": "fast"}, "must be one of 'rs', 'rsgr'"),
    ({"readout": "0.5"}, "_Params.readout"),
    ({"readout": float("nan")}, "finite"),
    ({"pair": [1.0]}, "must have 2 items"),
    ({"name": "/etc/passwd"}, "looks like a file path"),
    ({"name": "../../secret"}, "looks like a file path"),
    ({"width": 8}, "width must be at least 16"),
    ([1, 2], "must be a JSON object"),
])
def test_params_refused_with_the_field_named(data, words):
    with pytest.raises(UsageError) as info:
        protocol.params_from_json(_Params, data)
    assert words in str(info.value)


def test_decoded_arrays_have_native_dtypes():
    # An explicit '<f4' dtype (instead of native float32) is refused by OpenImageIO's writer.
    out = protocol.unpack(protocol.pack({"a": np.zeros((2, 2), np.float32), "b": np.zeros(3, np.uint16)}))
    assert out["a"].dtype.byteorder in "=|" and out["b"].dtype.byteorder in "=|"
    assert out["a"].dtype == np.float32 and out["a"].dtype.str == np.dtype(np.float32).str
