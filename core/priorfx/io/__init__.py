"""Image, video and camera-buffer I/O for the core.

* `images`: stills through OpenImageIO (EXR half/float with alpha, named extra
  channels and metadata; PNG 8/16-bit; JPEG with EXIF; TIFF), atomic writes
  with provenance.
* `video`: clips (MP4/MOV through OpenCV's bundled FFmpeg) and image sequences
  (`dir/frame_%04d.exr`, a folder of images) in and out.
* `camera`: raw camera formats (NV12, I420, I422, YUY2, BGRA, RGBA) <-> RGB.

The submodules load lazily, so `import priorfx.io.camera` in a live-video
worker does not pull in OpenImageIO.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "read_image": "images", "read_image_info": "images", "write_image": "images",
    "ImageInfo": "images", "DEFAULT_MAX_PIXELS": "images", "set_threads": "images",
    "read_frames": "video", "FrameWriter": "video", "Frames": "video",
    "to_rgb": "camera", "from_rgb": "camera", "to_rgb_u8": "camera", "from_rgb_u8": "camera",
}

__all__ = sorted(_EXPORTS) + ["camera", "images", "video"]


def __getattr__(name: str) -> Any:
    if name in ("camera", "images", "video"):
        return importlib.import_module(f"priorfx.io.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"priorfx.io.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'priorfx.io' has no attribute {name!r}")
