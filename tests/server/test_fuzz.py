"""Fuzzing `priorfx serve`: generated bundles, JSON headers, params, HTTP
requests and WebSocket messages against one real server on 127.0.0.1.

Whatever arrives, the server must answer below 500 with a JSON error, print
no traceback, and stay healthy. Bounded: a fixed number of examples per test
(about a minute for the whole file on a loaded 2-core machine).
"""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from priorfx.engines import protocol
from priorfx.engines.operations import OPERATIONS

FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
OPS = tuple(OPERATIONS)  # every registered operation is fuzzed
BUNDLE = {"Content-Type": protocol.CONTENT_TYPE}


@pytest.fixture(scope="module")
def fuzz_server(module_server):
    # Small limits: a generated request that happens to be valid stays cheap.
    s = module_server("--workers", "2", "--max-side", "64", "--max-frames", "4", "--max-body-mb", "2",
                      "--max-jobs", "64", "--body-timeout", "5", "--hello-timeout", "5")
    yield s
    s.stop()
    _assert_clean(s)


def _assert_clean(server) -> None:
    text = "".join(server.stderr)
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-4000:]


def _check(server, r: requests.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        body = r.json()
        assert body["error"] and body["message"], body
    # Drop what a valid request started: only the answers are under test.
    if r.status_code == 202:
        requests.delete(f"{server.url}/v1/jobs/{r.json()['id']}", headers=server.headers, timeout=10)
    _assert_clean(server)


# ---------------------------------------------------------------- generators

_names = st.sampled_from(["params", "frames", "image", "guides", "more", "total", "method", "args",
                          "kwargs", "strength", "readout", "mode", "quality", "$a", "$b", "$t", "$f",
                          "$d", "$dc", "f", "../../etc/passwd", ""]) | st.text(max_size=8)
_scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.text(max_size=20) | st.sampled_from(["/etc/passwd", "~/.ssh/id_rsa", "nan", "1e400"]))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_names, inner, max_size=4), max_leaves=20)
_dtypes = st.sampled_from(["float32", "uint8", "uint16", "float64", "bool", "int64", "object", "<f4", 7])
_small_arrays = st.builds(
    lambda shape, dtype, fill: np.full(shape, fill if np.dtype(dtype).kind == "f" else 1, dtype),
    st.lists(st.integers(0, 24), min_size=0, max_size=4).map(tuple),
    st.sampled_from([np.float32, np.uint8, np.uint16, np.float64, np.bool_]),
    st.sampled_from([0, 1, 0.5, np.nan, np.inf]))


def _params_for(op: str):
    fields = {"deshutter": ["readout", "mode", "scan", "lookahead", "strength", "target", "exposure"],
              "undistort": ["distance_m", "focal_mm", "strength", "face", "debug_overlay"],
              "matte": ["quality", "band_px", "temporal", "downsample_ratio"]}[op]
    return st.dictionaries(st.sampled_from(fields) | _names, _scalars, max_size=4)


@st.composite
def requests_trees(draw, op: str):
    """A request tree like RemoteEngine's, with any field replaced by junk."""
    frames = draw(st.lists(_small_arrays | _json, min_size=0, max_size=3))
    tree = {"params": draw(_params_for(op) | _json)}
    if op == "undistort":
        tree["image"] = draw(_small_arrays | _json)
    else:
        tree["frames"] = frames
        if draw(st.booleans()):
            tree["more"] = draw(st.booleans() | _scalars)
        if draw(st.booleans()):
            tree["total"] = draw(st.integers(-5, 10 ** 20) | _scalars)
        if op == "matte" and draw(st.booleans()):
            tree["guides"] = draw(st.dictionaries(st.sampled_from(["trimap", "holdout", "x"]),
                                                  _small_arrays | _json, max_size=2) | _json)
    if draw(st.booleans()):
        tree[draw(_names)] = draw(_json)
    return tree


def _raw(header: bytes, tail: bytes = b"", *, magic=b"PFXB", version=1, total=None) -> bytes:
    total = 20 + len(header) + len(tail) if total is None else total
    return struct.pack("<4sHHIQ", magic, version, 0, len(header), total) + header + tail


@st.composite
def json_headers(draw):
    """A bundle whose JSON header (tree and array descriptors) is generated."""
    n_bytes = draw(st.integers(0, 256))
    arrays = draw(st.lists(st.fixed_dictionaries({
        "dtype": _dtypes,
        "shape": st.lists(st.integers(-1, 2 ** 33) | st.sampled_from([0, 2 ** 31, 2 ** 62]), max_size=5)
        | _json,
        "offset": st.integers(-10, 2 ** 64) | _scalars,
        "nbytes": st.integers(-10, 2 ** 64) | _scalars,
    }, optional={"as": st.sampled_from(["float32/255", "int4", None])}), max_size=3))
    tree = draw(_json | st.fixed_dictionaries({"params": _json, "frames": st.lists(
        st.fixed_dictionaries({"$a": st.integers(-1, 4)}), max_size=3)}))
    head = draw(st.just({"tree": tree, "arrays": arrays}) | _json)
    text = json.dumps(head, allow_nan=True)
    if draw(st.booleans()):  # raw JSON quirks the encoder would never write
        text = text.replace("Infinity", "1e400").replace("NaN", "-1e999")
    return _raw(text.encode(), bytes(n_bytes))


# ---------------------------------------------------------------- the fuzz tests

@FUZZ
@given(op=st.sampled_from(OPS), data=st.data())
def test_fuzz_request_trees(fuzz_server, op, data):
    tree = data.draw(requests_trees(op))
    try:
        body = protocol.pack(tree)
    except protocol.UsageError:
        return  # the client refuses to send it at all (e.g. a dtype the wire has not)
    path = data.draw(st.sampled_from([f"/v1/jobs/{op}", f"/v1/run/{op}"]))
    _check(fuzz_server, fuzz_server.post(path, body))


@FUZZ
@given(body=json_headers(), op=st.sampled_from(OPS))
def test_fuzz_json_headers(fuzz_server, body, op):
    _check(fuzz_server, fuzz_server.post(f"/v1/jobs/{op}", body))


@FUZZ
@given(data=st.data())
def test_fuzz_bundle_bytes(fuzz_server, data):
    """Valid bundles with bytes flipped, cut or appended, and hand-made fixed headers."""
    frames = [np.full((8, 8, 3), 0.25, np.float32)] * 2
    good = bytearray(protocol.pack({"params": {}, "frames": frames}))
    kind = data.draw(st.sampled_from(["flip", "cut", "append", "header"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(good) - 1))
            good[i] = data.draw(st.integers(0, 255))
        body = bytes(good)
    elif kind == "cut":
        body = bytes(good[:data.draw(st.integers(0, len(good)))])
    elif kind == "append":
        body = bytes(good) + data.draw(st.binary(max_size=300))
    else:
        body = _raw(data.draw(st.binary(max_size=200)), data.draw(st.binary(max_size=64)),
                    magic=data.draw(st.sampled_from([b"PFXB", b"PFXA", b"\0\0\0\0"])),
                    version=data.draw(st.sampled_from([1, 0, 2, 65535])),
                    total=data.draw(st.none() | st.integers(0, 2 ** 64 - 1)))
    _check(fuzz_server, fuzz_server.post("/v1/jobs/matte", body))


_paths = st.sampled_from(["/v1/health", "/v1/info", "/v1/models", "/v1/jobs", "/v1/run/matte",
                          "/v1/jobs/deshutter", "/v1/jobs/0123abcd", "/v1/jobs/x/parts/3",
                          "/v1/jobs/x/parts/-1", "/v1/jobs/x/frames", "/v1/shutter/stream", "/v1/../etc"])


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "OPTIONS", "HEAD", "PATCH"]),
       path=_paths | _paths.flatmap(lambda p: st.text(
           alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#%"),
           max_size=12).map(lambda t: p + "/" + t)),
       query=st.dictionaries(st.sampled_from(["since", "wait", "x"]),
                             st.text(max_size=12) | st.sampled_from(["nan", "inf", "-1", "1e400", "30"]),
                             max_size=2),
       headers=st.dictionaries(st.sampled_from(["Content-Type", "Origin", "X-Priorfx-Protocol", "Accept"]),
                               st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                       max_size=30).map(str.strip),  # requests refuses the rest
                               max_size=3),
       body=st.binary(max_size=200))
def test_fuzz_http_requests(fuzz_server, method, path, query, headers, body):
    # The job to poke at exists: a matte job waiting for more frames.
    r = requests.request(method, fuzz_server.url + path, params=query, data=body or None,
                         headers={**fuzz_server.headers, **headers}, timeout=40)
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400 and method != "HEAD":
        assert r.json()["error"]
    if r.status_code == 202:
        requests.delete(f"{fuzz_server.url}/v1/jobs/{r.json()['id']}", headers=fuzz_server.headers,
                        timeout=10)
    _assert_clean(fuzz_server)


@FUZZ
@given(data=st.data())
def test_fuzz_job_frame_uploads(fuzz_server, data):
    frame = np.full((8, 8, 3), 0.5, np.float32)
    r = fuzz_server.post("/v1/jobs/matte", protocol.pack({"params": {}, "frames": [frame], "more": True}))
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    try:
        tree = data.draw(st.fixed_dictionaries({}, optional={
            "frames": st.lists(_small_arrays | _json, max_size=3) | _json,
            "guides": _json, "more": st.booleans() | _scalars}) | _json)
        try:
            body = protocol.pack(tree)
        except protocol.UsageError:
            return
        _check(fuzz_server, fuzz_server.post(f"/v1/jobs/{job}/frames", body))
    finally:
        requests.delete(f"{fuzz_server.url}/v1/jobs/{job}", headers=fuzz_server.headers, timeout=10)


_stream_messages = st.one_of(
    st.text(max_size=50),
    st.binary(max_size=120),
    st.builds(lambda m, a, k: {"method": m, "args": a, "kwargs": k},
              st.sampled_from(["push", "push_buffer", "flush", "close", "__init__", "_step"]) | _json,
              st.lists(_small_arrays | _scalars | st.binary(max_size=64)
                       | st.sampled_from(["NV12", "BGRA", "I420", "XXXX"]), max_size=6) | _json,
              st.dictionaries(st.sampled_from(["strides", "out", "frame", "fmt", "width", "height"])
                              | _names, _small_arrays | _scalars | st.lists(_scalars, max_size=4),
                              max_size=3) | _json),
    _json,
)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(hello=st.none() | _json, messages=st.lists(_stream_messages, min_size=1, max_size=6))
def test_fuzz_websocket_messages(fuzz_server, hello, messages):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = fuzz_server.url.replace("http", "ws") + "/v1/shutter/stream"
    with connect(url, additional_headers=fuzz_server.headers, compression=None) as ws:
        try:
            ws.send(protocol.pack({"params": {} if hello is None else hello}))
            opening = protocol.unpack(ws.recv(timeout=60))
            if "error" in opening:
                assert opening["error"]["error"] != "error", opening
                return
            for m in messages:
                if isinstance(m, dict) or not isinstance(m, (str, bytes)):
                    try:
                        m = protocol.pack(m)
                    except protocol.UsageError:
                        continue
                ws.send(m)
                reply = protocol.unpack(ws.recv(timeout=60), allow_dataclasses=True)
                if "error" in reply:  # a client mistake, never an internal error
                    assert reply["error"]["error"] != "error", reply
                    assert "internal" not in reply["error"]["message"], reply
        except ConnectionClosed:
            pass
    _assert_clean(fuzz_server)
    assert requests.get(fuzz_server.url + "/v1/health", timeout=10).status_code == 200
