"""Publishing: each validator catches a file built to break it and passes a good one;
a failed publish writes nothing; versions increment; manifests match the files."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from priorfx.errors import InputError
from priorfx.io import write_image
from priorfx.provenance import provenance
from priorfx.publish import PublishParams, publish
from priorfx.publish import checks, collect, integrate

H, W = 40, 64
FRAMES = range(1001, 1007)
CHANNELS = ["R", "G", "B", "A", "matte.alpha", "matte.confidence"]


def _plate_rgb(f: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.stack([xx / W, yy / H, np.full_like(xx, 0.2 + 0.01 * (f % 10))], axis=-1)


def _alpha(f: int) -> np.ndarray:
    """A soft disc that moves right one pixel per frame (steady motion, no flicker)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return np.clip((12 - np.hypot(xx - 20 - (f - 1000), yy - 20)) / 3, 0, 1).astype(np.float32)


def write_plate(folder: Path, frames=FRAMES, colorspace="ACEScg", size=(W, H)) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        rgb = _plate_rgb(f)
        if size != (W, H):
            rgb = np.zeros((size[1], size[0], 3), np.float32)
        write_image(folder / f"plate.{f:04d}.exr", rgb, metadata={"oiio:ColorSpace": colorspace} if colorspace else None)
    return str(folder / "plate.%04d.exr")


def write_matte_frame(path: Path, f: int, *, alpha=None, rgb=None, channels=CHANNELS, bits=None,
                      colorspace="ACEScg", prov="default", extra_meta=None, drop=()) -> None:
    a = _alpha(f) if alpha is None else alpha
    fg = _plate_rgb(f) * a[..., None] if rgb is None else rgb
    planes = {"R": fg[..., 0], "G": fg[..., 1], "B": fg[..., 2], "A": a, "matte.alpha": a,
              "matte.confidence": np.ones_like(a)}
    names = [c for c in channels if c not in drop]
    px = np.stack([planes[c] for c in names], axis=-1)
    meta = {"oiio:ColorSpace": colorspace} if colorspace else {}
    meta.update(extra_meta or {})
    record = provenance("matte", {"quality": "fast"}, ["rvm-mobilenetv3"]) if prov == "default" else prov
    write_image(path, px, names, metadata=meta, provenance=record, bits=bits)


def write_results(folder: Path, frames=FRAMES, per_frame=None, **kw) -> Path:
    """A good matte sequence; `per_frame(f) -> dict` overrides the keywords of one frame."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        opts = dict(kw)
        opts.update((per_frame or (lambda _f: {}))(f) or {})
        write_matte_frame(folder / f"matte.{f:04d}.exr", f, **opts)
    return folder


@pytest.fixture
def shot(tmp_path) -> Path:
    d = tmp_path / "shot"
    d.mkdir()
    return d


@pytest.fixture
def plate(tmp_path) -> str:
    return write_plate(tmp_path / "plate")


def _check(report, name):
    (item,) = report.items
    return next(c for c in item.checks if c.name == name)


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --------------------------------------------------------------------------- good publish

def test_good_sequence_passes_every_check_and_publishes_v001_then_v002(tmp_path, shot, plate):
    res = write_results(tmp_path / "res")
    report = publish(res, shot, plate=plate)
    assert report.ok, report.format()
    statuses = {c.name: c.status for c in report.items[0].checks}
    assert statuses == {n: "passed" for n in ("frames", "plate", "channels", "colorspace", "provenance", "finite",
                                               "alpha_range", "premultiplication", "matte_not_empty", "flicker")}
    v1 = shot / "matte" / "v001"
    assert report.published == [str(v1)]
    assert sorted(p.name for p in v1.iterdir()) == ["manifest.json"] + [f"matte.{f}.exr" for f in FRAMES]
    # the published frames are the results, byte for byte
    for f in FRAMES:
        assert (v1 / f"matte.{f}.exr").read_bytes() == (res / f"matte.{f}.exr").read_bytes()
    report2 = publish(res, shot, plate=plate)
    assert report2.ok and report2.published == [str(shot / "matte" / "v002")]
    assert sorted(p.name for p in (shot / "matte").iterdir()) == ["v001", "v002"]


def test_manifest_checksums_match_files_and_record_provenance_and_checks(tmp_path, shot, plate):
    res = write_results(tmp_path / "res")
    report = publish(res, shot, plate=plate)
    vdir = Path(report.published[0])
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["version"] == "v001" and manifest["family"] == "priorfx.matte"
    assert manifest["frame_range"] == [1001, 1006] and manifest["frame_count"] == 6
    assert manifest["plate"] == plate
    assert manifest["provenance"]["models"] == ["rvm-mobilenetv3"]
    assert {c["name"]: c["status"] for c in manifest["validation"]}["alpha_range"] == "passed"
    assert len(manifest["files"]) == 6
    for entry in manifest["files"]:
        data = (vdir / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size"]
    assert integrate.verify(vdir) == []
    (vdir / "matte.1003.exr").write_bytes(b"tampered")
    assert integrate.verify(vdir) == ["matte.1003.exr"]


# --------------------------------------------------------------------------- each validator

def _publish_broken(tmp_path, shot, plate=None, **kw):
    res = write_results(tmp_path / "res", **kw)
    before = _tree(shot)
    report = publish(res, shot, plate=plate)
    assert not report.ok
    assert _tree(shot) == before, "a failed publish wrote into the shot folder"
    return report


# One file (or sequence) built to break each validator: (results options, check, words in its message).
BROKEN = {
    "frame missing": (dict(frames=[1001, 1002, 1004, 1005, 1006]), "frames",
                      "1 frame(s) missing inside 1001-1006: 1003"),
    "plate range not covered": (dict(frames=range(1001, 1005)), "frames",
                                "frames 1005-1006 of the plate (1001-1006) have no result"),
    "declared range not covered": (dict(frames=range(1001, 1004),
                                        prov=provenance("matte", {}, ["rvm-mobilenetv3"], frame_range=[1001, 1004])),
                                   "frames", "frames 1004 of the declared range 1001-1004 have no result"),
    "declared range outside the plate": (dict(frames=range(1005, 1008), prov=provenance(
        "matte", {}, ["rvm-mobilenetv3"], frame_range=[1005, 1007])), "frames",
        "the declared range 1005-1007 reaches outside the plate (1001-1006)"),
    "pixel aspect": (dict(extra_meta={"PixelAspectRatio": 2.0}), "plate", "has pixel aspect 2, the plate 1"),
    "unpremultiplied under premult header": (dict(per_frame=lambda f: {"rgb": _plate_rgb(f)}),
                                             "premultiplication", "the pixels look unpremultiplied"),
    "channel missing": (dict(drop=("matte.confidence",)), "channels", "lacks matte.confidence"),
    "float not half": (dict(bits=32), "channels", "as float, not half float"),
    "provenance missing": (dict(per_frame=lambda f: {"prov": None} if f == 1003 else None), "provenance",
                           "matte.1003.exr has no priorfx provenance"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_validator_catches_a_file_built_to_break_it(tmp_path, shot, plate, case):
    options, name, words = BROKEN[case]
    report = _publish_broken(tmp_path, shot, plate, **options)
    c = _check(report, name)
    assert c.status == "failed" and words in c.message, c.message
    assert c.hint  # says what to do
    others = [x.name for x in report.items[0].checks if x.status == "failed" and x.name != name]
    assert others == [], f"{case} also failed {others}"


def test_a_declared_custom_range_of_a_longer_plate_is_complete(tmp_path, shot, plate):
    res = write_results(tmp_path / "res", frames=range(1002, 1005),
                        prov=provenance("matte", {}, ["rvm-mobilenetv3"], frame_range=[1002, 1004]))
    report = publish(res, shot, plate=plate, dry_run=True)
    assert report.ok, report.format()
    assert "as the declared range" in _check(report, "frames").message


def test_resolution_must_match_the_plate(tmp_path, shot):
    big_plate = write_plate(tmp_path / "plate", size=(80, 40))
    report = _publish_broken(tmp_path, shot, big_plate)
    c = _check(report, "plate")
    assert c.status == "failed" and "is 64x40, the plate 80x40" in c.message


def test_data_window_must_match_the_plate(tmp_path, shot, plate):
    res = write_results(tmp_path / "res")
    # rewrite one frame with a data window shifted inside the same display window
    path = res / "matte.1002.exr"
    spec = oiio.ImageSpec(W - 8, H, len(CHANNELS), "half")
    spec.x, spec.full_x, spec.full_y, spec.full_width, spec.full_height = 8, 0, 0, W, H
    spec.channelnames = tuple(CHANNELS)
    spec.alpha_channel = 3
    spec.attribute("oiio:ColorSpace", "ACEScg")
    spec.attribute("priorfx/provenance", json.dumps(provenance("matte", {}, ["rvm-mobilenetv3"])))
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    out.write_image(np.zeros((H, W - 8, len(CHANNELS)), np.float32) + 0.0)
    out.close()
    report = publish(res, shot, plate=plate)
    assert not report.ok
    c = _check(report, "plate")
    assert c.status == "failed" and "matte.1002.exr" in c.message


def test_alpha_outside_0_1(tmp_path, shot, plate):
    def over(f):
        if f == 1004:
            a = _alpha(f) * 1.5
            return {"alpha": a, "rgb": np.minimum(_plate_rgb(f) * a[..., None], a[..., None])}
    report = _publish_broken(tmp_path, shot, plate, per_frame=over)
    c = _check(report, "alpha_range")
    assert c.status == "failed" and "frame 1004" in c.message and "max 1.5" in c.message
    assert c.details["frames"] == [1004]
    assert "clamp" in c.hint.lower()


def test_nan_and_inf(tmp_path, shot, plate):
    def nan(f):
        if f in (1002, 1003):
            rgb = _plate_rgb(f) * _alpha(f)[..., None]
            rgb[5, 5, 1] = np.nan
            rgb[6, 6, 2] = np.inf
            return {"rgb": rgb}
    report = _publish_broken(tmp_path, shot, plate, per_frame=nan)
    c = _check(report, "finite")
    assert c.status == "failed" and "4 NaN/Inf value(s) in B, G on frame(s) 1002-1003" in c.message


def test_premultiplied_pixels_under_a_straight_header(tmp_path, shot, plate):
    report = _publish_broken(tmp_path, shot, plate, extra_meta={"priorfx/premultiplied": 0})
    c = _check(report, "premultiplication")
    assert c.status == "failed" and "look premultiplied" in c.message
    # and straight pixels under a straight header pass
    res2 = write_results(tmp_path / "res2", extra_meta={"priorfx/premultiplied": 0},
                         per_frame=lambda f: {"rgb": _plate_rgb(f)})
    assert _check(publish(res2, shot, plate=plate, dry_run=True), "premultiplication").status == "passed"


def test_colorspace_missing_inconsistent_or_not_the_plates(tmp_path, shot, plate):
    c = _check(_publish_broken(tmp_path / "a", shot, plate, colorspace=None), "colorspace")
    assert c.status == "failed" and "carry no colour space" in c.message
    c = _check(_publish_broken(tmp_path / "b", shot, plate,
                               per_frame=lambda f: {"colorspace": "sRGB"} if f == 1005 else None), "colorspace")
    assert c.status == "failed" and "changes within the sequence" in c.message and "matte.1005.exr" in c.message
    c = _check(_publish_broken(tmp_path / "c", shot, plate, colorspace="lin_rec709"), "colorspace")
    assert c.status == "failed" and "the plate is lin_ap1_scene" in c.message


def test_colorspace_compared_after_oiio_renaming(tmp_path, shot):
    # plate says "lin_ap1_scene" (OIIO's name), results "ACEScg": the same space
    plate = write_plate(tmp_path / "plate", colorspace="lin_ap1_scene")
    res = write_results(tmp_path / "res", colorspace="ACEScg")
    assert _check(publish(res, shot, plate=plate, dry_run=True), "colorspace").status == "passed"


def test_empty_matte(tmp_path, shot, plate):
    zero = np.zeros((H, W), np.float32)
    report = _publish_broken(tmp_path, shot, plate,
                             per_frame=lambda f: {"alpha": zero, "rgb": np.zeros((H, W, 3), np.float32)}
                             if f in (1005, 1006) else None)
    c = _check(report, "matte_not_empty")
    assert c.status == "failed" and "empty" in c.message and "1005-1006" in c.message


def test_flicker_is_a_warning_not_an_error(tmp_path, shot, plate):
    def pop(f):  # a second blob appears on every other frame
        if f % 2:
            yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
            a = np.maximum(_alpha(f), (np.hypot(xx - 50, yy - 10) < 6).astype(np.float32))
            return {"alpha": a, "rgb": _plate_rgb(f) * a[..., None]}
    res = write_results(tmp_path / "res", per_frame=pop)
    report = publish(res, shot, plate=plate)
    c = _check(report, "flicker")
    assert c.status == "warning" and "flickers" in c.message
    assert report.ok and report.published == [str(shot / "matte" / "v001")]
    assert "1 warning(s)" in report.format()


def test_steady_motion_is_not_flicker():
    a = [_alpha(f) for f in (1001, 1002, 1003)]
    # a moving disc reverses only a few pixels at its top and bottom tangents
    assert checks.reversal_energy(*a) < 0.1 * PublishParams().flicker_threshold
    yy, xx = np.mgrid[0:8, 0:8]
    ramp = [np.clip((xx - 2 - t) / 2, 0, 1).astype(np.float32) for t in range(3)]
    assert checks.reversal_energy(*ramp) == 0.0  # a straight edge moving steadily: none
    b = [a[0], np.zeros_like(a[0]), a[0]]
    assert checks.reversal_energy(*b) == pytest.approx(float(a[0].mean()))


# --------------------------------------------------------------------------- undistorted images

def test_undistorted_image_family(tmp_path, shot):
    src = tmp_path / "photo.png"
    write_image(src, _plate_rgb(1))
    res = tmp_path / "res"
    res.mkdir()
    write_image(res / "photo_undistorted.png", _plate_rgb(1) * 0.9, provenance=provenance("undistort", {}, ["x"]))
    report = publish(res, shot, plate=src)
    assert report.ok, report.format()
    assert report.items[0].family == "priorfx.undistort"
    assert {c.name for c in report.items[0].checks} == {"frames", "plate", "channels", "colorspace",
                                                        "provenance", "finite"}
    assert (shot / "photo_undistorted" / "v001" / "photo_undistorted.png").is_file()
    # a different size than the photo it came from fails
    small = tmp_path / "small.png"
    write_image(small, np.zeros((20, 30, 3), np.float32))
    report = publish(res, shot, plate=small)
    assert _check(report, "plate").status == "failed"
    assert sorted(p.name for p in (shot / "photo_undistorted").iterdir()) == ["v001"]


# --------------------------------------------------------------------------- collection

def test_collect_groups_sequences_and_stills_and_ignores_other_files(tmp_path):
    res = write_results(tmp_path / "res", frames=range(1, 4))
    write_image(res / "still.png", _plate_rgb(1), provenance=provenance("undistort"))
    (res / "notes.json").write_text("{}")
    (res / ".matte.0004.partial-1234.exr").write_bytes(b"")
    items = {i.name: i for i in collect.collect_items(res)}
    assert set(items) == {"matte", "still"}
    assert items["matte"].frame_numbers == [1, 2, 3] and items["matte"].family == collect.MATTE
    assert items["matte"].pattern.endswith("matte.%04d.exr")
    assert items["still"].family == collect.UNDISTORT


def test_nuke_node_folder_brings_its_plate(tmp_path, shot):
    node = tmp_path / "cache" / "nodes" / "PriorfxMatte1"
    write_plate(node / "export" / "plate")
    write_results(node / "out")
    (node / "out" / "manifest.json").write_text("{}")
    report = publish(node, shot)
    assert report.ok, report.format()
    assert report.plate.endswith("plate.%04d.exr")
    assert _check(report, "plate").status == "passed"


def test_unusable_inputs_are_errors(tmp_path, shot):
    with pytest.raises(InputError, match="does not exist"):
        publish(tmp_path / "nothing", shot)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        publish(tmp_path / "empty", shot)
    res = write_results(tmp_path / "res")
    with pytest.raises(InputError, match="plate does not exist"):
        publish(res, shot, plate=str(tmp_path / "plate" / "p.%04d.exr"))
    (tmp_path / "plate").mkdir()
    with pytest.raises(InputError, match="no files match"):
        publish(res, shot, plate=str(tmp_path / "plate" / "p.%04d.exr"))
    from priorfx.errors import UsageError
    with pytest.raises(UsageError, match="shot folder .* does not exist"):
        publish(res, tmp_path / "no-shot")


# --------------------------------------------------------------------------- pure helpers

def test_format_frames_and_versions(tmp_path):
    assert checks.format_frames([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    d = tmp_path / "item"
    assert integrate.next_version(d) == 1
    for n in ("v001", "v002", "v010", "notes", "v1"):
        (d / n).mkdir(parents=True)
    assert integrate.next_version(d) == 11
    assert integrate.version_name(11) == "v011"


def test_params_threshold(tmp_path, shot, plate):
    res = write_results(tmp_path / "res")
    strict = publish(res, shot, plate=plate, dry_run=True, params=PublishParams(empty_alpha=1.01))
    assert _check(strict, "matte_not_empty").status == "failed"


# --------------------------------------------------------------------------- the command

def test_cli_failed_validation_exits_3_with_a_readable_report_and_writes_nothing(tmp_path, cli):
    shot = tmp_path / "shot"
    shot.mkdir()
    plate = write_plate(tmp_path / "plate")

    def nan(f):
        if f == 1003:
            rgb = _plate_rgb(f) * _alpha(f)[..., None]
            rgb[0, 0, 0] = np.nan
            return {"rgb": rgb}
    res = write_results(tmp_path / "res", per_frame=nan)
    proc = cli("publish", str(res), "--to", str(shot), "--plate", plate, "-q")
    assert proc.returncode == 3, proc.stderr
    assert "FAIL  no NaN or Inf: 1 NaN/Inf value(s) in R on frame(s) 1003" in proc.stdout
    assert "-> find the node that divides by zero" in proc.stdout
    assert "NOT published: 1 problem(s); nothing was written to" in proc.stdout
    assert "priorfx: error: publish failed in validation" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(shot.iterdir()) == []


def test_cli_success_json_and_versions(tmp_path, cli):
    shot = tmp_path / "shot"
    shot.mkdir()
    res = write_results(tmp_path / "res")
    proc = cli("publish", str(res), "--to", str(shot), "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] and out["stage"] == "done"
    assert out["published"] == [str(shot / "matte" / "v001")]
    assert {c["name"]: c["status"] for c in out["items"][0]["checks"]}["plate"] == "skipped"
    proc = cli("publish", str(res), "--to", str(shot), "-q")
    assert proc.returncode == 0 and f"published {shot / 'matte' / 'v002'}" in proc.stdout
    proc = cli("publish", str(res), "--to", str(shot), "--dry-run", "-q")
    assert proc.returncode == 0 and "validated, nothing written (dry run)" in proc.stdout
    assert sorted(p.name for p in (shot / "matte").iterdir()) == ["v001", "v002"]


def test_cli_usage_errors(tmp_path, cli):
    proc = cli("publish", str(tmp_path / "missing"), "--to", str(tmp_path))
    assert proc.returncode == 3 and "does not exist" in proc.stderr
    proc = cli("publish", str(tmp_path))
    assert proc.returncode == 2 and "--to" in proc.stderr


# --------------------------------------------------------------------------- failures after validation

def test_failure_during_extraction_leaves_the_shot_folder_as_it_was(tmp_path, shot, plate, monkeypatch):
    res = write_results(tmp_path / "res")
    assert publish(res, shot, plate=plate).ok  # v001 exists
    before = _tree(shot)
    real = integrate._copy_hashing
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(integrate, "_copy_hashing", flaky)
    report = publish(res, shot, plate=plate)
    assert not report.ok and report.stage == "extract"
    assert "No space left on device" in report.format()
    assert _tree(shot) == before  # no v002, no staging folder


def test_unreadable_frame_is_reported_once_and_blocks_the_publish(tmp_path, shot, plate):
    res = write_results(tmp_path / "res")
    frame = res / "matte.1004.exr"
    frame.write_bytes(frame.read_bytes()[:400])  # truncated by a crashed render
    report = publish(res, shot, plate=plate)
    assert not report.ok and list(shot.iterdir()) == []
    errors = report.items[0].errors
    assert len([e for e in errors if "matte.1004.exr" in e]) == 1, errors


def test_cancel_stops_the_publish_and_keeps_nothing(tmp_path, shot, plate):
    from priorfx.errors import CancelledError
    from priorfx.progress import Progress

    res = write_results(tmp_path / "res")
    holder = []

    def cancel_midway(done, total, message):  # the user presses Cancel while files are copied
        if "copying" in message and done == 2:
            holder[0].cancel()

    prog = Progress(cancel_midway)
    holder.append(prog)
    with pytest.raises(CancelledError):
        publish(res, shot, plate=plate, progress=prog)
    assert list(shot.iterdir()) == []
