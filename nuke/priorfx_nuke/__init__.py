"""Nuke adapter of priorfx: the PriorfxMatte node.

logic.py (pure), jobs.py (runs the core, no `nuke`), node.py (the only module
that imports `nuke`), farm.py (`nuke -t` entry point). Standard library only;
Python 3.7+ (Nuke 13 and later).

The modules import priorfx's host kit (`priorfx_hostkit`: finding, starting and
reading the core; shared with the GIMP and OBS adapters). It is loaded here
first: from beside this plug-in folder, else from where the priorfx package or
a source checkout keeps it.
"""
import importlib.util
import os
import sys

__all__ = ["logic", "jobs"]


def _load_hostkit() -> None:
    if "priorfx_hostkit" in sys.modules:
        return
    plugin = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in (os.path.join(plugin, "priorfx_hostkit.py"),
                 os.path.join(plugin, os.pardir, "priorfx_hostkit.py"),  # inside the priorfx package
                 os.path.join(plugin, os.pardir, "core", "priorfx", "hosts", "priorfx_hostkit.py")):
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("priorfx_hostkit", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules["priorfx_hostkit"] = module
            spec.loader.exec_module(module)
            return
    raise ImportError("priorfx_hostkit.py is missing beside {}; run `priorfx install nuke` again".format(plugin))


_load_hostkit()
