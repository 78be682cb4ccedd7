"""Atomic output: write to a temporary name beside the target, then rename.

A crash, a cancel or an exception while writing leaves no partial file under
the final name (and removes the temporary one).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from priorfx.errors import OutputError


def _check_parent(target: Path) -> None:
    if not target.parent.is_dir():
        raise OutputError(f"output folder {target.parent} does not exist",
                          "create it first or choose another output path")


def _replace(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as exc:
        raise OutputError(f"cannot write {dst}: {exc.strerror or exc}",
                          "check that the path is a writable file location") from None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path with the same suffix as `target`; rename on success.

    The temporary name keeps the suffix so libraries that pick a format from
    the extension (OpenImageIO, OpenCV) still do.
    """
    target = Path(target)
    _check_parent(target)
    tmp = target.with_name(f".{target.stem}.partial-{uuid.uuid4().hex[:8]}{target.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written to {target}")
        _replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Like `atomic_path` for a folder (an image sequence): fill, then rename.

    An existing target folder is replaced only after the new one is complete.
    """
    target = Path(target)
    _check_parent(target)
    tmp = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            _replace(target, old)
            _replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(target: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    """Write `data` to `target` atomically; `mode` (e.g. 0o600 for a file holding a
    secret) is set when the temporary file is created, so it is never more open."""
    with atomic_path(target) as tmp:
        if mode is None:
            tmp.write_bytes(data)
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)  # os.open's mode is filtered by the umask
