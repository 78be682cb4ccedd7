"""GIMP 3 adapter of priorfx, shipped in the wheel as priorfx.hosts.gimp (see priorfx/hosts/__init__.py)."""
