"""pyproject.toml ships every package of the core and every host folder."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_core_package_and_host_folder_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT / "core").parts)
               for p in (ROOT / "core" / "priorfx").rglob("__init__.py")}
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    mapped = {k: v for k, v in cfg["package-dir"].items() if k}
    assert mapped == {"priorfx.hosts.gimp": "gimp", "priorfx.hosts.obs": "obs",
                      "priorfx.hosts.nuke": "nuke", "priorfx.publish.plugins": "plugins"}
    for folder in mapped.values():
        assert (ROOT / folder / "__init__.py").is_file()
    assert set(mapped) <= listed


def test_the_installed_host_folders_are_the_repositorys():
    from priorfx.hosts import host_dir
    for host, folder in (("gimp", "gimp"), ("obs", "obs"), ("nuke", "nuke"), ("publish-plugins", "plugins")):
        assert host_dir(host).resolve() == (ROOT / folder).resolve()
