"""The nuke-facing layer (node.py, menu.py, init.py, farm.py) against the strict fake `nuke`.

The core is replaced here by a small engine that copies the plate (and uses the
core's own priorfx.cache, as `priorfx matte --cache` does), so these tests are
about Nuke rules: what the node builds, main-thread only DAG work, proxy off
during export, ProgressTask and cancel, farm (no GUI) mode and what the node
says about the cache. test_e2e.py runs the same path through the real core.
"""
from __future__ import annotations

import json
import os
import runpy
import shutil
import threading
from pathlib import Path

import pytest

from priorfx import cache
from priorfx_nuke import jobs, logic, node as pnode

PLUGIN = Path(__file__).resolve().parents[2] / "nuke"


class CopyEngine:
    """Stands in for the core: each output frame is the plate's exported bytes + a tag."""

    name = "local"

    def __init__(self, version="9.9.9"):
        self.version = version
        self.runs = []            # (first, last, thread name)
        self.gate = None          # threading.Event: block each run until set or cancelled
        self.fail = None          # AdapterError to raise

    def identity(self):
        return jobs.Identity(self.name, self.version, "copy-model")

    def run(self, inputs, first, last, out_pattern, settings, on_progress, is_cancelled, cache_dir=""):
        """As the core does: serve the range from priorfx.cache when every key is stored,
        else copy every frame (a "run"), staged and renamed in at the end, and store them."""
        frames = list(range(first, last + 1))
        total = len(frames)
        store = cache.FrameCache(cache_dir) if cache_dir else None
        recipe = cache.recipe("copy", json.loads(settings.canonical()), ["copy-model"], self.version, ".exr")
        keys = cache.frame_keys(recipe, [{name: cache.file_digest(logic.frame_path(pat, f))
                                          for name, pat in inputs.items()} for f in frames])
        if store is not None and store.has_all(keys, ".exr"):
            for key, f in zip(keys, frames):
                store.get(key, logic.frame_path(out_pattern, f))
            return {"frames": total, "cached": total}
        self.runs.append((first, last, threading.current_thread().name))
        if self.fail is not None:
            raise self.fail
        stage = Path(out_pattern).parent / ".stage"
        stage.mkdir()
        try:
            for i, f in enumerate(frames):
                if self.gate is not None:
                    while not self.gate.wait(0.01):
                        if is_cancelled():
                            raise logic.CancelledByUser()
                with open(logic.frame_path(inputs["plate"], f), "rb") as src:
                    data = src.read()
                # the tag names the colour space the core was told the plate is in
                (stage / Path(logic.frame_path(out_pattern, f)).name).write_bytes(
                    b"matte:" + settings.quality.encode() + b":" + settings.colorspace.encode() + b":" + data)
                on_progress(i + 1, total, "frame {}".format(f))
            for key, f in zip(keys, frames):
                final = logic.frame_path(out_pattern, f)
                os.replace(stage / Path(final).name, final)
                if store is not None:
                    store.put(key, final)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return {"frames": total, "cached": 0}


@pytest.fixture
def engine(monkeypatch):
    eng = CopyEngine()
    monkeypatch.setattr(jobs, "make_engine", lambda *a, **k: eng)
    return eng


@pytest.fixture
def shot(fnuke, tmp_path):
    """A saved script with a Read of a 5-frame plate (1001-1005) and a PriorfxMatte under it."""
    plates = tmp_path / "plates"
    plates.mkdir()
    for f in range(1001, 1006):
        (plates / "plate.{}.exr".format(f)).write_bytes(b"frame%d" % f)
    fnuke.root()["name"].setValue(str(tmp_path / "sh010.nk"))
    read = fnuke.nodes.Read(file=str(plates / "plate.####.exr"), first=1001, last=1005)
    read.setSelected(True)
    node = pnode.create()
    return {"nuke": fnuke, "read": read, "node": node, "plates": plates, "tmp": tmp_path}


def _press(knob):
    knob.execute()


def _process_gui(nuke, node):
    _press(node["process"])
    nuke._run_until(lambda: node[pnode.ID_KNOB].value() not in pnode._RUNNING)


def _result_files(node, nuke):
    with node:
        read = nuke.toNode("result")
    return read


# ------------------------------------------------------------------ building

def test_create_builds_the_node_under_the_selection(shot):
    nuke, node, read = shot["nuke"], shot["node"], shot["read"]
    assert node.Class() == "Group" and node.name() == "PriorfxMatte1"
    assert node.input(0) is read  # connected like any new node
    knobs = node.knobs()
    for k in ("range_mode", "range_first", "range_last", "quality", "band_width", "temporal",
              "output", "engine", "remote_url", "cache_dir", "process", "cancel", "status"):
        assert k in knobs, k
    assert node["range_mode"].values() == ["input", "custom"]
    assert node["quality"].value() == "best"
    assert node["output"].values() == [label for _, label in logic.OUTPUTS]
    assert not node["range_first"].enabled() and not node["remote_url"].enabled()
    assert node[pnode.ID_KNOB].getFlag(nuke.INVISIBLE)
    inside = {n.name(): n for n in node.nodes()}
    inputs = [n for n in node.nodes() if n.Class() == "Input"]
    assert [n.name() for n in inputs] == ["plate", "trimap", "holdout", "garbage"]
    assert [n["number"].value() for n in inputs] == [0, 1, 2, 3]
    for name in ("plate", "trimap", "holdout", "garbage"):
        w = inside["export_" + name]
        assert w["disable"].value() is True  # never rendered by "Render all" or a farm
        assert (w["file_type"].value(), w["datatype"].value(), w["metadata"].value()) == \
            ("exr", "16 bit half", "no metadata")
        assert w["raw"].value() is True
    switch = inside["output_switch"]
    assert switch["which"].expression() == "parent.output"
    assert [switch.input(i).name() for i in range(4)] == \
        ["rgba_new_alpha", "premult", "fg_to_rgb", "matte_layer"]
    assert inside["premult"].input(0).name() == "fg_to_rgb"
    assert inside["fg_to_rgb"]["from2"].value() == "fg.blue"
    # no colour conversion inside the node: the core is told the plate's OCIO space
    assert not [n for n in node.nodes() if n.Class() == "Colorspace"]
    assert inside["export_plate"].input(0) is inside["plate"]
    layer = inside["matte_layer"]
    assert (layer["from1"].value(), layer["to1"].value()) == ("matte.confidence", "matte.confidence")
    assert inside["rgba_new_alpha"].input(0).name() == "plate"
    assert inside["Output1"].input(0) is switch
    assert nuke._layers["matte"] == ["matte.alpha", "matte.confidence"]
    assert nuke._layers["fg"] == ["fg.red", "fg.green", "fg.blue"]


def test_the_plates_ocio_space_goes_to_the_core(shot, engine, monkeypatch):
    """nuke-default: the working space 'linear'; an ACES config: its name for ACEScg;
    the artist's override wins; the config is the one the project uses."""
    nuke, node = shot["nuke"], shot["node"]
    monkeypatch.delenv("OCIO", raising=False)
    seen = []
    run = engine.run
    engine.run = lambda inputs, first, last, out, settings, *a, **kw: (seen.append(settings), run(
        inputs, first, last, out, settings, *a, **kw))[1]
    _process_gui(nuke, node)
    assert (seen[-1].colorspace, seen[-1].ocio_config) == \
        ("linear", "/opt/Nuke13.2v5/plugins/OCIOConfigs/configs/nuke-default/config.ocio")
    nuke.root()["OCIO_config"].setValue("fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1")
    nuke.root()["workingSpaceLUT"].setValue("ACES - ACEScg")
    _process_gui(nuke, node)
    assert (seen[-1].colorspace, seen[-1].ocio_config) == \
        ("ACES - ACEScg", "ocio://cg-config-v1.0.0_aces-v1.3_ocio-v2.1")
    read = _result_files(node, nuke)
    assert Path(logic.frame_path(read["file"].value(), 1002)).read_bytes() == b"matte:best:ACES - ACEScg:frame1002"
    nuke._user_sets(node, "plate_colorspace", "sRGB - Texture")
    assert node["status"].value().startswith("settings changed")
    _process_gui(nuke, node)
    assert seen[-1].colorspace == "sRGB - Texture"
    assert len(engine.runs) == 3  # each space is its own cache entry


def test_two_nodes_get_distinct_names_and_ids(shot):
    second = pnode.create()
    assert second.name() == "PriorfxMatte2"
    assert second[pnode.ID_KNOB].value() != shot["node"][pnode.ID_KNOB].value()


def test_studio_server_from_the_environment_is_the_default(fnuke, monkeypatch):
    monkeypatch.setenv("PRIORFX_REMOTE", "http://gpu-box:8765")
    node = pnode.create()
    assert node["engine"].value() == "remote" and node["remote_url"].value() == "http://gpu-box:8765"
    assert node["remote_url"].enabled()


def test_knob_changed_enables_the_knobs_that_apply(shot):
    nuke, node = shot["nuke"], shot["node"]
    nuke._user_sets(node, "range_mode", "custom")
    assert node["range_first"].enabled() and node["range_last"].enabled()
    nuke._user_sets(node, "engine", "remote")
    assert node["remote_url"].enabled()
    nuke._user_sets(node, "engine", "local")
    assert not node["remote_url"].enabled()
    assert not node["subject_point"].enabled() and not node["subject_box"].enabled()
    nuke._user_sets(node, "subject_mode", "point")
    assert node["subject_point"].enabled() and not node["subject_box"].enabled()
    nuke._user_sets(node, "subject_mode", "box")
    assert node["subject_box"].enabled() and not node["subject_point"].enabled()


# ------------------------------------------------------------------ Process in the GUI

def test_process_gui_exports_on_main_thread_runs_worker_and_shows_result(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    nuke.root()["proxy"].setValue(True)
    _press(node["process"])
    # The button returns at once; the export happened on the main thread with proxy off.
    executes = [e for e in nuke._events if e[0] == "execute"]
    assert executes == [("execute", "PriorfxMatte1.export_plate", 1001, 1005, False)]
    assert nuke.root()["proxy"].value() is True  # restored
    assert node["status"].value().startswith("exporting")
    nuke._run_until(lambda: node[pnode.ID_KNOB].value() not in pnode._RUNNING)
    assert engine.runs == [(1001, 1005, "priorfx-matte")]  # the core ran in the worker
    task = nuke._tasks[-1]
    assert task.thread == "priorfx-matte" and task.progress[-1] == 100
    assert any("processing" in m for m in task.messages)
    read = _result_files(node, nuke)
    cache = shot["tmp"] / "priorfx_cache"
    assert read["file"].value() == (str(cache / "nodes" / node[pnode.ID_KNOB].value() / "out" / "matte.%04d.exr"))
    assert (read["first"].value(), read["last"].value()) == (1001, 1005)
    assert ("reload", "PriorfxMatte1.result") in nuke._events
    for f in range(1001, 1006):
        data = Path(logic.frame_path(read["file"].value(), f)).read_bytes()
        assert data == b"matte:best:linear:frame%d" % f
    assert node["status"].value().startswith("done: 5 frames (5 new, 0 from cache)")
    shown = [e[3] for e in nuke._events if e[:3] == ("setValue", "PriorfxMatte1", "status")]
    assert any(t.startswith("processing") for t in shown)  # progress on the node, via the main thread
    with node:
        assert nuke.toNode("export_plate")["disable"].value() is True


def test_second_process_uses_the_cache_and_a_changed_knob_invalidates(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    _process_gui(nuke, node)
    _process_gui(nuke, node)
    assert len(engine.runs) == 1
    assert "(0 new, 5 from cache)" in node["status"].value()
    nuke._user_sets(node, "quality", "fast")
    assert node["status"].value().startswith("settings changed")
    _process_gui(nuke, node)
    assert len(engine.runs) == 2
    read = _result_files(node, nuke)
    assert Path(logic.frame_path(read["file"].value(), 1003)).read_bytes() == b"matte:fast:linear:frame1003"
    # Back to the old setting: the old frames are still in the store.
    nuke._user_sets(node, "quality", "best")
    _process_gui(nuke, node)
    assert len(engine.runs) == 2 and "(0 new, 5 from cache)" in node["status"].value()


def test_a_changed_plate_frame_reruns_the_shot(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    _process_gui(nuke, node)
    (shot["plates"] / "plate.1004.exr").write_bytes(b"retouched")
    _process_gui(nuke, node)
    assert [r[:2] for r in engine.runs] == [(1001, 1005), (1001, 1005)]  # recurrent: whole range
    assert "(5 new, 0 from cache)" in node["status"].value()
    read = _result_files(node, nuke)
    assert Path(logic.frame_path(read["file"].value(), 1004)).read_bytes() == b"matte:best:linear:retouched"


def test_custom_range(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    nuke._user_sets(node, "range_mode", "custom")
    node["range_first"].setValue(1002)
    node["range_last"].setValue(1003)
    _process_gui(nuke, node)
    assert engine.runs[0][:2] == (1002, 1003)
    read = _result_files(node, nuke)
    out = Path(read["file"].value()).parent
    assert sorted(p.name for p in out.glob("matte.*.exr")) == ["matte.1002.exr", "matte.1003.exr"]


def test_cancel_button_stops_the_job_and_keeps_the_previous_result(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    _process_gui(nuke, node)
    read = _result_files(node, nuke)
    before = Path(logic.frame_path(read["file"].value(), 1001)).read_bytes()
    nuke._user_sets(node, "quality", "fast")
    engine.gate = threading.Event()
    _press(node["process"])
    nuke._run_until(lambda: len(engine.runs) == 2)
    _press(node["cancel"])
    nuke._run_until(lambda: node[pnode.ID_KNOB].value() not in pnode._RUNNING)
    assert node["status"].value().startswith("cancelled")
    assert Path(logic.frame_path(read["file"].value(), 1001)).read_bytes() == before
    out_dir = Path(read["file"].value()).parent
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".")] == []  # no half-done frames left


def test_progress_task_cancel_cancels_the_job(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    engine.gate = threading.Event()
    _press(node["process"])
    nuke._run_until(lambda: bool(nuke._tasks) and bool(engine.runs))
    nuke._tasks[-1].cancelled = True
    nuke._run_until(lambda: node[pnode.ID_KNOB].value() not in pnode._RUNNING)
    assert node["status"].value().startswith("cancelled")


def test_second_press_while_running_is_refused(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    engine.gate = threading.Event()
    _press(node["process"])
    _press(node["process"])
    assert "processing already" in nuke._messages[-1]
    engine.gate.set()
    nuke._run_until(lambda: node[pnode.ID_KNOB].value() not in pnode._RUNNING)
    assert node["status"].value().startswith("done")
    assert len(engine.runs) == 1


def test_core_error_reaches_the_status_line(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    engine.fail = logic.AdapterError("guide is 10x10, plate is 20x20", "render the guide at plate size")
    _process_gui(nuke, node)
    assert node["status"].value() == "error: guide is 10x10, plate is 20x20 (render the guide at plate size)"


def test_no_plate_is_a_clear_message(fnuke, engine):
    node = pnode.create()
    _press(node["process"])
    assert fnuke._messages == ["PriorfxMatte: no plate is connected (connect the plate to input 0 (plate))"]
    assert node["status"].value().startswith("error: no plate")
    assert engine.runs == []


def test_export_cancelled_in_nukes_render_dialog_restores_everything(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    nuke.root()["proxy"].setValue(True)
    nuke._fail_execute["export_plate"] = RuntimeError("Cancelled")
    _press(node["process"])
    assert node["status"].value().startswith("cancelled")
    assert nuke._messages == []  # the artist cancelled: no popup
    assert nuke.root()["proxy"].value() is True
    with node:
        assert nuke.toNode("export_plate")["disable"].value() is True
    assert engine.runs == [] and pnode._RUNNING == {}


def test_remote_engine_needs_a_url(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    nuke._user_sets(node, "engine", "remote")
    _press(node["process"])
    assert "must start with http://" in nuke._messages[-1]


def test_guides_are_exported_as_masks_from_the_chosen_channel(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    seen = {}

    def expression(n, frame, upstream):
        seen[n.name()] = [n["expr{}".format(i)].value() for i in range(4)]
        return b"mask" + upstream(frame)

    nuke._renderers["Expression"] = expression
    node.setInput(2, shot["read"])  # holdout
    nuke._user_sets(node, "mask_channel", "red")
    _process_gui(nuke, node)
    executes = [e[1] for e in nuke._events if e[0] == "execute"]
    assert executes == ["PriorfxMatte1.export_plate", "PriorfxMatte1.export_holdout"]
    assert seen == {"mask_holdout": ["r", "r", "r", "r"]}
    exported = shot["tmp"] / "priorfx_cache" / "nodes" / node[pnode.ID_KNOB].value() / "export" / "holdout"
    assert (exported / "holdout.1002.exr").read_bytes() == b"maskframe1002"


# ------------------------------------------------------------------ no GUI (farm, nuke -t)

def test_farm_mode_runs_synchronously_in_the_calling_thread(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    nuke.GUI = False
    result = pnode.process(node)
    assert isinstance(result, jobs.Result) and (result.first, result.last) == (1001, 1005)
    assert engine.runs[0][2] == threading.main_thread().name
    assert nuke._tasks == []  # no progress window without a GUI
    assert node["status"].value().startswith("done")


def test_farm_mode_errors_raise(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    nuke.GUI = False
    engine.fail = logic.AdapterError("model missing", "run priorfx models fetch")
    with pytest.raises(logic.AdapterError, match="model missing"):
        pnode.on_process(node)
    assert node["status"].value().startswith("error: model missing")


def test_farm_process_all(shot, engine):
    from priorfx_nuke import farm
    nuke = shot["nuke"]
    nuke.GUI = False
    lines = farm.process_all()
    assert lines[0].startswith("PriorfxMatte1: done: 5 frames")
    with pytest.raises(logic.AdapterError, match="no PriorfxMatte named Nope"):
        farm.process_all(["Nope"])


def test_farm_script_entry_point(shot, engine, capsys):
    from priorfx_nuke import farm
    nuke = shot["nuke"]
    script = shot["tmp"] / "sh010.nk"
    script.write_text("# saved by Nuke\n")
    with pytest.raises(SystemExit):
        farm.main([str(script)])  # in the GUI: refused
    nuke.GUI = False
    assert farm.main([str(script), "--node", "PriorfxMatte1", "--save"]) == 0
    assert ("scriptOpen", str(script)) in nuke._events and ("scriptSave", None) in nuke._events
    assert "PriorfxMatte1: done: 5 frames" in capsys.readouterr().out
    assert farm.main([str(script), "--node", "Nope"]) == 1
    assert "no PriorfxMatte named Nope" in capsys.readouterr().err


def test_farm_cluster_reaches_the_core_jobs(shot, engine, monkeypatch):
    from priorfx_nuke import farm
    # setenv records the variable's original state, so the value farm.main puts
    # into os.environ is undone after the test (delenv of an absent one is not)
    monkeypatch.setenv("PRIORFX_CLUSTER", "")
    shot["nuke"].GUI = False
    script = shot["tmp"] / "sh010.nk"
    script.write_text("# saved by Nuke\n")
    assert farm.main([str(script), "--cluster", "tcp://sched:8786"]) == 0
    # every `priorfx matte` the node starts inherits it (the core reads $PRIORFX_CLUSTER)
    assert jobs.kit.child_env({}, os.environ, drop=("PRIORFX_REMOTE",))["PRIORFX_CLUSTER"] == "tcp://sched:8786"


def test_a_pasted_copy_gets_its_own_cache_folder(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    twin = pnode.create()
    twin[pnode.ID_KNOB].setValue(node[pnode.ID_KNOB].value())  # what copy-paste does
    twin.setInput(0, shot["read"])
    _process_gui(nuke, node)
    _process_gui(nuke, twin)
    assert twin[pnode.ID_KNOB].value() != node[pnode.ID_KNOB].value()
    assert "(0 new, 5 from cache)" in twin["status"].value()  # the shared store still serves it
    with node:
        a = nuke.toNode("result")["file"].value()
    with twin:
        b = nuke.toNode("result")["file"].value()
    assert a != b and Path(logic.frame_path(a, 1001)).exists()


# ------------------------------------------------------------------ registration

def test_menu_and_init_register_the_node(fnuke):
    runpy.run_path(str(PLUGIN / "init.py"))
    assert fnuke._layers["matte"] == ["matte.alpha", "matte.confidence"]
    runpy.run_path(str(PLUGIN / "menu.py"))
    cmd = fnuke._menus["Nodes"].items["priorfx"].items["PriorfxMatte"]
    exec(cmd, {})
    groups = [n for n in fnuke.allNodes("Group") if pnode.is_priorfx(n)]
    assert [g.name() for g in groups] == ["PriorfxMatte1"]


def test_fake_nuke_is_strict(fnuke):
    """The fake must refuse what Nuke refuses, or the tests above prove nothing."""
    with pytest.raises(AttributeError):
        fnuke.scriptReadFile  # not implemented -> loud
    with pytest.raises(fnuke.FakeNukeError):
        fnuke.nodes.Blur()
    w = fnuke.nodes.Write()
    with pytest.raises(NameError):
        w["datatype"]  # EXR knobs appear only once file_type is exr
    with pytest.raises(fnuke.FakeNukeError):
        fnuke.executeInMainThread(print)  # from the main thread: hangs Nuke
    errors = []

    def worker():
        try:
            fnuke.nodes.Read()
        except fnuke.FakeNukeError as exc:
            errors.append(exc)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert errors and "main-thread only" in str(errors[0])
    w["file_type"].setValue("exr")
    w["file"].setValue(os.devnull)
    w["disable"].setValue(True)
    with pytest.raises(RuntimeError, match="disabled"):
        fnuke.execute(w, 1, 1)


def test_prior_knob_is_a_pixel_setting(shot, engine):
    nuke, node = shot["nuke"], shot["node"]
    assert node["prior"].value() == ""  # empty: the built-in prior
    _process_gui(nuke, node)
    nuke._user_sets(node, "prior", "studio-net")
    assert node["status"].value().startswith("settings changed")
    _process_gui(nuke, node)
    assert len(engine.runs) == 2  # a new prior is a new matte, not the cached one
    nuke._user_sets(node, "prior", "Not An Id")
    _process_gui(nuke, node)
    assert "is not a model id" in node["status"].value() and len(engine.runs) == 2


def test_subject_knobs_reach_the_core_in_its_pixels(shot, engine):
    """The point / box drawn on the plate (Nuke: origin bottom-left, y up) goes to
    the core as --subject in top-left pixels of the plate's format; a new
    subject is a new matte, not the cached one."""
    nuke, node, read = shot["nuke"], shot["node"], shot["read"]
    read["format"].setValue(nuke.addFormat("640 360 1 plate_fmt"))
    seen = []
    run = engine.run
    engine.run = lambda inputs, first, last, out, settings, *a, **kw: (seen.append(settings), run(
        inputs, first, last, out, settings, *a, **kw))[1]
    _process_gui(nuke, node)
    assert seen[-1].subject == ""  # default: every person
    nuke._user_sets(node, "subject_mode", "point")
    nuke._user_sets(node, "subject_point", [150, 100])
    assert node["status"].value().startswith("settings changed")
    _process_gui(nuke, node)
    assert seen[-1].subject == "150,260"
    nuke._user_sets(node, "subject_mode", "box")
    nuke._user_sets(node, "subject_box", [310, 10, 600, 350])
    _process_gui(nuke, node)
    assert seen[-1].subject == "310,10,600,350"
    assert len(engine.runs) == 3
    nuke._user_sets(node, "subject_box", [400, 10, 400, 350])  # a box of no width
    _process_gui(nuke, node)
    assert "subject box" in node["status"].value() and "empty" in node["status"].value()
    assert len(engine.runs) == 3
