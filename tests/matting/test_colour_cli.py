"""`priorfx matte` / `undistort` on plates in other encodings, as a compositor
brings them: the same matte as from the sRGB photo, outputs in the plate's own
encoding with the header naming it."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from priorfx import colour
from priorfx import io as pio

CFG = colour.DEFAULT_CONFIG


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)


def _plate(sample, tmp_path, space, name="astronaut.png", scale=1.0):
    """The sample converted by OCIO into `space`, written as a half EXR naming it."""
    px = np.ascontiguousarray(pio.read_image(sample(name))[..., :3]) * np.float32(scale)
    colour.convert(px, CFG, "sRGB - Texture", space)
    return pio.write_image(tmp_path / f"plate_{space}.exr", px, metadata={"oiio:ColorSpace": space})


def _alpha(path):
    return pio.read_image(path, channels=["matte.alpha"])[..., 0]


def test_linear_and_acescct_plates_give_the_srgb_matte(cli, sample, tmp_path):
    ref = tmp_path / "ref.exr"
    assert cli("matte", str(sample("astronaut.png")), "-o", str(ref), "--quality", "fast", "--quiet").returncode == 0
    a_ref = _alpha(ref)
    for space in ("lin_rec709", "ACEScct"):
        plate = _plate(sample, tmp_path, space)
        out = tmp_path / f"matte_{space}.exr"
        res = cli("matte", str(plate), "-o", str(out), "--quality", "fast", "--quiet")
        assert res.returncode == 0, res.stderr
        a = _alpha(out)
        m = (a > 0.02) | (a_ref > 0.02)
        assert np.abs(a - a_ref)[m].mean() < 0.01, space
        info = pio.read_image_info(out)
        assert colour.find_space(CFG, info.colorspace) == colour.resolve_space(CFG, space)
        rec = info.provenance["colour"]
        assert rec["chosen_by"] == "metadata" and rec["input_space"] == colour.resolve_space(CFG, space)


def test_opaque_foreground_keeps_the_plates_values_above_one(cli, sample, tmp_path):
    plate = _plate(sample, tmp_path, "ACEScg", scale=1.4)  # highlights above 1 after linearising
    px = pio.read_image(plate)
    out = tmp_path / "matte.exr"
    res = cli("matte", str(plate), "-o", str(out), "--quality", "fast", "--quiet")
    assert res.returncode == 0, res.stderr
    m = pio.read_image(out, channels=["matte.alpha", "matte.confidence", "fg.R", "fg.G", "fg.B"])
    opaque = (m[..., 0] >= 1.0) & (m[..., 1] >= 1.0)
    assert opaque.mean() > 0.2
    assert np.array_equal(m[..., 2:][opaque], px[opaque])  # bit for bit (half float)
    assert m[..., 2:][opaque].max() > 1.0


def test_explicit_colorspace_overrides_and_unknown_names_are_refused(cli, sample, tmp_path):
    plain = tmp_path / "plain.exr"
    px = np.ascontiguousarray(pio.read_image(sample("astronaut.png"))[::2, ::2, :3])
    colour.convert(px, CFG, "sRGB - Texture", "ACEScct")
    pio.write_image(plain, px)  # no colour space in the header: auto would say scene_linear
    out = tmp_path / "m.exr"
    res = cli("matte", str(plain), "-o", str(out), "--colorspace", "acescct_ap1", "--quality", "fast", "--quiet")
    assert res.returncode == 0, res.stderr
    assert pio.read_image_info(out).provenance["colour"]["input_space"] == "ACEScct"
    res = cli("matte", str(plain), "-o", str(tmp_path / "x.exr"), "--colorspace", "ACEScgg", "--quiet")
    assert res.returncode == 2
    assert "colour space 'ACEScgg' is not in the OCIO config" in res.stderr and "ACEScg" in res.stderr
    assert not (tmp_path / "x.exr").exists()
    res = cli("matte", str(plain), "-o", str(tmp_path / "x.exr"), "--ocio", str(tmp_path / "none.ocio"), "--quiet")
    assert res.returncode == 2 and "none.ocio does not exist" in res.stderr


def test_undistort_linear_plate_matches_srgb_and_keeps_untouched_pixels(cli, sample, tmp_path):
    ref = tmp_path / "ref.png"
    assert cli("undistort", str(sample("single_face.jpg")), "-o", str(ref), "--quiet").returncode == 0
    plate = _plate(sample, tmp_path, "lin_rec709", "single_face.jpg")
    out = tmp_path / "out.exr"
    res = cli("undistort", str(plate), "-o", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    got = pio.read_image(out)
    back = colour.convert(got[..., :3].copy(), CFG, "lin_rec709", "sRGB - Texture")
    assert np.abs(back - pio.read_image(ref)[..., :3]).mean() * 255 < 1.5
    src = pio.read_image(plate)
    assert np.all(got == src, axis=-1).mean() > 0.5  # the background comes back bit for bit
    # where the sRGB run left the picture alone (away from the warp's fading
    # edge, which moves a little with the face fit), the linear run did too
    untouched = np.all(pio.read_image(ref) == pio.read_image(sample("single_face.jpg")), axis=-1)
    untouched = cv2.erode(untouched.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
    assert untouched.mean() > 0.3 and np.array_equal(got[untouched], src[untouched])
    assert colour.find_space(CFG, pio.read_image_info(out).colorspace) == "Linear Rec.709 (sRGB)"
