"""Camera pixel formats <-> RGB against known code values, round trips, strides, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from priorfx.errors import InputError, UsageError
from priorfx.io import camera

YUV_FORMATS = ("nv12", "i420", "i422", "yuy2")

# 100% colour bars as 8-bit limited-range (Y, Cb, Cr) code values, from the
# published tables for BT.709 (ITU-R BT.709 / SMPTE RP 219) and BT.601.
BARS = {
    "709": {"white": (235, 128, 128), "yellow": (219, 16, 138), "cyan": (188, 154, 16),
            "green": (173, 42, 26), "magenta": (78, 214, 230), "red": (63, 102, 240),
            "blue": (32, 240, 118), "black": (16, 128, 128)},
    "601": {"white": (235, 128, 128), "yellow": (210, 16, 146), "cyan": (170, 166, 16),
            "green": (145, 54, 34), "magenta": (106, 202, 222), "red": (81, 90, 240),
            "blue": (41, 240, 110), "black": (16, 128, 128)},
}
RGB = {"white": (1, 1, 1), "yellow": (1, 1, 0), "cyan": (0, 1, 1), "green": (0, 1, 0),
       "magenta": (1, 0, 1), "red": (1, 0, 0), "blue": (0, 0, 1), "black": (0, 0, 0)}


def _flat_planes(fmt: str, w: int, h: int, y: int, u: int, v: int) -> list[np.ndarray]:
    """Hand-packed planes of a uniform colour (independent of from_rgb)."""
    Y = np.full((h, w), y, np.uint8)
    if fmt == "nv12":
        uv = np.empty((h // 2, w), np.uint8)
        uv[:, 0::2], uv[:, 1::2] = u, v
        return [Y, uv]
    if fmt == "i420":
        return [Y, np.full((h // 2, w // 2), u, np.uint8), np.full((h // 2, w // 2), v, np.uint8)]
    if fmt == "i422":
        return [Y, np.full((h, w // 2), u, np.uint8), np.full((h, w // 2), v, np.uint8)]
    packed = np.empty((h, w * 2), np.uint8)
    packed[:, 0::4], packed[:, 1::4], packed[:, 2::4], packed[:, 3::4] = y, u, y, v
    return [packed]


@pytest.mark.parametrize("fmt", YUV_FORMATS)
@pytest.mark.parametrize("matrix", ["709", "601"])
def test_colour_bars_decode_to_known_rgb(fmt, matrix):
    for name, (y, u, v) in BARS[matrix].items():
        planes = _flat_planes(fmt, 6, 4, y, u, v)
        rgb = camera.to_rgb(planes, fmt, 6, 4, matrix=matrix)
        assert rgb.shape == (4, 6, 3) and rgb.dtype == np.float32
        # the published values are rounded to integers: within 1.5 code values
        np.testing.assert_allclose(rgb, np.broadcast_to(RGB[name], rgb.shape), atol=1.5 / 219,
                                   err_msg=f"{fmt} {matrix} {name}")
        rgb8 = camera.to_rgb_u8(planes, fmt, 6, 4, matrix=matrix)
        assert rgb8.dtype == np.uint8
        assert np.abs(rgb8.astype(int) - np.array(RGB[name]) * 255).max() <= 2


@pytest.mark.parametrize("matrix", ["709", "601"])
def test_colour_bars_encode_to_known_code_values(matrix):
    for name, yuv in BARS[matrix].items():
        rgb = np.broadcast_to(np.array(RGB[name], np.float32), (4, 4, 3))
        y, u, v = camera.from_rgb(rgb, "i420", matrix=matrix)
        got = (int(y[0, 0]), int(u[0, 0]), int(v[0, 0]))
        assert np.abs(np.subtract(got, yuv)).max() <= 1, (name, got, yuv)


def test_limited_range_black_and_white_and_full_range_extremes():
    w, h = 4, 2
    black = camera.to_rgb(_flat_planes("nv12", w, h, 16, 128, 128), "nv12", w, h)
    white = camera.to_rgb(_flat_planes("nv12", w, h, 235, 128, 128), "nv12", w, h)
    np.testing.assert_allclose(black, 0.0, atol=1e-6)
    np.testing.assert_allclose(white, 1.0, atol=1e-6)
    # values outside the legal range clip instead of wrapping
    below = camera.to_rgb(_flat_planes("nv12", w, h, 0, 128, 128), "nv12", w, h)
    assert below.min() == 0.0
    full_white = camera.to_rgb(_flat_planes("nv12", w, h, 255, 128, 128), "nv12", w, h, full_range=True)
    full_mid = camera.to_rgb(_flat_planes("nv12", w, h, 128, 128, 128), "nv12", w, h, full_range=True)
    np.testing.assert_allclose(full_white, 1.0, atol=1e-6)
    np.testing.assert_allclose(full_mid, 128 / 255, atol=1e-6)
    # the default is BT.709 limited: the same code values as an explicit call
    red = _flat_planes("i420", w, h, *BARS["709"]["red"])
    np.testing.assert_array_equal(camera.to_rgb(red, "i420", w, h),
                                  camera.to_rgb(red, "i420", w, h, matrix="709", full_range=False))


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful image (chroma subsampling loses little on it)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    ph = rng.uniform(0, 6, 3)
    img = np.stack([0.5 + 0.4 * np.sin(xx / w * 3 + yy / h * 2 + p) for p in ph], axis=-1)
    return img.astype(np.float32)


@pytest.mark.parametrize("fmt", camera.FORMATS)
@pytest.mark.parametrize("matrix,full", [("709", False), ("601", False), ("709", True)])
def test_round_trip_float_within_two_code_values(fmt, matrix, full):
    rgb = _smooth_image(48, 64)
    planes = camera.from_rgb(rgb, fmt, matrix=matrix, full_range=full)
    back = camera.to_rgb(planes, fmt, 64, 48, matrix=matrix, full_range=full)
    # 8-bit quantisation of Y'CbCr (limited range: 219/224 steps) costs up to ~1.5/255
    # per channel; chroma subsampling of a smooth image adds a little inside
    # and more on the one-pixel border, where the chroma sample is clamped
    err = np.abs(back - rgb)
    assert err[1:-1, 1:-1].max() < 3.0 / 255, err[1:-1, 1:-1].max() * 255
    assert err.max() < 8.0 / 255, err.max() * 255
    assert err.mean() < 1.0 / 255


@pytest.mark.parametrize("fmt", camera.FORMATS)
def test_round_trip_uint8_path_matches_float_path(fmt):
    rgb = _smooth_image(32, 40, seed=1)
    rgb8 = (rgb * 255 + 0.5).astype(np.uint8)
    data = camera.from_rgb(rgb8, fmt, as_bytes=True)
    assert isinstance(data, bytes) and len(data) == camera.frame_size(fmt, 40, 32)
    back8 = camera.to_rgb(data, fmt, 40, 32, dtype=np.uint8)
    backf = camera.to_rgb(data, fmt, 40, 32)
    assert back8.dtype == np.uint8
    err = np.abs(back8.astype(int) - rgb8)
    assert err[1:-1, 1:-1].max() <= 3 and err.max() <= 10  # clamped chroma on the border
    # the uint8 path is the float path rounded (cv2 uses fixed point: within one code value)
    assert np.abs(back8.astype(np.float32) - backf * 255).max() <= 1.0


def test_bgra_and_rgba_byte_order_and_alpha():
    rgba = np.zeros((2, 3, 4), np.float32)
    rgba[..., 0], rgba[..., 3] = 1.0, 0.5  # pure red, half alpha
    (bgra,) = camera.from_rgb(rgba, "bgra")
    assert bgra.shape == (2, 12)
    assert tuple(bgra[0, :4]) == (0, 0, 255, 128)
    (rgba8,) = camera.from_rgb(rgba, "rgba")
    assert tuple(rgba8[0, :4]) == (255, 0, 0, 128)
    np.testing.assert_allclose(camera.to_rgb(bgra, "bgra", 3, 2), rgba[..., :3])
    (opaque,) = camera.from_rgb(rgba[..., :3], "bgra")
    assert (opaque.reshape(2, 3, 4)[..., 3] == 255).all()


@pytest.mark.parametrize("fmt", camera.FORMATS)
def test_padded_strides_in_one_buffer_and_per_plane(fmt):
    w, h = 10, 6
    rgb = _smooth_image(h, w, seed=2)
    planes = camera.from_rgb(rgb, fmt)
    tight = camera.to_rgb(planes, fmt, w, h)
    # pad every row with garbage to a 32-byte stride, as FFmpeg/OBS do, and
    # leave the very last row of the buffer unpadded
    strides = [32 if p.shape[1] <= 32 else 64 for p in planes]
    chunks = []
    for p, st in zip(planes, strides):
        padded = np.full((p.shape[0], st), 77, np.uint8)
        padded[:, :p.shape[1]] = p
        chunks.append(padded)
    buf = b"".join(c.tobytes() for c in chunks)
    buf = buf[:len(buf) - (strides[-1] - planes[-1].shape[1])]
    np.testing.assert_array_equal(camera.to_rgb(buf, fmt, w, h, strides=strides), tight)
    np.testing.assert_array_equal(
        camera.to_rgb([memoryview(c.tobytes()) for c in chunks], fmt, w, h, strides=strides), tight)
    # 2-D arrays wider than the row carry their own stride
    np.testing.assert_array_equal(camera.to_rgb(chunks, fmt, w, h), tight)


def test_zero_copy_view_of_the_callers_buffer():
    w, h = 4, 2
    buf = bytearray(camera.frame_size("nv12", w, h))
    buf[:w * h] = bytes([235] * (w * h))
    buf[w * h:] = bytes([128] * (w * h // 2))
    planes = camera.planes(buf, "nv12", w, h, None)
    buf[0] = 16  # a change in the caller's buffer shows through the view
    assert planes[0][0, 0] == 16


@pytest.mark.parametrize("fmt,w,h", [("nv12", 5, 4), ("nv12", 4, 3), ("i420", 7, 8),
                                     ("i422", 3, 2), ("yuy2", 9, 2)])
def test_odd_sizes_are_a_clear_input_error(fmt, w, h):
    with pytest.raises(InputError, match=r"odd") as exc:
        camera.to_rgb(b"\x00" * 1000, fmt, w, h)
    assert "even" in exc.value.hint
    with pytest.raises(InputError, match=r"odd"):
        camera.from_rgb(np.zeros((h, w, 3), np.float32), fmt)


def test_odd_sizes_are_fine_where_nothing_is_subsampled():
    assert camera.to_rgb(bytes(5 * 3 * 4), "bgra", 5, 3).shape == (3, 5, 3)
    # 4:2:2 keeps full vertical resolution: an odd height is allowed
    y = camera.from_rgb(np.zeros((3, 4, 3), np.float32), "i422")
    assert camera.to_rgb(y, "i422", 4, 3).shape == (3, 4, 3)


def test_bad_buffers_and_parameters():
    with pytest.raises(InputError, match=r"NV12 4x2 frame needs 12 bytes, the buffer holds 10"):
        camera.to_rgb(bytes(10), "nv12", 4, 2)
    with pytest.raises(InputError, match=r"unsupported pixel format 'P010'") as exc:
        camera.to_rgb(bytes(100), "P010", 4, 2)
    assert "NV12" in exc.value.hint
    with pytest.raises(InputError, match=r"2 plane\(s\), got 3"):
        camera.to_rgb([bytes(8), bytes(4), bytes(4)], "nv12", 4, 2)
    with pytest.raises(InputError, match=r"stride 3 is smaller than a row"):
        camera.to_rgb(bytes(100), "nv12", 4, 2, strides=[3, 4])
    with pytest.raises(UsageError, match=r"unknown colour matrix"):
        camera.to_rgb(bytes(12), "nv12", 4, 2, matrix="2020")
    with pytest.raises(InputError, match=r"dtype uint16"):
        camera.to_rgb([np.zeros((2, 4), np.uint16), np.zeros((1, 4), np.uint8)], "nv12", 4, 2)


def test_camera_module_loads_without_openimageio():
    """The live-video worker imports only what it uses: no OpenImageIO start-up cost."""
    import subprocess
    import sys

    code = ("import sys, priorfx.io.camera as c, priorfx.io as pio; pio.to_rgb; "
            "print('OpenImageIO' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
