#!/usr/bin/env python3
"""GIMP 3 filter "Undistort Selfie": re-render a close-up face as if shot from farther away.

Filters > Distorts > Undistort Selfie... runs the priorfx core on the active
layer and puts the result in a new layer (default) or back into the layer, in
one undo step. The plug-in runs in GIMP's own Python, so it uses only the
standard library and GObject introspection: GIMP's own exporters write the
layer to a temporary PNG (8-bit for 8-bit perceptual images; 16-bit
perceptual for 16/32-bit and linear-light ones, so high bit depth survives and
the core, which reads a PNG as sRGB, sees display-encoded values; the EXIF
goes along for the focal length), the
`priorfx undistort` command processes it (locally, or on a `priorfx serve`
through `--remote URL`), and GIMP's loader reads the result back.
The interactive dialog also keeps one `priorfx worker portrait` process while
it is open: it undistorts a copy scaled to 1024 px at most as soon as the
dialog is up (each face's estimated distance and interval, and the picture,
show before OK) and again on Preview (see PreviewWorker).

How to reach the core is recorded by `priorfx install gimp` in
`priorfx_host.json` next to this file, and read by the host kit
(`priorfx_hostkit.py`, copied beside it), which also runs the core and turns
its errors into one message.

Batch use (same parameters as the dialog)::

    proc = Gimp.get_pdb().lookup_procedure("plug-in-priorfx-undistort-selfie")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [layer])
    cfg.set_property("distance", 1.5)        # metres
    cfg.set_property("focal-mode", "manual") # or "auto" (EXIF)
    cfg.set_property("focal-mm", 26.0)       # 35 mm equivalent
    cfg.set_property("strength", 1.0)
    cfg.set_property("output", "new-layer")  # or "in-place"
    status = proc.run(cfg).index(0)
"""
from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET

import priorfx_hostkit as kit   # copied beside this file by `priorfx install gimp`

PROC_NAME = "plug-in-priorfx-undistort-selfie"
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
PREVIEW_MAX_SIDE = 1024    # the Preview runs the filter on a copy this large at most
PREVIEW_SHOW_SIDE = 360    # and shows it this large in the dialog
HANDBACK_PNG_LEVEL = 1     # deflate level of the result PNG the core hands back (0-9)


# ---------------------------------------------------------------------------
# Pure helpers (no GIMP): tested on the host with plain Python.

def focal_35mm_from_metadata_xml(xml_text: str | None) -> float | None:
    """35 mm-equivalent focal length from GIMP's serialized metadata, or None.

    Only Exif.Photo.FocalLengthIn35mmFilm is trusted: the real focal length
    alone needs the sensor size, and the focal-plane resolution tags are wrong
    as soon as the photo was cropped or resized.
    """
    if not xml_text:
        return None
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return None
    for tag in root.iter("tag"):
        if tag.get("name") == "Exif.Photo.FocalLengthIn35mmFilm":
            m = re.match(r"\s*(\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?", tag.text or "")
            if not m:
                return None
            value = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
            return value if value > 0 else None
    return None


def build_command(core: list, remote, src: str, dst: str, distance: float, strength: float,
                  focal_mm) -> list:
    """The `priorfx undistort` command line for one layer."""
    # The result file lives a second: deflate level 1 (a 12 MP PNG at the default
    # level 6 took 5.5 s to write, most of an Apply; at level 1 about a fifth).
    cmd = list(core) + ["undistort", src, "-o", dst, "--distance", f"{distance:.6g}",
                        "--strength", f"{strength:.6g}", "--progress", "json",
                        "--png-compression", str(HANDBACK_PNG_LEVEL)]
    if focal_mm is not None:
        cmd += ["--focal-mm", f"{focal_mm:.6g}"]
    if remote:
        cmd += ["--remote", remote]
    return cmd


def user_message(err: "kit.CoreError") -> str:
    """What GIMP shows for a failed core run."""
    text = f"Undistort Selfie: {err.message}"
    if err.no_face:
        text += ". The image was not changed."
    return text + (f" ({err.hint})" if err.hint else "")


def run_filter(record: dict, src: str, dst: str, distance: float, strength: float, focal_mm,
               on_progress=None, poll=None) -> list:
    """`priorfx undistort` on one exported layer; returns the core's per-face lines
    ("face 0: about 45 cm (30-80 cm) from the camera -> re-rendered at 150 cm",
    "...; nothing to correct"). Raises kit.CoreError."""
    faces = []

    def keep_face_line(line: str) -> None:
        if line.strip().startswith("face "):
            faces.append(line.strip())

    cmd = build_command(kit.find_core(record), record.get("remote"), src, dst, distance, strength, focal_mm)
    kit.run_core(cmd, kit.child_env(record), on_progress=on_progress, poll=poll, on_line=keep_face_line)
    return faces


class PreviewWorker:
    """`priorfx worker portrait`, started once when the dialog opens.

    The dialog sends it the reduced copy of the layer (exported once) with the
    current settings, at once (so the estimated distance of each face shows
    when the dialog opens) and on each Preview; the models stay loaded, so a
    Preview costs the filter's own time on the copy, not a Python start and a
    model load. Requests go one at a time; `poll()` never blocks (the dialog's
    main loop calls it from a timer).
    """

    def __init__(self, record: dict):
        cmd = list(kit.find_core(record)) + ["worker", "portrait"]
        if record.get("remote"):
            cmd += ["--remote", record["remote"]]
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=kit.child_env(record),
                                         **kit.popen_options())
        except OSError as exc:
            raise kit.start_error(cmd, exc) from None
        self.replies = queue.Queue()
        self.stderr_tail = []
        self.busy = False
        threading.Thread(target=self._read_replies, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_replies(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("{"):
                try:
                    self.replies.put(json.loads(line))
                except ValueError:
                    pass
        self.replies.put(None)          # the worker is gone

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [raw.decode("utf-8", "replace")])[-20:]

    def send(self, src: str, dst: str, distance: float, strength: float, focal_mm) -> None:
        """Ask for `src` undistorted into `dst` (raises kit.CoreError if the worker is gone)."""
        req = {"input": src, "output": dst, "distance": distance, "strength": strength, "focal_mm": focal_mm}
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (OSError, ValueError):
            raise self._gone() from None
        self.busy = True

    def poll(self):
        """The reply to the last request, or None while it is still working. A
        reply is a dict: ok, messages (one line per face), or error/message/hint."""
        try:
            reply = self.replies.get_nowait()
        except queue.Empty:
            return None
        self.busy = False
        if reply is None:
            self.replies.put(None)      # stays gone for later polls
            raise self._gone()
        return reply

    def _gone(self) -> "kit.CoreError":
        self.proc.poll()
        return kit.error_from_output("".join(self.stderr_tail), self.proc.returncode or 1, "the preview worker")

    def close(self) -> None:
        """Stop the worker: it exits when its stdin closes; one still working is interrupted."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.busy:
            kit.stop(self.proc)
            return
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kit.stop(self.proc)


def reply_text(reply: dict) -> str:
    """What the dialog shows for a worker reply: one line per face, or the error."""
    if reply.get("ok"):
        return "\n".join(reply.get("messages") or []) or "Undistort Selfie: no face in the preview"
    exit_code = kit.EXIT_NO_FACE if reply.get("error") == "no_face" else 1
    return user_message(kit.CoreError(reply.get("message") or "preview failed", reply.get("hint") or "", exit_code))


# ---------------------------------------------------------------------------
# GIMP side.

def _gimp_main() -> None:
    import gi
    gi.require_version("Gimp", "3.0")
    gi.require_version("GimpUi", "3.0")
    gi.require_version("Gegl", "0.4")
    from gi.repository import Gegl, Gimp, GimpUi, Gio, GLib, GObject

    def _(text: str) -> str:
        return GLib.dgettext(None, text)

    def export_layer(image, drawable, path: str, high_bit: bool, max_side: int | None = None) -> None:
        """Write the layer's pixels (no offsets, no mask) with GIMP's own exporter
        (scaled down to `max_side` at most, for the Preview)."""
        w, h = drawable.get_width(), drawable.get_height()
        # Same precision and profile as the image, so copying the layer converts
        # nothing (copying into another precision also converts colours in 3.0).
        tmp = Gimp.Image.new_with_precision(w, h, Gimp.ImageBaseType.RGB, image.get_precision())
        try:
            profile = image.get_color_profile()
            if profile is not None:
                tmp.set_color_profile(profile)
            layer = Gimp.Layer.new_from_drawable(drawable, tmp)
            tmp.insert_layer(layer, None, 0)
            layer.set_offsets(0, 0)
            if max_side and max(w, h) > max_side:
                k = max_side / max(w, h)
                tmp.scale(max(1, round(w * k)), max(1, round(h * k)))
            if high_bit:
                # 16-bit display-encoded PNG: lossless for 16-bit layers, and the
                # core writes 16-bit PNG back for 16-bit PNG input; linear-light
                # values are converted to perceptual here, by GIMP.
                tmp.convert_precision(Gimp.Precision.U16_NON_LINEAR)
            metadata = image.get_metadata()
            if metadata is not None:
                # the EXIF travels along, so "auto" focal length is the core's
                # own EXIF logic, exactly as for `priorfx undistort photo.jpg`
                tmp.set_metadata(metadata)
            proc = Gimp.get_pdb().lookup_procedure("file-png-export")
            cfg = proc.create_config()
            cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
            cfg.set_property("image", tmp)
            cfg.set_property("file", Gio.File.new_for_path(path))
            cfg.set_property("compression", 1)  # speed over size: the file lives a second
            cfg.set_property("save-transparent", True)  # keep colour under alpha 0 (it is warped too)
            cfg.set_property("offs", False)
            cfg.set_property("include-thumbnail", False)
            cfg.set_property("include-color-profile", False)
            cfg.set_property("include-exif", metadata is not None)
            res = proc.run(cfg)
            if res.index(0) != Gimp.PDBStatusType.SUCCESS:
                raise kit.CoreError(f"GIMP could not write the layer to {path}")
        finally:
            tmp.delete()

    def load_result(path: str, image):
        """Load the core's output as a temporary image matching the layer's image."""
        try:
            out = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
        except GLib.Error as exc:
            raise kit.CoreError(f"GIMP could not read the result: {exc.message}") from None
        profile = image.get_color_profile()
        if profile is not None:
            out.set_color_profile(profile)  # assign (not convert): the values are in the layer's space
        if out.get_precision() != image.get_precision():
            out.convert_precision(image.get_precision())
        if out.get_base_type() != Gimp.ImageBaseType.RGB:
            out.convert_rgb()
        return out

    def apply_result(image, drawable, out_image, mode: str):
        out_layer = out_image.get_layers()[0]
        _, ox, oy = drawable.get_offsets()
        w, h = drawable.get_width(), drawable.get_height()
        if mode == "in-place":
            rect = Gegl.Rectangle.new(0, 0, w, h)
            shadow = drawable.get_shadow_buffer()
            out_layer.get_buffer().copy(rect, Gegl.AbyssPolicy.NONE, shadow, rect)
            shadow.flush()
            drawable.merge_shadow(True)  # True: push an undo step for the pixels
            drawable.update(0, 0, w, h)
            return drawable
        layer = Gimp.Layer.new_from_drawable(out_layer, image)
        layer.set_name(f"{drawable.get_name()} (undistorted)")
        parent = drawable.get_parent()
        image.insert_layer(layer, parent, image.get_item_position(drawable))
        layer.set_offsets(ox, oy)
        image.set_selected_layers([layer])
        return layer

    seen_progress = []   # the bar pulses until the core reports real progress

    def _show_progress(done: int, total: int, message: str) -> None:
        seen_progress.append(done)
        if total:
            Gimp.progress_update(done / total)
        if message:
            Gimp.progress_set_text(message)

    def _pulse() -> None:
        if not seen_progress:
            Gimp.progress_pulse()

    def focal_of(config):
        # auto: no --focal-mm; the core reads the EXIF that travels with the layer
        return config.get_property("focal-mm") if config.get_property("focal-mode") == "manual" else None

    def add_preview(dialog, config, image, drawable, high_bit: bool, tmpdir: str):
        """The estimate and the Preview: the filter on a reduced copy, shown in the
        dialog with each face's estimated distance (and its interval). It runs as
        soon as the dialog is up, and again on Preview with the current settings.
        The image is not touched (a temporary image is exported, once), so OK
        still makes one undo step. Returns a function that stops the worker."""
        gi.require_version("Gtk", "3.0")
        gi.require_version("GdkPixbuf", "2.0")
        from gi.repository import GdkPixbuf, Gtk

        box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=6)
        button = Gtk.Button.new_with_mnemonic(_("_Preview"))
        label = Gtk.Label(label=_("Estimating each face's distance from the camera..."))
        label.set_line_wrap(True)
        label.set_xalign(0.0)
        picture = Gtk.Image()
        src = os.path.join(tmpdir, "preview.png")
        state = {"worker": None, "count": 0, "again": False}

        def show_error(text: str) -> None:
            picture.clear()
            label.set_text(text)
            button.set_sensitive(True)

        def send() -> None:
            state["count"] += 1
            dst = os.path.join(tmpdir, "preview_out_{}.png".format(state["count"]))
            state["worker"].send(src, dst, config.get_property("distance"), config.get_property("strength"),
                                 focal_of(config))
            state["dst"] = dst

        def check() -> bool:
            worker = state["worker"]
            if worker is None:
                return False
            try:
                reply = worker.poll()
                if reply is None:
                    return True         # still working: look again
                if state["again"]:      # settings changed meanwhile: show the newest
                    state["again"] = False
                    send()
                    return True
                if reply.get("ok"):
                    pix = GdkPixbuf.Pixbuf.new_from_file_at_scale(state["dst"], PREVIEW_SHOW_SIDE,
                                                                  PREVIEW_SHOW_SIDE, True)
                    picture.set_from_pixbuf(pix)
                else:
                    picture.clear()
                label.set_text(reply_text(reply))
                button.set_sensitive(True)
            except kit.CoreError as err:
                show_error(user_message(err))
            except Exception as exc:  # the dialog stays usable
                show_error(f"Undistort Selfie: preview failed: {exc}")
            return False

        def start() -> bool:
            try:
                state["worker"] = PreviewWorker(kit.load_record(PLUGIN_DIR))
                export_layer(image, drawable, src, high_bit, max_side=PREVIEW_MAX_SIDE)
                send()
                GLib.timeout_add(100, check)
            except kit.CoreError as err:
                show_error(user_message(err))
            except Exception as exc:
                show_error(f"Undistort Selfie: preview failed: {exc}")
            return False

        def on_click(_button):
            worker = state["worker"]
            if worker is None or not os.path.exists(src):
                return
            label.set_text(_("Working..."))
            try:
                if worker.busy:
                    state["again"] = True
                else:
                    button.set_sensitive(False)
                    send()
                    GLib.timeout_add(100, check)
            except kit.CoreError as err:
                show_error(user_message(err))

        def stop() -> None:
            if state["worker"] is not None:
                state["worker"].close()
                state["worker"] = None

        button.set_sensitive(False)
        button.connect("clicked", on_click)
        box.pack_start(button, False, False, 0)
        box.pack_start(label, False, False, 0)
        box.pack_start(picture, False, False, 0)
        dialog.get_content_area().pack_end(box, False, False, 6)
        box.show_all()
        GLib.idle_add(start)            # once the dialog is on screen
        return stop

    def fail(procedure, run_mode, text: str, status=None):
        # Interactive: GIMP itself shows the returned error in a message box (as
        # for its own Python plug-ins); batch: also say it on GIMP's console.
        if run_mode != Gimp.RunMode.INTERACTIVE:
            Gimp.message(text)
        return procedure.new_return_values(status or Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(text))

    def run(procedure, run_mode, image, drawables, config, data):
        if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
            return fail(procedure, run_mode, "Undistort Selfie: select exactly one layer.",
                        Gimp.PDBStatusType.CALLING_ERROR)
        drawable = drawables[0]
        precision = image.get_precision()
        # 8-bit perceptual layers go as they are. Everything else, linear-light
        # 8-bit included, goes as a 16-bit perceptual (sRGB-encoded) PNG: the
        # core reads a PNG as sRGB (its --colorspace auto), GIMP's precision
        # conversion on the way back returns the result to linear light, and
        # at 16 bits no 8-bit linear level is merged on the way out (GIMP's
        # exporter would encode an 8-bit linear layer to 8-bit perceptual).
        high_bit = precision not in (Gimp.Precision.U8_NON_LINEAR, Gimp.Precision.U8_PERCEPTUAL)
        exif_focal = focal_35mm_from_metadata_xml(
            image.get_metadata().serialize() if image.get_metadata() else None)

        if run_mode == Gimp.RunMode.INTERACTIVE:
            GimpUi.init(PROC_NAME)
            dialog = GimpUi.ProcedureDialog.new(procedure, config, _("Undistort Selfie"))
            dialog.get_spin_scale("distance", 1.0)   # a slider: the distance is continuous
            dialog.get_spin_scale("strength", 1.0)
            dialog.get_widget("focal-mode", GimpUi.IntRadioFrame)
            dialog.get_widget("output", GimpUi.IntRadioFrame)
            note = (f"EXIF: {exif_focal:g} mm (35 mm equivalent), weighed with the face's perspective"
                    if exif_focal else "No EXIF focal length: estimated from the face's perspective "
                                       "(coarse; faces that may be far are left alone)")
            dialog.get_label("exif-note", note, False, False)
            dialog.get_widget("focal-mm", GObject.TYPE_NONE)  # exists before its sensitivity rule
            try:
                manual = Gimp.ValueArray.new_from_values([GObject.Value(GObject.TYPE_STRING, "manual")])
                dialog.set_sensitive_if_in("focal-mm", None, "focal-mode", manual, True)
            except (TypeError, AttributeError, ValueError):
                pass  # other 3.0.x bindings: the field just stays editable
            dialog.fill(["distance", "focal-mode", "exif-note", "focal-mm", "strength", "output"])
            with tempfile.TemporaryDirectory(prefix="priorfx-preview-") as preview_dir:
                stop_preview = add_preview(dialog, config, image, drawable, high_bit, preview_dir)
                try:
                    ok = dialog.run()
                finally:
                    stop_preview()
                    dialog.destroy()
            if not ok:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())

        distance = config.get_property("distance")
        strength = config.get_property("strength")
        mode = config.get_property("output")
        focal = focal_of(config)
        Gimp.progress_init(_("Undistorting selfie"))
        out_image = None
        faces = []
        try:
            record = kit.load_record(PLUGIN_DIR)
            with tempfile.TemporaryDirectory(prefix="priorfx-gimp-") as tmpdir:
                src = os.path.join(tmpdir, "layer.png")
                dst = os.path.join(tmpdir, "undistorted.png")
                export_layer(image, drawable, src, high_bit)
                faces = run_filter(record, src, dst, distance, strength, focal,
                                   on_progress=_show_progress, poll=_pulse)
                out_image = load_result(dst, image)
            if (out_image.get_width(), out_image.get_height()) != (drawable.get_width(), drawable.get_height()):
                raise kit.CoreError("the core returned an image of another size; the image was not changed")
            # Only now touch the user's image, all in one undo step.
            image.undo_group_start()
            try:
                apply_result(image, drawable, out_image, mode)
            finally:
                image.undo_group_end()
        except kit.CoreError as err:
            return fail(procedure, run_mode, user_message(err))
        except Exception as exc:  # never a traceback in the user's face
            return fail(procedure, run_mode, f"Undistort Selfie: internal error: {exc}")
        finally:
            if out_image is not None:
                out_image.delete()
            Gimp.progress_end()
        Gimp.displays_flush()
        if faces:
            # The estimated distance of each face (with its interval), and whether it was left as is.
            Gimp.message("Undistort Selfie:\n" + "\n".join(faces))
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())

    class UndistortSelfie(Gimp.PlugIn):
        def do_set_i18n(self, procname):
            return False

        def do_query_procedures(self):
            return [PROC_NAME]

        def do_create_procedure(self, name):
            procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
            procedure.set_image_types("RGB*")
            procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
            procedure.set_menu_label(_("Undistort _Selfie..."))
            procedure.add_menu_path("<Image>/Filters/Distorts")
            procedure.set_documentation(
                _("Undo the big-nose look of a close-up selfie"),
                _("Re-renders the face in the active layer as if photographed from the target "
                  "distance with a matching longer lens, using a 3D face prior (priorfx). "
                  "The result goes to a new layer (default) or replaces the layer's pixels. "
                  "Fails with a message, leaving the image unchanged, when no face is found."),
                name)
            procedure.set_attribution("priorfx", "GPL-3.0-or-later", "2026")
            flags = GObject.ParamFlags.READWRITE
            procedure.add_double_argument("distance", _("Target _distance (m)"),
                                          _("Camera distance to simulate, in metres"),
                                          0.3, 10.0, 1.5, flags)
            focal_mode = Gimp.Choice.new()
            focal_mode.add("auto", 0, _("Auto (face perspective, EXIF)"), "")
            focal_mode.add("manual", 1, _("Manual"), "")
            procedure.add_choice_argument("focal-mode", _("_Focal length"),
                                          _("Take the 35 mm equivalent focal length from the photo's "
                                            "EXIF (auto) or from focal-mm (manual)"),
                                          focal_mode, "auto", flags)
            procedure.add_double_argument("focal-mm", _("Focal length, 35 mm _equivalent (mm)"),
                                          _("Focal length of the original shot, used when focal-mode is manual"),
                                          8.0, 300.0, 26.0, flags)
            procedure.add_double_argument("strength", _("S_trength"),
                                          _("0 keeps the photo, 1 is the full correction"),
                                          0.0, 1.0, 1.0, flags)
            output = Gimp.Choice.new()
            output.add("new-layer", 0, _("New layer"), "")
            output.add("in-place", 1, _("Replace layer pixels"), "")
            procedure.add_choice_argument("output", _("_Output"),
                                          _("Put the result in a new layer above (new-layer) "
                                            "or into the layer (in-place)"),
                                          output, "new-layer", flags)
            return procedure

    Gimp.main(UndistortSelfie.__gtype__, sys.argv)


if __name__ == "__main__":
    _gimp_main()
