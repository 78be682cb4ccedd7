"""`priorfx install obs`: files in place, scene collections updated, the installed copy works in libobs."""
from __future__ import annotations

import json

import numpy as np
import pytest


def _obs_config(tmp_path):
    cfg = tmp_path / "obs-studio"
    (cfg / "basic" / "scenes").mkdir(parents=True)
    for name in ("Untitled", "Streaming"):
        (cfg / "basic" / "scenes" / f"{name}.json").write_text(json.dumps(
            {"name": name, "sources": [], "modules": {"scripts-tool": [{"path": "/other/script.lua"}]}}))
    return cfg


def test_install_copies_the_script_and_adds_it_to_every_scene_collection(cli, tmp_path, obs_helpers):
    cfg = _obs_config(tmp_path)
    r = cli("install", "obs", "--obs-config", str(cfg))
    assert r.returncode == 0, r.stderr
    dest = cfg / "priorfx"
    script = dest / "priorfx_rolling_shutter.py"
    assert script.read_bytes() == obs_helpers.SCRIPT.read_bytes()
    core = obs_helpers.REPO / "core" / "priorfx"
    for copied, source in (("priorfx_shm.py", "streaming/shm.py"),
                           ("priorfx_supervisor.py", "streaming/supervisor.py"),
                           ("priorfx_hostkit.py", "hosts/priorfx_hostkit.py")):
        assert (dest / copied).read_bytes() == (core / source).read_bytes()
    record_file = dest / "priorfx_host.json"
    assert json.loads(record_file.read_text())["command"] == [obs_helpers.PRIORFX]
    assert record_file.stat().st_mode & 0o777 == 0o600  # may hold a token
    for name in ("Untitled", "Streaming"):
        paths = [s["path"] for s in json.loads((cfg / "basic" / "scenes" / f"{name}.json").read_text())
                 ["modules"]["scripts-tool"]]
        assert paths == ["/other/script.lua", str(script)]
    assert f"installed {script}" in r.stdout and "Rolling Shutter Correction" in r.stdout
    # a second install changes nothing in the collections
    r2 = cli("install", "obs", "--obs-config", str(cfg))
    assert r2.returncode == 0 and "already listed" in r2.stdout
    assert len(json.loads((cfg / "basic" / "scenes" / "Untitled.json").read_text())
               ["modules"]["scripts-tool"]) == 2


def test_install_without_scene_collections_prints_the_steps(cli, tmp_path):
    cfg = tmp_path / "fresh-obs"
    r = cli("install", "obs", "--obs-config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert f"Tools > Scripts > + and pick {cfg / 'priorfx' / 'priorfx_rolling_shutter.py'}" in r.stdout


def test_install_into_an_unwritable_folder_fails_with_a_hint(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("install", "obs", "--obs-config", str(tmp_path), "--dest", str(blocker / "sub"))
    assert r.returncode == 11 and "--dest" in r.stderr


def _run_installed_copy(H, cfg, tmp_path) -> dict:
    """The installed script in libobs, finding the worker through its install record;
    the frame shown is the core's correction of its frame (near it: the live motion
    runs on its own thread), not the input."""
    from priorfx.shutter import ShutterParams, ShutterSession

    frames = [np.roll(H.texture(128, 64), 5 * k, axis=1) for k in range(3)]
    raws = H.write_frames(tmp_path / "f", "NV12", frames)
    settings = {"auto_readout": False, "readout": 0.7, "mode": "rs", "strength": 1.0, "lookahead": False}
    result = H.run_harness({"script": str(cfg / "priorfx" / "priorfx_rolling_shutter.py"), "canvas": [128, 64],
                            "settings": settings,
                            "steps": [{"op": "wait_live", "timeout": 180},
                                      {"op": "feed", "tag": "f", "dir": str(tmp_path / "f"), "wait_result": True}]},
                           tmp_path / "out", worker_env=False)
    session = ShutterSession(ShutterParams(readout=0.7, mode="rs", strength=1.0))
    ref = [b"".join(p.tobytes() for p in session.push_buffer(raw, "NV12", 128, 64)) for raw in raws]
    got, src = H.outputs(tmp_path / "out", "f"), H.shown(result, "f")
    assert src[2] in (1, 2) and got[2] != raws[src[2]]
    assert H.near_core(got[2], ref[src[2]], raws[src[2]], 128, 64)
    return result


@pytest.mark.host
def test_the_installed_copy_runs_in_libobs_with_the_recorded_worker(cli, tmp_path, obs_tools):
    cfg = _obs_config(tmp_path)
    assert cli("install", "obs", "--obs-config", str(cfg)).returncode == 0
    result = _run_installed_copy(obs_tools, cfg, tmp_path)
    assert "started worker pid" in result["log_text"] and f"{obs_tools.PRIORFX} worker shutter" in result["log_text"]


@pytest.mark.host
@pytest.mark.slow
def test_the_script_installed_from_the_wheel_runs_in_libobs(wheel_install, tmp_path, obs_tools):
    """`pip install priorfx` + `priorfx install obs`, with no checkout anywhere: the
    installed script loads its modules from beside itself and starts the wheel's worker."""
    cfg = _obs_config(tmp_path)
    inst = wheel_install.run("install", "obs", "--obs-config", str(cfg))
    assert inst.returncode == 0, inst.stderr
    result = _run_installed_copy(obs_tools, cfg, tmp_path)
    assert f"{wheel_install.priorfx} worker shutter" in result["log_text"]


def test_obs_config_folders_on_every_platform(tmp_path):
    from priorfx.install.common import executable_name
    from priorfx.install.obs import obs_config_dir
    home = tmp_path / "Ann Lee"
    assert obs_config_dir("win32", {"APPDATA": str(home / "AppData" / "Roaming")}, home) == \
        home / "AppData" / "Roaming" / "obs-studio"
    assert obs_config_dir("darwin", {}, home) == home / "Library" / "Application Support" / "obs-studio"
    assert obs_config_dir("linux", {"XDG_CONFIG_HOME": str(home / "cfg")}, home) == home / "cfg" / "obs-studio"
    flatpak = home / ".var" / "app" / "com.obsproject.Studio" / "config" / "obs-studio"
    flatpak.mkdir(parents=True)
    assert obs_config_dir("linux", {}, home) == flatpak   # only the Flatpak has run here
    (home / ".config" / "obs-studio").mkdir(parents=True)
    assert obs_config_dir("linux", {}, home) == home / ".config" / "obs-studio"
    assert executable_name("win32") == "priorfx.exe" and executable_name("linux") == "priorfx"
