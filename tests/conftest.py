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
