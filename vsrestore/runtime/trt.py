"""TensorRT backend: engine identity, an on-disk engine cache, the builder and a runner.

What is verified here and what is not -- read this before trusting the backend:

- Verified by ``tests/test_trt_cache.py`` without TensorRT: the engine key (every
  identity field changes it), the cache (store/load round trip, atomic writes that
  leave no temporary files, a corrupt or incompatible entry is deleted and rebuilt,
  a valid entry is never rebuilt) and the per-key lock (two threads or two
  processes asking for the same engine build it once). Those tests pass plain Python
  callables as "build" and "deserialize": they test the cache logic only, not
  TensorRT. The ONNX the builder consumes is the export verified with ONNX Runtime
  elsewhere (``tests/test_export.py``). The checks made before TensorRT is touched
  (shape profile, INT8 needs a QDQ model, "TensorRT is not installed") are tested too.
  For ``int8=True`` the engine is built from an explicitly quantised QDQ ONNX
  (:func:`trt_onnx`: symmetric int8, float biases, made by ``int8.py``); that file's
  structure and its accuracy when ONNX Runtime runs it are tested (``tests/test_int8.py``).
- NOT verified: :func:`build_engine` and :class:`TrtRunner` themselves -- building,
  deserialising and executing engines needs the ``tensorrt`` package and an NVIDIA
  GPU, neither of which our machines have. They are written against TensorRT 10's
  documented Python API (explicit-batch networks, ``set_input_shape`` /
  ``set_tensor_address`` / ``execute_async_v3``) and have never been run.

``tensorrt`` is imported lazily, only inside the functions that need it, so this
module imports (and its cache is usable) on machines without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import VSRestoreError
from .backends import TensorRT, default_cache_dir
from .export import atomic_write_bytes, cached_onnx
from .int8 import onnx_has_qdq
from .loader import LoadedModel, file_sha256

try:  # POSIX advisory locks; absent on Windows (see EngineCache)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("vsrestore.trt")

T = TypeVar("T")

FILTER = "upscale"
KEY_FORMAT = 1  # bump when the engine layout or the key's meaning changes
INSTALL_FIX = ("pip install 'vsrestore[tensorrt]' with NVIDIA's package index as an extra index "
               "(TensorRT wheels come from there; see TensorRT's installation guide) on a machine "
               "with an NVIDIA GPU and driver, or use backend=vr.TorchCUDA(), vr.OrtCPU() or backend=None")
_KEY_RE = re.compile(r"[0-9A-Za-z_-]{1,128}")

Shape = tuple[int, int]


# --------------------------------------------------------------------------- identity


def engine_key(onnx_bytes_sha256: str, *, channels: int, min_shape: Sequence[int],
               opt_shape: Sequence[int], max_shape: Sequence[int], fp16: bool, int8: bool,
               trt_version: str, gpu: str) -> str:
    """A stable hex key for one engine: sha256 of a canonical JSON of every identity field.

    ``gpu`` identifies the GPU (name and compute capability, see :func:`gpu_identity`):
    TensorRT engines only run on the GPU model and TensorRT version they were built with.
    """
    fields = {
        "format": KEY_FORMAT,
        "onnx_sha256": str(onnx_bytes_sha256),
        "channels": int(channels),
        "min_shape": [int(v) for v in min_shape],
        "opt_shape": [int(v) for v in opt_shape],
        "max_shape": [int(v) for v in max_shape],
        "fp16": bool(fp16),
        "int8": bool(int8),
        "trt_version": str(trt_version),
        "gpu": str(gpu),
    }
    canon = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canon.encode("ascii")).hexdigest()


def gpu_identity(device: int = 0) -> str:
    """``"<GPU name> sm_<major><minor>"`` for CUDA device *device* (needs torch with CUDA)."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} sm_{major}{minor}"


# --------------------------------------------------------------------------- cache


class EngineCache:
    """Serialized engines in ``cache_dir/trt/{key}.engine`` with a ``{key}.json`` sidecar.

    The sidecar describes the identity fields for humans debugging the cache; loading
    never reads it. Writes are atomic (temporary file + rename), so a reader sees a
    whole engine or none. A per-key ``{key}.lock`` file, locked with ``fcntl.flock``,
    makes processes (and threads) asking for the same engine wait for one build
    instead of building it twice. Without ``fcntl`` (Windows) only threads of one
    process are serialised.
    """

    _thread_locks: dict[Path, threading.Lock] = {}
    _thread_locks_guard = threading.Lock()

    def __init__(self, cache_dir: Path, *, filter_name: str = FILTER) -> None:
        self.dir = Path(cache_dir) / "trt"
        self.filter_name = filter_name

    def _check_key(self, key: str) -> str:
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"invalid engine cache key {key!r}")
        return key

    def path_for(self, key: str) -> Path:
        return self.dir / f"{self._check_key(key)}.engine"

    def meta_path_for(self, key: str) -> Path:
        return self.dir / f"{self._check_key(key)}.json"

    def lock_path_for(self, key: str) -> Path:
        return self.dir / f"{self._check_key(key)}.lock"

    def discard(self, key: str) -> None:
        """Delete the entry (engine and sidecar); missing files are fine."""
        for p in (self.path_for(key), self.meta_path_for(key)):
            try:
                p.unlink(missing_ok=True)
            except OSError as e:
                log.warning("could not delete cache file %s (%s)", p, e)

    def _load(self, key: str, deserialize: Callable[[bytes], T | None], *, discard: bool) -> T | None:
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            problem: str = f"unreadable ({e})"
            obj = None
        else:
            try:
                obj = deserialize(data)
                problem = "rejected by the deserializer (corrupt, truncated or incompatible)"
            except Exception as e:  # whatever the deserializer raises means "unusable"
                obj = None
                problem = f"failed to deserialize ({type(e).__name__}: {e})"
        if obj is not None:
            log.debug("loaded TensorRT engine %s", path)
            return obj
        if discard:
            log.warning("cached TensorRT engine %s is %s; deleting it so it is rebuilt", path, problem)
            self.discard(key)
        else:
            log.debug("cached TensorRT engine %s is %s", path, problem)
        return None

    def load(self, key: str, deserialize: Callable[[bytes], T | None]) -> T | None:
        """The deserialized entry, or None when absent. An entry that cannot be read or
        that *deserialize* rejects (raises or returns None) is logged, deleted, and
        reported as absent so the caller rebuilds it."""
        return self._load(key, deserialize, discard=True)

    def store(self, key: str, data: bytes, meta: dict[str, Any]) -> Path:
        """Write the engine atomically, then its human-readable JSON sidecar."""
        path = self.path_for(key)
        atomic_write_bytes(path, bytes(data))
        side = {"key": key, "bytes": len(data),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **meta}
        try:
            text = json.dumps(side, indent=2, sort_keys=True, default=str) + "\n"
            atomic_write_bytes(self.meta_path_for(key), text.encode())
        except (OSError, TypeError, ValueError) as e:  # the sidecar is for debugging only
            log.warning("could not write cache sidecar for %s (%s)", path, e)
        return path

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the per-key lock (between threads and, with fcntl, between processes)."""
        lock_path = self.lock_path_for(key)
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._thread_locks_guard:
            tlock = self._thread_locks.setdefault(lock_path.resolve(), threading.Lock())
        if not tlock.acquire(blocking=False):
            log.info("waiting for another thread building TensorRT engine %s", key[:16])
            tlock.acquire()
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        log.info("waiting for another process building TensorRT engine %s", key[:16])
                        fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock; the lock file stays (deleting it would race)
        finally:
            tlock.release()

    def get_or_build(self, key: str, build: Callable[[], bytes],
                     deserialize: Callable[[bytes], T | None], meta: dict[str, Any]) -> T:
        """The cached entry, or build it once (under the per-key lock), store it and return it.

        A second caller arriving while the first builds waits for the lock, then loads
        the first one's entry. Freshly built bytes are deserialized before they are
        stored, so an engine that cannot be loaded is never cached.
        """
        obj = self._load(key, deserialize, discard=False)  # lock-free fast path
        if obj is not None:
            return obj
        with self.lock(key):
            obj = self.load(key, deserialize)  # built meanwhile by the lock's previous holder?
            if obj is not None:
                return obj
            log.info("building TensorRT engine %s (cached in %s)", key[:16], self.dir)
            t0 = time.monotonic()
            data = build()
            try:
                obj = deserialize(data)
            except Exception as e:
                raise VSRestoreError(
                    self.filter_name, f"the freshly built TensorRT engine could not be loaded "
                    f"({type(e).__name__}: {e})", "report this with the log above") from e
            if obj is None:
                raise VSRestoreError(self.filter_name, "the freshly built TensorRT engine could "
                                     "not be loaded (see the TensorRT errors logged above)",
                                     "report this with the log above")
            try:
                self.store(key, data, meta)
            except OSError as e:  # the engine works; it just is not cached
                log.warning("could not cache TensorRT engine %s (%s); it will be rebuilt next time",
                            self.path_for(key), e)
            log.info("built TensorRT engine %s in %.1f s", key[:16], time.monotonic() - t0)
            return obj


# --------------------------------------------------------------------------- checks


def import_tensorrt(filter_name: str = FILTER) -> Any:
    """``import tensorrt``, or a VSRestoreError saying it is missing and how to install it."""
    try:
        import tensorrt
    except ImportError as e:
        try:
            present = importlib.util.find_spec("tensorrt") is not None
        except (ImportError, ValueError):
            present = False
        if not present:
            raise VSRestoreError(filter_name, "backend TensorRT needs the Python package "
                                 "'tensorrt', and TensorRT is not installed", INSTALL_FIX) from e
        raise VSRestoreError(filter_name, f"TensorRT is installed but cannot be imported ({e})",
                             "check that its CUDA libraries match your driver, or reinstall: "
                             + INSTALL_FIX) from e
    return tensorrt


def check_profile(backend: TensorRT, filter_name: str = FILTER) -> tuple[Shape, Shape, Shape]:
    """The (height, width) min/opt/max shapes, checked: 2 positive ints each, min <= opt <= max."""
    shapes = []
    for name in ("min_shape", "opt_shape", "max_shape"):
        v = getattr(backend, name)
        if (not isinstance(v, tuple | list) or len(v) != 2
                or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in v)):
            raise VSRestoreError(filter_name, f"TensorRT {name} must be (height, width) of positive "
                                 f"ints, got {v!r}", f"use e.g. {name}=(720, 1280)")
        shapes.append((int(v[0]), int(v[1])))
    mn, opt, mx = shapes
    if not all(mn[i] <= opt[i] <= mx[i] for i in range(2)):
        raise VSRestoreError(filter_name, f"TensorRT shapes must satisfy min_shape <= opt_shape <= "
                             f"max_shape in height and width, got {mn}, {opt}, {mx}",
                             "use e.g. min_shape=(16, 16), opt_shape=(720, 1280), "
                             "max_shape=(1088, 1920)")
    return mn, opt, mx


def trt_onnx(model: LoadedModel, backend: TensorRT, filter_name: str = FILTER) -> Path:
    """The ONNX file an engine for *backend* is built from: the model's export, or for
    ``int8=True`` its explicitly quantised (QDQ, symmetric int8) model -- the model's own
    file when it is already QDQ, else one calibrated and cached by ``int8.py``."""
    if not backend.int8:
        return cached_onnx(model, backend.cache_dir)
    from .int8 import int8_onnx

    return int8_onnx(model, target="tensorrt", calibration=backend.calibration,
                     cache_dir=backend.cache_dir, filter_name=filter_name)


def check_input(x: np.ndarray, channels: int, min_shape: Shape, max_shape: Shape,
                filter_name: str = FILTER) -> None:
    """Raise a clear error unless *x* is NCHW with *channels* and H, W within the profile."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise VSRestoreError(filter_name, f"TensorRT input must be NCHW with {channels} channels, "
                             f"got shape {tuple(x.shape)}", "pass (N, C, H, W) float32 arrays")
    h, w = int(x.shape[2]), int(x.shape[3])
    if not (min_shape[0] <= h <= max_shape[0] and min_shape[1] <= w <= max_shape[1]):
        raise VSRestoreError(
            filter_name, f"input {h}x{w} (height x width) is outside the TensorRT engine's shape "
            f"profile {min_shape[0]}x{min_shape[1]} .. {max_shape[0]}x{max_shape[1]}",
            f"tile the frame to at most {max_shape[0]}x{max_shape[1]} (tile=...), or build the "
            "engine for this size: vr.TensorRT(min_shape=..., max_shape=(H, W))")


# --------------------------------------------------------------------------- TensorRT (unverified)


def _make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` forwarding to logging "vsrestore.trt" and collecting errors."""
    sev = trt.ILogger.Severity
    levels = {sev.INTERNAL_ERROR: logging.CRITICAL, sev.ERROR: logging.ERROR,
              sev.WARNING: logging.WARNING, sev.INFO: logging.DEBUG, sev.VERBOSE: logging.DEBUG}

    class CollectingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self._mu = threading.Lock()

        def log(self, severity: Any, msg: str) -> None:
            level = levels.get(severity, logging.DEBUG)
            if level >= logging.ERROR:
                with self._mu:
                    self.errors.append(str(msg))
            if log.isEnabledFor(level):
                log.log(level, "TensorRT: %s", msg)

        def take_errors(self) -> list[str]:
            with self._mu:
                errs, self.errors = self.errors, []
            return errs

    return CollectingLogger()


def _errors_text(errors: Sequence[str], limit: int = 20) -> str:
    errs = [e.strip() for e in errors if e.strip()]
    if not errs:
        return "TensorRT logged no error"
    more = f" (+{len(errs) - limit} more in the log)" if len(errs) > limit else ""
    return "; ".join(errs[-limit:]) + more


def build_engine(onnx_path: Path, backend: TensorRT, channels: int, *,
                 filter_name: str = FILTER, logger: Any = None) -> bytes:
    """Build a serialized TensorRT engine from *onnx_path* (TensorRT 10 Python API; UNVERIFIED).

    One optimization profile covers inputs ``(1, channels, h, w)`` for (h, w) from
    ``backend.min_shape`` to ``backend.max_shape``, tuned for ``backend.opt_shape``.
    ``backend.fp16`` lets TensorRT pick fp16 kernels where the GPU has fast fp16
    (I/O stays as in the ONNX). ``backend.int8`` enables INT8 kernels and expects an
    explicitly quantised (QDQ: QuantizeLinear/DequantizeLinear) ONNX -- no calibration
    is done here, so a model without QDQ nodes is refused. ``backend.workspace_mib``
    caps the builder's workspace memory pool. Parser and builder errors are collected
    from TensorRT's log and raised as one :class:`VSRestoreError`.
    """
    onnx_path = Path(onnx_path)
    mn, opt, mx = check_profile(backend, filter_name)
    if backend.int8 and not onnx_has_qdq(onnx_path):
        raise VSRestoreError(filter_name, f"int8=True needs an explicitly quantised (QDQ) ONNX "
                             f"model, and {onnx_path.name} has no QuantizeLinear/DequantizeLinear "
                             "nodes", "let TrtRunner quantise it (vr.TensorRT(int8=True) does), or "
                             "`vsrestore models quantize NAME --int8 OUT.onnx --target tensorrt`, or "
                             "use int8=False with fp16=True")
    trt = import_tensorrt(filter_name)
    logger = logger if logger is not None else _make_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if explicit is not None and int(trt.__version__.split(".")[0]) < 10:
        flags |= 1 << int(explicit)  # TensorRT 8/9; TensorRT 10 is always explicit batch
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise VSRestoreError(
            filter_name, f"TensorRT could not parse {onnx_path}: {_errors_text(errs + logger.take_errors())}",
            "check the model exports and runs with backend=vr.OrtCPU(); unsupported operators "
            "need a newer TensorRT or a different model")
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise VSRestoreError(filter_name, f"{onnx_path.name} has {network.num_inputs} inputs and "
                             f"{network.num_outputs} outputs; TensorRT here needs exactly one of each",
                             "use an image-to-image model with one NCHW input and output")
    inp = network.get_input(0)
    dims = tuple(inp.shape)
    if len(dims) != 4 or dims[1] not in (-1, channels):
        raise VSRestoreError(filter_name, f"{onnx_path.name} input {inp.name!r} has shape {dims}, "
                             f"expected (N, {channels}, H, W)", "export the model as NCHW")
    config = builder.create_builder_config()
    if backend.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(backend.workspace_mib) << 20)
    if backend.fp16:
        if getattr(builder, "platform_has_fast_fp16", True):
            config.set_flag(trt.BuilderFlag.FP16)
        else:
            log.warning("this GPU has no fast fp16; building the TensorRT engine in fp32")
    if backend.int8 and hasattr(trt.BuilderFlag, "INT8"):  # Q/DQ layers carry the scales
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, (1, channels, *mn), (1, channels, *opt), (1, channels, *mx))
    config.add_optimization_profile(profile)
    logger.take_errors()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise VSRestoreError(
            filter_name, f"TensorRT could not build an engine for {onnx_path.name} (profile "
            f"{mn}..{mx}, opt {opt}, fp16={backend.fp16}, int8={backend.int8}): "
            f"{_errors_text(logger.take_errors())}",
            "if it ran out of memory, lower max_shape or set workspace_mib; try fp16=False; "
            "enable logging.DEBUG on 'vsrestore.trt' for TensorRT's full log")
    return bytes(memoryview(serialized))


class TrtRunner:
    """Run a model with a cached TensorRT engine (UNVERIFIED: needs tensorrt and a GPU).

    The engine is keyed by the ONNX file's sha256, channels, shape profile, precision,
    ``tensorrt.__version__`` and the GPU (:func:`engine_key`), loaded from
    ``backend.cache_dir`` (default ``~/.cache/vsrestore``) or built once. Each thread
    gets its own execution context and torch CUDA stream. ``max_shape`` (h, w) tells
    the tiler the largest tile the engine accepts.
    """

    def __init__(self, model: LoadedModel, backend: TensorRT, filter_name: str = FILTER) -> None:
        self.filter_name = filter_name
        trt = import_tensorrt(filter_name)
        mn, opt, mx = check_profile(backend, filter_name)
        import torch

        if not torch.cuda.is_available():
            raise VSRestoreError(filter_name, "backend TensorRT needs an NVIDIA GPU and torch with "
                                 "CUDA, none found", "use backend=vr.OrtCPU() or backend=None")
        if backend.fp16 and not model.supports_half:
            log.info("model %s does not support fp16; building its TensorRT engine in fp32", model.name)
            from dataclasses import replace

            backend = replace(backend, fp16=False)
        self.torch, self.trt = torch, trt
        self.device = torch.device("cuda", backend.device)
        self.channels = channels = model.input_channels  # image + level planes
        onnx_path = trt_onnx(model, backend, filter_name)  # QDQ for int8: explicit quantization
        gpu = gpu_identity(backend.device)
        onnx_sha = file_sha256(onnx_path)  # the .onnx file itself (not external weight files)
        trt_version = str(trt.__version__)
        key = engine_key(onnx_sha, channels=channels, min_shape=mn, opt_shape=opt,
                         max_shape=mx, fp16=backend.fp16, int8=backend.int8,
                         trt_version=trt_version, gpu=gpu)
        meta = {"model": model.name, "onnx": str(onnx_path), "onnx_sha256": onnx_sha,
                "channels": channels, "min_shape": mn, "opt_shape": opt, "max_shape": mx,
                "fp16": backend.fp16, "int8": backend.int8, "trt_version": trt_version, "gpu": gpu}
        self.logger = _make_logger(trt)
        self.runtime = trt.Runtime(self.logger)

        def deserialize(data: bytes) -> Any:
            return self.runtime.deserialize_cuda_engine(data)

        cache = EngineCache(backend.cache_dir or default_cache_dir(), filter_name=filter_name)
        with torch.cuda.device(self.device):
            self.engine = cache.get_or_build(
                key, lambda: build_engine(onnx_path, backend, channels,
                                          filter_name=filter_name, logger=self.logger),
                deserialize, meta)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        if len(ins) != 1 or len(outs) != 1:
            raise VSRestoreError(filter_name, f"the TensorRT engine has inputs {ins} and outputs "
                                 f"{outs}; expected one of each", "use an image-to-image model")
        self.in_name, self.out_name = ins[0], outs[0]
        self.in_dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.in_name))
        self.out_dtype = self._torch_dtype(self.engine.get_tensor_dtype(self.out_name))
        pmin, _, pmax = self.engine.get_tensor_profile_shape(self.in_name, 0)
        self.min_shape: Shape = (int(pmin[2]), int(pmin[3]))
        self.max_shape: Shape = (int(pmax[2]), int(pmax[3]))
        self._local = threading.local()

    def _torch_dtype(self, dt: Any) -> Any:
        trt, torch = self.trt, self.torch
        table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        if hasattr(trt.DataType, "BF16"):
            table[trt.DataType.BF16] = torch.bfloat16
        if dt not in table:
            raise VSRestoreError(self.filter_name, f"the TensorRT engine uses I/O type {dt}",
                                 "export the model with float32 or float16 input and output")
        return table[dt]

    def _state(self) -> tuple[Any, Any]:
        st = getattr(self._local, "state", None)
        if st is None:
            with self.torch.cuda.device(self.device):
                ctx = self.engine.create_execution_context()
                if ctx is None:
                    raise VSRestoreError(self.filter_name, "TensorRT could not create an execution "
                                         f"context: {_errors_text(self.logger.take_errors())}",
                                         "free GPU memory, lower max_shape, or lower core.num_threads")
                st = (ctx, self.torch.cuda.Stream(self.device))
            self._local.state = st
        return st

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        check_input(x, self.channels, self.min_shape, self.max_shape, self.filter_name)
        x = np.ascontiguousarray(x, dtype=np.float32)
        ctx, stream = self._state()
        hosts = []
        with torch.cuda.device(self.device), torch.cuda.stream(stream), torch.inference_mode():
            for i in range(x.shape[0]):  # the profile has batch 1
                t = torch.from_numpy(x[i:i + 1]).pin_memory().to(self.device, non_blocking=True)
                t = t.to(self.in_dtype).contiguous()
                if not ctx.set_input_shape(self.in_name, tuple(t.shape)):
                    raise VSRestoreError(self.filter_name, f"TensorRT rejected input shape "
                                         f"{tuple(t.shape)}: {_errors_text(self.logger.take_errors())}",
                                         "tile the frame to fit the engine's max_shape")
                shape = tuple(int(d) for d in ctx.get_tensor_shape(self.out_name))
                if any(d < 0 for d in shape):
                    raise VSRestoreError(self.filter_name, f"TensorRT could not infer the output "
                                         f"shape ({shape})", "use a model with a static upscale factor")
                out = torch.empty(shape, dtype=self.out_dtype, device=self.device)
                ctx.set_tensor_address(self.in_name, t.data_ptr())
                ctx.set_tensor_address(self.out_name, out.data_ptr())
                if not ctx.execute_async_v3(stream.cuda_stream):
                    raise VSRestoreError(self.filter_name, "TensorRT execution failed: "
                                         f"{_errors_text(self.logger.take_errors())}",
                                         "enable logging.DEBUG on 'vsrestore.trt' for details")
                host = torch.empty(shape, dtype=torch.float32, pin_memory=True)
                host.copy_(out.float(), non_blocking=True)
                hosts.append(host)
        stream.synchronize()
        arrays = [h.numpy() for h in hosts]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
