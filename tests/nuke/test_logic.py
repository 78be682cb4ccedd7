"""The pure part of the Nuke adapter: ranges, cache keys, job protocol, layout."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from priorfx_nuke import logic
from priorfx_nuke.logic import AdapterError, MatteSettings

PLUGIN = Path(__file__).resolve().parents[2] / "nuke"


def test_adapter_sources_parse_as_python_3_7():
    """Nuke 13 embeds Python 3.7: no walrus, no positional-only params, etc."""
    files = sorted(PLUGIN.rglob("*.py"))
    assert {f.name for f in files} >= {"menu.py", "init.py", "node.py", "logic.py", "jobs.py", "farm.py"}
    for f in files:
        ast.parse(f.read_text(), filename=str(f), feature_version=(3, 7))


def test_adapter_imports_only_the_standard_library():
    import sys
    allowed = set(sys.stdlib_module_names) | {"nuke", "priorfx_nuke"}
    for f in PLUGIN.rglob("*.py"):
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
    key = "ff" + "0" * 62
    # The store is shared by all nodes under a root (same key -> same file).
    assert lay.store_path(key) == str(tmp_path / "store/ff" / (key + ".exr"))
    assert logic.cache_layout(str(tmp_path), "other").store_path(key) == lay.store_path(key)
    with pytest.raises(AdapterError):
        logic.cache_layout(str(tmp_path), "../escape")


def test_resolve_cache_root_precedence(tmp_path):
    script = str(tmp_path / "shots" / "sh010.nk")
    assert logic.resolve_cache_root(str(tmp_path / "c"), script, {"PRIORFX_NUKE_CACHE": "/x"}) == str(tmp_path / "c")
    assert logic.resolve_cache_root("  ", script, {"PRIORFX_NUKE_CACHE": str(tmp_path / "env")}) == str(tmp_path / "env")
    assert logic.resolve_cache_root("", script, {}) == str(tmp_path / "shots" / "priorfx_cache")
    unsaved = logic.resolve_cache_root("", "", {})
    assert unsaved.endswith("priorfx_nuke_cache") and os.path.isabs(unsaved)


def test_file_digest_follows_bytes(tmp_path):
    a, b = tmp_path / "a.exr", tmp_path / "b.exr"
    a.write_bytes(b"\x76\x2f\x31\x01" + bytes(100))
    b.write_bytes(b"\x76\x2f\x31\x01" + bytes(100))
    assert logic.file_digest(str(a)) == logic.file_digest(str(b))
    b.write_bytes(b"\x76\x2f\x31\x01" + bytes(99) + b"\x01")
    assert logic.file_digest(str(a)) != logic.file_digest(str(b))
    with pytest.raises(AdapterError, match="cannot read exported frame"):
        logic.file_digest(str(tmp_path / "missing.exr"))


# ------------------------------------------------------------------ cache keys

def _digests(frames, changed=None):
    out = {f: {"plate": "p%d" % f} for f in frames}
    if changed is not None:
        out[changed] = {"plate": "edited"}
    return out


def test_frame_keys_are_deterministic_and_distinct():
    frames = range(1, 6)
    k1 = logic.frame_keys(frames, _digests(frames), MatteSettings(), "m", "1.0")
    k2 = logic.frame_keys(list(frames), _digests(frames), MatteSettings(), "m", "1.0")
    assert k1 == k2
    assert len(set(k1.values())) == 5 and all(len(k) == 64 for k in k1.values())


def test_chained_keys_invalidate_the_changed_frame_and_everything_after():
    frames = range(1001, 1011)
    base = logic.frame_keys(frames, _digests(frames), MatteSettings(), "m", "1.0")
    edit = logic.frame_keys(frames, _digests(frames, changed=1005), MatteSettings(), "m", "1.0")
    same = [f for f in frames if base[f] == edit[f]]
    assert same == [1001, 1002, 1003, 1004]


def test_unchained_keys_invalidate_only_the_changed_frame():
    frames = range(1, 11)
    base = logic.frame_keys(frames, _digests(frames), MatteSettings(), "m", "1.0", chained=False)
    edit = logic.frame_keys(frames, _digests(frames, changed=5), MatteSettings(), "m", "1.0", chained=False)
    assert [f for f in frames if base[f] != edit[f]] == [5]


def test_a_later_range_start_starts_a_new_chain():
    """Frame 5 matted from frame 1 differs from frame 5 matted from frame 5 (recurrent state)."""
    full = logic.frame_keys(range(1, 11), _digests(range(1, 11)), MatteSettings(), "m", "1")
    tail = logic.frame_keys(range(5, 11), _digests(range(5, 11)), MatteSettings(), "m", "1")
    assert all(full[f] != tail[f] for f in range(5, 11))


@pytest.mark.parametrize("change", [
    {"settings": MatteSettings(quality="fast")},
    {"settings": MatteSettings(band_width=12)},
    {"settings": MatteSettings(temporal=0.25)},
    {"settings": MatteSettings(mask_channel="red")},
    {"model": "other-model"},
    {"version": "0.2.0"},
])
def test_any_setting_model_or_version_change_invalidates_every_frame(change):
    frames = range(1, 4)
    base = logic.frame_keys(frames, _digests(frames), MatteSettings(), "m", "0.1.0")
    other = logic.frame_keys(frames, _digests(frames), change.get("settings", MatteSettings()),
                             change.get("model", "m"), change.get("version", "0.1.0"))
    assert all(base[f] != other[f] for f in frames)


def test_guides_are_part_of_the_key():
    frames = [1, 2]
    plain = logic.frame_keys(frames, _digests(frames), MatteSettings(), "m", "1")
    guided = {f: {"plate": "p%d" % f, "holdout": "h"} for f in frames}
    assert logic.frame_keys(frames, guided, MatteSettings(), "m", "1")[1] != plain[1]


def test_settings_canonical_text_ignores_float_noise():
    assert MatteSettings(temporal=0.5).canonical() == MatteSettings(temporal=0.50000001).canonical()
    assert json.loads(MatteSettings().canonical())["quality"] == "best"


def test_frame_keys_refuse_unexported_frames():
    with pytest.raises(AdapterError, match="frame 3 was not exported"):
        logic.frame_keys([1, 2, 3], _digests([1, 2]), MatteSettings(), "m", "1")


def test_plan_work_chained_and_unchained():
    keys = {f: "k%d" % f for f in range(1, 8)}
    p = logic.plan_work(keys, {"k%d" % f for f in range(1, 8)})
    assert p.runs == [] and p.todo == [] and len(p.cached) == 7
    p = logic.plan_work(keys, {"k1", "k2", "k3", "k6"})
    assert p.todo == [4, 5, 7] and p.runs == [(1, 7)]  # state must be rebuilt from frame 1
    p = logic.plan_work(keys, {"k1", "k2", "k3", "k6"}, chained=False)
    assert p.runs == [(4, 5), (7, 7)]


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


def test_matte_command_follows_the_flags_the_cli_has():
    s = MatteSettings(band_width=8)
    old = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2, s,
                              supported=["--frames", "--quality", "--band-width", "--remote"])
    assert "--band-width" in old and "--temporal" not in old and "--progress" not in old
    auto = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2,
                               MatteSettings(band_width=0), supported=["--band-px"])
    assert "--band-px" not in auto  # 0 = automatic: leave the core's own default
    remote = logic.matte_command(["priorfx"], {"plate": "p.%04d.exr"}, "o.%04d.exr", 1, 2, s,
                                 supported=["--remote"], remote_url="http://gpu:8765")
    assert remote[-2:] == ["--remote", "http://gpu:8765"]
    with pytest.raises(AdapterError, match="no remote engine"):
        logic.matte_command(["priorfx"], {"plate": "p"}, "o", 1, 2, s, supported=[], remote_url="http://x")
    with pytest.raises(AdapterError, match="no plate"):
        logic.matte_command(["priorfx"], {"trimap": "t"}, "o", 1, 2, s)


def test_supported_flags_from_help_text():
    text = "usage: priorfx matte [-h] [--frames A-B] [--quality {fast,best}]\n  --band-px N  band\nsee foo--bar"
    assert logic.supported_flags(text) == ["--band-px", "--frames", "--quality"]


def test_parse_progress_line():
    assert logic.parse_progress_line('{"done": 3, "total": 10, "message": "frame 3"}') == (3, 10, "frame 3")
    assert logic.parse_progress_line('{"progress": {"done": 1, "total": 2}}\n') == (1, 2, "")
    for line in ("", "frames: 30%|###", '{"done": "x", "total": 2}', '{"total": 2}', "{broken"):
        assert logic.parse_progress_line(line) is None


def test_parse_cli_error_keeps_message_and_hint():
    err = logic.parse_cli_error("noise\npriorfx: error: guide is 10x10, plate is 20x20\n"
                                "priorfx: hint: render the guide at plate size\n", 3)
    assert err.message == "guide is 10x10, plate is 20x20"
    assert err.hint == "render the guide at plate size"
    raw = logic.parse_cli_error("Traceback...\nSegmentation fault\n", -11)
    assert "exit code -11" in raw.message and "Segmentation fault" in raw.message


def test_clean_env_drops_nukes_python_and_libraries(tmp_path):
    nuke_dir = tmp_path / "Nuke13.2v5"
    env = {"PYTHONHOME": str(nuke_dir), "PYTHONPATH": str(nuke_dir / "plugins"), "HOME": "/home/a",
           "LD_LIBRARY_PATH": os.pathsep.join([str(nuke_dir), "/usr/local/cuda/lib64"]),
           "DYLD_LIBRARY_PATH": str(nuke_dir / "lib")}
    out = logic.clean_env(env, str(nuke_dir))
    assert out == {"HOME": "/home/a", "LD_LIBRARY_PATH": "/usr/local/cuda/lib64"}
    assert env["PYTHONHOME"]  # the input is not changed
    studio = {"PRIORFX_REMOTE": "http://gpu:8765", "PRIORFX_TOKEN": "t"}
    assert logic.clean_env(studio, local=True) == {"PRIORFX_TOKEN": "t"}  # the knob said local
    assert logic.clean_env(studio) == studio


def test_find_core(tmp_path):
    exe = tmp_path / "priorfx"
    exe.write_text("#!/bin/sh\n")
    assert logic.find_core({"PRIORFX_EXE": str(exe)}, "/usr/bin/priorfx") == [str(exe)]
    assert logic.find_core({}, "/usr/bin/priorfx") == ["/usr/bin/priorfx"]
    with pytest.raises(AdapterError, match="does not exist") as e:
        logic.find_core({"PRIORFX_EXE": str(tmp_path / "gone")}, None)
    assert "priorfx install nuke" in e.value.hint
    with pytest.raises(AdapterError, match="not found"):
        logic.find_core({}, None)


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
    with pytest.raises(AdapterError, match="cannot choose the prior"):
        logic.matte_command(["priorfx"], {"plate": "p"}, "o", 1, 2, s, supported=["--frames"])
    with pytest.raises(AdapterError, match="is not a model id"):
        MatteSettings(prior="Studio Net!").validate()
    assert json.loads(s.canonical())["prior"] == "studio-net"  # a new prior is a new cache key
