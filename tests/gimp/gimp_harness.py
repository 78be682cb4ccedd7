"""Run a python-fu batch in headless GIMP 3 inside the trixie chroot.

The work folder (inputs, outputs, GIMP profile with the installed plug-in,
TMPDIR for the plug-in's exchange files) and the host paths the `priorfx`
console script needs are bound at the same paths inside the chroot, so paths
mean the same on both sides and the plug-in runs the host's real `priorfx`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import gimp_chroot

from priorfx import config

GIMP_CONSOLE = "gimp-console-3.0"
BATCH_TIMEOUT = 420


@dataclass
class GimpWork:
    """A work folder laid out for one GIMP session."""
    root: Path

    @property
    def profile(self) -> Path:
        return self.root / "gimp-profile"

    @property
    def plugins_dir(self) -> Path:
        return self.profile / "plug-ins"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def make(self) -> "GimpWork":
        for p in (self.profile, self.tmp, self.home):
            p.mkdir(parents=True, exist_ok=True)
        return self


def gimp_env(work: GimpWork, extra: dict | None = None) -> dict:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work.home),
        "LANG": "C.UTF-8",
        "GIMP3_DIRECTORY": str(work.profile),  # a fresh profile: only our plug-in added
        "TMPDIR": str(work.tmp),                # the plug-in's exchange files, visible on the host
        "PRIORFX_HOME": str(config.home()),
    }
    env.update(extra or {})
    return env


def run_batch(root: Path, work: GimpWork, code: str, extra_env: dict | None = None,
              binds: list[Path] | None = None, timeout: int = BATCH_TIMEOUT,
              argv: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run `code` with gimp-console's python-fu-eval interpreter in the chroot."""
    chroot_bin = shutil.which("chroot") or "/usr/sbin/chroot"
    env = gimp_env(work, extra_env)
    mounts = gimp_chroot.host_paths() + [work.root.resolve()] + list(binds or [])
    gimp_argv = argv or [GIMP_CONSOLE, "-i", "-n", "-d", "-f", "-c",
                         "--batch-interpreter=python-fu-eval", "-b", "-", "--quit"]
    cmd = [chroot_bin, str(root), "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()],
           "timeout", "-k", "10", str(timeout), *gimp_argv]
    with gimp_chroot.mounted(root, mounts):
        return subprocess.run(cmd, input=code, capture_output=True, text=True, timeout=timeout + 60)


def read_results(path: Path, proc: subprocess.CompletedProcess) -> dict:
    """The batch's JSON results, or an assertion error that shows GIMP's output."""
    if not path.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
        raise AssertionError(f"GIMP batch wrote no results (exit {proc.returncode}):\n{tail}")
    return json.loads(path.read_text())
