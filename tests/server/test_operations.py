"""The operation registry (engines/operations.py) is the one place an operation is added.

Every entry is listed and served by a real server, callable by name on both
engines with the same pixels; and an operation registered only in the
registry (a toy one, added by this test) runs on LocalEngine, through a real
HTTP server's routes and on RemoteEngine, with nothing else changed.
"""
from __future__ import annotations

import dataclasses
import socket
import sys
import threading
import types

import numpy as np
import pytest

from priorfx.engines import LocalEngine
from priorfx.engines.operations import OPERATIONS, Operation, OperationCalls, operation
from priorfx.errors import InputError, NotFoundError

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def selfie(models_home):
    import priorfx.io as pio
    from priorfx import samples
    samples.fetch()
    return pio.read_image(samples.sample_path("single_face.jpg"))[..., :3]


def _params(op: Operation):
    """The operation's default parameters (the fast quality where there is one)."""
    params = op.params_class()()
    fields = {f.name for f in dataclasses.fields(params)}
    return dataclasses.replace(params, quality="fast") if "quality" in fields else params


def _inputs(op: Operation, selfie: np.ndarray):
    """A small input of the kind the operation takes, and fast parameters."""
    params = _params(op)
    if op.takes == "image":
        return selfie, params
    # three frames of a slow pan: motion for deshutter, a person for matte
    return [np.ascontiguousarray(selfie[8 * i:8 * i + 192, 8 * i:8 * i + 192]) for i in range(3)], params


def _arrays(result) -> list:
    """Every array a result holds (a dataclass, or a list of them)."""
    if isinstance(result, list):
        return [a for r in result for a in _arrays(r)]
    if isinstance(result, np.ndarray):
        return [result]
    out = []
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            out.append(value)
        elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            out.extend(value)
    return out


def test_every_operation_is_served_and_equal_local_and_remote(server, selfie):
    listed = server.engine().info()["server"]["operations"]
    assert listed == list(OPERATIONS)
    for name, op in OPERATIONS.items():
        data, params = _inputs(op, selfie)
        local = LocalEngine().run(name, data, params)
        remote = server.engine().run(name, data, params)
        if op.streamed:
            local, remote = list(local), list(remote)
        a, b = _arrays(local), _arrays(remote)
        assert a and len(a) == len(b), name
        assert all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b)), name
        # the named call is the same call
        named = getattr(LocalEngine(), name)
        assert callable(named) and name in vars(OperationCalls)


def _written(path) -> list:
    """The pixels of every frame written under a file or a sequence pattern."""
    import priorfx.io as pio
    return list(pio.read_frames(str(path))) if "%" in str(path) else [pio.read_image(path)]


def test_every_operations_file_pipeline_writes_the_same_files_on_both_engines(server, sample, tmp_path):
    for name, op in OPERATIONS.items():
        params = _params(op)
        if op.takes == "image":
            src, options, suffix = sample("single_face.jpg"), {}, "out.png"
        else:
            src, options, suffix = sample("single_face.mp4"), {"frame_range": (1, 3)}, "f_%04d.exr"
        outputs = []
        for engine in (LocalEngine(), server.engine()):
            folder = tmp_path / name / engine.name
            folder.mkdir(parents=True)
            op.pipeline()(str(src), str(folder / suffix), params, engine, **options)
            outputs.append(_written(folder / suffix))
        (local, remote) = outputs
        assert local and len(local) == len(remote), name
        assert all(np.array_equal(a, b) for a, b in zip(local, remote)), name


def test_unknown_operation_is_refused_by_name(server):
    with pytest.raises(NotFoundError, match="unknown operation 'blur'.*deshutter"):
        operation("blur")
    r = server.post("/v1/jobs/blur", b"")
    assert r.status_code == 404 and "deshutter, undistort, matte" in r.json()["hint"]


# ------------------------------------------------------------------ a toy operation

@dataclasses.dataclass
class InvertParams:
    amount: float = 1.0


def _invert(image, params, boundary, progress, settings):
    """The toy manipulation: works in the working encoding, like the real ones."""
    working = boundary.into(image)
    return np.float32(params.amount) - working


@pytest.fixture
def toy_operation(monkeypatch):
    module = types.ModuleType("priorfx_toy_invert")
    module.InvertParams = InvertParams
    module.WORKING_ENCODING = "display"
    monkeypatch.setitem(sys.modules, module.__name__, module)
    op = Operation("invert", module.__name__, "InvertParams", takes="image", streamed=False,
                   local=_invert, colour="undistort_managed", files="undistort_file")
    monkeypatch.setitem(OPERATIONS, "invert", op)
    return op


@pytest.fixture
def in_process_server(toy_operation):
    """A real uvicorn server on 127.0.0.1 in this process (so it sees the toy entry)."""
    import uvicorn

    from priorfx.server.app import ServerConfig, create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(create_app(ServerConfig()), log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    import requests
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for _ in range(600):  # until it answers
        try:
            requests.get(url + "/v1/health", timeout=1)
            break
        except requests.ConnectionError:
            threading.Event().wait(0.05)
    yield url
    srv.should_exit = True
    thread.join(30)
    sock.close()


def test_an_operation_added_to_the_registry_alone_runs_everywhere(in_process_server):
    from priorfx.engines.remote import RemoteEngine

    image = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    params = InvertParams(amount=0.75)
    local = LocalEngine().run("invert", image, params)
    assert np.array_equal(local, np.float32(0.75) - image)
    with RemoteEngine(in_process_server) as remote:
        assert "invert" in remote.info()["server"]["operations"]
        assert np.array_equal(remote.run("invert", image, params), local)
        with pytest.raises(InputError, match="image must be an image array"):
            remote.run("invert", [image, image], params)  # an image operation takes no frames
