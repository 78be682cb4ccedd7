"""`priorfx install gimp` and the plug-in's GIMP-free helpers (plain Python, no GIMP)."""
from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SRC = ROOT / "gimp" / "priorfx-undistort" / "priorfx-undistort.py"


@pytest.fixture(scope="module")
def plugin():
    """The plug-in module, imported without GIMP (its GI imports live in _gimp_main)."""
    spec = importlib.util.spec_from_file_location("priorfx_undistort_plugin", PLUGIN_SRC)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_install_copies_an_executable_plugin_and_records_the_core(cli, tmp_path):
    dest = tmp_path / "plug-ins"
    proc = cli("install", "gimp", "--plugins-dir", str(dest), env={"PRIORFX_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr
    script = dest / "priorfx-undistort" / "priorfx-undistort.py"
    assert script.read_bytes() == PLUGIN_SRC.read_bytes()
    assert script.stat().st_mode & stat.S_IXUSR
    cfg = json.loads((dest / "priorfx-undistort" / "priorfx-undistort.json").read_text())
    assert cfg["priorfx"] == str(Path(sys.executable).with_name("priorfx"))
    assert cfg["remote"] is None
    assert cfg["env"]["PRIORFX_HOME"] == str(tmp_path / "home")
    assert "Filters > Distorts > Undistort Selfie" in proc.stdout


def test_install_with_remote_and_reinstall_updates_the_settings(cli, tmp_path):
    dest = tmp_path / "plug-ins"
    assert cli("install", "gimp", "--plugins-dir", str(dest)).returncode == 0
    proc = cli("install", "gimp", "--plugins-dir", str(dest), "--remote", "http://gpu-box:8765")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((dest / "priorfx-undistort" / "priorfx-undistort.json").read_text())
    assert cfg["remote"] == "http://gpu-box:8765"
    assert "gpu-box" in proc.stdout
    assert sorted(p.name for p in (dest / "priorfx-undistort").iterdir()) == \
        ["priorfx-undistort.json", "priorfx-undistort.py"]  # no temporary files left


def test_install_refuses_a_bad_remote_url_and_a_non_priorfx_executable(cli, tmp_path):
    dest = tmp_path / "plug-ins"
    bad = cli("install", "gimp", "--plugins-dir", str(dest), "--remote", "gpu-box:8765")
    assert bad.returncode == 2 and "http://" in bad.stderr
    fake = tmp_path / "not-priorfx"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    bad = cli("install", "gimp", "--plugins-dir", str(dest), "--priorfx", str(fake))
    assert bad.returncode == 2 and "does not run" in bad.stderr
    assert not (dest / "priorfx-undistort").exists()


def test_uninstall_removes_the_plugin(cli, tmp_path):
    dest = tmp_path / "plug-ins"
    assert cli("install", "gimp", "--plugins-dir", str(dest)).returncode == 0
    proc = cli("install", "gimp", "--plugins-dir", str(dest), "--uninstall")
    assert proc.returncode == 0 and not (dest / "priorfx-undistort").exists()


def test_default_folder_is_gimp3_user_plugins(monkeypatch, tmp_path):
    from priorfx.install import gimp as inst
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    if sys.platform.startswith("linux"):
        assert inst.default_plugins_dir() == tmp_path / "cfg" / "GIMP" / "3.0" / "plug-ins"
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "profile"))
    assert inst.default_plugins_dir() == tmp_path / "profile" / "plug-ins"


def test_command_line_carries_the_dialog_parameters(plugin):
    cfg = {"priorfx": "/opt/pf/bin/priorfx", "remote": None}
    cmd = plugin.build_command(cfg, "/t/in.png", "/t/out.png", 1.25, 0.5, 35.0)
    assert cmd == ["/opt/pf/bin/priorfx", "undistort", "/t/in.png", "-o", "/t/out.png",
                   "--distance", "1.25", "--strength", "0.5", "--focal-mm", "35"]
    auto = plugin.build_command({**cfg, "remote": "http://h:1"}, "a", "b", 1.5, 1.0, None)
    assert "--focal-mm" not in auto and auto[-2:] == ["--remote", "http://h:1"]
    with pytest.raises(plugin.CoreError, match="priorfx install gimp"):
        plugin.build_command({"priorfx": None}, "a", "b", 1.5, 1.0, None)


def test_cli_errors_become_one_message(plugin):
    err = plugin.error_from_output(6, "INFO: delegate\npriorfx: error: no face found in the image\n"
                                      "priorfx: hint: try a larger face\n")
    assert err.no_face
    assert err.message == ("Undistort Selfie: no face found in the image. The image was not changed. "
                           "(try a larger face)")
    other = plugin.error_from_output(1, "Traceback ...\nRuntimeError: boom\n")
    assert not other.no_face and "exit code 1" in other.message and "boom" in other.message


def test_the_cores_face_lines_become_the_message(plugin, cli, sample, tmp_path):
    """The real CLI's stderr (progress bar and all) -> one line per face, distance and interval."""
    r = cli("undistort", str(sample("single_face.jpg")), "-o", str(tmp_path / "out.png"), "--focal-mm", "26")
    assert r.returncode == 0, r.stderr
    lines = plugin.face_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("face 0: about ") and "from the camera" in lines[0]
    assert "re-rendered at 150 cm" in lines[0]
    assert plugin.face_lines("undistort 40%|###\r\nINFO: x\nface 1: about 2.5 m (1.2 m or more) from the camera; "
                             "nothing to correct\n") == [
        "face 1: about 2.5 m (1.2 m or more) from the camera; nothing to correct"]


def test_missing_executable_is_a_clear_error(plugin, tmp_path):
    with pytest.raises(plugin.CoreError, match="cannot run .*priorfx install gimp"):
        plugin.run_core([str(tmp_path / "nope"), "undistort"], dict(os.environ))


def test_child_environment_drops_gimps_python_settings(plugin):
    env = plugin.child_env({"env": {"PRIORFX_HOME": "/models"}},
                           {"PYTHONPATH": "/gimp/py", "PYTHONHOME": "/gimp", "PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "PRIORFX_HOME": "/models"}


def test_exif_focal_length_from_gimp_metadata(plugin):
    xml = ('<?xml version="1.0"?><metadata><tag name="Exif.Photo.FocalLength">85/1</tag>'
           '<tag name="Exif.Photo.FocalLengthIn35mmFilm">28</tag></metadata>')
    assert plugin.focal_35mm_from_metadata_xml(xml) == 28.0
    no35 = '<metadata><tag name="Exif.Photo.FocalLength">85/1</tag></metadata>'
    assert plugin.focal_35mm_from_metadata_xml(no35) is None
    assert plugin.focal_35mm_from_metadata_xml("not xml") is None


def test_config_file_next_to_the_plugin(plugin, tmp_path):
    (tmp_path / plugin.CONFIG_NAME).write_text(json.dumps({"priorfx": "/x/priorfx", "remote": "http://r:1"}))
    cfg = plugin.load_core_config(str(tmp_path))
    assert cfg["priorfx"] == "/x/priorfx" and cfg["remote"] == "http://r:1"
    (tmp_path / plugin.CONFIG_NAME).write_text("{broken")
    with pytest.raises(plugin.CoreError, match="install gimp"):
        plugin.load_core_config(str(tmp_path))
