"""Thin wrappers over onnxruntime sessions and LiteRT interpreters.

`load(model_id)` returns a runner created once per (model, threads) and reused:
creating an onnxruntime session costs far more than one inference. Runners
check input names, shapes and dtypes before running, so a wrong array is a
clear InputError instead of a runtime's C++ message.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from priorfx.errors import InputError, UsageError
from priorfx.models import manifest, store


def _shape_ok(expected: list, actual: tuple) -> bool:
    if len(expected) != len(actual):
        return False
    # Symbolic or unknown dimensions (str / None / <= 0) accept any size.
    return all(not isinstance(e, int) or e <= 0 or e == a for e, a in zip(expected, actual))


class OnnxModel:
    """An onnxruntime session with checked inputs."""

    def __init__(self, model_path: Path, model_id: str, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.model_id = model_id
        try:
            self.session = ort.InferenceSession(str(model_path), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types
            raise InputError(f"{model_path} is not a loadable ONNX model: {exc}".splitlines()[0]) from None
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()

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


class LiteRTModel:
    """A LiteRT (TensorFlow Lite) interpreter with checked inputs."""

    def __init__(self, model_path: Path, model_id: str, threads: int = 0):
        from ai_edge_litert.interpreter import Interpreter

        self.model_id = model_id
        try:
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads or None)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"{model_path} is not a loadable LiteRT model: {exc}".splitlines()[0]) from None
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()
        self._lock = threading.Lock()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input_details[0]["shape"])

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


_cache: dict[tuple[str, int], OnnxModel | LiteRTModel] = {}
_cache_lock = threading.Lock()


def load(model_id: str, threads: int = 0) -> OnnxModel | LiteRTModel:
    """The shared runner for a model from the store (verified, never downloaded)."""
    key = (model_id, threads)
    with _cache_lock:
        if key not in _cache:
            e = manifest.entry(model_id)
            p = store.path(model_id)
            if e.runtime == "onnxruntime":
                _cache[key] = OnnxModel(p, model_id, threads)
            elif e.runtime == "litert":
                _cache[key] = LiteRTModel(p, model_id, threads)
            else:
                raise UsageError(f"model {model_id!r} needs runtime {e.runtime!r}, which priorfx "
                                 "cannot run", "priorfx runs ONNX (onnxruntime) and TFLite (litert) models; "
                                 "export the model to one of them and `priorfx models add` it")
        return _cache[key]


def check_onnx_file(file: Path) -> None:
    """Refuse a file that onnxruntime cannot load (used by `models add`)."""
    OnnxModel(file, file.name)
