"""mypy with Foundry's API stubs (types-nuke) over the adapter: catches misuse of the nuke API."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).resolve().parents[2] / "nuke"
HOSTKIT_DIR = PLUGIN.parent / "core" / "priorfx" / "hosts"
# mypy no longer targets 3.7-3.9; 3.7 syntax is checked in test_logic.py.
FLAGS = ["--python-version", "3.10", "--check-untyped-defs", "--no-incremental", "--explicit-package-bases",
         "--cache-dir", "/dev/null" if sys.platform != "win32" else "nul"]


def _mypy(cwd: Path, *targets: str) -> subprocess.CompletedProcess:
    import importlib.util
    assert importlib.util.find_spec("mypy"), "mypy is not installed (test dependency: pip install mypy types-nuke)"
    stubs = Path(sys.prefix)
    assert any(stubs.rglob("nuke-stubs/__init__.pyi")), "types-nuke is not installed (pip install types-nuke)"
    # Run inside the plug-in folder so `nuke` resolves to the stubs, not to the repo's nuke/ folder.
    # The host kit is loaded by path at run time; mypy reads it from the core.
    env = dict(os.environ, MYPYPATH=str(HOSTKIT_DIR))
    return subprocess.run([sys.executable, "-m", "mypy", *FLAGS, *targets], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)  # a deadline


def test_adapter_type_checks_against_the_nuke_stubs():
    proc = _mypy(PLUGIN, "priorfx_nuke", "menu.py", "init.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues found in 7 source files" in proc.stdout


def test_the_stubs_catch_a_wrong_nuke_call(tmp_path):
    """Proof the check has teeth: a wrong `nuke.execute` call must fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("import nuke\n"
                   "w = nuke.toNode('Write1')\n"
                   "nuke.execute(w, '1001', 1100)\n"
                   "nuke.root().setProxy(True, 'x', 1, 2, 3, 4, 5)\n"
                   "nuke.ProgressTask('x').setProgress(50)\n"
                   "nuke.createNode('Group', inpanel='no')\n")
    proc = _mypy(tmp_path, "bad.py")
    assert proc.returncode == 1
    assert 'bad.py:3: error: No overload variant of "execute"' in proc.stdout
    assert "bad.py:6: error" in proc.stdout and 'inpanel' in proc.stdout
