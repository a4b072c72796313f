"""Static INT8 quantisation (QDQ ONNX) of any model the runtime loads, calibrated and cached.

``quantize_int8(model)`` exports the model (``export.cached_onnx``), runs ONNX Runtime's
pre-processing (``quant_pre_process``: ONNX shape inference and graph optimisation; the
symbolic shape pass is skipped, it cannot resolve dynamic H/W through Resize), calibrates
activation ranges on tiles of real pictures (default: the 99.999th percentile of each
tensor's histogram -- closer to fp32 than min/max on sr-compact-x2; ``entropy`` is slow and
worse there) and writes a QDQ model with ``quantize_static`` (per-channel symmetric int8
weights). For both targets the first and last convolutions and everything outside them stay
float (``qdq.float_ends``: the input, the output and an input skip are never rounded to 8
bits). Two targets:

- ``"cpu"`` (ONNX Runtime CPU, ``vr.OrtCPU(int8=True)``): uint8 asymmetric activations,
  int8 weights (MLAS's fast u8s8 path; weights are kept to 7 bits -- ``reduce_range`` --
  on x86 CPUs without VNNI, whose u8s8 kernels can saturate), int32 biases, plus the graph
  rewrites of ``qdq.py`` so everything between the float ends runs in integers.
- ``"tensorrt"`` (``vr.TensorRT(int8=True)``, explicit quantisation): symmetric int8
  activations and weights (TensorRT supports zero points of 0 only), float biases, no
  rewrites.

Calibration data: the pictures the caller passes (image files, ``(C, H, W)`` arrays, or a
clip, of which 8 evenly spaced frames are used), else photos that ship inside the
scikit-image wheel, never the ones the SR models are evaluated on (:data:`HELD_OUT_PHOTOS`).
Pictures become the model's input tensor: RGB (or luma for grey models), then the model's
constant level planes (``cond_channels``, e.g. DRUNet's noise level) filled with the values
of ``extra_planes`` in turn over the tiles, so the calibration covers the levels the model
will see. Arrays that already have the model's channel count are used as they are.

The quantised file is cached in ``<cache>/onnx/`` next to the ONNX export, under a key
of the fp32 ONNX file's sha256, the target and recipe, the calibration tiles' sha256 and
the onnxruntime version, with a JSON sidecar (fields, plus the int8-vs-fp32 error on the
calibration tiles). One build per key across threads and processes (a lock file);
writes are atomic.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VSRestoreError
from .backends import default_cache_dir
from .export import atomic_write_bytes, cached_onnx
from .loader import LoadedModel, file_sha256

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads of one process are serialised only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("vsrestore.int8")

INT8_FORMAT = 1  # bump when the recipe or the meaning of the key changes
TARGETS = ("cpu", "tensorrt")
METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "percentile"  # 99.999th: closest to fp32 of the three on sr-compact-x2
# skimage photos used for calibration. astronaut/chelsea(cat)/coffee/rocket/motorcycle are the
# SR models' held-out evaluation photos: calibrating on them would leak into the reported PSNR.
CALIBRATION_PHOTOS = ("hubble_deep_field", "immunohistochemistry", "retina", "camera", "grass",
                      "gravel", "brick", "coins", "moon", "clock")
HELD_OUT_PHOTOS = ("astronaut", "cat", "chelsea", "coffee", "rocket", "stereo_motorcycle")
EXTRA_PLANES = tuple(v / 255 for v in (0, 5, 10, 15, 25, 35, 50))
TILE = 128
CLIP_FRAMES = 8

Calibration = Any  # None | path | array | vs.VideoNode | sequence of paths/arrays


# --------------------------------------------------------------------------- calibration data


def _box_shrink(img: np.ndarray, f: int) -> np.ndarray:
    c, h, w = img.shape
    v = img[:, : h // f * f, : w // f * f].reshape(c, h // f, f, w // f, f)
    return v.mean(axis=(2, 4), dtype=np.float32)


@functools.cache
def builtin_images() -> tuple[np.ndarray, ...]:
    """The default calibration pictures: float RGB ``(3, H, W)``, box-shrunk by 2 (the
    project's SR ground-truth convention, which also washes out JPEG blocks). Cached:
    treat them as read-only."""
    from skimage import data

    out = []
    for name in CALIBRATION_PHOTOS:
        a = getattr(data, name)()
        if a.ndim == 2:
            a = np.stack([a] * 3, -1)
        img = np.ascontiguousarray(a[..., :3].transpose(2, 0, 1), dtype=np.float32) / 255.0
        out.append(_box_shrink(img, 2))
    return tuple(out)


def _load_image(path: Path, filter_name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError as e:
        raise VSRestoreError(filter_name, f"calibration image {path} does not exist",
                             "pass existing image files (PNG, JPEG, ...)") from e
    except (UnidentifiedImageError, OSError) as e:
        raise VSRestoreError(filter_name, f"calibration image {path} cannot be read ({e})",
                             "pass image files PIL can open (PNG, JPEG, TIFF, ...)") from e
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _clip_frames(clip: Any, count: int = CLIP_FRAMES) -> list[np.ndarray]:
    import vapoursynth as vs

    from .. import color
    from ..bridge import frame_to_array

    assert clip.format is not None
    info = color.describe(clip)
    conv = color.to_grays(clip, info) if clip.format.color_family == vs.GRAY else color.to_rgbs(clip, info)
    idx = sorted({int(round(i)) for i in np.linspace(0, clip.num_frames - 1, min(count, clip.num_frames))})
    return [frame_to_array(conv.get_frame(i)) for i in idx]


def calibration_images(calibration: Calibration, filter_name: str = "int8") -> list[np.ndarray]:
    """Resolve a calibration spec to float ``(C, H, W)`` arrays (see the module docstring)."""
    import vapoursynth as vs

    if calibration is None:
        return list(builtin_images())
    if isinstance(calibration, vs.VideoNode):
        return _clip_frames(calibration)
    items = [calibration] if isinstance(calibration, str | Path | np.ndarray) else list(calibration)
    if not items:
        raise VSRestoreError(filter_name, "the calibration set is empty",
                             "pass image files, (C, H, W) arrays or a clip, or None for the built-in set")
    out: list[np.ndarray] = []
    for it in items:
        if isinstance(it, str | Path):
            out.append(_load_image(Path(it).expanduser(), filter_name))
            continue
        a = np.asarray(it, dtype=np.float32)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 3:
            raise VSRestoreError(filter_name, f"a calibration array has shape {a.shape}",
                                 "pass (C, H, W) float arrays (RGB 0..1 or the model's own input)")
        out.append(np.ascontiguousarray(a))
    return out


def to_model_input(img: np.ndarray, image_channels: int, cond_channels: int, plane_value: float,
                   filter_name: str = "int8") -> np.ndarray:
    """A picture as the model's input tensor: an array that already has the model's channel
    count passes as it is; RGB or grey becomes the image channels (luma for grey models),
    followed by ``cond_channels`` constant planes of *plane_value* (DRUNet's noise level).
    A model with more than 3 image channels and no declared level planes (an ONNX file)
    is taken as RGB + constant planes."""
    if cond_channels == 0 and image_channels > 3:
        image_channels, cond_channels = 3, image_channels - 3
    c = img.shape[0]
    if c == image_channels + cond_channels:
        return img
    if c == 1 and image_channels == 3:
        img, c = np.repeat(img, 3, axis=0), 3
    if c == 3 and image_channels == 1:
        img, c = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None].astype(np.float32), 1
    if c != image_channels:
        raise VSRestoreError(filter_name, f"cannot make {image_channels + cond_channels}-channel "
                             f"calibration input from a {c}-channel picture",
                             f"pass calibration arrays shaped ({image_channels + cond_channels}, H, W)")
    if not cond_channels:
        return img
    planes = np.full((cond_channels, *img.shape[1:]), plane_value, np.float32)
    return np.concatenate([img, planes])


def calibration_tiles(images: Sequence[np.ndarray], image_channels: int, cond_channels: int = 0,
                      *, tile: int = TILE,
                      multiple: int = 1, fixed_hw: tuple[int, int] | None = None,
                      extra_planes: Sequence[float] = EXTRA_PLANES,
                      filter_name: str = "int8") -> list[np.ndarray]:
    """``(1, C, h, w)`` float32 tiles: the centre and two diagonal quarter-centres of each
    picture (``tile`` px, a multiple of ``multiple``; ``fixed_hw`` for fixed-shape ONNX)."""
    planes = list(extra_planes) or [0.0]
    tiles: list[np.ndarray] = []
    for img in images:
        _, h, w = img.shape
        if fixed_hw is not None:
            th, tw = fixed_hw
            if h < th or w < tw:
                continue
        else:
            th = tw = max(multiple, min(tile, h, w) // multiple * multiple)
            if th > min(h, w):
                continue
        for cy, cx in ((h // 2, w // 2), (h // 4, w // 4), (3 * h // 4, 3 * w // 4)):
            y0 = min(max(0, cy - th // 2), h - th)
            x0 = min(max(0, cx - tw // 2), w - tw)
            x = img[:, y0: y0 + th, x0: x0 + tw]
            x = to_model_input(x, image_channels, cond_channels, planes[len(tiles) % len(planes)],
                               filter_name)
            tiles.append(np.ascontiguousarray(x[None], dtype=np.float32))
    if not tiles:
        raise VSRestoreError(filter_name, "no calibration picture is large enough for the model"
                             + (f" ({fixed_hw[0]}x{fixed_hw[1]} input)" if fixed_hw else ""),
                             "pass larger calibration images")
    return tiles


def tiles_sha256(tiles: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for t in tiles:
        h.update(repr(t.shape).encode())
        h.update(np.ascontiguousarray(t, dtype=np.float32).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- recipe


@functools.cache
def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (u8s8 dot products without int16 saturation).
    Non-x86 CPUs return True (their MLAS kernels do not saturate)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False  # unknown: stay safe (7-bit weights)
    return "avx512_vnni" in flags or "avx_vnni" in flags


def recipe(target: str, method: str) -> dict[str, Any]:
    """The identity of a quantisation recipe (everything that changes the output bytes
    apart from the model and the calibration data)."""
    import onnxruntime

    r: dict[str, Any] = {"format": INT8_FORMAT, "target": target, "method": method,
                         "per_channel": True, "onnxruntime": onnxruntime.__version__}
    if target == "cpu":
        r.update(activations="uint8", reduce_range=not cpu_has_vnni(), rewrites="prelu-max,pad-channels")
    else:
        r.update(activations="int8-symmetric", reduce_range=False, quantize_bias=False)
    r["float_ends"] = True  # qdq.float_ends: input path and output tail stay float
    return r


def _check(target: str, method: str, filter_name: str) -> None:
    if target not in TARGETS:
        raise VSRestoreError(filter_name, f"unknown int8 target {target!r}",
                             f"use one of {', '.join(TARGETS)}")
    if method not in METHODS:
        raise VSRestoreError(filter_name, f"unknown calibration method {method!r}",
                             f"use one of {', '.join(METHODS)}")


def onnx_has_qdq(onnx_path: Path) -> bool:
    """Whether the ONNX graph holds QuantizeLinear/DequantizeLinear nodes (explicit INT8)."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)


def _input_spec(onnx_path: Path, filter_name: str) -> tuple[str, tuple[int, int] | None]:
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise VSRestoreError(filter_name, f"{onnx_path.name} has {len(inputs)} inputs",
                             "quantise a model with one NCHW image input")
    dims = inputs[0].type.tensor_type.shape.dim
    hw = [d.dim_value if d.HasField("dim_value") else 0 for d in dims[2:4]]
    return inputs[0].name, (hw[0], hw[1]) if len(hw) == 2 and all(hw) else None


# --------------------------------------------------------------------------- build


def _reader(name: str, tiles: Sequence[np.ndarray]) -> Any:
    """A CalibrationDataReader over prepared tiles."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{name: t} for t in tiles])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    return Reader()


CHUNK = 2  # calibration tiles per ORT pass: the calibrators keep every activation of a pass


def calibrate(model_path: Path, name: str, tiles: Sequence[np.ndarray], method: str,
              work_dir: Path) -> Any:
    """Activation ranges (``TensorsData``) of every float tensor over *tiles*."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
          "percentile": CalibrationMethod.Percentile}[method]
    opts: dict[str, Any] = {"num_bins": 2048} if method == "entropy" else {}  # 128 = no clipping
    calibrator = create_calibrator(model_path, None, augmented_model_path=str(work_dir / "augmented.onnx"),
                                   calibrate_method=cm, providers=["CPUExecutionProvider"],
                                   extra_options=opts)
    for i in range(0, len(tiles), CHUNK):
        calibrator.collect_data(_reader(name, tiles[i: i + CHUNK]))
    return calibrator.compute_data()


def build_int8(fp32: Path, out: Path, tiles: Sequence[np.ndarray], *, target: str,
               method: str, filter_name: str = "int8") -> None:
    """Quantise the fp32 ONNX file *fp32* into *out* (not cached; see :func:`quantize_int8`)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static, save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from . import qdq

    rec = recipe(target, method)
    name, _ = _input_spec(fp32, filter_name)
    with (tempfile.TemporaryDirectory(prefix="vsrestore-int8-") as tmp_dir,
          contextlib.redirect_stdout(sys.stderr)):  # ORT's calibrators print: stdout is the video
        tmp = Path(tmp_dir)
        src = tmp / "pre.onnx"
        quant_pre_process(str(fp32), str(src), skip_symbolic_shape=True)
        maxes: list[tuple[str, str, str]] = []
        max_names: set[str] = set()
        if target == "cpu":
            proto = onnx.load(str(src))
            max_names = set(qdq.prepare_for_cpu(proto))
            maxes = [(n.input[0], n.input[1], n.output[0]) for n in proto.graph.node if n.name in max_names]
            onnx.save(proto, str(src))
        exclude = qdq.float_ends(onnx.load(str(src), load_external_data=False))
        ranges = calibrate(src, name, tiles, method, tmp)
        for y, ay, mx in maxes:  # Max(y, a*y) and a*y get y's range: one scale, integer Max
            if y in ranges and ay in ranges and mx in ranges:
                ranges[ay] = ranges[y]
                ranges[mx] = ranges[y]
        save_tensors_data(ranges, tmp / "ranges.json")
        if target == "cpu":
            act, extra = QuantType.QUInt8, {}
        else:
            act, extra = QuantType.QInt8, {"ActivationSymmetric": True, "WeightSymmetric": True,
                                           "QuantizeBias": False}
        q = tmp / "q.onnx"
        quantize_static(str(src), str(q), None, quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=bool(rec["reduce_range"]), activation_type=act,
                        weight_type=QuantType.QInt8, calibrate_method=ranges.calibration_method,
                        nodes_to_exclude=exclude,
                        extra_options=extra, calibration_cache_path=str(tmp / "ranges.json"))
        if max_names:
            proto = onnx.load(str(q))
            done = qdq.integer_max(proto, max_names)
            log.debug("%d of %d Max nodes run on uint8 codes", done, len(max_names))
            onnx.save(proto, str(q))
        atomic_write_bytes(out, q.read_bytes())


def _errors_vs_fp32(fp32: Path, int8: Path, tiles: Sequence[np.ndarray], name: str) -> dict[str, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    a = ort.InferenceSession(str(fp32), opts, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), opts, providers=["CPUExecutionProvider"])
    diffs = [np.abs(a.run(None, {name: t})[0] - b.run(None, {name: t})[0]) for t in tiles[:8]]
    if not all(np.isfinite(d).all() for d in diffs):
        raise ValueError("the quantised model gives non-finite output")
    return {"max_abs_diff": float(max(d.max() for d in diffs)),
            "mean_abs_diff": float(np.mean([d.mean() for d in diffs]))}


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def _key_lock(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_locks_guard:
        tlock = _thread_locks.setdefault(str(lock_path.resolve()), threading.Lock())
    with tlock:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def quantize_int8(model: LoadedModel, *, target: str = "cpu", calibration: Calibration = None,
                  method: str = DEFAULT_METHOD, extra_planes: Sequence[float] = EXTRA_PLANES,
                  cache_dir: Path | None = None, force: bool = False,
                  filter_name: str = "int8") -> Path:
    """The model's statically quantised QDQ ONNX file, built once per key and cached.

    ``force=True`` rebuilds (a cached file ONNX Runtime could not load).
    """
    _check(target, method, filter_name)
    fp32 = cached_onnx(model, cache_dir)
    if onnx_has_qdq(fp32):
        raise VSRestoreError(filter_name, f"{fp32.name} is already quantised (it has QDQ nodes)",
                             "use it directly: model='that.onnx' with backend=vr.OrtCPU()")
    name, fixed_hw = _input_spec(fp32, filter_name)
    images = calibration_images(calibration, filter_name)
    tiles = calibration_tiles(images, model.in_channels, model.cond_channels,
                              multiple=max(1, model.size_multiple),
                              tile=max(TILE, model.min_size), fixed_hw=fixed_hw,
                              extra_planes=extra_planes, filter_name=filter_name)
    fields = {**recipe(target, method), "onnx_sha256": file_sha256(fp32),
              "calibration_sha256": tiles_sha256(tiles), "tiles": len(tiles)}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    d = (cache_dir or default_cache_dir()) / "onnx"
    path = d / f"{fp32.stem}-int8-{target}-{key[:16]}.onnx"
    if path.exists() and not force:
        return path
    with _key_lock(d / f".{path.stem}.lock"):
        if path.exists() and not force:
            return path  # built meanwhile by another thread or process
        log.info("calibrating and quantising %s to INT8 for %s on %d tiles (cached in %s)",
                 model.name, target, len(tiles), d)
        t0 = time.monotonic()
        tmp = path.with_name(f".{path.name}.building")
        try:
            try:
                build_int8(fp32, tmp, tiles, target=target, method=method, filter_name=filter_name)
            except VSRestoreError:
                raise
            except Exception as e:  # onnxruntime.quantization raises many types
                raise VSRestoreError(filter_name, f"ONNX Runtime could not quantise {model.name} "
                                     f"({type(e).__name__}: {e})", "use the fp32 backend (int8=False), "
                                     "or pass a QDQ .onnx quantised elsewhere as model=") from e
            try:
                stats = _errors_vs_fp32(fp32, tmp, tiles, name)
            except Exception as e:  # ORT cannot run it: never cache it
                raise VSRestoreError(filter_name, f"the INT8 model of {model.name} does not run "
                                     f"({type(e).__name__}: {e})", "report this with the model; "
                                     "use the fp32 backend meanwhile (int8=False)") from e
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        side = {**fields, "model": model.name, "source_onnx": str(fp32), **stats,
                "build_seconds": round(time.monotonic() - t0, 2),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with contextlib.suppress(OSError):
            atomic_write_bytes(path.with_suffix(".json"), (json.dumps(side, indent=2) + "\n").encode())
        log.info("INT8 model %s built in %.1f s (mean |int8 - fp32| %.2e on calibration tiles)",
                 path.name, time.monotonic() - t0, stats["mean_abs_diff"])
    return path


def int8_onnx(model: LoadedModel, *, target: str, calibration: Calibration = None,
              cache_dir: Path | None = None, force: bool = False, filter_name: str = "int8") -> Path:
    """The ONNX file an INT8 backend runs: the model's own file when it is already QDQ,
    else :func:`quantize_int8`'s cached file."""
    fp32 = cached_onnx(model, cache_dir)
    if onnx_has_qdq(fp32):
        return fp32
    return quantize_int8(model, target=target, calibration=calibration, cache_dir=cache_dir,
                         force=force, filter_name=filter_name)
