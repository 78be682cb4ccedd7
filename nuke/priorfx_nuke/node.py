"""The PriorfxMatte node: the only module that talks to `nuke`.

A Group node built from Python (no gizmo file to install):

    plate ──> export_plate (Write, EXR half, raw) ─┐
    trimap/holdout/garbage ──> mask_* ──> export_* ─┤ Process: core job (jobs.py)
                                                    v
    result (Read of the cached sequence) ──> output switch ──> Output
         (rgba with new alpha | premultiplied fg | unpremultiplied fg | matte layer)

Process runs on the main thread until the inputs are exported (Nuke renders
and creates nodes only there), then a worker thread runs the core under a
`nuke.ProgressTask`; it hands back to the main thread with
`nuke.executeInMainThread` to point the Read at the result. With
`nuke.GUI` False (farm, `nuke -t`) everything runs synchronously.
Logic that needs no `nuke` lives in logic.py and jobs.py.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Dict, List, NamedTuple, Optional, Tuple, Union, cast

import nuke

from . import jobs, logic
from .logic import AdapterError

_CALL = "import priorfx_nuke.node as _pfx; _pfx.{}(nuke.thisNode())"
_KNOB_CHANGED = "import priorfx_nuke.node as _pfx; _pfx.knob_changed(nuke.thisNode(), nuke.thisKnob())"
ID_KNOB = "priorfx_id"
# Knobs whose change makes the shown result stale.
PIXEL_KNOBS = ("range_mode", "range_first", "range_last", "quality", "band_width",
               "temporal", "mask_channel", "plate_colorspace", "engine", "remote_url", "prior",
               "subject_mode", "subject_point", "subject_box")
OUTPUT_LABELS = [label for _, label in logic.OUTPUTS]
STATUS_EVERY_S = 1.0


class Handle(object):
    """A running Process of one node (for Cancel and to refuse a second start)."""

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self.cancel = threading.Event()
        self.thread = None  # type: Optional[threading.Thread]


_RUNNING = {}  # type: Dict[str, Handle]


class Request(NamedTuple):
    """Everything the worker needs, read from knobs on the main thread."""

    node_name: str
    node_id: str
    first: int
    last: int
    settings: logic.MatteSettings
    engine: str
    remote_url: str
    layout: logic.CacheLayout
    inputs: Dict[str, str]


# --------------------------------------------------------------------------- building

def create() -> nuke.Group:
    """Toolbar command: a new PriorfxMatte connected under the selected node."""
    try:
        selected = nuke.selectedNode()  # type: Optional[nuke.Node]
    except ValueError:
        selected = None
    group = build(_as_group(nuke.createNode("Group", inpanel=False)))
    # createNode could not connect it: an empty Group has no inputs yet.
    if selected is not None:
        group.setInput(0, selected)
    return group


def _as_group(node: Optional[nuke.Node]) -> nuke.Group:
    if not isinstance(node, nuke.Group):
        raise AdapterError("{} is not a PriorfxMatte group".format(node.name() if node else None))
    return node


def build(group: nuke.Group) -> nuke.Group:
    """Add the knobs and the internal graph to an empty Group."""
    group.setName(logic.NODE_CLASS + "1")
    for name, channels in logic.LAYERS:
        nuke.Layer(name, list(channels))
    _add_knobs(group)
    _build_graph(group)
    return group


def _add_knobs(group: nuke.Group) -> None:
    group.addKnob(nuke.Tab_Knob("priorfx", logic.NODE_CLASS))
    mode = nuke.Enumeration_Knob("range_mode", "frame range", list(logic.RANGE_MODES))
    mode.setTooltip("input: the plate's own range; custom: the first/last frames below")
    group.addKnob(mode)
    first = nuke.Int_Knob("range_first", "first")
    last = nuke.Int_Knob("range_last", "last")
    last.clearFlag(nuke.STARTLINE)
    for k, v in ((first, int(nuke.root()["first_frame"].value())),
                 (last, int(nuke.root()["last_frame"].value()))):
        k.setValue(v)
        k.setEnabled(False)
        group.addKnob(k)
    quality = nuke.Enumeration_Knob("quality", "quality", list(logic.QUALITIES))
    quality.setValue(logic.MatteSettings().quality)
    group.addKnob(quality)
    band = nuke.Int_Knob("band_width", "refinement band half-width (px)")
    band.setTooltip("half-width of the uncertain band re-solved at full resolution; 0 = from the resolution")
    group.addKnob(band)
    temporal = nuke.Double_Knob("temporal", "temporal smoothing")
    temporal.setRange(0.0, 1.0)
    temporal.setValue(logic.MatteSettings().temporal)
    group.addKnob(temporal)
    space = nuke.String_Knob("plate_colorspace", "plate colour space")
    space.setTooltip("OCIO colour space of the plate; empty: the project's working space. The core "
                     "shows the person prior a display-encoded copy and returns the foreground "
                     "in this space")
    group.addKnob(space)
    prior = nuke.String_Knob("prior", "person prior")
    prior.setTooltip("id of the model that guesses the matte (`priorfx models list`, role person-matting "
                     "or person-segmentation); empty = the built-in RVM. A remote server uses its own "
                     "registered models")
    group.addKnob(prior)
    subject = nuke.Enumeration_Knob("subject_mode", "matte", list(logic.SUBJECT_MODES))
    subject.setTooltip("all: every person; point: only the person under the subject point; "
                       "box: only the person(s) inside the subject box (drag them in the Viewer). "
                       "Without a trimap input")
    group.addKnob(subject)
    for where in (nuke.XY_Knob("subject_point", "subject point"), nuke.BBox_Knob("subject_box", "subject box")):
        where.setEnabled(False)
        group.addKnob(where)
    mask = nuke.Enumeration_Knob("mask_channel", "guide channel", list(logic.MASK_CHANNELS))
    mask.setTooltip("channel of the trimap / holdout / garbage inputs that holds the mask")
    group.addKnob(mask)
    group.addKnob(nuke.Enumeration_Knob("output", "output", OUTPUT_LABELS))
    engine = nuke.Enumeration_Knob("engine", "engine", list(logic.ENGINES))
    url = nuke.String_Knob("remote_url", "server URL")
    url.setTooltip("a `priorfx serve` URL, e.g. http://gpu-box:8765 (token: $PRIORFX_TOKEN)")
    studio_server = os.environ.get("PRIORFX_REMOTE", "").strip()
    if studio_server:  # a studio-wide default server: new nodes use it
        engine.setValue("remote")
        url.setValue(studio_server)
    url.setEnabled(bool(studio_server))
    group.addKnob(engine)
    group.addKnob(url)
    cache = nuke.File_Knob("cache_dir", "cache folder")
    cache.setTooltip("empty: $PRIORFX_NUKE_CACHE, else priorfx_cache/ beside the script")
    group.addKnob(cache)
    group.addKnob(nuke.PyScript_Knob("process", "Process", _CALL.format("on_process")))
    cancel = nuke.PyScript_Knob("cancel", "Cancel", _CALL.format("on_cancel"))
    cancel.clearFlag(nuke.STARTLINE)
    group.addKnob(cancel)
    group.addKnob(nuke.Text_Knob("status", "status", "not processed yet"))
    ident = nuke.String_Knob(ID_KNOB, "id")
    ident.setValue(uuid.uuid4().hex[:16])
    ident.setFlag(nuke.INVISIBLE)
    group.addKnob(ident)
    group["knobChanged"].setValue(_KNOB_CHANGED)


def _build_graph(group: nuke.Group) -> None:
    group.begin()
    try:
        inputs = [nuke.nodes.Input(name=name) for name in logic.INPUT_NAMES]
        # The plate is exported as it is in the working space; the core is told
        # its OCIO colour space and converts for the person prior and back.
        _write(inputs[0], "plate")
        for src, name in zip(inputs[1:], logic.GUIDE_INPUTS):
            # Every guide is exported as a mask in all four channels, whatever
            # channel the artist painted it in (roto shapes are alpha-only).
            mask = nuke.nodes.Expression(name="mask_" + name)
            mask.setInput(0, src)
            _write(mask, name)
        read = nuke.nodes.Read(name="result", raw=True, on_error="black",
                               before="black", after="black")
        rgba = nuke.nodes.Copy(name="rgba_new_alpha", from0="rgba.alpha", to0="rgba.alpha")
        rgba.setInput(0, inputs[0])
        rgba.setInput(1, read)
        # The core's unpremultiplied, decontaminated foreground (fg layer):
        # valid where alpha is tiny too, unlike dividing by alpha.
        fg = nuke.nodes.Copy(name="fg_to_rgb", from0="fg.red", to0="rgba.red", from1="fg.green",
                             to1="rgba.green", from2="fg.blue", to2="rgba.blue")
        fg.setInput(0, read)
        fg.setInput(1, read)
        premult = nuke.nodes.Premult(name="premult")
        premult.setInput(0, fg)
        layer = nuke.nodes.Copy(name="matte_layer", from0="matte.alpha", to0="matte.alpha",
                                from1="matte.confidence", to1="matte.confidence")
        layer.setInput(0, inputs[0])
        layer.setInput(1, read)
        switch = nuke.nodes.Switch(name="output_switch")
        for i, n in enumerate((rgba, premult, fg, layer)):  # order of logic.OUTPUTS
            switch.setInput(i, n)
        switch["which"].setExpression("parent.output")
        out = nuke.nodes.Output(name="Output1")
        out.setInput(0, switch)
    finally:
        group.end()


def _write(src: nuke.Node, name: str) -> nuke.Node:
    w = nuke.nodes.Write(name="export_" + name, file_type="exr", datatype="16 bit half",
                         compression="none", channels="rgba", raw=True,
                         metadata="no metadata", create_directories=True, disable=True)
    w.setInput(0, src)
    return w


def is_priorfx(node: Optional[nuke.Node]) -> bool:
    return node is not None and node.knob(ID_KNOB) is not None


# --------------------------------------------------------------------------- callbacks

def knob_changed(node: nuke.Node, knob: nuke.Knob) -> None:
    """Enable the knobs that apply; flag a shown result as stale."""
    name = knob.name()
    if name == "range_mode":
        custom = node["range_mode"].value() == "custom"
        node["range_first"].setEnabled(custom)
        node["range_last"].setEnabled(custom)
    elif name == "engine":
        node["remote_url"].setEnabled(node["engine"].value() == "remote")
    elif name == "subject_mode":
        node["subject_point"].setEnabled(node["subject_mode"].value() == "point")
        node["subject_box"].setEnabled(node["subject_mode"].value() == "box")
    if name in PIXEL_KNOBS and str(node["status"].value()).startswith("done"):
        node["status"].setValue("settings changed: press Process to update")


def on_process(node: nuke.Node) -> None:
    """The Process button. In the GUI returns once the worker has started."""
    try:
        process(node)
    except logic.CancelledByUser:
        if not nuke.GUI:
            raise
    except AdapterError as err:
        if not nuke.GUI:
            raise
        nuke.message("PriorfxMatte: {}".format(err))


def on_cancel(node: nuke.Node) -> None:
    handle = _RUNNING.get(node[ID_KNOB].value())
    if handle is None:
        node["status"].setValue("nothing to cancel")
        return
    handle.cancel.set()
    node["status"].setValue("cancelling...")


def process(node: nuke.Node) -> Optional[jobs.Result]:
    """Export the inputs, run the core, show the result.

    GUI: the core runs in a worker thread and this returns None at once.
    No GUI (farm): runs to the end and returns the Result; errors raise.
    """
    node_id = _own_id(node)
    if node_id in _RUNNING:
        raise AdapterError("this node is processing already", "wait, or press Cancel first")
    handle = Handle(node.fullName())
    _RUNNING[node_id] = handle
    try:
        req = _request(node)
        node["status"].setValue("exporting frames {}-{}".format(req.first, req.last))
        _export(node, req)
    except BaseException as err:
        del _RUNNING[node_id]
        node["status"].setValue(logic.status_error(_as_adapter_error(err)))
        raise _as_adapter_error(err) from None
    if nuke.GUI:
        handle.thread = threading.Thread(target=_work, args=(handle, req), name="priorfx-matte")
        handle.thread.daemon = True
        handle.thread.start()
        return None
    outcome = _run_job(handle, req, None)
    _finish(handle, req, outcome)
    if not isinstance(outcome, jobs.Result):
        raise outcome
    return outcome


def _own_id(node: nuke.Node) -> str:
    """The node's cache id, renewed if a copy-paste gave another node the same one
    (they would overwrite each other's exports; the shared store keeps results)."""
    node_id = node[ID_KNOB].value()
    twins = [n for n in all_nodes() if n[ID_KNOB].value() == node_id and n.fullName() != node.fullName()]
    running = _RUNNING.get(node_id)
    if twins and (running is None or running.node_name != node.fullName()):
        node_id = uuid.uuid4().hex[:16]
        node[ID_KNOB].setValue(node_id)
    return node_id


def _as_adapter_error(err: BaseException) -> AdapterError:
    if isinstance(err, AdapterError):
        return err
    if isinstance(err, RuntimeError) and "cancel" in str(err).lower():
        return logic.CancelledByUser()  # Nuke's own render progress was cancelled
    return AdapterError("{}: {}".format(type(err).__name__, err))


def _request(node: nuke.Node) -> Request:
    """Read every knob on the main thread (the worker never touches `nuke`)."""
    plate = node.input(0)
    if plate is None:
        raise AdapterError("no plate is connected", "connect the plate to input 0 (plate)")
    fr = plate.frameRange()
    input_range = (fr.first(), fr.last())  # type: Optional[Tuple[int, int]]
    first, last = logic.resolve_range(
        node["range_mode"].value(), input_range,
        (int(node["range_first"].value()), int(node["range_last"].value())))
    root_knobs = nuke.root()
    config, space = logic.plate_colour(root_knobs["OCIO_config"].value(),
                                       root_knobs["customOCIOConfigPath"].value(),
                                       root_knobs["workingSpaceLUT"].value(), nuke.EXE_PATH,
                                       node["plate_colorspace"].value().strip())
    settings = logic.MatteSettings(
        quality=node["quality"].value(), band_width=int(node["band_width"].value()),
        temporal=float(node["temporal"].value()), mask_channel=node["mask_channel"].value(),
        colorspace=space, ocio_config=config,
        prior=node["prior"].value().strip(), subject=_subject(node, plate),
    ).validate()
    engine = node["engine"].value()
    url = node["remote_url"].value().strip()
    if engine == "remote" and not url.startswith(("http://", "https://")):
        raise AdapterError("server URL {!r} must start with http:// or https://".format(url),
                           "e.g. http://gpu-box:8765")
    root = logic.resolve_cache_root(node["cache_dir"].value(), nuke.root()["name"].value(), os.environ)
    layout = logic.cache_layout(root, node[ID_KNOB].value())
    inputs = {"plate": layout.export_pattern("plate")}
    for i, name in enumerate(logic.GUIDE_INPUTS, start=1):
        if node.input(i) is not None:
            inputs[name] = layout.export_pattern(name)
    return Request(node.fullName(), node[ID_KNOB].value(), first, last, settings, engine, url,
                   layout, inputs)


def _subject(node: nuke.Node, plate: nuke.Node) -> str:
    """The subject knobs as the core's --subject (plate pixels, top-left origin)."""
    point = cast(nuke.XY_Knob, node["subject_point"])
    box = cast(nuke.BBox_Knob, node["subject_box"])
    return logic.subject_guide(node["subject_mode"].value(), (point.x(), point.y()),
                               (box.x(), box.y(), box.r(), box.t()), plate.format().height())


def _export(node: nuke.Node, req: Request) -> None:
    """Render the connected inputs to EXR with proxy mode off (then restored)."""
    group = _as_group(node)
    root = nuke.root()
    proxy = bool(root["proxy"].value())
    expr = "a" if req.settings.mask_channel == "alpha" else "r"
    root["proxy"].setValue(False)
    group.begin()
    try:
        for name, pattern in req.inputs.items():
            if name != "plate":
                mask = nuke.toNode("mask_" + name)
                assert mask is not None
                for i in range(4):
                    mask["expr{}".format(i)].setValue(expr)
            write = nuke.toNode("export_" + name)
            assert write is not None
            write["file"].setValue(pattern.replace(os.sep, "/"))
            write["disable"].setValue(False)
            try:
                nuke.execute(write, req.first, req.last, 1)
            finally:
                write["disable"].setValue(True)
    finally:
        group.end()
        root["proxy"].setValue(proxy)


# --------------------------------------------------------------------------- worker

def _engine(req: Request):
    return jobs.make_engine(req.engine, req.remote_url, os.environ,
                            host_dir=os.path.dirname(getattr(nuke, "EXE_PATH", "") or ""))


def _run_job(handle: Handle, req: Request, task) -> Union[jobs.Result, AdapterError]:
    """Run the job; return its Result or the exception (never raises)."""
    shown = [0.0]

    def on_progress(done: int, total: int, message: str) -> None:
        text = logic.status_progress(done, total, message)
        if task is None:
            print("PriorfxMatte {}: {}".format(req.node_name, text))
            return
        task.setProgress(logic.progress_percent(done, total))
        task.setMessage(text)
        now = time.time()
        if now - shown[0] >= STATUS_EVERY_S or done == total:
            shown[0] = now  # the status knob too, but not so often that the UI stalls
            nuke.executeInMainThread(_show_status, args=(req, text))

    def is_cancelled() -> bool:
        return handle.cancel.is_set() or (task is not None and bool(task.isCancelled()))

    try:
        return jobs.process_range(_engine(req), req.layout, req.inputs, req.first, req.last,
                                  req.settings, on_progress, is_cancelled)
    except AdapterError as err:
        return err
    except Exception as err:  # a bug must not kill the thread silently
        return AdapterError("{}: {}".format(type(err).__name__, err), "see the script editor for details")


def _show_status(req: Request, text: str) -> None:
    """Main thread: a progress line on the node, unless it finished or went away."""
    node = nuke.toNode(req.node_name)
    if node is not None and is_priorfx(node) and req.node_id in _RUNNING:
        node["status"].setValue(text)


def _work(handle: Handle, req: Request) -> None:
    """Worker thread: ProgressTask + core job, then back to the main thread."""
    task = nuke.ProgressTask("PriorfxMatte {}".format(req.node_name))
    try:
        outcome = _run_job(handle, req, task)
    finally:
        del task  # closes the progress window
    nuke.executeInMainThread(_finish, args=(handle, req, outcome))


def _finish(handle: Handle, req: Request, outcome: Union[jobs.Result, AdapterError]) -> None:
    """Main thread: show the result (or the error) on the node."""
    _RUNNING.pop(req.node_id, None)
    node = nuke.toNode(req.node_name)
    if not isinstance(node, nuke.Group) or not is_priorfx(node):
        return  # deleted while processing; the cache keeps the frames
    if isinstance(outcome, jobs.Result):
        node.begin()
        try:
            read = nuke.toNode("result")
            assert read is not None
            read["file"].setValue(outcome.out_pattern.replace(os.sep, "/"))
            for k, v in (("first", outcome.first), ("last", outcome.last),
                         ("origfirst", outcome.first), ("origlast", outcome.last)):
                read[k].setValue(v)
            cast(nuke.Script_Knob, read["reload"]).execute()  # re-read the swapped files
        finally:
            node.end()
        node["status"].setValue(outcome.status())
    else:
        node["status"].setValue(logic.status_error(outcome))


def all_nodes() -> List[nuke.Node]:
    """Every PriorfxMatte in the script, inside groups too."""
    return [n for n in nuke.allNodes("Group", recurseGroups=True) if is_priorfx(n)]
