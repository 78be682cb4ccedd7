"""Drive the OBS filter script inside real libobs (tests and `priorfx bench obs`).

Run with the Python OBS embeds (Debian: /usr/bin/python3.11) under `xvfb-run -a`
(libobs needs an X display); standard library only, like the script::

    xvfb-run -a /usr/bin/python3.11 libobs_harness.py PLAN.json OUT_DIR

It boots libobs with the OpenGL renderer, registers the filter by loading the
real OBS script and calling its `script_load`, registers a feed source (an
async video source fed with `obs_source_output_video`) and a probe filter
placed after the priorfx filter that copies every filtered frame out, then
runs the plan's steps and writes OUT_DIR/result.json (+ raw output frames).

Plan (JSON)::

    {"script": ".../priorfx_rolling_shutter.py", "fps": 30, "canvas": [1280, 720],
     "settings": {...filter settings...},
     "steps": [{"op": "wait_live"},
               {"op": "feed", "tag": "nv12", "dir": "...", "wait_result": true},
               {"op": "kill"}, {"op": "feed", "tag": "dead", "dir": "...", "count": 3},
               {"op": "stream", "tag": "720p30", "dir": "...", "seconds": 10},
               {"op": "calibrate", "dir": "...", "timeout": 60},
               {"op": "second_filter", "settings": "saved", "expect_calibrated": true}]}

"feed_settings" in the plan become the feed source's settings (e.g. a
"device_id", which the filter's per-camera calibration is keyed by).

A frames `dir` holds meta.json ({"format", "width", "height", "count"}) and
0000.raw ... (tightly packed planes, one after another).
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import json
import os
import signal
import sys
import threading
import time


def _load_script(path: str):
    spec = importlib.util.spec_from_file_location("priorfx_rolling_shutter", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


class VideoInfo(ctypes.Structure):
    """`struct obs_video_info` including `graphics_module` (hidden from SWIG)."""

    _fields_ = [("graphics_module", ctypes.c_char_p), ("fps_num", ctypes.c_uint32),
                ("fps_den", ctypes.c_uint32), ("base_width", ctypes.c_uint32),
                ("base_height", ctypes.c_uint32), ("output_width", ctypes.c_uint32),
                ("output_height", ctypes.c_uint32), ("output_format", ctypes.c_int),
                ("adapter", ctypes.c_uint32), ("gpu_conversion", ctypes.c_bool),
                ("colorspace", ctypes.c_int), ("range", ctypes.c_int), ("scale_type", ctypes.c_int)]


class AudioInfo(ctypes.Structure):
    _fields_ = [("samples_per_sec", ctypes.c_uint32), ("speakers", ctypes.c_int)]


def row_bytes(fmt: str, width: int) -> list[int]:
    """Bytes of pixels in one row of each plane (no padding)."""
    half = (width + 1) // 2
    return {"NV12": [width, 2 * half], "I420": [width, half, half], "I422": [width, half, half],
            "I444": [width, width, width], "YUY2": [2 * width], "RGBA": [4 * width],
            "BGRA": [4 * width], "BGRX": [4 * width]}[fmt]


class Harness:
    def __init__(self, plan: dict, out_dir: str):
        self.plan, self.out = plan, out_dir
        self.obs = ctypes.CDLL("libobs.so.0", mode=ctypes.RTLD_GLOBAL)
        self.script = _load_script(plan["script"])
        self.shm = self.script.shm
        self.SourceFrame, self.SourceInfo = self.script.SourceFrame, self.script.SourceInfo
        self.outputs: dict = {}            # timestamp -> (fmt, w, h, tight bytes)
        self.cv = threading.Condition()
        self.result: dict = {"steps": [], "log": []}
        self._bind()

    def _bind(self) -> None:
        o, vp, cp = self.obs, ctypes.c_void_p, ctypes.c_char_p
        for name, res, args in [
            ("obs_startup", ctypes.c_bool, [cp, cp, vp]), ("obs_reset_video", ctypes.c_int, [vp]),
            ("obs_reset_audio", ctypes.c_bool, [vp]), ("obs_shutdown", None, []),
            ("obs_source_create", vp, [cp, cp, vp, vp]), ("obs_source_release", None, [vp]),
            ("obs_source_filter_add", None, [vp, vp]), ("obs_source_filter_remove", None, [vp, vp]),
            ("obs_set_output_source", None, [ctypes.c_uint32, vp]),
            ("obs_source_output_video", None, [vp, vp]),
            ("obs_source_set_async_unbuffered", None, [vp, ctypes.c_bool]),
            ("obs_source_set_enabled", None, [vp, ctypes.c_bool]),
            ("obs_data_create_from_json", vp, [cp]), ("obs_data_release", None, [vp]),
            ("obs_source_update", None, [vp, vp]),
            ("obs_get_lagged_frames", ctypes.c_uint32, []), ("obs_get_total_frames", ctypes.c_uint32, []),
            ("os_gettime_ns", ctypes.c_uint64, []),
            ("video_format_get_parameters", ctypes.c_bool, [ctypes.c_int, ctypes.c_int, vp, vp, vp]),
            ("obs_register_source_s", None, [vp, ctypes.c_size_t]),
            ("obs_source_properties", vp, [vp]), ("obs_properties_get", vp, [vp, cp]),
            ("obs_properties_destroy", None, [vp]), ("obs_property_button_clicked", ctypes.c_bool, [vp, vp]),
            ("obs_source_get_settings", vp, [vp]), ("obs_data_get_json", cp, [vp])]:
            fn = getattr(o, name)
            fn.restype, fn.argtypes = res, args

    # -- libobs ---------------------------------------------------------------
    def boot(self) -> None:
        o = self.obs
        if not o.obs_startup(b"en-US", None, None):
            raise SystemExit("obs_startup failed (is there an X display? run under xvfb-run -a)")
        w, h = self.plan.get("canvas", [1280, 720])
        ovi = VideoInfo(b"libobs-opengl.so.1", int(self.plan.get("fps", 30)), 1, w, h, w, h,
                        2, 0, True, 2, 1, 2)   # NV12 output, Rec.709 partial, bicubic
        rc = o.obs_reset_video(ctypes.byref(ovi))
        if rc != 0:
            raise SystemExit(f"obs_reset_video failed: {rc}")
        o.obs_reset_audio(ctypes.byref(AudioInfo(48000, 2)))
        self._register_test_types()
        self.script.script_load(None)      # the real script registers the real filter
        settings = o.obs_data_create_from_json(json.dumps(self.plan.get("settings", {})).encode())
        feed_settings = o.obs_data_create_from_json(json.dumps(self.plan.get("feed_settings", {})).encode())
        self.feed = o.obs_source_create(b"priorfx_test_feed", b"feed", feed_settings, None)
        o.obs_data_release(feed_settings)
        o.obs_source_set_async_unbuffered(self.feed, True)
        self.filter = o.obs_source_create(self.script.FILTER_ID.encode(), b"rs", settings, None)
        o.obs_data_release(settings)
        if not self.filter:
            raise SystemExit("could not create the priorfx filter (not registered?)")
        o.obs_source_filter_add(self.feed, self.filter)   # applied first
        self.probe = None
        if self.plan.get("probe", True):   # benchmarks leave it out: it copies every frame in Python
            self.probe = o.obs_source_create(b"priorfx_test_probe", b"probe", None, None)
            o.obs_source_filter_add(self.feed, self.probe)    # then the probe sees the result
        o.obs_set_output_source(0, self.feed)
        reg = self.script._registry()
        self.inst = reg.instances[max(reg.instances)]

    def _register_test_types(self) -> None:
        S = self.script
        self._keep = []

        def info(id_, type_, **cbs):
            i = S.SourceInfo()
            idb = ctypes.create_string_buffer(id_)
            name = ctypes.create_string_buffer(id_)
            i.id = ctypes.cast(idb, ctypes.c_char_p)
            i.type, i.output_flags = type_, S.OBS_SOURCE_ASYNC_VIDEO
            i.get_name = S.GET_NAME(lambda _t: ctypes.addressof(name))
            i.create = S.CREATE(lambda _s, _src: 1)
            i.destroy = S.DESTROY(lambda _d: None)
            for k, v in cbs.items():
                setattr(i, k, v)
            self._keep.append((i, idb, name))
            self.obs.obs_register_source_s(ctypes.byref(i), ctypes.sizeof(i))

        info(b"priorfx_test_feed", 0)
        info(b"priorfx_test_probe", 1, filter_video=S.FILTER_VIDEO(self._probe))

    def _probe(self, _data, frame_addr):
        try:
            f = self.SourceFrame.from_address(frame_addr)
            fmt = self.shm.OBS_FORMATS.get(f.format, "?")
            rows = self.shm.plane_rows(fmt, f.height)
            parts = []
            for i, (r, rb) in enumerate(zip(rows, row_bytes(fmt, f.width))):
                ls = f.linesize[i]
                raw = ctypes.string_at(f.data[i], ls * r)
                parts.append(raw if ls == rb else b"".join(raw[y * ls:y * ls + rb] for y in range(r)))
            inst = self.inst
            with self.cv:
                self.outputs[f.timestamp] = {"data": b"".join(parts), "seq": inst.seq,
                                             "written": inst.last_written,
                                             "corrected": inst.stats.corrected}
                self.cv.notify_all()
        except Exception as exc:   # never raise into libobs
            self.result["log"].append(f"probe: {type(exc).__name__}: {exc}")
        return frame_addr

    # -- feeding ----------------------------------------------------------------
    def load_frames(self, d: str) -> tuple[dict, list[bytes]]:
        with open(os.path.join(d, "meta.json")) as fh:
            meta = json.load(fh)
        frames = []
        for p in sorted(glob.glob(os.path.join(d, "*.raw")))[:meta.get("count", 10 ** 9)]:
            with open(p, "rb") as fh:
                frames.append(fh.read())
        return meta, frames

    def make_frame(self, meta: dict, data: bytes):
        """A SourceFrame pointing into a private copy of `data` (kept alive with it)."""
        fmt, w, h = meta["format"], meta["width"], meta["height"]
        f = self.SourceFrame()
        buf = ctypes.create_string_buffer(data, len(data))
        pos = 0
        for i, (r, rb) in enumerate(zip(self.shm.plane_rows(fmt, h), row_bytes(fmt, w))):
            f.data[i] = ctypes.addressof(buf) + pos
            f.linesize[i] = rb
            pos += r * rb
        f.width, f.height = w, h
        f.format = self.shm.FORMAT_IDS[fmt]
        f.full_range = False
        at = lambda name: ctypes.addressof(f) + getattr(self.SourceFrame, name).offset  # noqa: E731
        self.obs.video_format_get_parameters(2, 1, at("color_matrix"), at("color_range_min"),
                                             at("color_range_max"))
        return f, buf

    def push(self, meta: dict, data, ts: int) -> None:
        """Output one frame (bytes, or a prepared (frame, buffer) pair) on the feed source."""
        f, _buf = self.make_frame(meta, data) if isinstance(data, bytes) else data
        f.timestamp = ts
        self.obs.obs_source_output_video(self.feed, ctypes.byref(f))   # libobs copies it

    def wait_output(self, ts: int, timeout: float = 120.0) -> dict:
        with self.cv:
            if not self.cv.wait_for(lambda: ts in self.outputs, timeout):
                raise RuntimeError(f"no filtered frame came out for timestamp {ts} in {timeout} s")
            return self.outputs.pop(ts)

    def wait_until(self, pred, timeout: float, what: str) -> float:
        t0 = time.monotonic()
        while not pred():
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.01)
        return time.monotonic() - t0

    # -- steps --------------------------------------------------------------------
    def step_wait_live(self, step: dict) -> dict:
        waited = self.wait_until(lambda: self.inst.live, step.get("timeout", 120), "the worker to be ready")
        return {"waited_s": waited, "pid": self.inst.proc.pid if self.inst.proc else None}

    def step_kill(self, step: dict) -> dict:
        self.wait_until(lambda: self.inst.live and self.inst.proc is not None, 120, "a running worker")
        pid = self.inst.proc.pid
        os.kill(pid, signal.SIGKILL)
        self.wait_until(lambda: not self.inst.live and self.inst.proc is None, 120, "the filter to notice")
        return {"killed_pid": pid}

    def step_settings(self, step: dict) -> dict:
        """New settings; done once the filter has them (OBS applies them on a video tick)."""
        data = self.obs.obs_data_create_from_json(json.dumps(step["settings"]).encode())
        self.obs.obs_source_update(self.filter, data)
        self.obs.obs_data_release(data)
        waited = self.wait_until(lambda: all(self.inst.settings.get(k) == v for k, v in step["settings"].items()),
                                 step.get("timeout", 120), "the filter to take the new settings")
        return {"waited_s": waited}

    def step_reload(self, step: dict) -> dict:
        """What OBS does on Tools > Scripts > reload: unload, import a fresh copy, load."""
        old_pid = self.inst.proc.pid if self.inst.proc else None
        old_path = self.inst.channel.path if self.inst.channel else None
        self.script.script_unload()
        unloaded = {"old_pid": old_pid, "old_shm": old_path,
                    "instances_while_unloaded": len(self.script._registry().instances)}
        if step.get("feed_while_unloaded"):
            unloaded["while_unloaded"] = self.step_feed({"tag": step["feed_while_unloaded"], "dir": step["dir"]})
        self.script = _load_script(self.plan["script"])
        self.script.script_load(None)
        reg = self.script._registry()
        self.inst = reg.instances[max(reg.instances)]
        return unloaded

    def step_wait_down(self, step: dict) -> dict:
        """Wait until a worker was started, exited and the filter noticed (it passes frames through)."""
        waited = self.wait_until(lambda: self.inst.stats.restarts >= 1 and self.inst.proc is None,
                                 step.get("timeout", 120), "the worker to exit")
        return {"waited_s": waited}

    def step_enable(self, step: dict) -> dict:
        self.obs.obs_source_set_enabled(self.filter, bool(step["enabled"]))
        return {}

    def step_feed(self, step: dict) -> dict:
        """Frames one at a time; each output is saved with what the filter did."""
        meta, frames = self.load_frames(step["dir"])
        tag, rows = step["tag"], []
        os.makedirs(os.path.join(self.out, tag), exist_ok=True)
        for k, data in enumerate(frames):
            ts = self.obs.os_gettime_ns()
            before = self.inst.stats.corrected
            self.push(meta, data, ts)
            got = self.wait_output(ts)
            with open(os.path.join(self.out, tag, f"{k:04d}.raw"), "wb") as fh:
                fh.write(got["data"])
            # what the filter did with this frame: None = passed through, else the
            # input index (in this step) whose result it shows
            shown = k - (got["seq"] - got["written"]) if got["corrected"] > before else None
            rows.append({"k": k, "seq": got["seq"], "written": got["written"], "shown": shown})
            if step.get("wait_result") and self.inst.channel is not None:
                seq, ch = self.inst.seq, self.inst.channel
                lookahead = 1 if self.plan.get("settings", {}).get("lookahead") else 0
                self.wait_until(lambda: ch.out_latest >= seq - lookahead or self.inst.channel is not ch,
                                step.get("timeout", 120), f"the worker to finish frame {k}")
        return {"meta": meta, "frames": rows}

    # -- the Calibrate button ---------------------------------------------------
    def click(self, source, button: str) -> None:
        """What OBS's properties dialog does when a button is clicked."""
        props = self.obs.obs_source_properties(source)
        try:
            prop = self.obs.obs_properties_get(props, button.encode())
            if not prop:
                raise RuntimeError(f"the filter's properties have no {button!r} button")
            self.obs.obs_property_button_clicked(prop, source)
        finally:
            self.obs.obs_properties_destroy(props)

    def saved_settings(self, source) -> dict:
        """The settings OBS would save in the scene collection."""
        data = self.obs.obs_source_get_settings(source)
        try:
            return json.loads(self.obs.obs_data_get_json(data).decode())
        finally:
            self.obs.obs_data_release(data)

    def step_calibrate(self, step: dict) -> dict:
        """Click Calibrate and stream the camera in real time until the filter has stored
        a readout (or says it could not), optionally clicking Cancel after `cancel_after_s`."""
        meta, raw_frames = self.load_frames(step["dir"])
        frames = [self.make_frame(meta, raw) for raw in raw_frames]
        fps = float(step.get("fps", 30))
        inst = self.inst
        statuses: list = []
        base_ns = self.obs.os_gettime_ns()
        t0 = time.perf_counter()
        self.click(self.filter, "calibrate")
        clicked = time.perf_counter()
        cancel_at = step.get("cancel_after_s")
        i = 0
        while True:
            now = time.perf_counter()
            status = inst.settings.get("calibration_status", "")
            if not statuses or statuses[-1] != status:
                statuses.append(status)
            if inst.calibration.get("state") in ("done", "failed", "cancelled"):
                break   # the filter sets the state after it stored the result
            if now - clicked > step.get("timeout", 120):
                raise RuntimeError(f"calibration did not end in {step.get('timeout', 120)} s: {inst.calibration}")
            if cancel_at is not None and now - clicked > cancel_at:
                self.click(self.filter, "cancel_calibration")
                cancel_at = None
            delay = t0 + i / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            # stamped with when a camera would have captured it (the content's own time),
            # as a real camera does, not when this busy process got to push it
            self.push(meta, frames[i % len(frames)], base_ns + int(i * 1e9 / fps))
            i += 1
        stored_s = time.perf_counter() - clicked
        # OBS applies settings written from another thread on its next video tick
        status = inst.settings.get("calibration_status", "")
        self.wait_until(lambda: self.saved_settings(self.filter).get("calibration_status") == status,
                        30, "the settings to reach OBS")
        return {"seconds": stored_s, "frames_pushed": i, "calibration": inst.calibration,
                "statuses": statuses, "settings": self.saved_settings(self.filter),
                "params": vars(inst._params())}

    def step_watch_readout(self, step: dict) -> dict:
        """Stream the camera in real time (camera timestamps) until the filter's "Readout
        in use" line contains `until`, or `seconds` passed; every line it showed comes back."""
        meta, raw_frames = self.load_frames(step["dir"])
        frames = [self.make_frame(meta, raw) for raw in raw_frames]
        fps = float(step.get("fps", 30))
        inst, shown = self.inst, []
        base_ns, t0 = self.obs.os_gettime_ns(), time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < step.get("seconds", 120):
            status = inst.settings.get("readout_status", "")
            if not shown or shown[-1] != status:
                shown.append(status)
            if step.get("until") and step["until"] in status:
                break
            delay = t0 + i / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.push(meta, frames[i % len(frames)], base_ns + int(i * 1e9 / fps))
            i += 1
        status = inst.settings.get("readout_status", "")
        self.wait_until(lambda: self.saved_settings(self.filter).get("readout_status") == status,
                        30, "the settings to reach OBS")
        return {"seconds": time.perf_counter() - t0, "frames_pushed": i, "shown": shown,
                "settings": self.saved_settings(self.filter), "params": vars(inst._params())}

    def step_second_filter(self, step: dict) -> dict:
        """Another feed with the same device and a new filter on it: with "settings":
        "saved" it gets the first filter's saved settings (a scene collection loaded
        again), else defaults; then its properties are opened, as a user does."""
        o = self.obs
        settings = self.saved_settings(self.filter) if step.get("settings") == "saved" else {}
        data = o.obs_data_create_from_json(json.dumps(settings).encode())
        feed_settings = o.obs_data_create_from_json(json.dumps(self.plan.get("feed_settings", {})).encode())
        feed = o.obs_source_create(b"priorfx_test_feed", b"feed2", feed_settings, None)
        flt = o.obs_source_create(self.script.FILTER_ID.encode(), b"rs2", data, None)
        o.obs_data_release(data)
        o.obs_data_release(feed_settings)
        o.obs_source_filter_add(feed, flt)
        reg = self.script._registry()
        inst = reg.instances[max(reg.instances)]
        o.obs_properties_destroy(o.obs_source_properties(flt))
        if step.get("expect_calibrated"):   # the first filter's calibration, in use
            want = self.inst.settings["calibrated_readout"]
            self.wait_until(lambda: abs(inst._params().readout - want) < 1e-6 and inst._params().prior_high > 0,
                            30, "the stored readout")
        result = {"params": vars(inst._params()), "settings": self.saved_settings(flt)}
        o.obs_source_filter_remove(feed, flt)
        o.obs_source_release(flt)
        o.obs_source_release(feed)
        return result

    def step_stream(self, step: dict) -> dict:
        """Real time: one frame per 1/fps for `seconds`, as a camera does."""
        meta, raw_frames = self.load_frames(step["dir"])
        frames = [self.make_frame(meta, raw) for raw in raw_frames]   # no copying while streaming
        fps = float(step.get("fps", 30))
        st = self.inst.stats
        before = {k: getattr(st, k) for k in ("frames", "corrected", "passthrough", "repeated", "pass_no_worker",
                                              "pass_lock_busy", "pass_no_result", "pass_stale")}
        n_cb, n_lat = len(st.callback_s), len(st.latency)
        n_cpu = len(st.callback_cpu_s)
        lagged0, total0 = self.obs.obs_get_lagged_frames(), self.obs.obs_get_total_frames()
        n = int(step["seconds"] * fps)
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.push(meta, frames[i % len(frames)], self.obs.os_gettime_ns())
        time.sleep(0.2)
        cb = list(st.callback_s)[n_cb:]
        lat = list(st.latency)[n_lat:]
        return {"meta": meta, "pushed": n, "seconds": time.perf_counter() - t0,
                "lagged": self.obs.obs_get_lagged_frames() - lagged0,
                "rendered": self.obs.obs_get_total_frames() - total0,
                **{k: getattr(st, k) - v for k, v in before.items()},
                "callback_ms": [c * 1000.0 for c in cb], "latency_frames": lat,
                "callback_cpu_ms": [c * 1000.0 for c in list(st.callback_cpu_s)[n_cpu:]]}

    def run(self) -> dict:
        self.boot()
        for step in self.plan["steps"]:
            t0 = time.monotonic()
            res = getattr(self, "step_" + step["op"])(step)
            self.result["steps"].append({"op": step["op"], "tag": step.get("tag"),
                                         "elapsed_s": time.monotonic() - t0, **res})
        self.shutdown()
        return self.result

    def shutdown(self) -> None:
        o = self.obs
        pids = [self.inst.proc.pid] if self.inst.proc else []
        shm_path = self.inst.channel.path if self.inst.channel else None
        self.result["stats"] = {k: v for k, v in self.inst.stats.as_dict().items()
                                if k not in ("callback_s", "callback_cpu_s", "latency")}
        o.obs_set_output_source(0, None)
        if self.probe:
            o.obs_source_filter_remove(self.feed, self.probe)
        o.obs_source_filter_remove(self.feed, self.filter)
        for s in (self.probe, self.filter, self.feed):
            if s:
                o.obs_source_release(s)
        self.script.script_unload()
        self.result["lagged_total"] = o.obs_get_lagged_frames()
        self.result["frames_total"] = o.obs_get_total_frames()
        t0 = time.monotonic()
        o.obs_shutdown()          # through ctypes: releases the GIL while libobs joins its threads
        self.result["shutdown_s"] = time.monotonic() - t0
        self.result["worker_pids"] = pids
        self.result["shm_path"] = shm_path
        self.result["instances_left"] = len(self.script._registry().instances)


def main(argv: list[str]) -> int:
    with open(argv[1]) as fh:
        plan = json.load(fh)
    os.makedirs(argv[2], exist_ok=True)
    h = Harness(plan, argv[2])
    try:
        result = h.run()
        code = 0
    except Exception as exc:
        import traceback
        traceback.print_exc()
        result = {**h.result, "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    with open(os.path.join(argv[2], "result.json"), "w") as fh:
        json.dump(result, fh)
    sys.stdout.flush()
    os._exit(code) if code else None
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
