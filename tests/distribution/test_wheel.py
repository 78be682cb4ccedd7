"""From a built wheel in a clean venv (no checkout on the path): every host installs,
the installed adapters find that venv's core, and publish finds its plug-ins.

The real-GIMP and real-libobs runs of what this wheel installs are in
tests/gimp/test_gimp_plugin.py and tests/obs/test_install.py (they need those
folders' fixtures); they share the `wheel_install` fixture of tests/conftest.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE_NUKE = ROOT / "tests" / "nuke" / "fake_nuke"
pytestmark = pytest.mark.slow


def test_the_wheel_carries_every_host_and_the_kit(wheel_install):
    names = set(zipfile.ZipFile(wheel_install.wheel).namelist())
    for member in ("priorfx/hosts/priorfx_hostkit.py",
                   "priorfx/hosts/gimp/priorfx-undistort/priorfx-undistort.py",
                   "priorfx/hosts/obs/priorfx_rolling_shutter.py",
                   "priorfx/hosts/nuke/init.py", "priorfx/hosts/nuke/menu.py",
                   "priorfx/hosts/nuke/priorfx_nuke/node.py",
                   "priorfx/publish/plugins/validate_priorfx.py",
                   "priorfx/streaming/supervisor.py", "priorfx/models/manifest.json"):
        assert member in names, member
    assert not any(n.startswith(("tests/", "core/")) for n in names)


def test_info_runs_from_the_installed_venv(wheel_install):
    proc = wheel_install.run("info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert "--progress" in info["commands"]["matte"]


def test_install_gimp_and_obs_record_the_wheels_core(wheel_install, tmp_path):
    plugins = tmp_path / "GIMP 3" / "plug-ins"        # a path with a space, as on Windows and macOS
    proc = wheel_install.run("install", "gimp", "--plugins-dir", str(plugins))
    assert proc.returncode == 0, proc.stderr
    folder = plugins / "priorfx-undistort"
    assert json.loads((folder / "priorfx_host.json").read_text())["command"] == [str(wheel_install.priorfx)]
    assert (folder / "priorfx_hostkit.py").is_file() and (folder / "priorfx-undistort.py").stat().st_mode & 0o111
    obs_cfg = tmp_path / "obs-studio"
    (obs_cfg / "basic" / "scenes").mkdir(parents=True)
    (obs_cfg / "basic" / "scenes" / "Untitled.json").write_text(json.dumps({"name": "Untitled"}))
    proc = wheel_install.run("install", "obs", "--obs-config", str(obs_cfg))
    assert proc.returncode == 0, proc.stderr
    dest = obs_cfg / "priorfx"
    assert sorted(p.name for p in dest.iterdir()) == [
        "priorfx_host.json", "priorfx_hostkit.py", "priorfx_rolling_shutter.py", "priorfx_shm.py",
        "priorfx_supervisor.py"]
    scripts = json.loads((obs_cfg / "basic" / "scenes" / "Untitled.json").read_text())["modules"]["scripts-tool"]
    assert scripts == [{"path": str(dest / "priorfx_rolling_shutter.py"), "settings": {}}]


def test_install_nuke_and_the_node_reaches_the_wheels_core(wheel_install, tmp_path):
    nuke_dir = tmp_path / ".nuke"
    proc = wheel_install.run("install", "nuke", "--nuke-dir", str(nuke_dir))
    assert proc.returncode == 0, proc.stderr
    init = (nuke_dir / "init.py").read_text()
    site = str(wheel_install.venv)
    assert "pluginAddPath" in init and site in init and str(ROOT) not in init
    # What Nuke does at start-up: run init.py, then the node's job code asks the core who it is.
    probe = (
        "import sys, runpy\n"
        f"sys.path.insert(0, {str(FAKE_NUKE)!r})\n"
        "import nuke\n"
        f"runpy.run_path({str(nuke_dir / 'init.py')!r})\n"
        "import os\n"
        "from priorfx_nuke import jobs\n"
        "print(jobs.make_engine('local', '', os.environ).identity().version)\n")
    env = wheel_install.env()
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         cwd=wheel_install.work, timeout=300)
    assert run.returncode == 0, run.stderr
    import priorfx
    assert run.stdout.strip() == priorfx.__version__


def test_matte_and_publish_dry_run_from_the_wheel(wheel_install, sample_media, tmp_path):
    from priorfx import io as pio
    plate = tmp_path / "plate"
    plate.mkdir()
    photo = pio.read_image(sample_media / "grace_hopper.jpg")[::4, ::4, :3]
    for f in (1001, 1002):
        pio.write_image(plate / f"plate.{f:04d}.exr", np.ascontiguousarray(photo),
                        metadata={"oiio:ColorSpace": "sRGB"})
    results = tmp_path / "results"
    results.mkdir()
    proc = wheel_install.run("matte", str(plate / "plate.%04d.exr"), "-o", str(results / "matte.%04d.exr"),
                             "--quality", "fast", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    shot = tmp_path / "shot"
    proc = wheel_install.run("publish", str(results), "--to", str(shot), "--plate", str(plate / "plate.%04d.exr"),
                             "--dry-run", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not shot.exists()  # a dry run writes nothing
