"""Rolling Shutter Correction: an OBS Studio video filter (priorfx).

Add this script in OBS (Tools > Scripts > +), or let `priorfx install obs` do
it. It registers the async video filter "Rolling Shutter Correction"; add it
to a webcam (or any async video source) in the source's Filters dialog.

How it works
------------
OBS's Python binding cannot register a filter, so this script calls libobs
through ctypes (`obs_register_source_s` with the leading part of
`struct obs_source_info`). The filter callback runs on OBS's video thread and
does only copies: it puts the frame's planes, as the camera delivered them
(NV12, I420, I422, YUY2, BGRA, RGBA), into a shared-memory slot, wakes a
`priorfx worker shutter` process with one byte on its stdin, and writes the
newest corrected frame back into the frame (one frame of latency; two with
lookahead). When the worker is starting, late, or gone, frames pass through
unchanged and a manager thread restarts the worker.

Calibrate (a button in the filter's properties) asks the worker to measure
the camera's readout from the next seconds of video while the streamer shakes
the camera; the worker's manager thread follows its progress, and the result
is stored in the filter's settings (saved with the scene collection) and per
camera (the source's device) in `obs-cameras.json` in priorfx's config folder,
so another filter on the same camera starts with it.

Standard library only: it runs in OBS's own Python. Three modules of the
core are copied beside this file by `priorfx install obs` and loaded by path:
the slot protocol (`streaming/shm.py` as `priorfx_shm.py`), the worker
supervision (`streaming/supervisor.py` as `priorfx_supervisor.py`: start,
ready timeout, heartbeat, restart with back-off) and the host kit
(`hosts/priorfx_hostkit.py`: where the core is, its environment). This script
keeps only OBS's part: registration, properties, and moving pixels.
"""
from __future__ import annotations

import collections
import ctypes
import importlib.util
import json
import os
import shlex
import sys
import time
import types

FILTER_ID = "priorfx_rolling_shutter"
FILTER_NAME = "Rolling Shutter Correction"
SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))

# Bounds that keep OBS smooth (the worker's own timeouts live in the supervisor).
LOCK_WAIT_S = 0.002        # the video thread never waits longer than this for the manager
MAX_LAG_FRAMES = 2         # older results are stale: pass the frame through instead


def _log(msg: str) -> None:
    # In OBS, print() goes to the script log and OBS's log file.
    print(f"[priorfx] {msg}", flush=True)


# ---------------------------------------------------------------------------
# The core's modules this script uses (copied beside it by the installer)
# ---------------------------------------------------------------------------
CORE_MODULES = {   # name beside this script -> where a source checkout keeps it
    "priorfx_shm": ("core", "priorfx", "streaming", "shm.py"),
    "priorfx_supervisor": ("core", "priorfx", "streaming", "supervisor.py"),
    "priorfx_hostkit": ("core", "priorfx", "hosts", "priorfx_hostkit.py"),
}


def _load_core_module(name: str) -> types.ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    path = os.path.join(SCRIPT_DIR, name + ".py")
    if not os.path.isfile(path):
        path = os.path.join(os.path.dirname(SCRIPT_DIR), *CORE_MODULES[name])
    if not os.path.isfile(path):
        raise ImportError(f"{name}.py is missing next to {__file__}; run `priorfx install obs` again")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod   # dataclasses look the module up while the class is made
    spec.loader.exec_module(mod)
    return mod


shm = _load_core_module("priorfx_shm")
supervisor = _load_core_module("priorfx_supervisor")
kit = _load_core_module("priorfx_hostkit")


# ---------------------------------------------------------------------------
# libobs through ctypes
# ---------------------------------------------------------------------------
def _open_libobs() -> ctypes.CDLL:
    for name in ("libobs.so.0", "libobs.so", "obs.dll", "libobs.dylib",
                 "@rpath/libobs.framework/Versions/A/libobs"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return ctypes.CDLL(None)   # symbols already loaded into this process


MAX_AV_PLANES = 8
OBS_SOURCE_TYPE_FILTER = 1
OBS_SOURCE_ASYNC_VIDEO = (1 << 2) | (1 << 0)
OBS_COMBO_TYPE_LIST = 2
OBS_COMBO_FORMAT_STRING = 3
OBS_TEXT_DEFAULT = 0
OBS_TEXT_INFO = 3          # read-only text (OBS 28+)
CALIBRATION_SECONDS = 10.0
# Where a capture source keeps its device, by platform (v4l2, dshow, macOS).
DEVICE_KEYS = (b"device_id", b"video_device_id", b"device")


class SourceFrame(ctypes.Structure):
    """`struct obs_source_frame` (unchanged from OBS 29 to 32)."""

    _fields_ = [("data", ctypes.c_void_p * MAX_AV_PLANES),
                ("linesize", ctypes.c_uint32 * MAX_AV_PLANES),
                ("width", ctypes.c_uint32), ("height", ctypes.c_uint32),
                ("timestamp", ctypes.c_uint64), ("format", ctypes.c_int),
                ("color_matrix", ctypes.c_float * 16), ("full_range", ctypes.c_bool),
                ("max_luminance", ctypes.c_uint16),
                ("color_range_min", ctypes.c_float * 3), ("color_range_max", ctypes.c_float * 3),
                ("flip", ctypes.c_bool), ("flags", ctypes.c_uint8), ("trc", ctypes.c_uint8),
                ("refs", ctypes.c_long), ("prev_frame", ctypes.c_bool)]


GET_NAME = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
CREATE = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
DESTROY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
GET_U32 = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p)
GET_DEFAULTS = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
GET_PROPERTIES = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
UPDATE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
DATA_ONLY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
VIDEO_TICK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_float)
VIDEO_RENDER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
FILTER_VIDEO = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
BUTTON_CLICKED = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class SourceInfo(ctypes.Structure):
    """The first 18 fields of `struct obs_source_info`, up to `filter_video`.

    libobs takes the size we pass and zero-fills the rest, so newer OBS
    versions (which only append fields) accept it.
    """

    _fields_ = [("id", ctypes.c_char_p), ("type", ctypes.c_int), ("output_flags", ctypes.c_uint32),
                ("get_name", GET_NAME), ("create", CREATE), ("destroy", DESTROY),
                ("get_width", GET_U32), ("get_height", GET_U32), ("get_defaults", GET_DEFAULTS),
                ("get_properties", GET_PROPERTIES), ("update", UPDATE), ("activate", DATA_ONLY),
                ("deactivate", DATA_ONLY), ("show", DATA_ONLY), ("hide", DATA_ONLY),
                ("video_tick", VIDEO_TICK), ("video_render", VIDEO_RENDER),
                ("filter_video", FILTER_VIDEO)]


def _bind(lib: ctypes.CDLL) -> types.SimpleNamespace:
    """Typed handles to the libobs functions the filter uses."""
    vp, cp, d, b = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double, ctypes.c_bool

    def f(name, restype, *argtypes):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, list(argtypes)
        return fn
    return types.SimpleNamespace(
        register=f("obs_register_source_s", None, ctypes.POINTER(SourceInfo), ctypes.c_size_t),
        props_create=f("obs_properties_create", vp),
        add_float_slider=f("obs_properties_add_float_slider", vp, vp, cp, cp, d, d, d),
        add_bool=f("obs_properties_add_bool", vp, vp, cp, cp),
        add_list=f("obs_properties_add_list", vp, vp, cp, cp, ctypes.c_int, ctypes.c_int),
        list_add_string=f("obs_property_list_add_string", ctypes.c_size_t, vp, cp, cp),
        add_text=f("obs_properties_add_text", vp, vp, cp, cp, ctypes.c_int),
        add_button=f("obs_properties_add_button", vp, vp, cp, cp, BUTTON_CLICKED),
        add_int_slider=f("obs_properties_add_int_slider", vp, vp, cp, cp, ctypes.c_int, ctypes.c_int,
                         ctypes.c_int),
        default_int=f("obs_data_set_default_int", None, vp, cp, ctypes.c_longlong),
        get_int=f("obs_data_get_int", ctypes.c_longlong, vp, cp),
        data_create=f("obs_data_create", vp),
        data_release=f("obs_data_release", None, vp),
        set_double=f("obs_data_set_double", None, vp, cp, d),
        set_bool=f("obs_data_set_bool", None, vp, cp, b),
        set_string=f("obs_data_set_string", None, vp, cp, cp),
        source_update=f("obs_source_update", None, vp, vp),
        source_settings=f("obs_source_get_settings", vp, vp),
        source_release=f("obs_source_release", None, vp),
        source_id=f("obs_source_get_id", cp, vp),
        source_name=f("obs_source_get_name", cp, vp),
        filter_parent=f("obs_filter_get_parent", vp, vp),
        weak_source=f("obs_source_get_weak_source", vp, vp),
        weak_get=f("obs_weak_source_get_source", vp, vp),
        weak_release=f("obs_weak_source_release", None, vp),
        set_long_description=f("obs_property_set_long_description", None, vp, cp),
        default_double=f("obs_data_set_default_double", None, vp, cp, d),
        default_bool=f("obs_data_set_default_bool", None, vp, cp, b),
        default_string=f("obs_data_set_default_string", None, vp, cp, cp),
        get_double=f("obs_data_get_double", d, vp, cp),
        get_bool=f("obs_data_get_bool", b, vp, cp),
        get_string=f("obs_data_get_string", cp, vp, cp),
    )


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------
DEFAULTS = {"readout": 0.6, "auto_readout": True, "mode": "rs", "strength": 1.0,
            "lookahead": False, "engine": "local", "remote_url": "",
            "calibrate_seconds": int(CALIBRATION_SECONDS), "calibrated_readout": 0.0,
            "calibrated_low": 0.0, "calibrated_high": 0.0, "calibrated_camera": "",
            # what the status line says before the first calibration (never an empty line)
            "calibration_status": "not calibrated yet: click Calibrate and shake the camera",
            "readout_status": ""}


def _read_settings(api, settings) -> dict:
    if not settings:
        return dict(DEFAULTS)
    s = lambda k: (api.get_string(settings, k.encode()) or b"").decode("utf-8", "replace")  # noqa: E731
    return {"readout": api.get_double(settings, b"readout"),
            "auto_readout": bool(api.get_bool(settings, b"auto_readout")),
            "mode": s("mode") or "rs", "strength": api.get_double(settings, b"strength"),
            "lookahead": bool(api.get_bool(settings, b"lookahead")),
            "engine": s("engine") or "local", "remote_url": s("remote_url").strip(),
            "calibrate_seconds": int(api.get_int(settings, b"calibrate_seconds")),
            "calibrated_readout": api.get_double(settings, b"calibrated_readout"),
            "calibrated_low": api.get_double(settings, b"calibrated_low"),
            "calibrated_high": api.get_double(settings, b"calibrated_high"),
            "calibrated_camera": s("calibrated_camera"), "calibration_status": s("calibration_status"),
            "readout_status": s("readout_status")}


def _get_defaults(api, settings) -> None:
    api.default_double(settings, b"readout", DEFAULTS["readout"])
    api.default_bool(settings, b"auto_readout", DEFAULTS["auto_readout"])
    api.default_string(settings, b"mode", DEFAULTS["mode"].encode())
    api.default_double(settings, b"strength", DEFAULTS["strength"])
    api.default_bool(settings, b"lookahead", DEFAULTS["lookahead"])
    api.default_string(settings, b"engine", DEFAULTS["engine"].encode())
    api.default_string(settings, b"remote_url", b"")
    api.default_int(settings, b"calibrate_seconds", DEFAULTS["calibrate_seconds"])
    api.default_string(settings, b"calibration_status", DEFAULTS["calibration_status"].encode())


def _get_properties(api, buttons) -> int:
    props = api.props_create()

    def tip(prop, text):
        api.set_long_description(prop, text.encode())
    tip(api.add_button(props, b"calibrate", b"Calibrate readout (shake the camera)", buttons["calibrate"]),
        "Measures this camera's readout time: click, then shake or jerk the camera (or wave a hand "
        "close in front of it) until the status says done. The value is stored for this camera "
        "and used from then on.")
    tip(api.add_button(props, b"cancel_calibration", b"Cancel calibration", buttons["cancel_calibration"]),
        "Stops a running calibration; the readout in use stays as it was.")
    tip(api.add_text(props, b"calibration_status", b"Calibration", OBS_TEXT_INFO),
        "The last calibration of this filter's camera, or its progress.")
    tip(api.add_int_slider(props, b"calibrate_seconds", b"Calibration length (s)", 3, 30, 1),
        "Seconds of video the calibration may use at most; it stops early once the value is certain.")
    tip(api.add_bool(props, b"auto_readout", b"Estimate readout time automatically"),
        "Measure the sensor's readout time from the motion in the video. After a calibration the "
        "calibrated value is used and the estimate keeps refining it in the background.")
    tip(api.add_text(props, b"readout_status", b"Readout in use", OBS_TEXT_INFO),
        "The readout the correction uses now, its 95 % interval, and where it comes from.")
    tip(api.add_float_slider(props, b"readout", b"Readout time (fraction of a frame)", 0.05, 1.0, 0.01),
        "Time the sensor takes to read out one frame, top row to bottom row, as a fraction of the "
        "frame time (used when automatic estimation is off). Typical webcams at 30 fps: 0.4-0.8 "
        "(e.g. 20 ms of 33 ms = 0.6).")
    mode = api.add_list(props, b"mode", b"Sensor", OBS_COMBO_TYPE_LIST, OBS_COMBO_FORMAT_STRING)
    api.list_add_string(mode, b"Rolling shutter", b"rs")
    api.list_add_string(mode, b"Global reset (RSGR)", b"rsgr")
    tip(mode, "Rolling shutter: rows are exposed one after another (most webcams). Global reset: "
              "all rows start together and are read out in turn, which smears instead of skews.")
    tip(api.add_float_slider(props, b"strength", b"Strength", 0.0, 1.0, 0.05),
        "How much of the estimated correction to apply (1 = all of it).")
    tip(api.add_bool(props, b"lookahead", b"Lookahead (one more frame of latency, steadier)"),
        "Use the next frame too when estimating motion.")
    engine = api.add_list(props, b"engine", b"Engine", OBS_COMBO_TYPE_LIST, OBS_COMBO_FORMAT_STRING)
    api.list_add_string(engine, b"This computer", b"local")
    api.list_add_string(engine, b"Remote priorfx server", b"remote")
    tip(api.add_text(props, b"remote_url", b"Remote server URL", OBS_TEXT_DEFAULT),
        "URL of a `priorfx serve`, e.g. http://192.168.1.20:8765 (used when Engine is remote).")
    return props


# ---------------------------------------------------------------------------
# Moving pixels
# ---------------------------------------------------------------------------
def _copy_in(mm, offset: int, addr: int, n: int) -> None:
    """Frame plane -> slot. Copies while holding the GIL on purpose: ctypes.memmove
    would release it, and on a busy machine getting it back can take milliseconds."""
    mm[offset:offset + n] = (ctypes.c_ubyte * n).from_address(addr)


def _copy_out(addr: int, mm, offset: int, n: int) -> None:
    """Slot -> frame plane, holding the GIL (see _copy_in)."""
    memoryview((ctypes.c_ubyte * n).from_address(addr)).cast("B")[:] = memoryview(mm)[offset:offset + n]


class Stats:
    """Counters the benchmark and tests read; callback times in seconds."""

    def __init__(self):
        self.frames = 0
        self.corrected = 0
        self.passthrough = 0
        # why frames passed through: no worker yet (starting, restarting, gone), the
        # manager held the lock, no result of this stream yet, the newest result too old
        self.pass_no_worker = 0
        self.pass_lock_busy = 0
        self.pass_no_result = 0
        self.pass_stale = 0
        self.repeated = 0
        self.unsupported = 0
        self.torn = 0
        self.restarts = 0
        self.callback_s = collections.deque(maxlen=20000)
        self.callback_cpu_s = collections.deque(maxlen=20000)
        self.latency = collections.deque(maxlen=20000)

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, collections.deque) else v) for k, v in vars(self).items()}


# ---------------------------------------------------------------------------
# Calibrations per camera
# ---------------------------------------------------------------------------
def cameras_path() -> str:
    """priorfx's config folder (per user): obs-cameras.json holds one readout per camera."""
    if os.name == "nt":
        base = os.environ.get("APPDATA") or os.path.expanduser("~")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Application Support")
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "priorfx", "obs-cameras.json")


def load_cameras() -> dict:
    try:
        with open(cameras_path(), encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_camera(camera: str, entry: dict) -> None:
    """Store one camera's calibration; the file is replaced whole (never half written)."""
    path = cameras_path()
    cameras = load_cameras()
    cameras[camera] = entry
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(cameras, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def readout_text(status: dict) -> str:
    """The properties' "Readout in use" line for the worker's status."""
    g, low, high, pairs = status["readout"], status["low"], status["high"], status.get("pairs", 0)
    interval = f"95 % interval {low:.2f}-{high:.2f}"
    return {"given": f"{g:.3f} of the frame time (set by hand)",
            "default": f"{g:.3f} of the frame time (the default, until the video shows enough changing motion)",
            "calibrated": f"{g:.3f} of the frame time ({interval}), calibrated; refining from the video "
                          f"({pairs} frame pairs so far)",
            "estimated": f"{g:.3f} of the frame time ({interval}), estimated from {pairs} frame pairs "
                         f"of this video"}.get(status.get("source"), "")


def calibration_text(entry: dict) -> str:
    return (f"readout {entry['readout']:.3f} of the frame time (95 % interval {entry['low']:.2f}-"
            f"{entry['high']:.2f}) for {entry.get('camera') or 'this camera'}")


class FilterInstance:
    """One "Rolling Shutter Correction" filter on one source, and its worker."""

    def __init__(self, key: int, settings: dict, api=None, source=None):
        self.key = key
        self.settings = dict(settings)
        self.stats = Stats()
        self.seq = 0
        self.last_written = 0
        self.api = api
        self._weak = api.weak_source(source) if api is not None and source else None
        self.calibrating_camera = ""
        self.calibration = {"state": "idle"}
        self._shown_percent = -1
        try:
            record = kit.load_record(SCRIPT_DIR)
            command, env = kit.find_core(record), kit.child_env(record)
        except kit.CoreError as err:   # the filter still works: frames pass through
            _log(f"filter {key}: {err}; frames pass through unchanged")
            command, env = [], dict(os.environ)
        self.worker = supervisor.WorkerSupervisor(
            shm, command, env, f"filter {key}",
            params=self._params, worker_args=self._worker_args, log=_log, on_start=self._counted_start,
            on_calibration=self._calibration_changed, on_readout=self._readout_changed)

    # The supervisor owns the worker; these are what the video thread and the test
    # harness look at.
    @property
    def proc(self):
        return self.worker.proc

    @property
    def channel(self):
        return self.worker.channel

    @property
    def live(self) -> bool:
        return self.worker.live

    # -- called from OBS ----------------------------------------------------
    def update(self, settings: dict) -> None:
        old = self.settings
        self.settings = dict(settings)
        if (old.get("engine"), old.get("remote_url")) != (settings.get("engine"), settings.get("remote_url")):
            self.worker.request_restart()
        # Publish now, so the next frame is already corrected with the new settings.
        self.worker.publish_params()

    def filter_video(self, frame_addr: int) -> None:
        """Copy in, wake the worker, copy the newest result out. Never waits long."""
        self.stats.frames += 1
        f = SourceFrame.from_address(frame_addr)
        fmt = shm.OBS_FORMATS.get(f.format)
        if fmt not in shm.SUPPORTED:
            self.stats.unsupported += 1
            self.stats.passthrough += 1
            return
        rows = shm.plane_rows(fmt, f.height)
        linesizes = tuple(int(f.linesize[i]) for i in range(len(rows)))
        size = sum(r * ls for r, ls in zip(rows, linesizes))
        worker = self.worker
        if not worker.lock.acquire(timeout=LOCK_WAIT_S):
            self.stats.passthrough += 1
            self.stats.pass_lock_busy += 1
            return
        try:
            ch = worker.channel
            if ch is not None and size > ch.capacity:
                worker.live = False   # until the manager has restarted with bigger slots
            if ch is None or not worker.live:
                worker.want_capacity = max(worker.want_capacity, size)
                self.stats.passthrough += 1
                self.stats.pass_no_worker += 1
                return
            self.seq += 1
            seq = self.seq
            slot = seq % ch.n_in
            off = ch.begin_write("in", slot, shm.SlotHeader(
                seq=seq, source_seq=seq, timestamp=f.timestamp, fmt=fmt, width=f.width,
                height=f.height, linesizes=linesizes, size=size))
            pos = 0
            for i, (r, ls) in enumerate(zip(rows, linesizes)):
                _copy_in(ch.mm, off + pos, f.data[i], r * ls)
                pos += r * ls
            ch.end_write("in", slot, seq)
            ch.publish_input(seq)
            self._write_back(ch, f, fmt, rows, linesizes, seq)
            worker.wake()   # last: a syscall lets other Python threads take the GIL
        finally:
            worker.lock.release()

    def _write_back(self, ch, f, fmt, rows, linesizes, seq) -> None:
        newest = ch.newest("out")
        if newest is None:
            self.stats.passthrough += 1
            self.stats.pass_no_result += 1
            return
        index, h = newest
        lag = seq - h.source_seq
        max_lag = MAX_LAG_FRAMES + (1 if self.settings.get("lookahead") else 0)
        if (h.fmt, h.width, h.height, h.linesizes) != (fmt, f.width, f.height, linesizes):
            self.stats.passthrough += 1
            self.stats.pass_no_result += 1
            return
        if lag > max_lag:
            self.stats.passthrough += 1
            self.stats.pass_stale += 1
            return
        src = ch.data_offset("out", index)
        pos = 0
        for i, (r, ls) in enumerate(zip(rows, linesizes)):
            _copy_out(f.data[i], ch.mm, src + pos, r * ls)
            pos += r * ls
        if not ch.still_valid("out", index, h.seq):
            self.stats.torn += 1
        if h.source_seq == self.last_written:
            self.stats.repeated += 1
        self.last_written = h.source_seq
        self.stats.corrected += 1
        self.stats.latency.append(lag)

    # -- calibration (buttons on OBS's UI thread, progress on the manager thread) --
    def calibrate(self) -> None:
        """The Calibrate button: measure the readout from the next seconds of video."""
        self.calibrating_camera = self.camera_key()
        seconds = float(self.settings.get("calibrate_seconds") or CALIBRATION_SECONDS)
        _log(f"filter {self.key}: calibrating {self.calibrating_camera or 'the camera'} "
             f"(up to {seconds:.0f} s): shake or jerk the camera now")
        self._shown_percent = -1
        self.worker.calibrate(seconds)

    def cancel_calibration(self) -> None:
        self.worker.cancel_calibration()

    def camera_opened(self) -> None:
        """The properties were opened: the filter surely has its source now. A camera
        calibrated before (by any filter) starts with its stored readout."""
        camera = self.camera_key()
        if not camera or camera == self.settings.get("calibrated_camera"):
            return
        entry = load_cameras().get(camera)
        try:
            usable = isinstance(entry, dict) and all(0.0 < float(entry[k]) <= 1.0 for k in ("readout", "low", "high"))
        except (KeyError, TypeError, ValueError):   # a hand-edited or damaged file
            usable = False
        if usable:
            _log(f"filter {self.key}: using the stored calibration of {camera}")
            self._use_calibration(dict(entry, camera=camera))

    def camera_key(self) -> str:
        """The camera this filter is on: the source type and its device (or its name)."""
        api = self.api
        src = api.weak_get(self._weak) if api is not None and self._weak else None
        if not src:
            return ""
        try:
            parent = api.filter_parent(src)
            if not parent:
                return ""
            kind = (api.source_id(parent) or b"?").decode("utf-8", "replace")
            data = api.source_settings(parent)
            try:
                device = next((v for v in (api.get_string(data, k) for k in DEVICE_KEYS) if v), b"")
            finally:
                api.data_release(data)
            name = device or api.source_name(parent) or b""
            return f"{kind}:{name.decode('utf-8', 'replace')}"
        finally:
            api.source_release(src)

    def _calibration_changed(self, status: dict) -> None:
        try:
            self._show_calibration(status)
        finally:
            self.calibration = status   # last: whoever waits for the state finds the result stored

    def _show_calibration(self, status: dict) -> None:
        state = status.get("state")
        if state == "running":
            percent = int(status.get("progress", 0) * 100) // 10 * 10
            if percent != self._shown_percent:
                self._shown_percent = percent
                self._store({"calibration_status": f"measuring: {percent} % (keep shaking the camera)"})
        elif state == "done" and status.get("informative"):
            entry = {"readout": round(status["readout"], 4), "low": round(status["low"], 4),
                     "high": round(status["high"], 4), "camera": self.calibrating_camera,
                     "calibrated_at": time.strftime("%Y-%m-%d %H:%M:%S")}
            if self.calibrating_camera:
                try:
                    save_camera(self.calibrating_camera, entry)
                except OSError as exc:
                    _log(f"filter {self.key}: could not store the calibration in {cameras_path()}: {exc}")
            _log(f"filter {self.key}: calibrated: {calibration_text(entry)}")
            self._use_calibration(entry)
        else:
            text = {"done": "could not tell the readout: shake or jerk the camera harder, then calibrate again",
                    "cancelled": "cancelled; the readout in use is unchanged",
                    "failed": f"failed ({status.get('error', 'the worker stopped')}); calibrate again"}.get(state)
            if text:
                _log(f"filter {self.key}: calibration {text}")
                self._store({"calibration_status": text})

    def _readout_changed(self, status: dict) -> None:
        """The worker's readout in use (manager thread): shown in the properties."""
        text = readout_text(status)
        if text != self.settings.get("readout_status"):
            self.settings["readout_status"] = text
            self._store({"readout_status": text})

    def _use_calibration(self, entry: dict) -> None:
        # Automatic readout stays on, starting from the calibrated value and its interval:
        # the worker's background estimate replaces it once it is as certain.
        g = float(entry["readout"])
        values = {"readout": g, "auto_readout": True, "calibrated_readout": g,
                  "calibrated_low": float(entry.get("low", g)), "calibrated_high": float(entry.get("high", g)),
                  "calibrated_camera": entry.get("camera", ""), "calibration_status": calibration_text(entry),
                  # shown at once; the worker's own report follows once its new session runs
                  "readout_status": readout_text({"readout": g, "low": float(entry.get("low", g)),
                                                  "high": float(entry.get("high", g)), "source": "calibrated"})}
        # Used at once (the settings round trip through OBS follows on its next video tick).
        self.settings.update(values)
        self.worker.publish_params()
        self._store(values)

    def _store(self, values: dict) -> None:
        """Write settings of this filter through OBS (saved with the scene collection)."""
        api = self.api
        src = api.weak_get(self._weak) if api is not None and self._weak else None
        if not src:
            return
        data = api.data_create()
        try:
            for k, v in values.items():
                name = k.encode()
                if isinstance(v, bool):
                    api.set_bool(data, name, v)
                elif isinstance(v, float):
                    api.set_double(data, name, v)
                else:
                    api.set_string(data, name, str(v).encode())
            api.source_update(src, data)   # through ctypes: the GIL is released meanwhile
        finally:
            api.data_release(data)
            api.source_release(src)

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Stop the worker; without `wait` the supervisor cleans up by itself
        (libobs may destroy a filter on its video thread, which must not block)."""
        self.worker.shutdown(wait, timeout)
        if self._weak and self.api is not None:
            self.api.weak_release(self._weak)
            self._weak = None
        if wait:
            st = self.stats
            _log(f"filter {self.key}: {st.frames} frames, {st.corrected} corrected, {st.passthrough} "
                 f"passed through, {st.restarts} worker start(s)")

    # -- what the supervisor asks for -----------------------------------------
    def _params(self):
        s = self.settings
        auto = bool(s.get("auto_readout", True))
        g, low, high = (float(s.get(k) or 0.0) for k in ("calibrated_readout", "calibrated_low", "calibrated_high"))
        calibrated = auto and 0.0 < low <= g <= high   # auto readout starts from the calibration
        return shm.Params(readout=g if calibrated else float(s.get("readout", 0.6)), auto_readout=auto,
                          mode=s.get("mode", "rs"), strength=float(s.get("strength", 1.0)),
                          lookahead=bool(s.get("lookahead", False)),
                          prior_low=low if calibrated else 0.0, prior_high=high if calibrated else 0.0)

    def _worker_args(self) -> list:
        args = []
        url = self.settings.get("remote_url", "")
        if self.settings.get("engine") == "remote" and url:
            args += ["--remote", url]
        extra = os.environ.get("PRIORFX_WORKER_ARGS")   # extra worker options, e.g. --threads 1
        if extra:
            args += shlex.split(extra)
        return args

    def _counted_start(self) -> None:
        self.stats.restarts += 1


# ---------------------------------------------------------------------------
# Registration that survives script reloads
# ---------------------------------------------------------------------------
# libobs cannot unregister a source type, so the ctypes callbacks must live as
# long as the process. They sit in a registry on the `sys` module and forward to
# whichever copy of this script is loaded now (`impl`); with no script loaded,
# frames pass through.
def _registry() -> types.SimpleNamespace:
    reg = getattr(sys, "_priorfx_obs_registry", None)
    if reg is None:
        reg = types.SimpleNamespace(registered=False, callbacks=None, info=None, impl=None,
                                    instances={}, settings={}, sources={}, next_key=1, name=None, retiring=[])
        sys._priorfx_obs_registry = reg
    return reg


class _Impl:
    """What the permanent callbacks forward to, for this copy of the script."""

    def __init__(self, api):
        self.api = api
        self.reg = _registry()

    def create(self, settings_ptr, source_ptr) -> int:
        reg = self.reg
        key = reg.next_key
        reg.next_key += 1
        settings = _read_settings(self.api, settings_ptr)
        reg.settings[key] = settings
        reg.sources[key] = source_ptr
        reg.instances[key] = FilterInstance(key, settings, self.api, source_ptr)
        _log(f"filter {key} created")
        return key

    def destroy(self, key) -> None:
        inst = self.reg.instances.pop(key, None)
        self.reg.settings.pop(key, None)
        self.reg.sources.pop(key, None)
        if inst is not None:
            inst.shutdown(wait=False)
            self.reg.retiring = [i for i in self.reg.retiring if i.worker.is_alive()] + [inst]
            _log(f"filter {key} destroyed")

    def update(self, key, settings_ptr) -> None:
        settings = _read_settings(self.api, settings_ptr)
        self.reg.settings[key] = settings
        inst = self.reg.instances.get(key)
        if inst is not None:
            inst.update(settings)

    def filter_video(self, key, frame_addr) -> None:
        inst = self.reg.instances.get(key)
        if inst is None:
            return
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            inst.filter_video(frame_addr)
        finally:
            # wall time (what OBS waits) and this thread's CPU time (our own work,
            # without the time the OS gave other processes meanwhile)
            inst.stats.callback_s.append(time.perf_counter() - t0)
            inst.stats.callback_cpu_s.append(time.thread_time() - c0)


def _make_callbacks(reg) -> dict:
    """The permanent trampolines. They never raise into C."""
    name_buf = ctypes.create_string_buffer(FILTER_NAME.encode())
    reg.name = name_buf

    def get_name(_type_data):
        return ctypes.addressof(name_buf)

    def create(settings, source):
        impl = reg.impl
        if impl is None:
            return None
        try:
            return impl.create(settings, source)
        except Exception as exc:
            _log(f"create failed: {type(exc).__name__}: {exc}")
            return None

    def destroy(data):
        impl = reg.impl
        try:
            if impl is not None:
                impl.destroy(data)
            else:
                reg.instances.pop(data, None)
                reg.settings.pop(data, None)
                getattr(reg, "sources", {}).pop(data, None)
        except Exception as exc:
            _log(f"destroy failed: {type(exc).__name__}: {exc}")

    def get_defaults(settings):
        impl = reg.impl
        try:
            if impl is not None:
                _get_defaults(impl.api, settings)
        except Exception as exc:
            _log(f"defaults failed: {type(exc).__name__}: {exc}")

    def get_properties(data):
        impl = reg.impl
        try:
            if impl is None:
                return None
            inst = reg.instances.get(data)
            if inst is not None:
                try:
                    inst.camera_opened()   # a camera calibrated before: its value is used
                except Exception as exc:   # the properties open all the same
                    _log(f"stored calibration not used: {type(exc).__name__}: {exc}")
            return _get_properties(impl.api, buttons)
        except Exception as exc:
            _log(f"properties failed: {type(exc).__name__}: {exc}")
            return None

    def update(data, settings):
        impl = reg.impl
        try:
            if impl is not None:
                impl.update(data, settings)
        except Exception as exc:
            _log(f"update failed: {type(exc).__name__}: {exc}")

    def filter_video(data, frame):
        impl = reg.impl
        if impl is not None:
            try:
                impl.filter_video(data, frame)
            except Exception as exc:   # a frame passes through rather than OBS losing it
                _log(f"filter_video failed: {type(exc).__name__}: {exc}")
        return frame

    def button(action):
        def clicked(_props, _prop, data):
            try:
                inst = reg.instances.get(data)
                if inst is not None and reg.impl is not None:
                    getattr(inst, action)()
            except Exception as exc:
                _log(f"{action} failed: {type(exc).__name__}: {exc}")
            return True   # redraw the properties (the status line changed)
        return BUTTON_CLICKED(clicked)

    buttons = {"calibrate": button("calibrate"), "cancel_calibration": button("cancel_calibration")}
    reg.buttons = buttons
    return {"get_name": GET_NAME(get_name), "create": CREATE(create), "destroy": DESTROY(destroy),
            "get_defaults": GET_DEFAULTS(get_defaults), "get_properties": GET_PROPERTIES(get_properties),
            "update": UPDATE(update), "filter_video": FILTER_VIDEO(filter_video)}


def register(lib: ctypes.CDLL | None = None) -> types.SimpleNamespace:
    """Register the filter type once per process and point it at this script."""
    reg = _registry()
    api = _bind(lib or _open_libobs())
    reg.impl = _Impl(api)
    if not reg.registered:
        reg.callbacks = _make_callbacks(reg)
        info = SourceInfo()
        reg.id_buf = ctypes.create_string_buffer(FILTER_ID.encode())
        info.id = ctypes.cast(reg.id_buf, ctypes.c_char_p)
        info.type = OBS_SOURCE_TYPE_FILTER
        info.output_flags = OBS_SOURCE_ASYNC_VIDEO
        for name, cb in reg.callbacks.items():
            setattr(info, name, cb)
        reg.info = info
        api.register(ctypes.byref(info), ctypes.sizeof(SourceInfo))
        reg.registered = True
        _log(f"registered filter '{FILTER_NAME}' ({FILTER_ID})")
    else:
        _log(f"filter '{FILTER_NAME}' already registered; using the reloaded script")
    # Filters that lived through a reload get fresh instances of this copy's code.
    sources = getattr(reg, "sources", None)
    if sources is None:   # a registry made by an older copy of the script
        sources = reg.sources = {}
    for key, settings in list(reg.settings.items()):
        if key not in reg.instances:
            reg.instances[key] = FilterInstance(key, settings, reg.impl.api, sources.get(key))
    return reg


def unload() -> None:
    """Stop every worker and free every slot file; the filters pass frames through."""
    reg = _registry()
    reg.impl = None
    for key in list(reg.instances):
        inst = reg.instances.pop(key, None)   # libobs may destroy one meanwhile
        if inst is not None:
            inst.shutdown()
    for inst in getattr(reg, "retiring", []):   # destroyed filters still cleaning up
        inst.worker.join(5.0)
    reg.retiring = []


# ---------------------------------------------------------------------------
# The OBS script interface
# ---------------------------------------------------------------------------
def script_description():
    return (f"<b>{FILTER_NAME}</b> (priorfx)<br>Adds the video filter \"{FILTER_NAME}\": "
            "right-click a webcam source &gt; Filters &gt; + under Audio/Video Filters.<br>"
            "Runs the correction in a separate <code>priorfx worker</code> process; frames pass "
            "through unchanged while it starts.")


def script_load(settings):
    register()


def script_unload():
    unload()
