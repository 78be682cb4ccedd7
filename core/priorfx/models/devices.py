"""Where learned priors run: `--device auto|cpu|cuda|mps|directml|coreml`.

onnxruntime offers the execution providers it was built with (the PyPI
`onnxruntime` wheel: CPU only; `onnxruntime-gpu`: CUDA; `onnxruntime-directml`:
DirectML; the macOS wheel: CoreML). torch offers CUDA and Apple's MPS where
the machine has them. "auto" takes the first GPU the runtime offers and the
CPU otherwise, so a machine without one gives exactly the CPU results; a
named device that is missing is a DeviceUnavailableError naming what is
there and what to install, never a silent fall-back to the CPU.
"""
from __future__ import annotations

from types import ModuleType

from priorfx.config import check_device as check
from priorfx.errors import DeviceUnavailableError, UsageError

# device -> onnxruntime execution provider
ONNX_PROVIDERS = {"cuda": "CUDAExecutionProvider", "directml": "DmlExecutionProvider",
                  "coreml": "CoreMLExecutionProvider"}
# what to install for each device (onnxruntime side)
ONNX_WHEELS = {"cuda": "onnxruntime-gpu", "directml": "onnxruntime-directml",
               "coreml": "onnxruntime (macOS build)"}


def available_onnx_providers() -> list[str]:
    import onnxruntime as ort
    return list(ort.get_available_providers())


def onnx_providers(device: str) -> list[str]:
    """onnxruntime providers for a device, CPU last as onnxruntime's own fall-back."""
    check(device)
    present = available_onnx_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        gpus = [p for p in ONNX_PROVIDERS.values() if p in present]
        return gpus[:1] + ["CPUExecutionProvider"]
    if device == "mps":
        raise DeviceUnavailableError("device 'mps' is a torch device; ONNX models run on cuda, "
                                     "directml or coreml", "use --device coreml (macOS) or --device auto")
    wanted = ONNX_PROVIDERS[device]
    if wanted not in present:
        raise DeviceUnavailableError(
            f"device {device!r} was asked for, but the installed onnxruntime has no {wanted} "
            f"(it offers: {', '.join(present)})",
            f"install {ONNX_WHEELS[device]} in place of onnxruntime on a machine with that GPU, "
            "or use --device auto / --device cpu")
    return [wanted, "CPUExecutionProvider"]


def onnx_device_name(providers: list[str]) -> str:
    """The device a session's first provider stands for."""
    by_provider = {v: k for k, v in ONNX_PROVIDERS.items()}
    return by_provider.get(providers[0], "cpu") if providers else "cpu"


def check_cpu_only(runtime: str, device: str) -> None:
    if check(device) not in ("auto", "cpu"):
        raise DeviceUnavailableError(f"{runtime} models run on the CPU only; device {device!r} was asked for",
                                     "use --device auto or --device cpu for this model, or export it "
                                     "to ONNX to run it on a GPU")


def import_torch() -> ModuleType:
    try:
        import torch
    except ImportError:
        raise UsageError("TorchScript models need torch, which is not installed",
                         "pip install 'priorfx[torch]'") from None
    return torch


def torch_device(device: str) -> str:
    """The torch device string for a priorfx device."""
    torch = import_torch()
    check(device)
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" and not cuda:
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU seen"
        raise DeviceUnavailableError(f"device 'cuda' was asked for, but torch {torch.__version__} "
                                     f"({build}) has no CUDA device",
                                     "install a CUDA build of torch on a machine with an NVIDIA GPU, "
                                     "or use --device auto / --device cpu")
    if device == "mps" and not mps:
        raise DeviceUnavailableError("device 'mps' was asked for, but torch sees no Apple GPU (MPS)",
                                     "use --device auto / --device cpu")
    if device in ("directml", "coreml"):
        raise DeviceUnavailableError(f"device {device!r} is an onnxruntime device; TorchScript models "
                                     "run on cuda, mps or the CPU", "use --device auto, cuda, mps or cpu")
    return device
