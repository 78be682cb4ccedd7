"""Images through OpenImageIO: real files written and read back."""
from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest

from priorfx.errors import InputError, LimitError, OutputError, UsageError
from priorfx.io import images, read_image, read_image_info, write_image
from priorfx.provenance import provenance


def _ramp(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


def test_exr_round_trip_with_alpha_extra_channels_metadata_and_provenance(tmp_path):
    px = _ramp(6, 7, 6)
    px[0, 0, 0] = 4.5  # EXR keeps values above 1 (scene-linear)
    names = ["R", "G", "B", "A", "matte.alpha", "matte.confidence"]
    prov = provenance("matte", {"band": 12}, ["rvm-mobilenetv3"])
    out = write_image(tmp_path / "m.exr", px, names, metadata={"priorfx/premultiplied": 1, "shot": "sh010"},
                      provenance=prov)
    info = read_image_info(out)
    assert info.format == "openexr"
    assert info.channel_names == tuple(names)
    assert info.alpha_channel == 3
    assert info.pixel_type == "half"
    assert info.metadata["shot"] == "sh010" and info.metadata["priorfx/premultiplied"] == 1
    assert info.provenance["models"] == ["rvm-mobilenetv3"]
    assert info.provenance["parameters"] == {"band": 12}
    back = read_image(out)
    assert back.shape == (6, 7, 6) and back.dtype == np.float32
    np.testing.assert_allclose(back, px, rtol=1e-3, atol=1e-3)  # half precision
    conf = read_image(out, channels=["matte.confidence", "A"])
    np.testing.assert_array_equal(conf, back[..., [5, 3]])
    with pytest.raises(InputError, match="no channel"):
        read_image(out, channels=["matte.beta"])


def test_exr_float_option_is_exact(tmp_path):
    px = _ramp(3, 4, 3) * 1000
    out = write_image(tmp_path / "f.exr", px, bits=32)
    assert read_image_info(out).pixel_type == "float"
    np.testing.assert_array_equal(read_image(out), px)


def test_png_16_bit_and_8_bit_with_straight_alpha(tmp_path):
    px = _ramp(5, 9, 4)
    p16 = write_image(tmp_path / "a16.png", px, bits=16, provenance=provenance("x"))
    p8 = write_image(tmp_path / "a8.png", px)
    assert read_image_info(p16).pixel_type == "uint16"
    assert read_image_info(p8).pixel_type == "uint8"
    np.testing.assert_allclose(read_image(p16), px, atol=0.5 / 65535 + 1e-7)
    np.testing.assert_allclose(read_image(p8), px, atol=0.5 / 255 + 1e-7)
    assert read_image_info(p16).provenance["operation"] == "x"
    # straight alpha is stored as given: another reader sees the same colour
    import cv2
    raw = cv2.imread(str(p8), cv2.IMREAD_UNCHANGED)
    assert raw[0, 0, 2] == round(px[0, 0, 0] * 255)


def _smooth(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xx / w, yy / h, 0.5 + 0 * xx], axis=-1).astype(np.float32)


def test_png_deflate_level_is_honoured_and_lossless(tmp_path):
    rng = np.random.default_rng(3)
    px = (np.cumsum(rng.integers(0, 3, (200, 300, 3)), axis=1) % 256).astype(np.uint8)   # compressible
    sizes = {}
    for level in ("zip:0", "zip:1", "zip:9", None):
        out = write_image(tmp_path / f"{level}.png", px, compression=level)
        sizes[level] = out.stat().st_size
        assert np.array_equal(np.round(read_image(out) * 255).astype(np.uint8), px)
    assert sizes["zip:0"] > px.size > sizes["zip:1"] >= sizes["zip:9"]
    with pytest.raises(UsageError, match="zip:0 .. zip:9"):
        write_image(tmp_path / "bad.png", px, compression="zip:12")
    assert not (tmp_path / "bad.png").exists()


def test_jpeg_exif_focal_length_written_and_parsed(tmp_path):
    px = _smooth(16, 16)
    out = write_image(tmp_path / "f.jpg", px, metadata={"Exif:FocalLengthIn35mmFilm": 26, "Exif:FocalLength": 4.2,
                                                      "Make": "TestCam"}, quality=90)
    info = read_image_info(out)
    assert info.focal_35mm == 26.0 and info.focal_35mm_source == "Exif:FocalLengthIn35mmFilm"
    assert info.focal_mm == pytest.approx(4.2, abs=1e-4)
    assert info.exif["Make"] == "TestCam"
    assert np.abs(read_image(out) - px).max() < 0.05  # lossy, but the same picture


def test_focal_35mm_from_focal_plane_resolution_and_implausible_values():
    # full-frame body: 6000 px over 36 mm -> 166.67 px/mm; 50 mm lens -> 50 mm equivalent
    meta = {"Exif:FocalLength": 50.0, "Exif:FocalPlaneXResolution": 6000 / 36, "Exif:FocalPlaneYResolution": 4000 / 24,
            "Exif:FocalPlaneResolutionUnit": 4, "Exif:PixelXDimension": 6000, "Exif:PixelYDimension": 4000}
    f35, src = images.focal_35mm_from_exif(meta)
    assert f35 == pytest.approx(50.0, rel=1e-6) and "FocalPlane" in src
    # a resized copy keeps the original focal-plane resolution: the sensor comes out tiny
    resized = {**meta, "Exif:PixelXDimension": 900, "Exif:PixelYDimension": 600, "Exif:FocalLength": 85.0}
    assert images.focal_35mm_from_exif(resized) == (None, None)
    assert images.focal_35mm_from_exif({}) == (None, None)


def test_real_camera_jpeg_metadata(sample):
    info = read_image_info(sample("obama.jpg"))  # Canon EOS 5D Mark III, 85 mm, resized by Photoshop
    assert info.metadata["Model"] == "Canon EOS 5D Mark III"
    assert info.focal_mm == 85.0
    assert info.focal_35mm is None  # the resize makes the focal-plane path implausible: no wrong number
    assert (info.width, info.height) == read_image(sample("obama.jpg")).shape[1::-1]


def test_keep_exif_into_a_derived_jpeg(tmp_path, sample):
    src = read_image_info(sample("obama.jpg"))
    out = write_image(tmp_path / "derived.jpg", read_image(sample("obama.jpg")), metadata=src.exif,
                      provenance=provenance("undistort"))
    info = read_image_info(out)
    assert info.metadata["Model"] == "Canon EOS 5D Mark III"
    assert info.focal_mm == 85.0
    assert info.provenance["operation"] == "undistort"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_on_read_like_oiio(tmp_path, orientation):
    px = _ramp(4, 6, 3, seed=orientation)
    out = write_image(tmp_path / f"o{orientation}.tif", px, bits=32, metadata={"Orientation": orientation})
    upright = read_image(out)
    buf = oiio.ImageBufAlgo.reorient(oiio.ImageBuf(str(out)))
    np.testing.assert_array_equal(upright, buf.get_pixels(oiio.FLOAT))
    info = read_image_info(out)
    assert info.orientation == orientation
    assert (info.height, info.width) == upright.shape[:2]
    np.testing.assert_array_equal(read_image(out, orient=False), px)


def test_tiff_8_16_float(tmp_path):
    px = _ramp(3, 5, 3)
    for bits, tol, ptype in ((8, 0.5 / 255, "uint8"), (16, 0.5 / 65535, "uint16"), (32, 0, "float")):
        out = write_image(tmp_path / f"t{bits}.tif", px, bits=bits, provenance=provenance("t"))
        info = read_image_info(out)
        assert info.pixel_type == ptype and info.provenance["operation"] == "t"
        np.testing.assert_allclose(read_image(out), px, atol=tol + 1e-7)


def test_missing_corrupt_and_unsupported_files(tmp_path):
    with pytest.raises(InputError, match=r"nope\.exr: no such file"):
        read_image(tmp_path / "nope.exr")
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"not an exr at all" * 10)
    with pytest.raises(InputError, match=r"bad\.exr: cannot read the image") as exc:
        read_image(bad)
    assert "corrupt" in exc.value.hint
    good = write_image(tmp_path / "good.png", _ramp(32, 32, 3))
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputError, match=r"trunc\.png"):
        read_image(trunc)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt"):
        read_image(txt)
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


def test_max_pixels_guard(tmp_path, monkeypatch):
    out = write_image(tmp_path / "big.png", _ramp(20, 30, 3))
    with pytest.raises(LimitError, match=r"30x20 .* over the limit") as exc:
        read_image(out, max_pixels=500)
    assert "PRIORFX_MAX_PIXELS" in exc.value.hint
    monkeypatch.setenv("PRIORFX_MAX_PIXELS", "100")
    with pytest.raises(LimitError):
        read_image(out)
    with pytest.raises(LimitError):
        write_image(tmp_path / "big2.png", _ramp(20, 30, 3))
    assert not (tmp_path / "big2.png").exists()


def test_write_errors(tmp_path):
    px = _ramp(4, 4, 3)
    with pytest.raises(UsageError, match="unknown image type .bmpx"):
        write_image(tmp_path / "x.bmpx", px)
    with pytest.raises(UsageError, match="PNG cannot be written with 32 bits"):
        write_image(tmp_path / "x.png", px, bits=32)
    with pytest.raises(UsageError, match="PNG cannot store 6 channels"):
        write_image(tmp_path / "x.png", _ramp(4, 4, 6))
    with pytest.raises(UsageError, match="JPEG cannot store alpha"):
        write_image(tmp_path / "x.jpg", _ramp(4, 4, 4))
    with pytest.raises(UsageError, match="3 channels but 2 channel names"):
        write_image(tmp_path / "x.exr", px, ["R", "G"])
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "no" / "x.exr", px)
    assert sorted(os.listdir(tmp_path)) == []


def test_unwritable_folder_leaves_nothing(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: make a target that cannot be replaced
            (ro / "x.exr").mkdir()
            with pytest.raises(OutputError, match="cannot write"):
                write_image(ro / "x.exr", _ramp(4, 4, 3))
            assert [p.name for p in ro.iterdir()] == ["x.exr"] and (ro / "x.exr").is_dir()
        else:
            with pytest.raises(OutputError):
                write_image(ro / "x.exr", _ramp(4, 4, 3))
            assert list(ro.iterdir()) == []
    finally:
        os.chmod(ro, 0o755)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = write_image(tmp_path / "keep.exr", np.zeros((4, 4, 3), np.float32))
    before = target.read_bytes()

    class Boom(RuntimeError):
        pass

    real_create = oiio.ImageOutput.create

    class FailingOutput:
        def __init__(self, name):
            self._out = real_create(name)

        def open(self, name, spec):
            ok = self._out.open(name, spec)
            return ok

        def write_image(self, px):
            self._out.write_scanline(0, 0, px[0])  # part of the file is on disk
            raise Boom("disk pulled mid-write")

        def close(self):
            self._out.close()

    monkeypatch.setattr(oiio.ImageOutput, "create", staticmethod(lambda name: FailingOutput(name)))
    with pytest.raises(Boom):
        write_image(target, np.ones((4, 4, 3), np.float32))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.exr"]


def test_set_threads_bounds_the_codecs_and_files_stay_the_same(tmp_path):
    """A farm worker of one core sets 1: OpenImageIO's and OpenEXR's pools
    follow, and what is written does not depend on the thread count."""
    px = _ramp(64, 96, 3, seed=5)
    try:
        images.set_threads(1)
        assert (oiio.get_int_attribute("threads"), oiio.get_int_attribute("exr_threads")) == (1, 1)
        one = read_image(write_image(tmp_path / "one.exr", px, bits=32))
        images.set_threads(3)
        assert (oiio.get_int_attribute("threads"), oiio.get_int_attribute("exr_threads")) == (3, 3)
        three = read_image(write_image(tmp_path / "three.exr", px, bits=32))
    finally:
        images.set_threads(0)  # back to the libraries' default (all cores)
    assert np.array_equal(one, three) and np.array_equal(one, px)
