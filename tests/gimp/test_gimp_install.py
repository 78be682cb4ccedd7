"""`priorfx install gimp` and the plug-in's GIMP-free helpers (plain Python, no GIMP)."""
from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SRC = ROOT / "gimp" / "priorfx-undistort" / "priorfx-undistort.py"
HOSTKIT = ROOT / "core" / "priorfx" / "hosts" / "priorfx_hostkit.py"


@pytest.fixture
def plugin(cli, tmp_path, monkeypatch):
    """The installed plug-in module, imported without GIMP (its GI imports live in
    _gimp_main), with its folder first on sys.path as when GIMP runs it."""
    dest = tmp_path / "plug-ins"
    assert cli("install", "gimp", "--plugins-dir", str(dest)).returncode == 0
    folder = dest / "priorfx-undistort"
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "priorfx_hostkit", raising=False)
    spec = importlib.util.spec_from_file_location("priorfx_undistort_plugin", folder / "priorfx-undistort.py")
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
    record = dest / "priorfx-undistort" / "priorfx_host.json"
    cfg = json.loads(record.read_text())
    assert cfg["command"] == [str(Path(sys.executable).with_name("priorfx"))]
    assert cfg["remote"] is None
    assert cfg["env"]["PRIORFX_HOME"] == str(tmp_path / "home")
    assert record.stat().st_mode & 0o777 == 0o600  # it may hold PRIORFX_TOKEN
    assert (dest / "priorfx-undistort" / "priorfx_hostkit.py").read_bytes() == HOSTKIT.read_bytes()
    assert "Filters > Distorts > Undistort Selfie" in proc.stdout


def test_install_with_remote_and_reinstall_updates_the_settings(cli, tmp_path):
    dest = tmp_path / "plug-ins"
    assert cli("install", "gimp", "--plugins-dir", str(dest)).returncode == 0
    proc = cli("install", "gimp", "--plugins-dir", str(dest), "--remote", "http://gpu-box:8765")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((dest / "priorfx-undistort" / "priorfx_host.json").read_text())
    assert cfg["remote"] == "http://gpu-box:8765"
    assert "gpu-box" in proc.stdout
    assert sorted(p.name for p in (dest / "priorfx-undistort").iterdir()) == \
        ["priorfx-undistort.py", "priorfx_host.json", "priorfx_hostkit.py"]  # no temporary files left


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


def test_default_folders_on_other_platforms(tmp_path):
    from priorfx.install import gimp as inst
    home = tmp_path / "My Home"
    win = inst.default_plugins_dir("win32", {"APPDATA": r"C:\Users\Ann Lee\AppData\Roaming"}, home)
    assert str(win).replace("\\", "/").endswith("Ann Lee/AppData/Roaming/GIMP/3.0/plug-ins")
    assert inst.default_plugins_dir("win32", {}, home) == home / "AppData" / "Roaming" / "GIMP" / "3.0" / "plug-ins"
    assert inst.default_plugins_dir("darwin", {}, home) == \
        home / "Library" / "Application Support" / "GIMP" / "3.0" / "plug-ins"
    flatpak = home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.0"
    flatpak.mkdir(parents=True)
    assert inst.default_plugins_dir("linux", {}, home) == flatpak / "plug-ins"  # only the Flatpak ran here
    (home / ".config" / "GIMP" / "3.0").mkdir(parents=True)
    assert inst.default_plugins_dir("linux", {}, home) == home / ".config" / "GIMP" / "3.0" / "plug-ins"


def test_command_line_carries_the_dialog_parameters(plugin):
    core = ["/opt/my tools/priorfx"]
    cmd = plugin.build_command(core, None, "/t/in.png", "/t/out.png", 1.25, 0.5, 35.0)
    assert cmd == ["/opt/my tools/priorfx", "undistort", "/t/in.png", "-o", "/t/out.png",
                   "--distance", "1.25", "--strength", "0.5", "--progress", "json",
                   "--png-compression", "1", "--focal-mm", "35"]
    auto = plugin.build_command(core, "http://h:1", "a", "b", 1.5, 1.0, None)
    assert "--focal-mm" not in auto and auto[-2:] == ["--remote", "http://h:1"]


def test_the_installed_plugin_finds_the_recorded_core(plugin):
    record = plugin.kit.load_record(plugin.PLUGIN_DIR)
    assert plugin.kit.find_core(record, {}) == [str(Path(sys.executable).with_name("priorfx"))]


def test_no_face_becomes_the_message_gimp_shows(plugin):
    err = plugin.kit.error_from_output("INFO: delegate\npriorfx: error: no face found in the image\n"
                                       "priorfx: hint: try a larger face\n", 6)
    assert plugin.user_message(err) == ("Undistort Selfie: no face found in the image. The image was "
                                        "not changed. (try a larger face)")
    other = plugin.kit.error_from_output("Traceback ...\nRuntimeError: boom\n", 1)
    assert plugin.user_message(other).startswith("Undistort Selfie: priorfx failed with exit code 1")


def test_the_cores_face_lines_become_the_message(plugin, sample, tmp_path):
    """The real CLI through the plug-in's own call: one line per face, distance and interval."""
    faces = plugin.run_filter(plugin.kit.load_record(plugin.PLUGIN_DIR), str(sample("single_face.jpg")),
                              str(tmp_path / "out.png"), 1.5, 1.0, 26.0)
    assert len(faces) == 1 and faces[0].startswith("face 0: about ") and "from the camera" in faces[0]
    assert "re-rendered at 150 cm" in faces[0]
    assert (tmp_path / "out.png").is_file()


def test_exif_focal_length_from_gimp_metadata(plugin):
    xml = ('<?xml version="1.0"?><metadata><tag name="Exif.Photo.FocalLength">85/1</tag>'
           '<tag name="Exif.Photo.FocalLengthIn35mmFilm">28</tag></metadata>')
    assert plugin.focal_35mm_from_metadata_xml(xml) == 28.0
    no35 = '<metadata><tag name="Exif.Photo.FocalLength">85/1</tag></metadata>'
    assert plugin.focal_35mm_from_metadata_xml(no35) is None
    assert plugin.focal_35mm_from_metadata_xml("not xml") is None


def test_preview_worker_estimates_when_the_dialog_opens_and_previews_again_warm(plugin, sample, tmp_path):
    """The dialog's worker (the real `priorfx worker portrait`): the first request,
    sent when the dialog opens, answers each face's distance with its interval and
    writes the preview; a second request with other settings is served by the same
    process (models loaded once); a missing file is an error reply, and the
    worker carries on; closing the dialog ends it."""
    from waits import wait_for

    worker = plugin.PreviewWorker(plugin.kit.load_record(plugin.PLUGIN_DIR))
    try:
        worker.send(str(sample("single_face.jpg")), str(tmp_path / "p1.png"), 1.5, 1.0, 26.0)
        assert worker.busy
        first = wait_for(worker.poll, "the worker's first reply")
        text = plugin.reply_text(first)
        assert first["ok"] and text.startswith("face 0: about ") and "cm (" in text and "from the camera" in text
        assert "re-rendered at 150 cm" in text and (tmp_path / "p1.png").is_file()
        worker.send(str(sample("single_face.jpg")), str(tmp_path / "p2.png"), 3.0, 0.5, 26.0)
        second = wait_for(worker.poll, "the worker's second reply")
        assert second["ok"] and second["faces"][0]["distance_m"] == first["faces"][0]["distance_m"]
        assert second["faces"][0]["target_m"] != first["faces"][0]["target_m"]
        worker.send(str(tmp_path / "missing.png"), str(tmp_path / "p3.png"), 1.5, 1.0, None)
        bad = wait_for(worker.poll, "the error reply")
        assert not bad["ok"] and "missing.png" in plugin.reply_text(bad)
        assert not (tmp_path / "p3.png").exists()
        assert worker.proc.poll() is None          # one process served all three
    finally:
        worker.close()
    assert worker.proc.wait(timeout=60) == 0


def test_preview_worker_says_no_face_like_the_filter(plugin, tmp_path):
    """A reduced copy without a face: the dialog shows the filter's own no-face message."""
    from waits import wait_for

    import numpy as np
    from priorfx import io as pio

    blank = tmp_path / "wall.png"
    pio.write_image(blank, np.full((240, 320, 3), 0.5, np.float32), bits=8)
    worker = plugin.PreviewWorker(plugin.kit.load_record(plugin.PLUGIN_DIR))
    try:
        worker.send(str(blank), str(tmp_path / "out.png"), 1.5, 1.0, None)
        reply = wait_for(worker.poll, "the no-face reply")
    finally:
        worker.close()
    assert plugin.reply_text(reply).startswith("Undistort Selfie: no face found in the image. The image was not changed.")
