"""Fixtures for the Nuke adapter: the strict fake `nuke` module and the plug-in on sys.path."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "nuke"
FAKE = Path(__file__).resolve().parent / "fake_nuke"

# The fake must win over the repository's own nuke/ folder (a namespace
# package candidate) and Nuke is never installed here, so put it first.
for p in (str(PLUGIN), str(FAKE)):
    if p not in sys.path:
        sys.path.insert(0, p)


@pytest.fixture
def fnuke():
    """The fake `nuke` module, reset to an empty unsaved script in GUI mode."""
    import nuke
    nuke._reset()
    yield nuke
    from priorfx_nuke import node
    for handle in list(node._RUNNING.values()):  # never leak a worker into the next test
        handle.cancel.set()
        if handle.thread is not None:
            handle.thread.join(30)
    node._RUNNING.clear()
    nuke._reset()
