"""A Debian trixie chroot with GIMP 3, for testing the GIMP plug-in in real GIMP.

The host is Debian 12, whose GIMP 2.10 cannot run Python 3 plug-ins; trixie
ships GIMP 3.0. `build()` makes the chroot once with mmdebstrap (about a minute
and 700 MB) and caches it; `mounted()` binds what the plug-in needs to reach the
host's `priorfx` (see `host_paths`) and always unmounts again.

Run as a script to build or inspect it::

    python tests/gimp/gimp_chroot.py build      # build (or reuse) the cached chroot
    python tests/gimp/gimp_chroot.py mounts     # list mounts still under it (should be none)
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

CACHE = Path(os.environ.get("PRIORFX_GIMP_CHROOT", "/var/cache/priorfx-test/gimp-trixie"))
SUITE = "trixie"
# gimp pulls gimp-python / python3-gi / gir1.2-gimp-3.0. Xvfb + xauth are for
# the dialog screenshot. No numpy on purpose: the plug-in must not need it.
PACKAGES = ["gimp", "xvfb", "xauth"]
MARKER = ".priorfx-chroot.json"
BUILD_TIMEOUT = 1200
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class ChrootUnavailable(RuntimeError):
    """The chroot cannot be built or used here; the message says why."""


def mirror() -> str:
    """The Debian mirror this machine's apt already uses (same mirror serves trixie)."""
    env = os.environ.get("PRIORFX_DEBIAN_MIRROR")
    if env:
        return env
    uris: list[str] = []
    src = Path("/etc/apt/sources.list.d")
    for f in sorted(src.glob("*.sources")) if src.is_dir() else []:
        uris += re.findall(r"^URIs:\s*(\S+)", f.read_text(errors="replace"), re.M)
    lst = Path("/etc/apt/sources.list")
    if lst.is_file():
        uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", lst.read_text(errors="replace"), re.M)
    for uri in uris:
        if "security" not in uri and "debian" in uri:
            return uri
    return DEFAULT_MIRROR


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` (checked before anything is deleted)."""
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True, check=True)
    root = str(path.resolve()) if path.exists() else str(path)
    return [t for t in out.stdout.splitlines() if t == root or t.startswith(root.rstrip("/") + "/")]


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    left = mounts_under(path)
    if left:
        raise ChrootUnavailable(f"refusing to delete {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path)


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    """One build or GIMP session at a time per chroot (mounts are shared state)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_built(root: Path = CACHE) -> bool:
    return (root / MARKER).is_file() and (root / "usr/bin/gimp-console-3.0").exists()


def build(root: Path = CACHE, log=print) -> Path:
    """Build the chroot into ROOT.tmp and rename it to ROOT; reuse ROOT if complete.

    Raises ChrootUnavailable with the reason when it cannot be built (not root,
    no mmdebstrap, no mirror): callers turn that into a failing test.
    """
    with _lock(root):
        if is_built(root):
            return root
        if os.geteuid() != 0:
            raise ChrootUnavailable("building the GIMP 3 chroot needs root (mmdebstrap in root mode, mounts)")
        if not shutil.which("mmdebstrap"):
            raise ChrootUnavailable("mmdebstrap is not installed: `apt-get install mmdebstrap` "
                                    "(tests/run does this when run as root)")
        tmp = root.with_name(root.name + ".tmp")
        _remove_tree(tmp)
        _remove_tree(root)  # an incomplete old build (no marker)
        cmd = ["mmdebstrap", "--variant=minbase", "--mode=root",
               "--aptopt=APT::Install-Recommends \"false\"",
               f"--include={','.join(PACKAGES)}", SUITE, str(tmp), mirror()]
        log(f"building GIMP 3 chroot: {' '.join(cmd)}")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ChrootUnavailable(f"mmdebstrap took over {BUILD_TIMEOUT} s") from None
        if proc.returncode != 0:
            _remove_tree(tmp)
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
            raise ChrootUnavailable(f"mmdebstrap failed (exit {proc.returncode}):\n{tail}")
        version = subprocess.run(["chroot", str(tmp), "gimp-console-3.0", "--version"],
                                 capture_output=True, text=True).stdout.strip()
        (tmp / MARKER).write_text(json.dumps({"suite": SUITE, "packages": PACKAGES,
                                              "mirror": mirror(), "gimp": version}))
        os.replace(tmp, root)
        log(f"built {root} ({version})")
        return root


def host_paths() -> list[Path]:
    """Host folders the `priorfx` console script needs, bound at the same paths.

    The chroot's own Python (3.13) cannot load the venv's compiled packages, so
    the plug-in runs the host's `priorfx` unchanged: its interpreter (the
    venv's base installation), the venv, the checkout (editable install) and
    PRIORFX_HOME (models, samples) appear inside the chroot where they are on
    the host. Shared libraries come from the chroot; trixie keeps the sonames
    of bookworm's (checked by the test that runs the CLI in the chroot).
    """
    import priorfx
    from priorfx import config

    cands = [Path(sys.prefix), Path(priorfx.__file__).resolve().parents[2],
             Path(sysconfig.get_paths()["purelib"]), config.home()]
    base = Path(sys.base_prefix).resolve()
    if str(base) in _SYSTEM_PREFIXES:
        # A system Python (/usr/bin/python3.11): bind its binary, its standard
        # library and libpython, never the whole /usr over the chroot's.
        paths = sysconfig.get_paths()
        cands += [Path(sys.executable).resolve(), Path(paths["stdlib"]), Path(paths["platstdlib"])]
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        soname = sysconfig.get_config_var("INSTSONAME") or ""
        if ".so" in soname:  # a shared libpython (not the usual static Debian build)
            for d in (libdir, os.path.join(libdir, sysconfig.get_config_var("MULTIARCH") or "")):
                if (Path(d) / soname).exists():
                    cands.append(Path(d) / soname)
    else:
        cands.append(base)  # a self-contained installation (pyenv, conda, uv)
    out: list[Path] = []
    for p in sorted({c.resolve() for c in cands if c.exists()}, key=lambda c: len(c.parts)):
        if str(p) in _SYSTEM_PREFIXES:
            continue
        if not any(p == o or o in p.parents for o in out):
            out.append(p)
    return out


_SYSTEM_PREFIXES = ("/", "/usr", "/usr/local", "/root", "/home", "/opt")


@contextlib.contextmanager
def mounted(root: Path, binds: list[Path], proc: bool = True) -> Iterator[Path]:
    """Bind each host path at the same path in the chroot (and /proc); undo on exit.

    onnxruntime reads /proc/cpuinfo, hence /proc. Everything mounted here is
    unmounted in `finally`, in reverse order, even when the body fails.
    """
    with _lock(root):
        done: list[Path] = []
        try:
            if proc:
                target = root / "proc"
                target.mkdir(exist_ok=True)
                subprocess.run(["mount", "-t", "proc", "proc", str(target)], check=True)
                done.append(target)
            for src in binds:
                target = root / str(src).lstrip("/")
                if src.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch(exist_ok=True)
                subprocess.run(["mount", "--bind", str(src), str(target)], check=True)
                done.append(target)
            yield root
        finally:
            for target in reversed(done):
                if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
                    subprocess.run(["umount", "-l", str(target)], capture_output=True)
            left = mounts_under(root)
            if left:
                raise ChrootUnavailable(f"could not unmount {', '.join(left)}")


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "build"
    if cmd == "build":
        print(build())
        return 0
    if cmd == "mounts":
        print("\n".join(mounts_under(CACHE)) or "none")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
