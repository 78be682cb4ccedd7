"""Nuke adapter of priorfx: the PriorfxMatte node.

logic.py (pure), jobs.py (runs the core, no `nuke`), node.py (the only module
that imports `nuke`), farm.py (`nuke -t` entry point). Standard library only;
Python 3.7+ (Nuke 13 and later).
"""
__all__ = ["logic", "jobs"]
