"""OBS Studio adapter of priorfx, shipped in the wheel as priorfx.hosts.obs (see priorfx/hosts/__init__.py)."""
