"""Models: manifest, store (fetch/verify/locate) and runtimes."""
from priorfx.models.manifest import ModelEntry, entries, entry
from priorfx.models.store import add, fetch, path, status

__all__ = ["ModelEntry", "entries", "entry", "add", "fetch", "path", "status"]
