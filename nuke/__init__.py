"""Nuke adapter of priorfx, shipped in the wheel as priorfx.hosts.nuke (see priorfx/hosts/__init__.py). Nuke itself loads init.py and menu.py from this folder."""
