"""Runners: call a loaded model on NCHW float32 NumPy arrays with a chosen backend.

All runners are safe to call from several VapourSynth threads at once: ONNX
Runtime sessions and eval-mode torch modules are re-entrant, and CUDA work uses
one stream per thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from ..bridge import PerThread
from ..errors import VSRestoreError
from .backends import Backend, OrtCPU, OrtCUDA, TensorRT, TorchCPU, TorchCUDA
from .export import cached_onnx, export_onnx
from .loader import LoadedModel

log = logging.getLogger("vsrestore.runtime")


class Runner(Protocol):
    @property
    def max_shape(self) -> tuple[int, int] | None: ...

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """Eager PyTorch on the CPU or one CUDA device (fp16 where the model allows)."""

    max_shape: tuple[int, int] | None = None

    def __init__(self, model: LoadedModel, backend: TorchCPU | TorchCUDA, filter_name: str) -> None:
        import torch

        if model.module is None:
            raise VSRestoreError(filter_name, f"model {model.name} is ONNX-only",
                                 "use backend=vr.OrtCPU() (or TensorRT) for .onnx files")
        self.torch = torch
        if isinstance(backend, TorchCUDA):
            if not torch.cuda.is_available():
                raise VSRestoreError(filter_name, "backend TorchCUDA needs an NVIDIA GPU, none found",
                                     "use backend=vr.OrtCPU() or backend=None")
            self.device = torch.device("cuda", backend.device)
            self.dtype = torch.float16 if backend.fp16 and model.supports_half else torch.float32
            self.module = model.module.to(self.device, self.dtype)
            self.streams: PerThread | None = PerThread(lambda: torch.cuda.Stream(self.device))
        else:
            if backend.threads:
                torch.set_num_threads(backend.threads)
            self.device, self.dtype, self.module, self.streams = (
                torch.device("cpu"), torch.float32, model.module, None)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            if self.streams is None:
                return self.module(torch.from_numpy(x)).numpy()
            stream = self.streams.get()
            with torch.cuda.stream(stream):
                t = torch.from_numpy(x).pin_memory().to(self.device, self.dtype, non_blocking=True)
                y = self.module(t).float().cpu()
            stream.synchronize()
            return y.numpy()


class OrtRunner:
    """ONNX Runtime with the CPU or CUDA provider; one session shared by all threads."""

    max_shape: tuple[int, int] | None = None

    def __init__(self, model: LoadedModel, backend: OrtCPU | OrtCUDA, filter_name: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if isinstance(backend, OrtCPU):
            opts.intra_op_num_threads = backend.threads
            opts.inter_op_num_threads = 1
            providers: list = ["CPUExecutionProvider"]
        else:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise VSRestoreError(filter_name, "backend OrtCUDA needs onnxruntime-gpu, which is "
                                     "not installed", "pip install 'vsrestore[ort-cuda]' on a "
                                     "machine with an NVIDIA GPU, or use backend=None")
            providers = [("CUDAExecutionProvider", {"device_id": backend.device})]
        int8 = isinstance(backend, OrtCPU) and backend.int8
        path = self._int8_path(model, backend, filter_name) if int8 else cached_onnx(model)
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # a corrupt cached export: rebuild once
            if path == model.onnx_path:
                raise VSRestoreError(filter_name, f"ONNX Runtime cannot load {path} ({e})",
                                     "check the .onnx file") from e
            log.warning("rebuilding unreadable cached ONNX %s (%s)", path, e)
            if int8:
                path = self._int8_path(model, backend, filter_name, force=True)
            else:
                export_onnx(model, path)
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.onnx_path = path
        self.input_name = self.session.get_inputs()[0].name

    @staticmethod
    def _int8_path(model: LoadedModel, backend: OrtCPU | OrtCUDA, filter_name: str,
                   force: bool = False) -> Path:
        from .int8 import int8_onnx

        assert isinstance(backend, OrtCPU)
        return int8_onnx(model, target="cpu", calibration=backend.calibration, force=force,
                         filter_name=filter_name)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


def make_runner(model: LoadedModel, backend: Backend, filter_name: str) -> Runner:
    if isinstance(backend, TorchCPU | TorchCUDA):
        return TorchRunner(model, backend, filter_name)
    if isinstance(backend, OrtCPU | OrtCUDA):
        return OrtRunner(model, backend, filter_name)
    if isinstance(backend, TensorRT):
        from .trt import TrtRunner

        return TrtRunner(model, backend, filter_name)
    raise VSRestoreError(filter_name, f"unknown backend {backend!r}",
                         "pass vr.OrtCPU(), vr.TorchCPU(), vr.TorchCUDA(), vr.OrtCUDA(), "
                         "vr.TensorRT() or None")
