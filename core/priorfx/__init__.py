"""priorfx: fix what the camera got wrong, with real-world priors.

The core is host-agnostic; OBS, GIMP and Nuke reach it through the `priorfx`
command or its HTTP server (see DESIGN.md).
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("priorfx")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

from priorfx.errors import PriorfxError  # noqa: E402

__all__ = ["__version__", "PriorfxError"]
