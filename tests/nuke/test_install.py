"""`priorfx install nuke`: the init.py block, idempotent, through the real CLI."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from priorfx.errors import InputError
from priorfx.install import nuke as inst

PLUGIN = Path(__file__).resolve().parents[2] / "nuke"


def test_install_adds_the_block_once_and_keeps_the_users_lines(cli, tmp_path):
    nuke_dir = tmp_path / ".nuke"
    nuke_dir.mkdir()
    init = nuke_dir / "init.py"
    init.write_text("import nuke\nnuke.pluginAddPath('/studio/tools')\n")
    r = cli("install", "nuke", "--nuke-dir", str(nuke_dir))
    assert r.returncode == 0, r.stderr
    text = init.read_text()
    assert text.startswith("import nuke\nnuke.pluginAddPath('/studio/tools')\n")
    assert text.count(inst.BEGIN) == 1 and text.count(inst.END) == 1
    assert f"_nuke.pluginAddPath({PLUGIN.as_posix()!r})" in text
    exe = Path(sys.executable).with_name("priorfx")
    assert f"_os.environ.setdefault('PRIORFX_EXE', {str(exe)!r})" in text
    r2 = cli("install", "nuke", "--nuke-dir", str(nuke_dir))
    assert r2.returncode == 0 and "nothing changed" in r2.stdout
    assert init.read_text() == text


def test_install_creates_the_nuke_folder(cli, tmp_path):
    nuke_dir = tmp_path / "home" / ".nuke"
    r = cli("install", "nuke", "--nuke-dir", str(nuke_dir))
    assert r.returncode == 0, r.stderr
    assert (nuke_dir / "init.py").read_text().startswith(inst.BEGIN)


def test_print_only_changes_nothing(cli, tmp_path):
    r = cli("install", "nuke", "--nuke-dir", str(tmp_path), "--print")
    assert r.returncode == 0
    assert inst.BEGIN in r.stdout and "pluginAddPath" in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_merge_replaces_an_old_block(tmp_path):
    old = "a = 1\n" + inst.block(Path("/old/nuke"), "/old/priorfx") + "b = 2\n"
    new = inst.merge(old, inst.block(PLUGIN, "/new/priorfx"))
    assert "/old/" not in new and "/new/priorfx" in new
    assert new.startswith("a = 1\n") and new.endswith("b = 2\n")
    with pytest.raises(InputError, match="no end marker"):
        inst.merge(inst.BEGIN + "\nx\n", "y")


def test_the_block_runs_in_nuke_and_loads_the_plug_in(fnuke, monkeypatch):
    """Execute the generated lines with the fake nuke, as Nuke runs ~/.nuke/init.py."""
    monkeypatch.delenv("PRIORFX_EXE", raising=False)
    code = inst.block(PLUGIN, "/venv/bin/priorfx")
    exec(compile(code, "init.py", "exec"), {})
    assert fnuke._plugin_paths == [PLUGIN.as_posix()]
    assert os.environ["PRIORFX_EXE"] == "/venv/bin/priorfx"
    monkeypatch.delenv("PRIORFX_EXE")


def test_unwritable_nuke_dir_is_a_clear_error(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("install", "nuke", "--nuke-dir", str(blocker / ".nuke"))
    assert r.returncode == 11
    assert "cannot create" in r.stderr and "--print" in r.stderr


def test_exe_setting_and_default_folder_for_other_platforms(tmp_path):
    home = tmp_path / "Ann Lee"
    assert inst.default_nuke_dir(home) == home / ".nuke"
    assert inst.exe_setting([r"C:\Program Files\priorfx\Scripts\priorfx.exe"]) == \
        r"C:\Program Files\priorfx\Scripts\priorfx.exe"
    listed = inst.exe_setting(["/usr/bin/python3", "-m", "priorfx.cli"])
    assert json.loads(listed) == ["/usr/bin/python3", "-m", "priorfx.cli"]
    # the block Nuke runs keeps such a path intact (repr quoting)
    code = inst.block(Path(r"C:\Program Files\priorfx\hosts\nuke"), r"C:\Program Files\priorfx\Scripts\priorfx.exe")
    assert r"'C:\\Program Files\\priorfx\\Scripts\\priorfx.exe'" in code
