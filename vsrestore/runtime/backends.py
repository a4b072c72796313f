"""Inference backends as frozen, keyword-only dataclasses.

Pick one explicitly (``backend=vr.OrtCPU(threads=2)``) or pass ``backend=None``
to let :func:`auto_backend` choose the fastest one available on this machine:
TensorRT > torch CUDA > ONNX Runtime CUDA > ONNX Runtime CPU.

What was verified where (see README, "Backends"):
- ``OrtCPU``, ``TorchCPU``: tested in CI.
- ``TorchCUDA``: needs an NVIDIA GPU; its code is the torch API only.
- ``OrtCUDA``: needs ``onnxruntime-gpu`` (extra ``ort-cuda``); not installable here.
- ``TensorRT``: needs the ``tensorrt`` package (extra ``tensorrt``); not installable
  here. Its engine cache/identity logic is tested without it, the ONNX it
  consumes is verified with ONNX Runtime.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class TorchCPU:
    """PyTorch on the CPU. ``threads``: intra-op threads per call (None: torch default)."""

    threads: int | None = None


@dataclass(frozen=True, kw_only=True)
class TorchCUDA:
    """PyTorch on an NVIDIA GPU: fp16 by default, one CUDA stream per VapourSynth thread."""

    device: int = 0
    fp16: bool = True


@dataclass(frozen=True, kw_only=True)
class OrtCPU:
    """ONNX Runtime CPU provider. ``threads``: intra-op threads per session run.

    VapourSynth already runs frames in parallel (``core.num_threads``), so one
    thread per run is usually fastest.

    ``int8=True`` runs a statically quantised (QDQ) copy of the model, calibrated on
    ``calibration`` (image paths; ``None``: photos shipped with scikit-image) and
    cached next to the ONNX export (``vsrestore.runtime.int8``). A model that is
    already a QDQ ``.onnx`` file runs as it is.
    """

    threads: int = 1
    int8: bool = False
    calibration: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class OrtCUDA:
    """ONNX Runtime CUDA provider (needs ``onnxruntime-gpu``; unverified here)."""

    device: int = 0


def default_cache_dir() -> Path:
    base = os.environ.get("VSRESTORE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsrestore")
    return Path(base)


@dataclass(frozen=True, kw_only=True)
class TensorRT:
    """TensorRT engine built from the model's ONNX (needs the ``tensorrt`` package).

    One engine with a dynamic-shape profile covers every input size from
    ``min_shape`` to ``max_shape`` (height, width), so new resolutions do not
    rebuild. Larger frames are tiled to fit ``max_shape``. Engines are cached
    in ``cache_dir`` keyed by ONNX hash, shapes, precision, TensorRT version and GPU.

    ``int8=True`` builds an explicitly quantised engine from a QDQ ONNX (symmetric
    int8, calibrated on ``calibration`` image paths, default: photos shipped with
    scikit-image; see ``vsrestore.runtime.int8``), or from the model's own file when
    it is already QDQ.
    """

    device: int = 0
    fp16: bool = True
    int8: bool = False
    min_shape: tuple[int, int] = (16, 16)
    opt_shape: tuple[int, int] = (720, 1280)
    max_shape: tuple[int, int] = (1088, 1920)
    workspace_mib: int | None = None
    cache_dir: Path | None = None
    calibration: tuple[str, ...] | None = None


Backend = TorchCPU | TorchCUDA | OrtCPU | OrtCUDA | TensorRT


@functools.cache
def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch import problems
        return False


@functools.cache
def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and cuda_available()


@functools.cache
def ort_cuda_available() -> bool:
    try:
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    except Exception:  # pragma: no cover
        return False


def auto_backend() -> Backend:
    """The fastest backend available here (see the module docstring for the order).

    On the CPU, ONNX Runtime beats eager PyTorch for these convolutional models
    (``benchmarks/bench_backends.py`` measures it).
    """
    if tensorrt_available():
        return TensorRT()
    if cuda_available():
        return TorchCUDA()
    if ort_cuda_available():
        return OrtCUDA()
    return OrtCPU()
