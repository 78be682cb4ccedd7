"""The manifest of known models: where each comes from and how to check it.

Built-in entries ship in manifest.json. Models a user registers with
`priorfx models add` are recorded in `<PRIORFX_HOME>/models/user.json`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from typing import TYPE_CHECKING

from priorfx import config
from priorfx.errors import UsageError

if TYPE_CHECKING:
    from priorfx.models.contract import PriorContract


@dataclass(frozen=True)
class ModelEntry:
    id: str
    description: str
    sha256: str
    size: int
    license: str
    runtime: str                      # "onnxruntime" | "litert" | "torchscript"
    inputs: str = ""
    outputs: str = ""
    package: str | None = None        # PyPI distribution the file comes from
    version: str | None = None
    member: str | None = None         # path of the file inside the wheel
    wheel_platform: str | None = None  # pin the wheel's platform: same bytes everywhere
    user: bool = field(default=False)  # registered with `models add`
    contract: dict | None = None      # PriorContract.to_json() of a model with a prior role

    @property
    def prior_contract(self) -> "PriorContract | None":
        from priorfx.models.contract import PriorContract
        return PriorContract.from_json(self.contract) if self.contract else None

    @property
    def role(self) -> str | None:
        return self.contract["role"] if self.contract else None

    @property
    def filename(self) -> str:
        return Path(self.member).name if self.member else f"{self.id}.onnx"

    @property
    def source(self) -> str:
        if self.package:
            return f"{self.package}=={self.version}:{self.member}"
        return "user file"

    def to_json(self) -> dict:
        return asdict(self)


def user_manifest_path() -> Path:
    return config.home() / "models" / "user.json"


def _builtin() -> dict[str, ModelEntry]:
    raw = json.loads(resources.files("priorfx.models").joinpath("manifest.json").read_text())
    return {mid: ModelEntry(id=mid, **fields) for mid, fields in raw.items()}


def _user() -> dict[str, ModelEntry]:
    path = user_manifest_path()
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    return {mid: ModelEntry(**fields) for mid, fields in raw.items()}


def entries() -> dict[str, ModelEntry]:
    """All known models, built-in first, then the user's."""
    return {**_builtin(), **_user()}


def entry(model_id: str) -> ModelEntry:
    known = entries()
    if model_id not in known:
        raise UsageError(f"unknown model id {model_id!r}",
                         f"known models: {', '.join(sorted(known))}")
    return known[model_id]


def builtin_ids() -> list[str]:
    return list(_builtin())
