"""Settings: where models and samples live, and which engine to use.

Precedence (highest first): explicit argument (CLI flag), environment
variable, config file, default. The config file is TOML at
`$PRIORFX_CONFIG` or `<user config dir>/priorfx/config.toml`, e.g.::

    remote = "http://gpu-box:8765"
    token = "..."
    threads = 2
    device = "auto"             # auto | cpu | cuda | mps | directml | coreml
"""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from priorfx.errors import UsageError


# Where learned priors may run. "auto" takes a GPU where the installed runtime
# has one and the CPU otherwise; the others are demanded (missing: an error).
DEVICES = ("auto", "cpu", "cuda", "mps", "directml", "coreml")


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise UsageError(f"device {device!r} is not one of {', '.join(DEVICES)}",
                         "use --device auto (a GPU where one is present, else the CPU) or --device cpu")
    return device


def home() -> Path:
    """The cache folder for models and samples (`PRIORFX_HOME`)."""
    env = os.environ.get("PRIORFX_HOME")
    return Path(env) if env else Path(platformdirs.user_cache_dir("priorfx"))


def config_file() -> Path:
    env = os.environ.get("PRIORFX_CONFIG")
    return Path(env) if env else Path(platformdirs.user_config_dir("priorfx")) / "config.toml"


def _read_config_file() -> dict:
    path = config_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}",
                         "fix or delete the file") from None
    if data.get("token"):
        warn_if_exposed(path, "config file")
    return data


_warned: set[Path] = set()


def warn_if_exposed(path: Path, what: str) -> bool:
    """Warn (stderr) when a file holding a secret can be read by other users."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    if os.name != "posix" or not mode & 0o044:
        return False
    if path in _warned:
        return True
    _warned.add(path)
    print(f"priorfx: warning: {what} {path} holds a token and other users can read it "
          f"(mode {mode & 0o777:o}); run: chmod 600 {path}", file=sys.stderr)
    return True


def read_secret_file(path: str | os.PathLike, what: str) -> str:
    """The secret on the first line of `path` (a token file), or UsageError."""
    path = Path(path).expanduser()
    try:
        line = path.read_text(encoding="utf-8").splitlines()[0].strip() if path.stat().st_size else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}",
                         "give a file holding the token on its first line") from None
    if not line:
        raise UsageError(f"{what} {path} is empty", "write the token on its first line")
    warn_if_exposed(path, what)
    return line


def _int_setting(value, where: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise UsageError(f"{where} must be a whole number of threads, got {value!r}",
                         "e.g. 4, or 0 for the runtime's default") from None


@dataclass(frozen=True)
class Settings:
    remote: str | None = None   # URL of a `priorfx serve`; None = run locally
    token: str | None = None    # bearer token for that server
    threads: int = 0            # inference threads; 0 = runtime default
    device: str = "auto"        # where learned priors run (priorfx.models.devices)


def load_settings(remote: str | None = None, token: str | None = None,
                  threads: int | None = None, device: str | None = None) -> Settings:
    """Resolve settings from arguments, environment and the config file."""
    cfg = _read_config_file()
    remote = remote or os.environ.get("PRIORFX_REMOTE") or cfg.get("remote") or None
    token = token or os.environ.get("PRIORFX_TOKEN") or cfg.get("token") or None
    if threads is None:
        env_threads = os.environ.get("PRIORFX_THREADS")
        threads = (_int_setting(env_threads, "PRIORFX_THREADS") if env_threads
                   else _int_setting(cfg.get("threads", 0), f"threads in {config_file()}"))
        if threads < 0:
            raise UsageError(f"the thread count must be 0 or more, got {threads}")
    device = check_device(device or os.environ.get("PRIORFX_DEVICE") or cfg.get("device") or "auto")
    if remote is not None and not remote.startswith(("http://", "https://")):
        raise UsageError(f"remote engine URL {remote!r} must start with http:// or https://",
                         "e.g. --remote http://127.0.0.1:8765")
    return Settings(remote=remote, token=token, threads=threads, device=device)
