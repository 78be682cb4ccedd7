"""Turn a results folder (or a Nuke node's job folder) into publishable items.

A results folder holds what `priorfx matte` / `priorfx undistort` wrote:
image sequences (``matte.1001.exr`` ...) and single images. Each sequence
or single image becomes one `Item` with a family, its frames and files, the
header of its first file and its provenance. Non-image files (sidecars,
manifests) are ignored.

A Nuke node's folder (``<cache>/nodes/<id>``, see nuke/priorfx_nuke) is
recognised by its ``out/`` and ``export/plate/`` sub-folders: the results are
``out/matte.####.exr`` and the plate, unless given, is the exported one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from priorfx.errors import InputError
from priorfx.io import images, video

MATTE = "priorfx.matte"
UNDISTORT = "priorfx.undistort"
FAMILIES = (MATTE, UNDISTORT)

IMAGE_SUFFIXES = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
_FRAME = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<ext>\.[A-Za-z0-9]+)$")


@dataclass
class Plate:
    """What the plate (the source footage) looks like, for comparison."""
    source: str
    kind: str                                  # "sequence", "image" or "video"
    frame_numbers: list[int]
    width: int
    height: int
    pixel_aspect: float = 1.0
    data_window: tuple[int, int, int, int] | None = None      # EXR only
    display_window: tuple[int, int, int, int] | None = None   # EXR only
    colorspace: str | None = None


@dataclass
class Item:
    """One publishable result: a sequence or a single image."""
    name: str                                  # e.g. "matte" (from "matte.1001.exr")
    family: str
    files: list[Path]
    frame_numbers: list[int]
    info: images.ImageInfo                     # header of the first file
    provenance: dict | None
    pattern: str                               # printf pattern or the file itself
    data: dict[str, Any] = field(default_factory=dict)


def nuke_job_layout(folder: Path) -> tuple[Path, str | None] | None:
    """(results folder, plate pattern) of a Nuke node folder, else None."""
    out, plate_dir = folder / "out", folder / "export" / "plate"
    if out.is_dir() and plate_dir.is_dir():
        return out, str(plate_dir / "plate.%04d.exr")
    return None


def _family(info: images.ImageInfo, is_sequence: bool) -> str:
    op = (info.provenance or {}).get("operation")
    if op == "matte" or "matte.alpha" in info.channel_names:
        return MATTE
    if op == "undistort":
        return UNDISTORT
    # no provenance to go by: sequences are mattes, stills undistorted photos
    # (the provenance validator will then say what is missing)
    return MATTE if is_sequence else UNDISTORT


def _item_name(prefix: str, ext: str) -> str:
    name = prefix.rstrip("._- ")
    return name or ext.lstrip(".")


def collect_items(results_dir: str | Path) -> list[Item]:
    """Group the images in `results_dir` into items.

    Raises
    ------
    InputError
        The folder does not exist or holds no images.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise InputError(f"results folder {folder} does not exist", "give the folder the results were written to")
    job = nuke_job_layout(folder)
    if job is not None:
        folder = job[0]
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputError(f"results folder {folder} holds no images",
                         f"expected {', '.join(IMAGE_SUFFIXES)} files written by priorfx")
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    singles: list[Path] = []
    for p in files:
        m = _FRAME.match(p.name)
        if m:
            groups.setdefault((m["prefix"], m["ext"]), {})[int(m["digits"])] = p
        else:
            singles.append(p)
    items: list[Item] = []
    for (prefix, ext), frames in sorted(groups.items()):
        numbers = sorted(frames)
        if len(numbers) == 1 and not prefix.endswith((".", "_", "-")):
            singles.append(frames[numbers[0]])  # "photo2.png" is a still, not frame 2
            continue
        paths = [frames[n] for n in numbers]
        info = images.read_image_info(paths[0])
        pad = len(_FRAME.match(paths[0].name)["digits"])
        pattern = str(folder / f"{prefix}%0{pad}d{ext}")
        items.append(Item(_item_name(prefix, ext), _family(info, True), paths, numbers, info,
                          info.provenance, pattern))
    for p in sorted(singles):
        info = images.read_image_info(p)
        items.append(Item(p.stem, _family(info, False), [p], [0], info, info.provenance, str(p)))
    names = [i.name for i in items]
    for i in items:  # two items may not publish under one name
        if names.count(i.name) > 1:
            i.name = f"{i.name}_{Path(i.pattern).suffix.lstrip('.')}"
    return items


def read_plate(source: str | Path) -> Plate:
    """Header information of the plate: a sequence pattern, folder, image or video."""
    src = str(source)
    path = Path(src)
    if not video.is_sequence_pattern(src) and path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        info = images.read_image_info(path)
        return _plate_from_info(src, "image", [0], info)
    clip = video.read_frames(src)
    if clip.kind == "video":
        return Plate(src, "video", list(clip.frame_numbers), clip.size[0], clip.size[1])
    info = images.read_image_info(clip.paths[0])
    return _plate_from_info(src, "sequence", list(clip.frame_numbers), info)


def _plate_from_info(src: str, kind: str, numbers: list[int], info: images.ImageInfo) -> Plate:
    exr = info.format == "openexr"
    return Plate(src, kind, numbers, info.width, info.height, info.pixel_aspect,
                 info.data_window if exr else None, info.display_window if exr else None,
                 info.colorspace)
