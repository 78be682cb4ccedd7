"""The pure part of the Nuke adapter: ranges, cache keys, job protocol, layout."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from priorfx_nuke import jobs, logic
from priorfx_nuke.logic import AdapterError, MatteSettings

HOSTKIT = Path(jobs.kit.__file__)

PLUGIN = Path(__file__).resolve().parents[2] / "nuke"


def test_adapter_sources_parse_as_python_3_7():
    """Nuke 13 embeds Python 3.7: no walrus, no positional-only params, etc."""
    files = sorted(PLUGIN.rglob("*.py")) + [HOSTKIT]
    assert {f.name for f in files} >= {"menu.py", "init.py", "node.py", "logic.py", "jobs.py", "farm.py",
                                       "priorfx_hostkit.py"}
    for f in files:
        ast.parse(f.read_text(), filename=str(f), feature_version=(3, 7))


def test_adapter_imports_only_the_standard_library():
    import sys
    allowed = set(sys.stdlib_module_names) | {"nuke", "priorfx_nuke", "priorfx_hostkit"}
    for f in [*PLUGIN.rglob("*.py"), HOSTKIT]:
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for n in names:
                assert n.split(".")[0] in allowed, f"{f.name} imports {n}"


# ------------------------------------------------------------------ ranges

def test_resolve_range_input_and_custom():
    assert logic.resolve_range("input", (1001, 1100), (1, 5)) == (1001, 1100)
    assert logic.resolve_range("custom", (1001, 1100), (1010, 1020)) == (1010, 1020)
    assert logic.resolve_range("custom", None, (7, 7)) == (7, 7)


def test_resolve_range_errors_say_what_to_do():
    with pytest.raises(AdapterError, match="empty") as e:
        logic.resolve_range("custom", None, (20, 10))
    assert "first frame" in e.value.hint
    with pytest.raises(AdapterError, match="no plate"):
        logic.resolve_range("input", None, (1, 2))
    with pytest.raises(AdapterError, match="not input or custom"):
        logic.resolve_range("shot", (1, 2), (1, 2))


def test_parse_range_text():
    assert logic.parse_range_text("1001-1100") == (1001, 1100)
    assert logic.parse_range_text(" 12 ") == (12, 12)
    assert logic.parse_range_text("-5--1") == (-5, -1)
    for bad in ("", "a-b", "3-1", "1-2-3"):
        with pytest.raises(AdapterError):
            logic.parse_range_text(bad)


def test_format_ranges():
    assert logic.format_ranges([3, 1, 2, 7, 9, 10]) == "1-3 7 9-10"
    assert logic.format_ranges([]) == ""
    assert logic.format_ranges([5]) == "5"


# ------------------------------------------------------------------ files and layout

def test_frame_path_expands_both_pattern_styles():
    assert logic.frame_path("/a/plate.%04d.exr", 7) == "/a/plate.0007.exr"
    assert logic.frame_path("/a/plate.####.exr", 1001) == "/a/plate.1001.exr"
    assert logic.frame_path("/a/p.##.exr", 123) == "/a/p.123.exr"
    with pytest.raises(AdapterError, match="not a frame pattern"):
        logic.frame_path("/a/plate.exr", 1)


def test_cache_layout_paths(tmp_path):
    lay = logic.cache_layout(str(tmp_path), "abc123")
    assert lay.export_pattern("plate") == str(tmp_path / "nodes/abc123/export/plate/plate.%04d.exr")
    assert lay.out_pattern() == str(tmp_path / "nodes/abc123/out/matte.%04d.exr")
    assert lay.root == str(tmp_path)   # the core's --cache folder, shared by every node under it
    with pytest.raises(AdapterError):
        logic.cache_layout(str(tmp_path), "../escape")


def test_resolve_cache_root_precedence(tmp_path):
    script = str(tmp_path / "shots" / "sh010.nk")
    assert logic.resolve_cache_root(str(tmp_path / "c"), script, {"PRIORFX_NUKE_CACHE": "/x"}) == str(tmp_path / "c")
    assert logic.resolve_cache_root("  ", script, {"PRIORFX_NUKE_CACHE": str(tmp_path / "env")}) == str(tmp_path / "env")
    assert logic.resolve_cache_root("", script, {}) == str(tmp_path / "shots" / "priorfx_cache")
    unsaved = logic.resolve_cache_root("", "", {})
    assert unsaved.endswith(f"priorfx_nuke_cache-{os.getuid()}") and os.path.isabs(unsaved)
    # per user, and closed to the others (not a shared /tmp name)
    assert os.stat(unsaved).st_mode & 0o777 == 0o700 and os.stat(unsaved).st_uid == os.getuid()


def test_unsaved_cache_refuses_a_folder_others_can_write(tmp_path, monkeypatch):
    monkeypatch.setattr(logic.tempfile, "gettempdir", lambda: str(tmp_path))
    planted = tmp_path / f"priorfx_nuke_cache-{os.getuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    with pytest.raises(AdapterError, match="others can write"):
        logic.resolve_cache_root("", "", {})
    planted.rmdir()
    (tmp_path / "elsewhere").mkdir()
    planted.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AdapterError):
        logic.resolve_cache_root("", "", {})


def test_settings_canonical_text_ignores_float_noise():
    assert MatteSettings(temporal=0.5).canonical() == MatteSettings(temporal=0.50000001).canonical()
    assert json.loads(MatteSettings().canonical())["quality"] == "best"


def test_settings_validation():
    assert MatteSettings().validate() == MatteSettings()
    for bad, msg in ((MatteSettings(quality="ultra"), "quality"),
                     (MatteSettings(band_width=-1), "band width"),
                     (MatteSettings(band_width=9999), "band width"),
                     (MatteSettings(temporal=1.5), "temporal"),
                     (MatteSettings(mask_channel="green"), "mask channel")):
        with pytest.raises(AdapterError, match=msg):
            bad.validate()


# ------------------------------------------------------------------ the core job protocol

def test_matte_command_with_guides_and_settings():
    cmd = logic.matte_command(["/venv/bin/priorfx"],
                              {"plate": "/c/plate.%04d.exr", "garbage": "/c/g.%04d.exr",
                               "trimap": "/c/t.%04d.exr"},
                              "/c/out/matte.%04d.exr", 1001, 1010,
                              MatteSettings(quality="fast", band_width=8, temporal=0.3))
    assert cmd[:5] == ["/venv/bin/priorfx", "matte", "/c/plate.%04d.exr", "-o", "/c/out/matte.%04d.exr"]
    joined = " ".join(cmd)
    assert "--frames 1001-1010" in joined and "--quality fast" in joined
    assert "--guide /c/t.%04d.exr" in joined and "--garbage /c/g.%04d.exr" in joined
    assert "--holdout" not in joined
    assert "--band 8" in joined and "--temporal 0.3" in joined
    assert "--remote" not in joined


def test_matte_command_band_zero_and_remote():
    auto = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2,
                               MatteSettings(band_width=0))
    assert "--band" not in auto  # 0 = automatic: leave the core's own default
    assert auto[auto.index("--progress") + 1] == "json"
    remote = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2,
                                 MatteSettings(band_width=8), remote_url="http://gpu:8765")
    assert remote[-2:] == ["--remote", "http://gpu:8765"]
    with pytest.raises(AdapterError, match="no plate"):
        logic.matte_command(["priorfx"], {"trimap": "t"}, "o", 1, 2, MatteSettings())


def test_subject_knobs_become_the_cores_top_left_pixels():
    """Nuke's origin is the bottom-left corner, y up; the core's the top-left, y down."""
    assert logic.subject_guide("all", (10, 20), (0, 0, 5, 5), 360) == ""
    assert logic.subject_guide("point", (150.5, 100), (0, 0, 0, 0), 360) == "150.5,260"
    # a box dragged from its top-right corner: x, y, r, t in any order of corners
    assert logic.subject_guide("box", (0, 0, 0, 0), (600, 350, 310, 10), 360) == "310,10,600,350"
    with pytest.raises(AdapterError, match="subject mode"):
        logic.subject_guide("people", (0, 0), (0, 0, 0, 0), 360)
    cmd = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2,
                              MatteSettings(subject="-4,10,200,300").validate())
    assert "--subject=-4,10,200,300" in cmd  # one argument: a leading '-' is no option
    assert not any(a.startswith("--subject") for a in logic.matte_command(
        ["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2, MatteSettings()))
    assert MatteSettings(subject="1,2").canonical() != MatteSettings().canonical()  # a cache key
    for bad, msg in (("1,2,3", "is not x,y"), ("a,b", "is not x,y"), ("5,5,5,9", "box 5,5,5,9 is empty")):
        with pytest.raises(AdapterError, match=msg):
            MatteSettings(subject=bad).validate()


def test_matte_command_passes_the_plates_colour_space():
    s = MatteSettings(colorspace="ACES - ACEScg", ocio_config="/studio/aces_1.2/config.ocio")
    cmd = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2, s)
    assert cmd[cmd.index("--colorspace") + 1] == "ACES - ACEScg"
    assert cmd[cmd.index("--ocio") + 1] == "/studio/aces_1.2/config.ocio"
    assert MatteSettings(colorspace="linear").canonical() != MatteSettings(colorspace="ACEScg").canonical()


def test_plate_colour_follows_the_projects_ocio_settings():
    exe = "/opt/Nuke15.1v2/Nuke15.1"
    assert logic.plate_colour("nuke-default", "", "linear", exe, env={}) == \
        ("/opt/Nuke15.1v2/plugins/OCIOConfigs/configs/nuke-default/config.ocio", "linear")
    assert logic.plate_colour("aces_1.2", "", "ACES - ACEScg", exe, env={}) == \
        ("/opt/Nuke15.1v2/plugins/OCIOConfigs/configs/aces_1.2/config.ocio", "ACES - ACEScg")
    assert logic.plate_colour("fn-nuke_studio-config-v1.0.0_aces-v1.3_ocio-v2.1", "", "scene_linear", exe,
                              env={}) == ("ocio://studio-config-v1.0.0_aces-v1.3_ocio-v2.1", "scene_linear")
    assert logic.plate_colour("custom", "/show/config.ocio", "ACEScg", exe, "ACEScct", env={}) == \
        ("/show/config.ocio", "ACEScct")
    # $OCIO: Nuke and the core (same environment) both use it
    assert logic.plate_colour("nuke-default", "", "", exe, env={"OCIO": "/show/c.ocio"}) == ("", "scene_linear")
    with pytest.raises(AdapterError, match="no config file"):
        logic.plate_colour("custom", "", "linear", exe, env={})


def test_make_engine_takes_the_core_from_priorfx_exe_and_drops_remote_for_local(tmp_path):
    nuke_dir = tmp_path / "Nuke13.2v5"
    exe = tmp_path / "my tools" / "priorfx"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    env = {"PRIORFX_EXE": str(exe), "PYTHONHOME": str(nuke_dir), "PRIORFX_REMOTE": "http://gpu:8765",
           "LD_LIBRARY_PATH": os.pathsep.join([str(nuke_dir), "/usr/local/cuda/lib64"])}
    local = jobs.make_engine("local", "", env, host_dir=str(nuke_dir))
    assert local.exe == [str(exe)]
    assert "PYTHONHOME" not in local.env and "PRIORFX_REMOTE" not in local.env  # the knob said local
    assert local.env["LD_LIBRARY_PATH"] == "/usr/local/cuda/lib64"
    remote = jobs.make_engine("remote", "http://gpu:8765", env)
    assert remote.env["PRIORFX_REMOTE"] == "http://gpu:8765" and remote.remote_url == "http://gpu:8765"
    with pytest.raises(AdapterError, match="does not exist") as e:
        jobs.make_engine("local", "", {"PRIORFX_EXE": str(tmp_path / "gone")})
    assert "priorfx install" in e.value.hint


def test_channel_layout_maps_every_core_channel_into_nuke():
    assert set(logic.NUKE_CHANNELS) == set(logic.EXR_CHANNELS)
    layer, chans = logic.MATTE_LAYER
    assert all(c.startswith(layer + ".") for c in chans)
    assert [logic.NUKE_CHANNELS[c] for c in ("R", "G", "B", "A")] == \
        ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"]


def test_status_lines():
    assert logic.status_done(10, 4, 12.34, "local", "0.1.0") == \
        "done: 10 frames (6 new, 4 from cache) in 12.3 s on local engine, priorfx 0.1.0"
    assert logic.status_progress(1, 4, "frame 1001") == "processing 1/4 (25%): frame 1001"
    assert logic.status_error(logic.CancelledByUser()).startswith("cancelled")
    assert logic.status_error(AdapterError("bad", "fix")) == "error: bad (fix)"
    assert logic.progress_percent(3, 0) == 0 and logic.progress_percent(9, 3) == 100


def test_matte_command_passes_the_prior_knob():
    s = MatteSettings(prior="studio-net")
    cmd = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2, s)
    assert cmd[cmd.index("--prior") + 1] == "studio-net"
    default = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2, MatteSettings())
    assert "--prior" not in default  # empty knob: the core's own default prior
    with pytest.raises(AdapterError, match="is not a model id"):
        MatteSettings(prior="Studio Net!").validate()
    assert json.loads(s.canonical())["prior"] == "studio-net"  # a new prior is a new cache key
