"""Versioned, atomic publishing into a shot folder.

Layout::

    SHOT_DIR/<item name>/v001/matte.1001.exr ...
    SHOT_DIR/<item name>/v001/manifest.json

`stage` copies an item's files into a hidden folder beside the versions
(same file system, so the final step is a rename) and writes the manifest
with each file's sha256; `commit` renames the staged folder to the next free
``vNNN``. A version folder therefore appears complete or not at all; two
publishers racing for one number both succeed, one with the next number.
"""
from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable

import priorfx
from priorfx.errors import OutputError
from priorfx.progress import Progress, tick
from priorfx.publish.checks import Check
from priorfx.publish.collect import Item, Plate

MANIFEST = "manifest.json"
_VERSION = re.compile(r"^v(\d{3,})$")
_CHUNK = 1 << 20


def existing_versions(item_dir: Path) -> list[int]:
    if not item_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in item_dir.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir())


def next_version(item_dir: Path) -> int:
    """1 for a new item, else one more than the highest existing vNNN."""
    versions = existing_versions(item_dir)
    return versions[-1] + 1 if versions else 1


def version_name(n: int) -> str:
    return f"v{n:03d}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _copy_hashing(src: Path, dst: Path) -> str:
    """Copy src to dst and return the sha256 of the bytes written."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for block in iter(lambda: fin.read(_CHUNK), b""):
            h.update(block)
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    return h.hexdigest()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def build_manifest(item: Item, files: list[dict], checks: Iterable[Check], plate: Plate | None,
                   source: Path) -> dict[str, Any]:
    """The JSON manifest of one published version (the version is added at commit)."""
    nums = item.frame_numbers
    return {
        "item": item.name,
        "family": item.family,
        "version": None,
        "published_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "published_by": _user(),
        "publisher": f"priorfx {priorfx.__version__}",
        "source": str(source),
        "plate": plate.source if plate is not None else None,
        "frame_range": [nums[0], nums[-1]],
        "frame_count": len(nums),
        "resolution": [item.info.width, item.info.height],
        "channels": list(item.info.channel_names),
        "colorspace": item.info.colorspace,
        "files": files,
        "provenance": item.provenance,
        "validation": [c.to_json() for c in checks],
    }


def stage(item: Item, shot_dir: Path, checks: Iterable[Check], plate: Plate | None,
          progress: Progress | None = None) -> Path:
    """Copy the item's files and its manifest into a hidden staging folder.

    The staging folder lives in ``SHOT_DIR/<item name>/``; on any error it is
    removed again. Returns its path (pass it to `commit`).
    """
    if not shot_dir.is_dir():
        raise OutputError(f"shot folder {shot_dir} does not exist", "create it first, or check --to")
    item_dir = shot_dir / item.name
    created = not item_dir.exists()
    staging = item_dir / f".staging-{uuid.uuid4().hex[:10]}"
    try:
        item_dir.mkdir(exist_ok=True)
        staging.mkdir()
        files = []
        total = len(item.files)
        for i, (src, frame) in enumerate(zip(item.files, item.frame_numbers)):
            tick(progress, i, total, f"copying {src.name}")
            digest = _copy_hashing(src, staging / src.name)
            files.append({"name": src.name, "frame": frame, "size": src.stat().st_size, "sha256": digest})
        tick(progress, total, total, "copied")
        manifest = build_manifest(item, files, checks, plate, item.files[0].parent)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str),
                                        encoding="utf-8")
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(item_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot publish into {item_dir}: {exc.strerror or exc}",
                              "check that the shot folder is writable and the disk not full") from None
        raise
    return staging


def commit(staging: Path, attempts: int = 100) -> Path:
    """Rename a staged folder to the next free vNNN beside it; returns the version folder."""
    item_dir = staging.parent
    manifest_path = staging / MANIFEST
    try:
        for _ in range(attempts):
            n = next_version(item_dir)
            target = item_dir / version_name(n)
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            manifest["version"] = version_name(n)
            tmp = manifest_path.with_name(MANIFEST + ".tmp")
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
            os.replace(tmp, manifest_path)
            try:
                # mkdir reserves the number; renaming onto an empty folder then succeeds
                # on POSIX, and a racing publisher's mkdir fails and takes the next one
                target.mkdir()
            except FileExistsError:
                continue
            try:
                os.replace(staging, target)
            except OSError:
                target.rmdir()
                raise
            return target
        raise OutputError(f"could not find a free version number in {item_dir}", "retry the publish")
    except OSError as exc:
        raise OutputError(f"cannot publish into {item_dir}: {exc.strerror or exc}",
                          "check that the shot folder is writable") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def discard(staging: Path) -> None:
    """Remove a staged folder (and its item folder, when that holds nothing else)."""
    item_dir = staging.parent
    shutil.rmtree(staging, ignore_errors=True)
    try:
        item_dir.rmdir()  # only when empty: a first publish that did not happen
    except OSError:
        pass


def verify(version_dir: Path) -> list[str]:
    """Files of a published version whose sha256 no longer matches the manifest."""
    manifest = json.loads((version_dir / MANIFEST).read_text(encoding="utf-8"))
    return [f["name"] for f in manifest["files"] if sha256_file(version_dir / f["name"]) != f["sha256"]]
