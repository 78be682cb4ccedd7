"""A remote `priorfx serve` mattes with the priors registered on it, by id:
the same pixels as locally, and a clear error when it lacks the prior."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from priorfx.engines import LocalEngine
from priorfx.errors import ModelMissingError
from priorfx.matting import MattingParams


@pytest.fixture
def key_home(private_home, prior_models, cli, tmp_path):
    for mid, kw in (("key", {}), ("key-rec", {"recurrent": True})):
        r = cli("models", "add", mid, str(prior_models.onnx(tmp_path / f"{mid}.onnx", **kw)),
                "--role", "person-matting")
        assert r.returncode == 0, r.stderr
    return private_home


def test_registered_prior_remote_equals_local(key_home, start_server, key_image, cli, tmp_path):
    server = start_server(env={"PRIORFX_HOME": str(key_home)})
    frames = [key_image, np.ascontiguousarray(np.roll(key_image, 7, axis=1))]
    params = MattingParams(prior="key-rec", quality="fast")
    local = list(LocalEngine().matte(frames, params))
    remote = list(server.engine().matte(frames, params))
    assert len(remote) == 2
    for a, b in zip(local, remote):
        for name in ("alpha", "fg", "prior_alpha", "confidence"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert b.provenance["prior"] == a.provenance["prior"]
        assert b.provenance["prior"]["id"] == "key-rec"
    # the CLI, as a user runs it
    img = tmp_path / "plate.png"
    cv2.imwrite(str(img), (key_image[..., ::-1] * 255).round().astype(np.uint8))
    outs = []
    for where in ([], ["--remote", server.url, "--token", server.token]):
        out = tmp_path / f"m{len(outs)}.png"
        r = cli("matte", str(img), "-o", str(out), "--prior", "key", "--quiet", *where)
        assert r.returncode == 0, r.stderr
        outs.append(cv2.imread(str(out), cv2.IMREAD_UNCHANGED))
    assert np.array_equal(outs[0], outs[1]) and outs[0][..., 3].max() == 255


def test_a_server_without_the_prior_says_so(private_home, start_server, key_image, cli, tmp_path):
    server = start_server(env={"PRIORFX_HOME": str(private_home)})
    with pytest.raises(ModelMissingError) as err:
        list(server.engine().matte([key_image], MattingParams(prior="studio-net")))
    assert "this priorfx server has no prior 'studio-net'" in err.value.message
    assert "rvm-mobilenetv3" in err.value.message  # what it has
    assert "register it on the server" in err.value.hint
    img = tmp_path / "plate.png"
    cv2.imwrite(str(img), (key_image[..., ::-1] * 255).round().astype(np.uint8))
    r = cli("matte", str(img), "-o", str(tmp_path / "m.png"), "--prior", "studio-net", "--quiet",
            "--remote", server.url, "--token", server.token)
    assert r.returncode == 4 and "this priorfx server has no prior 'studio-net'" in r.stderr
    assert not (tmp_path / "m.png").exists()


def test_a_server_asked_for_a_missing_gpu_says_so(key_home, start_server, key_image):
    from priorfx.errors import DeviceUnavailableError
    from priorfx.models import devices

    if "CUDAExecutionProvider" in devices.available_onnx_providers():
        pytest.skip("this machine's onnxruntime has CUDA: nothing is missing")
    server = start_server("--device", "cuda", env={"PRIORFX_HOME": str(key_home)})
    assert server.get("/v1/info").json()["device"] == "cuda"
    with pytest.raises(DeviceUnavailableError) as err:
        list(server.engine().matte([key_image], MattingParams(prior="key")))
    assert "no CUDAExecutionProvider" in err.value.message and "onnxruntime-gpu" in err.value.hint
