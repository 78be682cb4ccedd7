"""Measure camera-format conversion speed: ``python core/tools/camera_bench.py`` (a maintainer script, not shipped).

Prints JSON: median milliseconds per 1920x1080 frame for `to_rgb` / `from_rgb`
in float32 and uint8, per format, beside OpenCV's own cvtColor (BT.601 limited
only, nearest-neighbour chroma) as the peer, and the 1080p30 frame budget
(33.3 ms). Timings on a shared machine are noisy; the load average is recorded.
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from priorfx.bench.common import environment, median_ms
from priorfx.io import camera

_PEER_TO_RGB = {"nv12": cv2.COLOR_YUV2RGB_NV12, "i420": cv2.COLOR_YUV2RGB_I420,
                "yuy2": cv2.COLOR_YUV2RGB_YUY2, "bgra": cv2.COLOR_BGRA2RGB, "rgba": cv2.COLOR_RGBA2RGB}


def measure(width: int = 1920, height: int = 1080, repeat: int = 15) -> dict:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 50)], axis=-1).astype(np.float32)
    rgb8 = (rgb * 255 + 0.5).astype(np.uint8)
    out: dict = {}
    for fmt in camera.FORMATS:
        buf = camera.from_rgb(rgb8, fmt, as_bytes=True)
        row = {
            "to_rgb_float32_ms": median_ms(lambda: camera.to_rgb(buf, fmt, width, height), repeat),
            "to_rgb_uint8_ms": median_ms(lambda: camera.to_rgb_u8(buf, fmt, width, height), repeat),
            "from_rgb_float32_ms": median_ms(lambda: camera.from_rgb(rgb, fmt), repeat),
            "from_rgb_uint8_ms": median_ms(lambda: camera.from_rgb(rgb8, fmt), repeat),
        }
        if fmt in _PEER_TO_RGB:
            arr = np.frombuffer(buf, np.uint8)
            arr = arr.reshape(height, -1) if fmt not in ("nv12", "i420") else arr.reshape(height * 3 // 2, width)
            if fmt in ("bgra", "rgba"):
                arr = arr.reshape(height, width, 4)
            elif fmt == "yuy2":
                arr = arr.reshape(height, width, 2)
            code = _PEER_TO_RGB[fmt]
            row["peer_cv2_cvtColor_uint8_ms"] = median_ms(lambda: cv2.cvtColor(arr, code), repeat)
        out[fmt] = {k: round(v, 3) for k, v in row.items()}
    worst_u8 = max(r["to_rgb_uint8_ms"] + r["from_rgb_uint8_ms"] for r in out.values())
    worst_f = max(r["to_rgb_float32_ms"] + r["from_rgb_float32_ms"] for r in out.values())
    return {"summary": {"size": f"{width}x{height}", "frame_budget_ms_30fps": round(1000 / 30, 1),
                        "worst_round_trip_uint8_ms": round(worst_u8, 3),
                        "worst_round_trip_float32_ms": round(worst_f, 3)},
            "formats": out, "environment": environment(), "cv2_threads": cv2.getNumThreads()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--repeat", type=int, default=15)
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    print(json.dumps(measure(w, h, a.repeat), indent=2))


if __name__ == "__main__":
    main()
