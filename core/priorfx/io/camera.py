"""Raw camera pixel formats <-> RGB.

Webcams, capture cards and OBS hand frames over as NV12, I420, I422 (planar
4:2:2), YUY2 (packed 4:2:2), BGRA or RGBA buffers. `to_rgb` turns such a
buffer into an RGB image, `from_rgb` turns an RGB image back into the same
layout, so a filter can sit between a source and a sink without caring how the
camera packs its pixels.

Conventions
-----------
* RGB out of `to_rgb` is *display-encoded* (the camera's gamma), not linear:
  the conversion is the Y'CbCr <-> R'G'B' matrix of the standard and nothing
  else. float32 in [0, 1] (the core's convention) or uint8 with ``dtype=np.uint8``.
* Default matrix BT.709, limited ("TV", Y' 16..235, C 16..240) range. That is
  what HD webcams and OBS (its default "Rec. 709 / Partial" colour setting)
  deliver; SD sources (<= 576 lines) usually use BT.601, pass ``matrix='601'``.
  ``full_range=True`` is JPEG/"PC" range (0..255 everywhere, 255 scaling for
  chroma as in JFIF).
* Chroma is upsampled bilinearly with centred samples (cv2.resize) and
  downsampled by averaging each 2x2 (4:2:0) or 2x1 (4:2:2) block. Chroma
  subsampled formats need even sizes (4:2:0: width and height; 4:2:2: width):
  an odd size raises InputError rather than guessing a rounding convention.
* Planes are read zero-copy: a `bytes`/`memoryview`/`mmap`/numpy buffer is
  wrapped with np.ndarray(buffer=..., strides=...) and only the pixels the
  conversion needs are touched; row strides (FFmpeg/OBS `linesize`) larger
  than the row are supported, including a short last row.

Speed: the uint8 path (``dtype=np.uint8``) builds Y'CbCr 4:4:4 in uint8 and runs
one affine ``cv2.transform`` with saturation, avoiding float temporaries; the
float path converts the 4:4:4 image to float32 once. See
``python core/tools/camera_bench.py`` for measured times.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import cv2
import numpy as np

from priorfx.errors import InputError, UsageError

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]

FORMATS = ("nv12", "i420", "i422", "yuy2", "bgra", "rgba")
MATRICES = {"601": (0.299, 0.114), "709": (0.2126, 0.0722)}  # (Kr, Kb)


@dataclass(frozen=True)
class _Layout:
    """Plane geometry of a format: per plane (rows divisor, bytes-per-row factor)."""
    planes: tuple[tuple[int, float], ...]  # (height divisor, row bytes per pixel of width)
    even_w: bool
    even_h: bool


_LAYOUTS = {
    "nv12": _Layout(((1, 1.0), (2, 1.0)), True, True),          # Y, interleaved UV
    "i420": _Layout(((1, 1.0), (2, 0.5), (2, 0.5)), True, True),
    "i422": _Layout(((1, 1.0), (1, 0.5), (1, 0.5)), True, False),
    "yuy2": _Layout(((1, 2.0),), True, False),                   # Y0 U Y1 V
    "bgra": _Layout(((1, 4.0),), False, False),
    "rgba": _Layout(((1, 4.0),), False, False),
}


def normalise_format(fmt: str) -> str:
    """The lower-case layout key of a pixel format name; InputError if unsupported."""
    key = str(fmt).lower()
    if key not in _LAYOUTS:
        raise InputError(f"unsupported pixel format {fmt!r}",
                         f"supported: {', '.join(f.upper() for f in FORMATS)}")
    return key


def plane_shapes(fmt: str, width: int, height: int) -> list[tuple[int, int]]:
    """(rows, bytes per row) of each plane of a tightly packed `fmt` frame."""
    key = normalise_format(fmt)
    lay = _LAYOUTS[key]
    if width <= 0 or height <= 0:
        raise InputError(f"frame size {width}x{height} is empty", "width and height must be positive")
    if (lay.even_w and width % 2) or (lay.even_h and height % 2):
        need = "width and height" if lay.even_h else "width"
        raise InputError(f"{key.upper()} frame size {width}x{height} is odd",
                         f"{key.upper()} subsamples chroma, so its {need} must be even; "
                         "crop or pad the frame by one pixel")
    return [(height // div, int(width * bpp)) for div, bpp in lay.planes]


def frame_size(fmt: str, width: int, height: int) -> int:
    """Bytes of one tightly packed frame (what a shared-memory slot needs)."""
    return sum(r * b for r, b in plane_shapes(fmt, width, height))


# --------------------------------------------------------------------------- matrices

def _check_matrix(matrix: str) -> tuple[float, float]:
    key = str(matrix).replace("BT.", "").replace("bt", "").replace(".", "").strip()
    if key not in MATRICES:
        raise UsageError(f"unknown colour matrix {matrix!r}", "use '709' (HD) or '601' (SD)")
    return MATRICES[key]


def _ranges(full_range: bool) -> tuple[float, float, float]:
    """(luma offset, luma scale, chroma scale) in 8-bit code values."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)


def yuv_to_rgb_matrix(matrix: str = "709", full_range: bool = False, scale: float = 1.0) -> np.ndarray:
    """3x4 affine matrix taking 8-bit (Y, U, V) code values to R'G'B' * `scale`."""
    kr, kb = _check_matrix(matrix)
    kg = 1.0 - kr - kb
    y0, ys, cs = _ranges(full_range)
    # R'G'B' from (Y', Cb, Cr) with Y' in [0,1], Cb/Cr in [-0.5, 0.5]
    m = np.array([[1.0, 0.0, 2 * (1 - kr)],
                  [1.0, -2 * kb * (1 - kb) / kg, -2 * kr * (1 - kr) / kg],
                  [1.0, 2 * (1 - kb), 0.0]])
    # (Y', Cb, Cr) = diag(1/ys, 1/cs, 1/cs) @ ((Y, U, V) - (y0, 128, 128))
    d = np.diag([1 / ys, 1 / cs, 1 / cs])
    lin = m @ d
    off = -lin @ np.array([y0, 128.0, 128.0])
    return (np.hstack([lin, off[:, None]]) * scale).astype(np.float64)


def rgb_to_yuv_matrix(matrix: str = "709", full_range: bool = False, scale: float = 1.0) -> np.ndarray:
    """3x4 affine matrix taking R'G'B' / `scale` to 8-bit (Y, U, V) code values."""
    kr, kb = _check_matrix(matrix)
    kg = 1.0 - kr - kb
    y0, ys, cs = _ranges(full_range)
    m = np.array([[kr, kg, kb],
                  [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                  [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])
    lin = np.diag([ys, cs, cs]) @ m / scale
    off = np.array([y0, 128.0, 128.0])
    return np.hstack([lin, off[:, None]]).astype(np.float64)


# --------------------------------------------------------------------------- planes in

def _as_u8(buf: Buffer) -> np.ndarray:
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8:
            raise InputError(f"camera plane has dtype {buf.dtype}", "camera planes are 8-bit (uint8)")
        return buf
    try:
        return np.frombuffer(buf, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise InputError(f"camera buffer is not a bytes-like object: {exc}",
                         "pass bytes, a memoryview or a uint8 numpy array") from None


def _plane_view(buf: np.ndarray, offset: int, rows: int, row_bytes: int, stride: int,
                name: str) -> np.ndarray:
    """Zero-copy (rows, row_bytes) view of a flat buffer with a row stride."""
    if stride < row_bytes:
        raise InputError(f"{name}: stride {stride} is smaller than a row ({row_bytes} bytes)",
                         "pass strides (linesize) in bytes per row")
    need = offset + stride * (rows - 1) + row_bytes  # the last row may be unpadded
    if buf.size < need:
        raise InputError(f"{name}: buffer holds {buf.size - offset} bytes, "
                         f"{need - offset} needed for {rows} rows of {row_bytes} bytes at stride {stride}",
                         "check the pixel format, frame size and strides")
    base = buf if buf.flags.c_contiguous else np.ascontiguousarray(buf)
    return np.ndarray((rows, row_bytes), np.uint8, buffer=base.data, offset=offset,
                      strides=(stride, 1))


def _strides(strides) -> list[int]:
    """Linesizes as a list of whole byte counts, or InputError (never a bare ValueError)."""
    items = [strides] if np.isscalar(strides) else strides
    try:
        items = list(items)
    except TypeError:
        items = [None]
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 < s < 1 << 31
               for s in items):
        raise InputError(f"strides must be whole positive byte counts per row, got {strides!r}",
                         "pass one linesize (bytes per row) per plane")
    return [int(s) for s in items]


def planes(data, key: str, width: int, height: int, strides=None) -> list[np.ndarray]:
    """Zero-copy uint8 views of each plane of a frame in `data` (one buffer or one per plane).

    `key` is a normalise_format() key; `strides` one linesize per plane (None: packed).
    """
    shapes = plane_shapes(key, width, height)
    n = len(shapes)
    if strides is not None:
        strides = _strides(strides)
        if len(strides) != n:
            raise InputError(f"{key.upper()} has {n} plane(s) but {len(strides)} stride(s) were given",
                             "give one stride (linesize) per plane")
    if isinstance(data, (list, tuple)):
        if len(data) != n:
            raise InputError(f"{key.upper()} has {n} plane(s), got {len(data)}",
                             "pass the planes in order (e.g. NV12: Y, UV; I420: Y, U, V)")
        out = []
        for i, ((rows, rb), p) in enumerate(zip(shapes, data)):
            arr = _as_u8(p)
            if arr.ndim >= 2 and strides is None:
                arr2 = arr.reshape(arr.shape[0], -1) if arr.ndim > 2 else arr
                if arr2.shape[0] < rows or arr2.shape[1] < rb:
                    raise InputError(f"{key.upper()} plane {i} is {arr2.shape[0]}x{arr2.shape[1]} bytes, "
                                     f"{rows}x{rb} needed for {width}x{height}",
                                     "check the pixel format and frame size")
                out.append(arr2[:rows, :rb])
            else:
                stride = strides[i] if strides is not None else rb
                out.append(_plane_view(arr.reshape(-1) if arr.ndim > 1 else arr, 0, rows, rb, stride,
                                       f"{key.upper()} plane {i}"))
        return out
    arr = _as_u8(data)
    if arr.ndim > 1:
        arr = arr.reshape(-1) if arr.flags.c_contiguous else np.ascontiguousarray(arr).reshape(-1)
    strides = strides or [rb for _, rb in shapes]
    need = sum(st * rows for (rows, _), st in zip(shapes, strides)) - (strides[-1] - shapes[-1][1])
    if arr.size < need:
        raise InputError(f"{key.upper()} {width}x{height} frame needs {need} bytes, the buffer holds {arr.size}",
                         "check the pixel format, frame size and strides")
    out, offset = [], 0
    for i, ((rows, rb), st) in enumerate(zip(shapes, strides)):
        out.append(_plane_view(arr, offset, rows, rb, st, f"{key.upper()} plane {i}"))
        offset += st * rows  # planes follow each other, each padded to its stride
    return out


def _yuv444(planes: list[np.ndarray], key: str, width: int, height: int) -> np.ndarray:
    """uint8 H x W x 3 (Y, U, V) with chroma upsampled to full size."""
    size = (width, height)
    if key == "nv12":
        y, uv = planes
        uv = uv.reshape(height // 2, width // 2, 2)
        return cv2.merge([np.ascontiguousarray(y), cv2.resize(uv, size, interpolation=cv2.INTER_LINEAR)])
    elif key in ("i420", "i422"):
        y = planes[0]
        u = cv2.resize(planes[1], size, interpolation=cv2.INTER_LINEAR)
        v = cv2.resize(planes[2], size, interpolation=cv2.INTER_LINEAR)
    else:  # yuy2: Y0 U0 Y1 V0 ...: each pixel is (Y, U or V); the second channel
        # of a row, read as pairs, is that row's (U, V) at half width
        y, c = cv2.split(planes[0].reshape(height, width, 2))
        uv = cv2.resize(c.reshape(height, width // 2, 2), size, interpolation=cv2.INTER_LINEAR)
        return cv2.merge([y, uv])
    return cv2.merge([np.ascontiguousarray(y), u, v])


def to_rgb(data, fmt: str, width: int, height: int, strides: Sequence[int] | int | None = None,
           matrix: str = "709", full_range: bool = False, dtype=np.float32) -> np.ndarray:
    """Convert a camera frame to an RGB image.

    Parameters
    ----------
    data : bytes-like or sequence of bytes-like / uint8 arrays
        One buffer holding all planes one after another (each plane padded to
        its stride), or one object per plane (NV12: Y, UV; I420/I422: Y, U, V;
        packed formats: one). 2-D uint8 arrays carry their own row stride.
    fmt : {'NV12', 'I420', 'I422', 'YUY2', 'BGRA', 'RGBA'}
    width, height : int
        Frame size in pixels.
    strides : int or sequence of int, optional
        Bytes per row of each plane (FFmpeg/OBS ``linesize``); default tight.
    matrix : {'709', '601'}
        Y'CbCr matrix (ignored for BGRA/RGBA).
    full_range : bool
        Full (0..255) instead of limited (16..235/240) range.
    dtype : np.float32 or np.uint8
        float32 in [0, 1] (default) or uint8 (the fast path for live video).

    Returns
    -------
    np.ndarray
        H x W x 3 display-encoded RGB, C-contiguous. Alpha of BGRA/RGBA is dropped.

    Raises
    ------
    InputError
        Unknown format, odd size for a subsampled format, buffer too small.
    """
    key = normalise_format(fmt)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.uint8):
        raise UsageError(f"to_rgb dtype {dtype} is not supported", "use np.float32 or np.uint8")
    views = planes(data, key, width, height, strides)
    if key in ("bgra", "rgba"):
        px = views[0].reshape(height, width, 4)
        code = cv2.COLOR_BGRA2RGB if key == "bgra" else cv2.COLOR_RGBA2RGB
        rgb = cv2.cvtColor(px, code)  # copies into a contiguous 3-channel image
        if dtype == np.uint8:
            return rgb
        return rgb.astype(np.float32) * np.float32(1 / 255)
    yuv = _yuv444(views, key, width, height)
    if dtype == np.uint8:
        # one affine pass with rounding + saturation, all in uint8 in and out
        return cv2.transform(yuv, yuv_to_rgb_matrix(matrix, full_range, 255.0))
    out = cv2.transform(yuv.astype(np.float32), yuv_to_rgb_matrix(matrix, full_range, 1.0))
    return np.clip(out, 0.0, 1.0, out=out)


def to_rgb_u8(data, fmt: str, width: int, height: int, strides=None, matrix: str = "709",
              full_range: bool = False) -> np.ndarray:
    """`to_rgb(..., dtype=np.uint8)`: H x W x 3 uint8, the live-video path."""
    return to_rgb(data, fmt, width, height, strides, matrix, full_range, dtype=np.uint8)


# --------------------------------------------------------------------------- planes out

def _rgb_input(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, float]:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise InputError(f"RGB image has shape {rgb.shape}", "expected H x W x 3 (or x 4 with alpha)")
    alpha = rgb[..., 3] if rgb.shape[2] == 4 else None
    rgb = rgb[..., :3]
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb), alpha, 255.0
    if rgb.dtype not in (np.float32, np.float64, np.float16):
        raise InputError(f"RGB image has dtype {rgb.dtype}", "use float32 in [0, 1] or uint8")
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha, 1.0


def _to_u8(x: np.ndarray) -> np.ndarray:
    """Round and saturate float code values to uint8 (in place where it can)."""
    if x.dtype == np.uint8:
        return x
    # convertScaleAbs rounds and saturates in one fast pass; clamp negatives
    # first so that its absolute value never mirrors them into range.
    return cv2.convertScaleAbs(cv2.max(x, 0.0, dst=x))


def from_rgb(rgb: np.ndarray, fmt: str, matrix: str = "709", full_range: bool = False,
             as_bytes: bool = False):
    """Convert an RGB image to a camera frame layout.

    Parameters
    ----------
    rgb : np.ndarray
        H x W x 3 (or x 4: alpha used for BGRA/RGBA, else ignored), float in
        [0, 1] or uint8 (the fast path), display-encoded.
    fmt, matrix, full_range
        As in `to_rgb`.
    as_bytes : bool
        Return one tightly packed `bytes` (planes one after another) instead
        of the plane arrays.

    Returns
    -------
    tuple of np.ndarray or bytes
        Tightly packed uint8 planes, each 2-D (rows, bytes per row): NV12 (Y, UV),
        I420/I422 (Y, U, V), YUY2/BGRA/RGBA (one packed plane). These feed
        straight back into `to_rgb`.
    """
    key = normalise_format(fmt)
    rgb, alpha, scale = _rgb_input(rgb)
    h, w = rgb.shape[:2]
    plane_shapes(key, w, h)  # size checks
    if key in ("bgra", "rgba"):
        src = _to_u8(rgb * 255.0) if scale == 1.0 else rgb
        a = (np.full((h, w), 255, np.uint8) if alpha is None
             else (_to_u8(np.asarray(alpha, np.float32) * 255.0) if scale == 1.0 else alpha))
        order = [2, 1, 0] if key == "bgra" else [0, 1, 2]
        packed = cv2.merge([src[..., order[0]], src[..., order[1]], src[..., order[2]],
                            np.ascontiguousarray(a)])
        planes: tuple[np.ndarray, ...] = (packed.reshape(h, w * 4),)
    else:
        m = rgb_to_yuv_matrix(matrix, full_range, scale)
        # Luma at full size, chroma from the block-averaged RGB: the matrix is
        # affine, so averaging before or after it is the same, and the chroma
        # transform then runs on a quarter (4:2:0) or half (4:2:2) of the pixels.
        y = _to_u8(cv2.transform(rgb, m[0:1]))
        csize = (w // 2, h // 2) if key in ("nv12", "i420") else (w // 2, h)
        # An exact 2x bilinear decimation samples midway between pixel pairs, i.e.
        # it is the 2x2 / 2x1 box average, and cv2 runs it faster than INTER_AREA.
        small = cv2.resize(rgb, csize, interpolation=cv2.INTER_LINEAR)
        uv = _to_u8(cv2.transform(small, m[1:3]))  # H' x W' x 2 (U, V interleaved)
        if key == "nv12":
            planes = (y, uv.reshape(h // 2, w))
        elif key in ("i420", "i422"):
            planes = (y, *cv2.split(uv))
        else:  # yuy2: pixel i carries (Y_i, U or V): interleave Y with the row of U0 V0 U1 V1 ...
            planes = (cv2.merge([y, uv.reshape(h, w)]).reshape(h, w * 2),)
    if as_bytes:
        return b"".join(p.tobytes() for p in planes)
    return planes


def from_rgb_u8(rgb: np.ndarray, fmt: str, matrix: str = "709", full_range: bool = False,
                as_bytes: bool = False):
    """`from_rgb` for a uint8 image (rounded to uint8 first if given floats)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        rgb = _to_u8(np.asarray(rgb, np.float32) * 255.0)
    return from_rgb(rgb, fmt, matrix, full_range, as_bytes)
