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

How to reach the core is recorded by `priorfx install gimp` in
`priorfx-undistort.json` next to this file::

    {"priorfx": "/path/to/venv/bin/priorfx", "remote": null, "env": {}}

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
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

PROC_NAME = "plug-in-priorfx-undistort-selfie"
CONFIG_NAME = "priorfx-undistort.json"
EXIT_NO_FACE = 6
# Variables that GIMP (or a bundled Python) sets for its own interpreter and
# that would break the core's Python in the child process.
_HOST_PYTHON_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE")


# ---------------------------------------------------------------------------
# Pure helpers (no GIMP): tested on the host with plain Python.

class CoreError(Exception):
    """The core failed; `message` is what the user sees, `no_face` marks exit 6."""

    def __init__(self, message: str, no_face: bool = False):
        super().__init__(message)
        self.message = message
        self.no_face = no_face


def load_core_config(plugin_dir: str) -> dict:
    """Read how to reach the core (written by `priorfx install gimp`).

    Missing file: fall back to `priorfx` on PATH, run locally.
    """
    path = os.path.join(plugin_dir, CONFIG_NAME)
    cfg = {"priorfx": None, "remote": None, "env": {}}
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as fh:
                cfg.update(json.load(fh))
        except (OSError, ValueError) as exc:
            raise CoreError(f"cannot read {path}: {exc}; run `priorfx install gimp` again") from None
    if not cfg.get("priorfx"):
        cfg["priorfx"] = shutil.which("priorfx")
    return cfg


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


def build_command(cfg: dict, src: str, dst: str, distance: float, strength: float,
                  focal_mm: float | None) -> list[str]:
    """The `priorfx undistort` command line for one layer."""
    exe = cfg.get("priorfx")
    if not exe:
        raise CoreError("the priorfx command was not found; run `priorfx install gimp` "
                        "(it records where priorfx is) or put priorfx on PATH")
    cmd = [exe, "undistort", src, "-o", dst, "--distance", f"{distance:.6g}",
           "--strength", f"{strength:.6g}"]
    if focal_mm is not None:
        cmd += ["--focal-mm", f"{focal_mm:.6g}"]
    if cfg.get("remote"):
        cmd += ["--remote", cfg["remote"]]
    return cmd


def child_env(cfg: dict, base: dict | None = None) -> dict:
    """Environment for the core: ours minus GIMP's Python settings, plus the recorded ones."""
    env = dict(os.environ if base is None else base)
    for var in _HOST_PYTHON_VARS:
        env.pop(var, None)
    env.update({k: str(v) for k, v in (cfg.get("env") or {}).items()})
    return env


def error_from_output(returncode: int, stderr: str) -> CoreError:
    """Turn the CLI's 'priorfx: error: ...' / 'priorfx: hint: ...' lines into one message."""
    msg = hint = None
    for line in stderr.splitlines():
        if line.startswith("priorfx: error:"):
            msg = line.split(":", 2)[2].strip()
        elif line.startswith("priorfx: hint:"):
            hint = line.split(":", 2)[2].strip()
    if msg is None:
        tail = [ln for ln in stderr.strip().splitlines() if ln.strip()][-3:]
        msg = f"priorfx failed with exit code {returncode}" + (": " + " / ".join(tail) if tail else "")
    if returncode == EXIT_NO_FACE:
        text = f"Undistort Selfie: {msg}. The image was not changed."
    else:
        text = f"Undistort Selfie: {msg}"
    if hint:
        text += f" ({hint})"
    return CoreError(text, no_face=returncode == EXIT_NO_FACE)


def run_core(cmd: list[str], env: dict, poll=None) -> None:
    """Run the CLI; call `poll()` while it works (progress pulse); raise CoreError on failure."""
    try:
        # CREATE_NO_WINDOW: no console window flashing up on Windows
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except OSError as exc:
        raise CoreError(f"Undistort Selfie: cannot run {cmd[0]}: {exc.strerror or exc}; "
                        "run `priorfx install gimp` again or fix the path in "
                        f"{CONFIG_NAME} next to the plug-in") from None
    # stderr is read by communicate() in a loop with a timeout so that GIMP's
    # progress bar keeps moving and a full pipe never blocks the core.
    chunks = []
    while True:
        try:
            _, err = proc.communicate(timeout=0.2)
            chunks.append(err or b"")
            break
        except subprocess.TimeoutExpired:
            if poll:
                poll()
    stderr = b"".join(chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        raise error_from_output(proc.returncode, stderr)


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

    plugin_dir = os.path.dirname(os.path.abspath(__file__))

    def export_layer(image, drawable, path: str, high_bit: bool) -> None:
        """Write the layer's pixels (no offsets, no mask) with GIMP's own exporter."""
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
                raise CoreError(f"Undistort Selfie: GIMP could not write the layer to {path}")
        finally:
            tmp.delete()

    def load_result(path: str, image):
        """Load the core's output as a temporary image matching the layer's image."""
        try:
            out = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
        except GLib.Error as exc:
            raise CoreError(f"Undistort Selfie: GIMP could not read the result: {exc.message}") from None
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
        exif_focal = focal_35mm_from_metadata_xml(
            image.get_metadata().serialize() if image.get_metadata() else None)

        if run_mode == Gimp.RunMode.INTERACTIVE:
            GimpUi.init(PROC_NAME)
            dialog = GimpUi.ProcedureDialog.new(procedure, config, _("Undistort Selfie"))
            dialog.get_spin_scale("distance", 1.0)   # a slider: the distance is continuous
            dialog.get_spin_scale("strength", 1.0)
            dialog.get_widget("focal-mode", GimpUi.IntRadioFrame)
            dialog.get_widget("output", GimpUi.IntRadioFrame)
            note = (f"EXIF: {exif_focal:g} mm (35 mm equivalent)" if exif_focal
                    else "EXIF has no 35 mm focal length: priorfx assumes 26 mm")
            dialog.get_label("exif-note", note, False, False)
            dialog.get_widget("focal-mm", GObject.TYPE_NONE)  # exists before its sensitivity rule
            try:
                manual = Gimp.ValueArray.new_from_values([GObject.Value(GObject.TYPE_STRING, "manual")])
                dialog.set_sensitive_if_in("focal-mm", None, "focal-mode", manual, True)
            except (TypeError, AttributeError, ValueError):
                pass  # other 3.0.x bindings: the field just stays editable
            dialog.fill(["distance", "focal-mode", "exif-note", "focal-mm", "strength", "output"])
            ok = dialog.run()
            dialog.destroy()
            if not ok:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())

        distance = config.get_property("distance")
        strength = config.get_property("strength")
        mode = config.get_property("output")
        # auto: no --focal-mm; the core reads the EXIF that travels with the layer
        focal = config.get_property("focal-mm") if config.get_property("focal-mode") == "manual" else None

        precision = image.get_precision()
        # 8-bit perceptual layers go as they are. Everything else, linear-light
        # 8-bit included, goes as a 16-bit perceptual (sRGB-encoded) PNG: the
        # core reads a PNG as sRGB (its --colorspace auto), GIMP's precision
        # conversion on the way back returns the result to linear light, and
        # at 16 bits no 8-bit linear level is merged on the way out (GIMP's
        # exporter would encode an 8-bit linear layer to 8-bit perceptual).
        high_bit = precision not in (Gimp.Precision.U8_NON_LINEAR, Gimp.Precision.U8_PERCEPTUAL)
        Gimp.progress_init(_("Undistorting selfie"))
        out_image = None
        try:
            core_cfg = load_core_config(plugin_dir)
            with tempfile.TemporaryDirectory(prefix="priorfx-gimp-") as tmpdir:
                src = os.path.join(tmpdir, "layer.png")
                dst = os.path.join(tmpdir, "undistorted.png")
                export_layer(image, drawable, src, high_bit)
                cmd = build_command(core_cfg, src, dst, distance, strength, focal)
                run_core(cmd, child_env(core_cfg), poll=Gimp.progress_pulse)
                out_image = load_result(dst, image)
            if (out_image.get_width(), out_image.get_height()) != (drawable.get_width(), drawable.get_height()):
                raise CoreError("Undistort Selfie: the core returned an image of another size; "
                                "the image was not changed")
            # Only now touch the user's image, all in one undo step.
            image.undo_group_start()
            try:
                apply_result(image, drawable, out_image, mode)
            finally:
                image.undo_group_end()
        except CoreError as err:
            return fail(procedure, run_mode, err.message)
        except Exception as exc:  # never a traceback in the user's face
            return fail(procedure, run_mode, f"Undistort Selfie: internal error: {exc}")
        finally:
            if out_image is not None:
                out_image.delete()
            Gimp.progress_end()
        Gimp.displays_flush()
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
            focal_mode.add("auto", 0, _("Auto (from EXIF)"), "")
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
