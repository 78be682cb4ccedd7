# Runs INSIDE gimp-console (python-fu-eval, GIMP's Python 3.13), fed on stdin.
# Reads the case list from $PRIORFX_GIMP_SPEC (JSON), calls the plug-in's PDB
# procedure for each case as a batch script would, and writes what a user
# would check (status, message, layers, offsets, exported pixels) to the
# spec's "results" path. Each case is isolated: an exception is recorded and
# the next case runs.
import hashlib
import json
import os
import time
import traceback

import gi
gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PROC = "plug-in-priorfx-undistort-selfie"
spec = json.load(open(os.environ["PRIORFX_GIMP_SPEC"]))


def layer_digest(layer):
    """sha256 of the layer's pixels as float RGBA (unchanged image <=> same digest)."""
    w, h = layer.get_width(), layer.get_height()
    data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A float",
                                  Gegl.AbyssPolicy.NONE)
    return hashlib.sha256(bytes(data)).hexdigest()


def export_layer(layer, path, fmt):
    """Export one layer alone (no offsets) as PNG in the given file-png-export format."""
    img = layer.get_image()
    tmp = Gimp.Image.new_with_precision(layer.get_width(), layer.get_height(),
                                        Gimp.ImageBaseType.RGB, img.get_precision())
    prof = img.get_color_profile()
    if prof is not None:
        tmp.set_color_profile(prof)
    copy = Gimp.Layer.new_from_drawable(layer, tmp)
    tmp.insert_layer(copy, None, 0)
    copy.set_offsets(0, 0)
    proc = Gimp.get_pdb().lookup_procedure("file-png-export")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", tmp)
    cfg.set_property("file", Gio.File.new_for_path(path))
    cfg.set_property("format", fmt)
    cfg.set_property("save-transparent", True)
    res = proc.run(cfg)
    tmp.delete()
    if res.index(0) != Gimp.PDBStatusType.SUCCESS:
        raise RuntimeError(f"export of {path} failed")


def layer_info(layer):
    _, x, y = layer.get_offsets()
    return {"name": layer.get_name(), "offsets": [x, y], "size": [layer.get_width(), layer.get_height()],
            "alpha": bool(layer.has_alpha())}


def run_case(case):
    img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["input"]))
    layer = img.get_layers()[0]
    if case.get("precision"):
        img.convert_precision(getattr(Gimp.Precision, case["precision"]))
        layer = img.get_layers()[0]
    if case.get("canvas"):
        cw, ch = case["canvas"]
        img.resize(cw, ch, 0, 0)
    if case.get("offsets"):
        layer.set_offsets(*case["offsets"])
    if case.get("input_export"):
        export_layer(layer, case["input_export"], case.get("format", "auto"))
    before = {"layers": [layer_info(l) for l in img.get_layers()], "digest": layer_digest(layer),
              "precision": img.get_precision().value_nick}

    proc = Gimp.get_pdb().lookup_procedure(PROC)
    if proc is None:
        raise RuntimeError(f"procedure {PROC} is not registered")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", [layer])
    for k, v in case["params"].items():
        cfg.set_property(k, v)
    t0 = time.monotonic()
    res = proc.run(cfg)
    seconds = time.monotonic() - t0
    status = res.index(0)
    out = {"status": status.value_nick, "before": before, "seconds": round(seconds, 2)}
    if status != Gimp.PDBStatusType.SUCCESS and res.length() > 1:
        out["error"] = str(res.index(1))
    layers = img.get_layers()
    out["after"] = {"layers": [layer_info(l) for l in layers], "digest": layer_digest(layer),
                    "precision": img.get_precision().value_nick}
    if status == Gimp.PDBStatusType.SUCCESS and case.get("output"):
        selected = img.get_selected_layers()
        target = selected[0] if selected else layers[0]
        out["result_layer"] = layer_info(target)
        export_layer(target, case["output"], case.get("format", "auto"))
    img.delete()
    return out


results = {"procedure_registered": Gimp.get_pdb().procedure_exists(PROC)}
if results["procedure_registered"]:
    p = Gimp.get_pdb().lookup_procedure(PROC)
    results["menu_paths"] = list(p.get_menu_paths())
    results["menu_label"] = p.get_menu_label()
    results["arguments"] = [a.name for a in p.get_arguments()]
for case in spec["cases"]:
    saved = None
    try:
        if case.get("core_config"):
            # as if the user re-ran `priorfx install gimp` with other settings
            with open(spec["plugin_config"]) as fh:
                saved = fh.read()
            with open(case["core_config"]) as fh:
                new = fh.read()
            with open(spec["plugin_config"], "w") as fh:
                fh.write(new)
        results[case["name"]] = run_case(case)
        if case.get("core_config"):
            results[case["name"]]["core_config"] = json.loads(new)
    except Exception:
        results[case["name"]] = {"exception": traceback.format_exc()}
    finally:
        if saved is not None:
            with open(spec["plugin_config"], "w") as fh:
                fh.write(saved)
with open(spec["results"], "w") as fh:
    json.dump(results, fh, indent=1)
