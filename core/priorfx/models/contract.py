"""The prior contract: how a model of a role is fed and read (DESIGN.md, "Bring your own prior").

A model registered with a role (`priorfx models add ID FILE --role person-matting
--input multiple:32 --normalize imagenet`) carries a `PriorContract` in its
manifest entry. The contract says what the model is given (the frame resized by
an input-size rule, normalised, in NCHW or NHWC layout) and which of its
outputs is the alpha. A recurrent model's state inputs are paired with their
outputs by name (`r1i` -> `r1o`, `state_in` -> `state_out`) and found when the
model is added; an input named `downsample_ratio` is fed RVM's ratio.

This module only parses and describes; priorfx.priors.person runs the model.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from priorfx.errors import UsageError

# The built-in prior (`priorfx matte --prior` default).
DEFAULT_PRIOR = "rvm-mobilenetv3"
ROLES = ("person-matting", "person-segmentation")
LAYOUTS = ("nchw", "nhwc")
# ImageNet statistics, what most matting / segmentation backbones are trained on.
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
RATIO_INPUT = "downsample_ratio"
ALPHA_NAMES = ("pha", "alpha", "matte", "mask")
FOREGROUND_NAMES = ("fgr", "foreground", "fg")


@dataclass(frozen=True)
class PriorContract:
    """How a prior model is fed and read.

    role : 'person-matting' (alpha, maybe foreground) or 'person-segmentation'
        (person probability, used as a coarse alpha that matting refines).
    input : 'multiple:N' (any size, both sides rounded to a multiple of N,
        long side at most `max_side`) or 'fixed:WxH' (stretched to exactly W x H).
    normalize : 'unit' (RGB in [0, 1]), 'imagenet' ((x - mean) / std with
        ImageNet's statistics), 'signed' ([-1, 1]) or 'MEAN,MEAN,MEAN/STD,STD,STD'.
    layout : 'nchw' or 'nhwc' of the image input (batch 1, RGB).
    max_side : long side of the network input under 'multiple:N'.
    outputs : names of a TorchScript model's outputs when it returns a tuple
        (ONNX and LiteRT models name their own).
    state : [input, output] name pairs of the recurrent state (found at add time).
    image_input, alpha_output, foreground_output : names (found at add time).
    """

    role: str = "person-matting"
    input: str = "multiple:1"
    normalize: str = "unit"
    layout: str = "nchw"
    max_side: int = 1920
    outputs: tuple[str, ...] = ()
    state: tuple[tuple[str, str], ...] = ()
    image_input: str = ""
    alpha_output: str = ""
    foreground_output: str | None = None
    uses_ratio: bool = False

    # ---------------------------------------------------------------- parsing
    def validate(self) -> "PriorContract":
        if self.role not in ROLES:
            raise UsageError(f"role {self.role!r} is not one of {', '.join(ROLES)}",
                             "e.g. --role person-matting")
        if self.layout not in LAYOUTS:
            raise UsageError(f"layout {self.layout!r} is not one of {', '.join(LAYOUTS)}",
                             "--layout nchw (PyTorch, ONNX exports) or nhwc (TensorFlow, TFLite)")
        self.size_rule()
        self.mean_std()
        if not isinstance(self.max_side, int) or not 16 <= self.max_side <= 16384:
            raise UsageError(f"max side {self.max_side!r} must be a whole number of pixels in 16..16384")
        return self

    def size_rule(self) -> tuple[str, int, int]:
        """('multiple', N, N) or ('fixed', W, H)."""
        m = re.fullmatch(r"multiple:(\d+)", self.input) or re.fullmatch(r"fixed:(\d+)x(\d+)", self.input)
        if m is None or min(int(g) for g in m.groups()) < 1:
            raise UsageError(f"input size rule {self.input!r} is not understood",
                             "use --input multiple:N (any size, rounded to a multiple of N, e.g. 32) "
                             "or --input fixed:WxH (e.g. fixed:256x256)")
        if self.input.startswith("multiple"):
            n = int(m.group(1))
            return "multiple", n, n
        return "fixed", int(m.group(1)), int(m.group(2))

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """None for 'unit' (the [0, 1] frame as is), else per-channel (mean, std)."""
        if self.normalize == "unit":
            return None
        if self.normalize == "imagenet":
            return IMAGENET
        if self.normalize == "signed":
            return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        try:
            mean_text, std_text = self.normalize.split("/")
            mean = tuple(float(v) for v in mean_text.split(","))
            std = tuple(float(v) for v in std_text.split(","))
        except ValueError:
            mean = std = ()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise UsageError(f"normalisation {self.normalize!r} is not understood",
                             "use --normalize unit ([0,1]), imagenet, signed ([-1,1]) or "
                             "MEAN,MEAN,MEAN/STD,STD,STD (on [0,1] values, e.g. 0.5,0.5,0.5/0.5,0.5,0.5)")
        return mean, std

    def describe(self) -> str:
        kind = "recurrent" if self.state else "single image"
        return (f"{self.role} ({kind}); input {self.input}"
                + (f" up to {self.max_side} px" if self.input.startswith("multiple") else "")
                + f", {self.layout.upper()}, normalised {self.normalize}")

    # ------------------------------------------------------------- JSON form
    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["outputs"] = list(self.outputs)
        d["state"] = [list(p) for p in self.state]
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> "PriorContract":
        d = dict(d)
        d["outputs"] = tuple(d.get("outputs") or ())
        d["state"] = tuple(tuple(p) for p in d.get("state") or ())
        return PriorContract(**d)


def _paired_output(name: str, outputs: list[str]) -> str | None:
    """The output that carries input `name`'s state to the next frame."""
    candidates = []
    if name.endswith("i"):
        candidates.append(name[:-1] + "o")
    if name.endswith("_in"):
        candidates.append(name[:-3] + "_out")
    candidates += [name + "o", name + "_out"]
    return next((c for c in candidates if c in outputs), None)


def bind(contract: PriorContract, inputs: list[str], outputs: list[str]) -> PriorContract:
    """The contract with the model's own names filled in, or a ModelUnfitError
    saying which part of the signature does not fit."""
    from dataclasses import replace

    from priorfx.errors import ModelUnfitError

    state, image = [], []
    for name in inputs:
        if name == RATIO_INPUT:
            continue
        out = _paired_output(name, outputs)
        (state.append((name, out)) if out else image.append(name))
    if len(image) != 1:
        raise ModelUnfitError(
            f"the model's inputs {inputs} do not fit the {contract.role} contract: it needs exactly one "
            f"image input, plus recurrent state inputs paired with outputs (r1i -> r1o, h_in -> h_out) "
            f"and optionally {RATIO_INPUT!r}; {len(image)} unpaired input(s): {image}",
            "export the model with one frame input and its recurrent state named as its outputs; "
            "name a TorchScript model's tuple outputs with --outputs (e.g. pha,r1o)")
    if contract.role == "person-segmentation" and state:
        raise ModelUnfitError("a person-segmentation prior takes a single image, but the model has "
                              f"recurrent state inputs {[s for s, _ in state]}",
                              "register it with --role person-matting")
    rest = [o for o in outputs if o not in {out for _, out in state}]
    alpha = next((o for o in ALPHA_NAMES if o in rest), None)
    fgr = next((o for o in FOREGROUND_NAMES if o in rest), None)
    if alpha is None:
        others = [o for o in rest if o != fgr]
        if len(others) != 1:
            raise ModelUnfitError(
                f"cannot tell the alpha among the model's outputs {outputs}",
                f"name the alpha output one of {', '.join(ALPHA_NAMES)} (for TorchScript: --outputs)")
        alpha = others[0]
    return replace(contract, state=tuple(state), image_input=image[0], alpha_output=alpha,
                   foreground_output=fgr if contract.role == "person-matting" else None,
                   uses_ratio=RATIO_INPUT in inputs)


__all__ = ["PriorContract", "ROLES", "LAYOUTS", "bind"]
