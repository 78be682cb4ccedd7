"""A content-addressed cache of per-frame results (`priorfx matte --cache DIR`).

A frame's key hashes what decides its pixels: the operation's recipe (its
parameters, the models, the priorfx version, the output format) and the bytes
of the frame's inputs (plate and guides). The matte of a frame also depends on
every earlier frame of the range (the person prior is recurrent), so keys are
chained: each hashes the previous frame's key too, and a change at frame k
makes k and every later frame new. A run whose every key is stored is served
from the store without inference; any miss recomputes the range.

The store is `DIR/store/ab/<key><suffix>`, files linked (or copied where the
file system cannot link) in and out, each move a rename, so a crash or Ctrl-C
never leaves a partial frame under a key. Several machines may share DIR (a
farm): identical keys hold identical bytes, so the last writer's rename wins
harmlessly. The Nuke node, farm renders and the CLI use this one cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from priorfx.errors import OutputError

KEY_VERSION = 1   # bump when the key recipe changes, so old stores are ignored
_BLOCK = 1 << 20


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def pixels_digest(pixels: np.ndarray) -> str:
    """sha256 of decoded pixels (for inputs that are not one file per frame: videos)."""
    h = hashlib.sha256(f"{pixels.dtype.str}{pixels.shape}".encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.hexdigest()


def recipe(operation: str, params: Mapping, model_ids: Sequence[str], version: str, output_suffix: str,
           **extra) -> str:
    """Stable text of everything besides the inputs that decides a frame's result."""
    return json.dumps({"key_version": KEY_VERSION, "operation": operation, "params": params,
                       "models": list(model_ids), "priorfx": version, "output": output_suffix.lower(),
                       **extra}, sort_keys=True, default=str)


def frame_keys(recipe_text: str, digests: Iterable[Mapping[str, str]], chained: bool = True) -> list[str]:
    """One key per frame from the recipe and each frame's input digests (name -> sha256)."""
    keys: list[str] = []
    prev = ""
    for inputs in digests:
        text = "|".join([recipe_text, json.dumps(dict(inputs), sort_keys=True), prev if chained else ""])
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        keys.append(key)
        prev = key
    return keys


class FrameCache:
    """The store under one cache folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()

    def path(self, key: str, suffix: str) -> Path:
        return self.root / "store" / key[:2] / f"{key}{suffix.lower()}"

    def has_all(self, keys: Sequence[str], suffix: str) -> bool:
        return bool(keys) and all(self.path(k, suffix).is_file() for k in keys)

    def put(self, key: str, src: str | os.PathLike) -> None:
        """Store a finished output file under its key."""
        src = Path(src)
        dst = self.path(key, src.suffix)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write to the cache folder {self.root}: {exc.strerror}",
                              "give a writable folder with --cache") from None
        _link_or_copy(src, dst)

    def get(self, key: str, dst: str | os.PathLike) -> None:
        """Put the stored result of `key` at `dst` (same suffix)."""
        dst = Path(dst)
        _link_or_copy(self.path(key, dst.suffix), dst)


def _link_or_copy(src: Path, dst: Path) -> None:
    """`dst` becomes `src`'s bytes in one rename: a hard link (no copy of a 4K EXR) where
    the file system allows, else a copy."""
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
