"""priorfx.colour against OpenColorIO's own reference values, auto detection
from real files, the round trip through the working encoding, and the
errors a user meets (unknown space, missing or broken config)."""
from __future__ import annotations

import numpy as np
import pytest

from priorfx import colour
from priorfx import io as pio
from priorfx.errors import InputError, UsageError

CFG = colour.DEFAULT_CONFIG


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)


def test_linear_to_srgb_reference_values():
    px = np.array([[0.18, 0.18, 0.18], [1.0, 1.0, 1.0], [4.0, 4.0, 4.0], [0.0, 0.0, 0.0]], np.float32)
    colour.convert(px, CFG, "lin_rec709", "sRGB - Texture")
    np.testing.assert_allclose(px[:, 0], [0.46135, 1.0, 1.8248, 0.0], atol=2e-4)


def test_acescg_to_linear_rec709_is_the_published_matrix():
    # AP1 -> Rec.709 primaries with the Bradford D60 -> D65 adaptation (ACES)
    published = np.array([[1.70505, -0.62179, -0.08326],
                          [-0.13026, 1.14080, -0.01055],
                          [-0.02400, -0.12897, 1.15297]], np.float32)
    px = np.eye(3, dtype=np.float32).copy()  # rows: pure ACEScg red, green, blue
    colour.convert(px, CFG, "ACEScg", "lin_rec709")
    np.testing.assert_allclose(px.T, published, atol=2e-3)
    back = colour.convert(px.copy(), CFG, "lin_rec709", "ACEScg")
    np.testing.assert_allclose(back, np.eye(3), atol=1e-5)


@pytest.mark.parametrize("name, canonical", [
    ("ACEScg", "ACEScg"), ("lin_rec709", "Linear Rec.709 (sRGB)"), ("Linear Rec.709 (sRGB)", "Linear Rec.709 (sRGB)"),
    ("sRGB - Texture", "sRGB Encoded Rec.709 (sRGB)"), ("ACEScct", "ACEScct"), ("scene_linear", "ACEScg"),
    ("lin_ap1_scene", "ACEScg"), ("ocio:acescct_ap1_scene", "ACEScct")])
def test_names_aliases_roles_resolve(name, canonical):
    assert colour.resolve_space(CFG, name) == canonical


def test_unknown_space_is_a_usage_error_with_close_names():
    with pytest.raises(UsageError) as err:
        colour.resolve_space(CFG, "ACEScgg")
    assert "ACEScgg" in err.value.message and "ACEScg" in err.value.hint


def test_missing_and_broken_configs_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="does not exist"):
        colour.load_config(str(tmp_path / "nope.ocio"))
    broken = tmp_path / "broken.ocio"
    broken.write_text("ocio_profile_version: 2\ncolorspaces:\n  - !<ColorSpace>\n    name: a\n    from_scene_reference: !<NoSuchTransform> {}\n")
    with pytest.raises(InputError, match="cannot be used") as err:
        colour.load_config(str(broken))
    assert "ocio://default" in err.value.hint
    with pytest.raises(UsageError, match="not an OCIO built-in"):
        colour.load_config("ocio://no-such-config")
    monkeypatch.setenv("OCIO", str(tmp_path / "gone.ocio"))  # $OCIO is used when --ocio is not given
    with pytest.raises(UsageError, match="gone.ocio"):
        colour.input_spec(tmp_path / "x.png", "auto", None)


def _write(path, px, **kw):
    return pio.write_image(path, px, **kw)


def test_auto_detection_from_metadata_and_format(tmp_path, sample):
    px = np.full((8, 8, 3), 0.25, np.float32)
    tagged = _write(tmp_path / "cct.exr", px, metadata={"oiio:ColorSpace": "ACEScct"})
    assert colour.input_spec(tagged) == colour.ColourSpec(CFG, "ACEScct", "metadata")
    chroma = _write(tmp_path / "ap1.exr", px, metadata={"chromaticities": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044,
                                                                          0.32168, 0.33767)})
    assert colour.input_spec(chroma) == colour.ColourSpec(CFG, "ACEScg", "chromaticities")
    plain = _write(tmp_path / "plain.exr", px)
    assert colour.input_spec(plain) == colour.ColourSpec(CFG, "ACEScg", "format")  # the scene_linear role
    tif = _write(tmp_path / "plain.tif", px, bits=16)
    assert colour.input_spec(tif) == colour.ColourSpec(CFG, "sRGB Encoded Rec.709 (sRGB)", "format")
    video = colour.input_spec(sample("single_face.mp4"))
    assert (video.space, video.chosen_by) == ("Gamma 2.4 Encoded Rec.709", "format")
    jpg = colour.input_spec(sample("grace_hopper.jpg"))
    assert jpg.space == "sRGB Encoded Rec.709 (sRGB)"
    # the user's choice wins, resolved to the config's name
    assert colour.input_spec(plain, "lin_rec709") == colour.ColourSpec(CFG, "Linear Rec.709 (sRGB)", "user")
    studio = colour.input_spec(plain, "auto", "ocio://studio-config-latest")
    assert studio.config == "ocio://studio-config-latest" and studio.space == "ACEScg"


def test_display_encodings_pass_unchanged():
    for name in ("sRGB - Texture", "g24_rec709", "Raw"):
        b = colour.Boundary(colour.ColourSpec(CFG, colour.resolve_space(CFG, name)))
        px = np.random.default_rng(0).random((4, 5, 3), np.float32)
        assert b.identity and b.into(px) is px and b.back(px, px, px) is px


@pytest.mark.parametrize("space", ["lin_rec709", "ACEScg", "ACEScct"])
def test_round_trip_keeps_values_above_one_and_below_zero(space):
    spec = colour.ColourSpec(CFG, colour.resolve_space(CFG, space))
    b = colour.Boundary(spec)
    lin = np.array([[-0.02, 0.0, 0.18], [0.5, 1.0, 2.0], [4.0, 8.0, 0.01], [12.0, 0.3, -0.01]], np.float32)
    plate = colour.convert(lin.reshape(2, 2, 3).copy(), CFG, "lin_rec709", spec.space)
    working = b.into(plate)
    assert working.max() < 1.0 + colour.ROLLOFF_HEADROOM  # rolled off, not clipped: distinct values stay distinct
    assert len(np.unique(working[..., 1])) == 4
    # untouched pixels come back bit for bit
    assert np.array_equal(b.back(working.copy(), working, plate), plate)
    # changed pixels go through the inverse conversion and land where they came from
    changed = b.back(working.copy(), working + 1.0, plate)
    np.testing.assert_allclose(changed, plate, rtol=2e-3, atol=2e-4)
    assert changed.max() > 1.0 or space == "ACEScct"
    assert (changed < 0).any() or space == "ACEScct"


def test_remote_specs_take_built_in_configs_only(tmp_path):
    spec = colour.ColourSpec.from_json({"config": CFG, "space": "lin_ap1"}, remote=True)
    assert spec.space == "ACEScg"
    with pytest.raises(UsageError, match="never opens paths"):
        colour.ColourSpec.from_json({"config": str(tmp_path / "c.ocio"), "space": "ACEScg"}, remote=True)
