"""Thin wrappers over onnxruntime sessions, LiteRT interpreters and TorchScript modules.

`load(model_id)` returns a runner created once per (model, threads, device) and reused:
creating an onnxruntime session costs far more than one inference. Runners
check input names, shapes and dtypes before running, so a wrong array is a
clear InputError instead of a runtime's C++ message.

Every runner has `input_names`, `output_names` and `run_named(feeds, outputs)`
(name -> array in, name -> array out), which is what a prior with a contract
(priorfx.priors.person) calls. Where a runner runs is `device`
(priorfx.models.devices): onnxruntime's execution providers and torch's
devices are picked only when present, and an asked-for device that is missing
is a DeviceUnavailableError. TorchScript needs the optional torch extra and is
imported only when such a model is loaded.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from priorfx.errors import InputError, UsageError
from priorfx.models import devices, manifest, store

RUNTIMES = ("onnxruntime", "litert", "torchscript")
SUFFIX_RUNTIME = {".onnx": "onnxruntime", ".tflite": "litert", ".pt": "torchscript",
                  ".pth": "torchscript", ".torchscript": "torchscript"}


def _shape_ok(expected: list, actual: tuple) -> bool:
    if len(expected) != len(actual):
        return False
    # Symbolic or unknown dimensions (str / None / <= 0) accept any size.
    return all(not isinstance(e, int) or e <= 0 or e == a for e, a in zip(expected, actual))


class OnnxModel:
    """An onnxruntime session with checked inputs."""

    def __init__(self, model_path: Path, model_id: str, threads: int = 0, device: str = "cpu"):
        import onnxruntime as ort

        providers = devices.onnx_providers(device)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.model_id = model_id
        try:
            self.session = ort.InferenceSession(str(model_path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types
            raise InputError(f"{model_path} is not a loadable ONNX model: {exc}".splitlines()[0]) from None
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_names = list(self.inputs)
        self.device = devices.onnx_device_name(self.session.get_providers())
        self._lock = threading.Lock()

    def input_shape_of(self, name: str) -> list:
        """Static dims as ints, symbolic ones as None."""
        return [d if isinstance(d, int) and d > 0 else None for d in self.inputs[name].shape]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        missing = set(self.inputs) - set(feeds)
        extra = set(feeds) - set(self.inputs)
        if missing or extra:
            raise InputError(f"{self.model_id}: inputs {sorted(feeds)} do not match the model's "
                             f"{sorted(self.inputs)}")
        for name, arr in feeds.items():
            spec = self.inputs[name]
            if not _shape_ok(spec.shape, arr.shape):
                raise InputError(f"{self.model_id}: input {name!r} has shape {arr.shape}, "
                                 f"the model expects {spec.shape}")
            if spec.type == "tensor(float)" and arr.dtype != np.float32:
                raise InputError(f"{self.model_id}: input {name!r} must be float32, got {arr.dtype}")
        names = outputs or self.output_names
        # A session is thread-safe in onnxruntime, but runs from many threads
        # would oversubscribe 2 cores; serialise per model.
        with self._lock:
            result = self.session.run(names, dict(feeds))
        return dict(zip(names, result))

    run_named = run


class LiteRTModel:
    """A LiteRT (TensorFlow Lite) interpreter with checked inputs."""

    def __init__(self, model_path: Path, model_id: str, threads: int = 0, device: str = "cpu"):
        from ai_edge_litert.interpreter import Interpreter

        devices.check_cpu_only("LiteRT", device)
        self.device = "cpu"
        self.model_id = model_id
        try:
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads or None)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"{model_path} is not a loadable LiteRT model: {exc}".splitlines()[0]) from None
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()
        self.input_names = [d["name"] for d in self.input_details]
        self.output_names = [d["name"] for d in self.output_details]
        self._lock = threading.Lock()

    def input_shape_of(self, name: str) -> list:
        det = self.input_details[self.input_names.index(name)]
        return [int(d) for d in det["shape"]]

    def run_named(self, feeds: Mapping[str, np.ndarray], outputs: list[str] | None = None
                  ) -> dict[str, np.ndarray]:
        if set(feeds) != set(self.input_names):
            raise InputError(f"{self.model_id}: inputs {sorted(feeds)} do not match the model's "
                             f"{sorted(self.input_names)}")
        result = dict(zip(self.output_names, self.run(*(feeds[n] for n in self.input_names))))
        return {n: result[n] for n in (outputs or self.output_names)}

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run with positional inputs; returns outputs in the model's order."""
        if len(inputs) != len(self.input_details):
            raise InputError(f"{self.model_id}: expects {len(self.input_details)} inputs, got {len(inputs)}")
        with self._lock:
            for arr, det in zip(inputs, self.input_details):
                shape = tuple(int(d) for d in det["shape"])
                if tuple(arr.shape) != shape:
                    raise InputError(f"{self.model_id}: input has shape {arr.shape}, the model expects {shape}")
                self.interpreter.set_tensor(det["index"], np.ascontiguousarray(arr, dtype=det["dtype"]))
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(d["index"]).copy() for d in self.output_details]


class TorchScriptModel:
    """A TorchScript module (torch.jit.load) on a torch device.

    Inputs are named by the arguments of the module's `forward`; outputs by
    a returned dict's keys, or by `output_names` for a tuple (declared when
    the model is added, `--outputs`), or 'alpha' for a single tensor.
    """

    def __init__(self, model_path: Path, model_id: str, threads: int = 0, device: str = "cpu",
                 output_names: tuple[str, ...] = ()):
        torch = devices.import_torch()
        self.torch = torch
        self.model_id = model_id
        self.device = devices.torch_device(device)
        if threads:
            torch.set_num_threads(threads)
        try:
            self.module = torch.jit.load(str(model_path), map_location=self.device).eval()
        except (RuntimeError, ValueError) as exc:
            raise InputError(f"{model_path} is not a loadable TorchScript model: {exc}".splitlines()[0]) from None
        # Flags with a default (RVM's `segmentation_pass: bool = False`) keep
        # their default; scalar arguments (`downsample_ratio: float`) get a number.
        args = [a for a in self.module.forward.schema.arguments if a.name != "self"]
        self.input_names = [a.name for a in args if not (str(a.type) == "bool" and a.has_default_value())]
        self._scalar = {a.name: {"float": float, "int": int, "bool": bool}[str(a.type)]
                        for a in args if str(a.type) in ("float", "int", "bool")}
        self.output_names = list(output_names) or ["alpha"]
        self._lock = threading.Lock()

    def input_shape_of(self, name: str) -> list:
        return [None, None, None, None]  # TorchScript keeps no static shapes

    def run_named(self, feeds: Mapping[str, np.ndarray], outputs: list[str] | None = None
                  ) -> dict[str, np.ndarray]:
        torch = self.torch
        if set(feeds) != set(self.input_names):
            raise InputError(f"{self.model_id}: inputs {sorted(feeds)} do not match the model's "
                             f"{sorted(self.input_names)}")
        kwargs = {n: self._scalar[n](np.asarray(feeds[n]).reshape(-1)[0]) if n in self._scalar
                  else torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device)
                  for n in self.input_names}
        with self._lock, torch.inference_mode():
            try:
                result = self.module(**kwargs)
            except RuntimeError as exc:
                raise InputError(f"{self.model_id}: the TorchScript model failed: "
                                 f"{str(exc).strip().splitlines()[-1]}") from None
        if isinstance(result, dict):
            named = dict(result)
        elif isinstance(result, (tuple, list)):
            if len(result) != len(self.output_names):
                raise InputError(f"{self.model_id}: returned {len(result)} outputs, "
                                 f"{len(self.output_names)} named ({', '.join(self.output_names)})",
                                 "name every output with `priorfx models add ... --outputs a,b,c`")
            named = dict(zip(self.output_names, result))
        else:
            named = {self.output_names[0]: result}
        self.output_names = list(named)
        return {n: named[n].detach().float().cpu().numpy() for n in (outputs or named)}


Runner = OnnxModel | LiteRTModel | TorchScriptModel
_cache: dict[tuple[str, int, str], Runner] = {}
_cache_lock = threading.Lock()


def open_file(file: Path, model_id: str, runtime: str, threads: int = 0, device: str = "cpu",
              output_names: tuple[str, ...] = ()) -> Runner:
    """A new runner for a model file (not cached: `load` caches store models)."""
    if runtime == "onnxruntime":
        return OnnxModel(file, model_id, threads, device)
    if runtime == "litert":
        return LiteRTModel(file, model_id, threads, device)
    if runtime == "torchscript":
        return TorchScriptModel(file, model_id, threads, device, output_names)
    raise UsageError(f"model {model_id!r} needs runtime {runtime!r}, which priorfx cannot run",
                     "priorfx runs ONNX (onnxruntime), TFLite (litert) and TorchScript (torchscript, "
                     "pip install 'priorfx[torch]') models; export the model to one of them")


def load(model_id: str, threads: int = 0, device: str = "cpu") -> Runner:
    """The shared runner for a model from the store (verified, never downloaded)."""
    key = (model_id, threads, device)
    with _cache_lock:
        if key not in _cache:
            e = manifest.entry(model_id)
            contract = e.prior_contract
            _cache[key] = open_file(store.path(model_id), model_id, e.runtime, threads, device,
                                    contract.outputs if contract else ())
        return _cache[key]
