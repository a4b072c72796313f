"""One run on a machine with an NVIDIA GPU: what CI (no GPU) cannot check, as a report.

Each section runs on its own (a failure is written into the report and the rest goes on):

1. ``kernels.warp``'s numba.cuda kernels on a 1920x1080 plane (and a row-padded view) against
   the NumPy reference and the Numba CPU kernel, bilinear/bicubic x clamp/reflect/constant, the
   occlusion mask; device throughput against the CPU kernel (one thread).
2. ``kernels.grain``'s CUDA regrain (integer 4:2:0 and float) against its reference and the CPU
   kernel.
3. ``vr.optical_flow(backend=vr.TorchCUDA())`` against ``TorchCPU`` (the same estimator) and
   OpenCV DIS on ``bench_flow.py``'s pan: vector difference, compensation PSNR, fps.
4. ``vr.upscale`` on ``TorchCUDA`` fp16 and fp32 against ``TorchCPU``: PSNR between the outputs
   and fps, x2 and x4.
5. ``vsrestore train sr-compact-x2 --device cuda`` (fp32, bf16) for a few hundred steps on the
   scikit-image photos (the corpus is not on that machine; speed does not depend on content):
   seconds per step, against the shipped card's CPU seconds per step.

On the device machine (Python 3.12 with torch, numba-cuda, OpenCV and scikit-image), with the
wheels of vapoursynth 81 and spandrel fetched here into ``.whl/`` (ignored by git)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 -d .whl vapoursynth==81 spandrel==0.4.2
    # then the device tool: run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=600)

``benchmarks/gpu_check.sh`` installs both and vsrestore into /tmp/site and runs this script
into ``$OUT``.

Here (no GPU), ``--dry-run`` runs every section on small sizes with the CPU stand-ins (Numba's
CUDA simulator, ``TorchCPU``) to test this script: its numbers say nothing about a GPU.
Writes ``gpu_check.md`` and ``gpu_check.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

DRY = "--dry-run" in sys.argv
if DRY:  # numba reads it once, at import
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # the simulator's uint64 scalars wrap, as meant
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

Report = dict[str, Any]


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median seconds of *fn* over *repeats* (>= 1) runs after one warm-up, *sync* before each clock read."""
    fn()
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def environment() -> Report:
    import numba
    import torch

    rep: Report = {"python": platform.python_version(), "torch": torch.__version__,
                   "numba": numba.__version__, "opencv": cv2.__version__, "dry_run": DRY,
                   "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        rep["gpu"] = torch.cuda.get_device_name(0)
    try:
        rep["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                           timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rep["nvidia_smi"] = "not available"
    return rep


def warp_kernels(size: tuple[int, int], repeats: int) -> Report:
    from bench_warp import smooth_flow
    from numba import cuda
    from vsrestore.kernels import warp as W

    w, h = size
    rng = np.random.default_rng(0)
    src = rng.random((h, w + 8), dtype=np.float32)
    fx, fy = smooth_flow(rng, h, w, 8.0)
    fx[1, 2] = np.nan
    view = src[:, 4:4 + w]  # a row-padded view, on the host and the device
    d_view = cuda.to_device(src)[:, 4:4 + w]
    d_fx, d_fy = cuda.to_device(fx), cuda.to_device(fy)
    rows = []
    for interp in ("bilinear", "bicubic"):
        for border in ("clamp", "reflect", "constant"):
            kw: dict[str, Any] = {"interp": interp, "border": border, "fill": 0.25}
            got = W.warp_cuda(d_view, d_fx, d_fy, **kw).copy_to_host()
            ref = W.warp_reference(view, fx, fy, **kw)
            cpu = W.warp(view, fx, fy, **kw)
            rows.append({"interp": interp, "border": border,
                         "max_abs_vs_reference": float(np.nanmax(np.abs(got - ref))),
                         "max_abs_vs_cpu": float(np.nanmax(np.abs(got - cpu))),
                         "nan_agree": bool((np.isnan(got) == np.isnan(ref)).all())})
    bx = (-fx + 0.3 * rng.standard_normal((h, w))).astype(np.float32)
    by = -fy
    out = cuda.device_array((h, w), np.float32)
    W.occlusion_mask_cuda(d_fx, d_fy, cuda.to_device(bx), cuda.to_device(by), out=out)
    mism = int((out.copy_to_host() != W.occlusion_mask_reference(fx, fy, bx, by)).sum())
    d_src, d_out = cuda.to_device(np.ascontiguousarray(view)), cuda.device_array((h, w), np.float32)
    host_out = np.empty((h, w), np.float32)
    t_gpu = timed(lambda: W.warp_cuda(d_src, d_fx, d_fy, out=d_out), repeats, cuda.synchronize)
    t_cpu = timed(lambda: W.warp(view, fx, fy, out=host_out), max(3, repeats // 4))
    return {"size": f"{w}x{h}", "modes": rows, "mask_mismatches": mism, "mask_pixels": h * w,
            "worst_vs_reference": max(r["max_abs_vs_reference"] for r in rows),
            "bilinear_clamp_ms": {"cuda": 1000 * t_gpu, "cpu_numba_1_thread": 1000 * t_cpu},
            "cuda_speedup_vs_cpu": t_cpu / t_gpu}


def grain_kernels(size: tuple[int, int], repeats: int) -> Report:
    from numba import cuda
    from vsrestore.kernels import grain as K

    from vsrestore.grainmodel import shaping_kernel

    w, h = size
    rng = np.random.default_rng(3)
    key, kern = K.noise_key(2, 5, 0), shaping_kernel(0.9)
    plane = (rng.random((h // 2, w // 2)) * 1023).astype(np.uint16)  # a 4:2:0 chroma plane
    luma = (rng.random((h, w)) * 1023).astype(np.uint16)
    lut = (rng.random(16) * 30).astype(np.float32)
    kw: dict[str, Any] = {"peak": 1023.0, "luma_scale": 1 / 1023, "sub": (2, 2)}
    dev = [cuda.to_device(a) for a in (plane, luma, lut, kern)]
    out = cuda.to_device(np.zeros_like(plane))
    got = K.regrain_plane_seeded_cuda(*dev, key, out=out, **kw).copy_to_host().astype(np.float64)
    ref = K.regrain_plane_seeded_reference(plane, luma, lut, kern, key, **kw)
    cpu = K.regrain_plane_seeded(plane, luma, lut, kern, key, out=np.zeros_like(plane), **kw)
    plf, lumf, lutf = (plane / 1023).astype(np.float32), (luma / 1023).astype(np.float32), lut / 1023
    gotf = K.regrain_plane_seeded_cuda(*[cuda.to_device(a) for a in (plf, lumf, lutf, kern)], key,
                                       sub=(2, 2)).copy_to_host()
    reff = K.regrain_plane_seeded_reference(plf, lumf, lutf, kern, key, sub=(2, 2))
    t_gpu = timed(lambda: K.regrain_plane_seeded_cuda(*dev, key, out=out, **kw), repeats, cuda.synchronize)
    host = np.zeros_like(plane)
    t_cpu = timed(lambda: K.regrain_plane_seeded(plane, luma, lut, kern, key, out=host, **kw),
                  max(3, repeats // 4))
    return {"plane": f"{w // 2}x{h // 2} uint16 (luma {w}x{h})",
            "int_max_code_diff_vs_reference": float(np.abs(got - ref).max()),
            "int_share_differing": float((got != ref).mean()),
            "int_max_code_diff_vs_cpu": float(np.abs(got - cpu).max()),
            "float_max_abs_vs_reference": float(np.abs(gotf - reff).max()),
            "ms": {"cuda": 1000 * t_gpu, "cpu_numba_1_thread": 1000 * t_cpu}}


def flow(size: tuple[int, int], frames: int) -> Report:
    import bench_flow as bf
    import vapoursynth as vs
    from vsrestore.filters.optical_flow import optical_flow

    from vsrestore.runtime.backends import TorchCPU, TorchCUDA

    vs.core.num_threads = os.cpu_count() or 1
    clip, clean_clip, clean, masks = bf.make_clip(size[0], size[1], frames)
    gpu = TorchCPU() if DRY else TorchCUDA()
    rep: Report = {"size": f"{size[0]}x{size[1]}", "frames": frames, "gpu_backend": repr(gpu)}
    for preset in ("fast", "medium"):
        def vectors(backend: Any, preset: str = preset) -> np.ndarray:
            return np.stack([np.stack([np.asarray(f[0]), np.asarray(f[1])])
                             for f in optical_flow(clip, preset=preset, backend=backend).frames(close=True)])

        d = np.abs(vectors(gpu) - vectors(TorchCPU()))
        row: Report = {"max_vector_diff_px": float(d.max()), "mean_vector_diff_px": float(d.mean())}
        for name, backend in (("gpu", gpu), ("opencv_cpu", None)):
            def make(src: vs.VideoNode, backend: Any = backend, preset: str = preset) -> vs.VideoNode:
                return bf.ours(clip, src, preset, confidence=False, backend=backend)

            row[f"{name}_psnr_noisy"] = bf.error(make(clip), clean, masks)[0]
            row[f"{name}_psnr_clean"] = bf.error(make(clean_clip), clean, masks)[0]
            def graph(make: Callable[[vs.VideoNode], vs.VideoNode] = make) -> vs.VideoNode:
                return make(clip)

            row[f"{name}_fps"] = statistics.median(bf.fps(graph) for _ in range(3))
        rep[preset] = row
    return rep


def upscale(size: tuple[int, int], frames: int) -> Report:
    import vapoursynth as vs
    from skimage import data
    from vsrestore.filters.upscale import upscale as vr_upscale

    from vsrestore.bridge import clip_from_arrays
    from vsrestore.runtime.backends import TorchCPU, TorchCUDA

    vs.core.num_threads = os.cpu_count() or 1
    img = cv2.resize(data.astronaut().astype(np.float32) / 255, size, interpolation=cv2.INTER_AREA)
    clip = clip_from_arrays([np.ascontiguousarray(img.transpose(2, 0, 1))] * frames, vs.RGBS)
    rep: Report = {"input": f"{size[0]}x{size[1]} RGBS", "frames": frames}
    for scale in (2, 4):
        def frames_of(backend: Any, scale: int = scale) -> list[np.ndarray]:
            return [np.stack([np.asarray(f[p]) for p in range(3)])
                    for f in vr_upscale(clip, scale, backend=backend).frames(close=True)]

        ref = frames_of(TorchCPU())
        row: Report = {}
        for name, backend in (("fp16", TorchCPU() if DRY else TorchCUDA(fp16=True)),
                              ("fp32", TorchCPU() if DRY else TorchCUDA(fp16=False))):
            got = frames_of(backend)
            mse = float(np.mean([(g.clip(0, 1) - r.clip(0, 1)) ** 2 for g, r in zip(got, ref, strict=True)]))
            row[f"{name}_psnr_vs_cpu_fp32"] = 10 * np.log10(1 / max(mse, 1e-20))
            row[f"{name}_fps"] = frames / timed(functools.partial(frames_of, backend), 3)
        row["cpu_fp32_fps"] = frames / timed(lambda: frames_of(TorchCPU()), 1)
        rep[f"x{scale}"] = row
    return rep


def training(steps: int, work: Path) -> Report:
    from skimage import data as skdata

    from vsrestore.models import info

    work = work.resolve()
    # copied out of the skimage folder: the trainer keeps pictures under "skimage" for evaluation only
    (work / "pictures").mkdir(parents=True, exist_ok=True)
    pictures = []
    for p in sorted(Path(skdata.__file__).parent.iterdir()):
        if p.suffix in (".png", ".jpg"):
            pictures.append(work / "pictures" / p.name)
            shutil.copyfile(p, pictures[-1])
    manifest = work / "images.txt"
    manifest.write_text("\n".join(str(p) for p in pictures) + "\n")
    card = info("sr-compact-x2")
    rep: Report = {"pictures": len(pictures), "steps": steps,
                   # the card's train_seconds include preparing the data and the evaluation
                   "card_cpu_s_per_step": card.card["train_seconds"] / card.card["recipe"]["steps"],
                   "card_trained_on": card.card["trained_on"]}
    for precision in ("fp32", "bf16"):
        cmd = [sys.executable, "-m", "vsrestore", "train", "sr-compact-x2", "--steps", str(steps),
               "--device", "cpu" if DRY else "cuda", "--precision", precision, "--manifest", str(manifest),
               "--out", str(work / f"out-{precision}"), "--work", str(work / f"work-{precision}")]
        # not from the repository root, whose vsrestore/ folder lacks filters/ (an installed copy runs)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=work)
        rates = [float(ln.split("(")[1].split()[0]) for ln in res.stderr.splitlines() if "s/step" in ln]
        row: Report = {"returncode": res.returncode, "s_per_step_logged": rates}
        if res.returncode:
            row["stderr_tail"] = res.stderr[-2000:]
        else:
            card_out = work / f"out-{precision}" / "sr-compact-x2.json"
            row["metrics"] = json.loads(card_out.read_text())["metrics"]
        if rates:
            row["speedup_vs_card_cpu"] = rep["card_cpu_s_per_step"] / rates[-1]
        rep[precision] = row
    if any(rep[p]["returncode"] for p in ("fp32", "bf16")):
        rep["error"] = "a training run failed (its stderr_tail above)"
    return rep


def markdown(results: dict[str, Report]) -> str:
    lines = ["# vsrestore GPU check", "", "Produced by `benchmarks/gpu_check.py`"
             + (" --dry-run (CPU stand-ins: no GPU figures)" if DRY else "") + ".", ""]
    for name, rep in results.items():
        lines += [f"## {name}", "", "```json", json.dumps(rep, indent=2, default=float), "```", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("gpu-check"))
    ap.add_argument("--dry-run", action="store_true", help="CPU stand-ins and small sizes (no GPU here)")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="steps per training run (default 300; 100 with --dry-run)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    small = DRY
    sections: dict[str, Callable[[], Report]] = {
        "environment": environment,
        "warp kernels": lambda: warp_kernels((61, 37) if small else (1920, 1080), 3 if small else 50),
        "grain kernels": lambda: grain_kernels((34, 24) if small else (1920, 1080), 3 if small else 50),
        "optical flow": lambda: flow((160, 96) if small else (640, 360), 4 if small else 16),
        "upscale": lambda: upscale((64, 48) if small else (960, 540), 2 if small else 8),
        "training": lambda: training(a.train_steps or (100 if small else 300), a.out / "train"),
    }
    results: dict[str, Report] = {}
    for name, fn in sections.items():
        t0 = time.perf_counter()
        try:
            results[name] = fn()
        except Exception:  # noqa: BLE001 - record it and go on with the next section
            results[name] = {"error": traceback.format_exc()[-3000:]}
        results[name]["section_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        (a.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
        (a.out / "gpu_check.md").write_text(markdown(results))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
