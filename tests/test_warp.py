"""kernels/warp.py: CPU (Numba) and CUDA (numba.cuda, run under the simulator) against the NumPy reference."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from vsrestore.kernels import warp as W

INTERPS = ["bilinear", "bicubic"]
BORDERS = ["clamp", "reflect", "constant"]
TOL = 1e-5


def padded(a: np.ndarray, pad: int = 7) -> np.ndarray:
    """The same values as a row-padded view (a slice of a wider array), like a VapourSynth plane."""
    wide = np.full((a.shape[0], a.shape[1] + pad), np.nan, np.float32)
    wide[:, 3:3 + a.shape[1]] = a
    return wide[:, 3:3 + a.shape[1]]


def flows(rng: np.random.Generator, h: int, w: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    return ((rng.standard_normal((h, w)) * scale).astype(np.float32),
            (rng.standard_normal((h, w)) * scale).astype(np.float32))


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("interp", INTERPS)
def test_cpu_matches_reference(interp: str, border: str) -> None:
    rng = np.random.default_rng(1)
    for h, w in [(37, 53), (24, 31), (1, 7), (6, 1), (1, 1), (2, 2), (3, 300)]:
        src = padded(rng.random((h, w), dtype=np.float32))
        for scale in (0.3, 2.5, 40.0):  # sub-pixel, moderate, large (mostly off the plane)
            fx, fy = flows(rng, h, w, scale)
            got = W.warp(src, padded(fx), fy, interp=interp, border=border, fill=0.3)
            ref = W.warp_reference(src, fx, fy, interp=interp, border=border, fill=0.3)
            assert got.dtype == np.float32 and got.shape == (h, w)
            assert np.abs(got - ref).max() <= TOL, (h, w, scale)


def test_cpu_non_unit_stride_huge_and_nan_flows() -> None:
    rng = np.random.default_rng(2)
    base = rng.random((29, 82), dtype=np.float32)
    src = base[:, ::2]  # column stride 8 bytes: copied, still right
    fx, fy = flows(rng, 29, 41, 3.0)
    fx[0, :5] = [np.nan, np.inf, -np.inf, 1e30, -1e30]
    fy[1, :3] = [np.nan, 5e6, -5e6]
    for interp in INTERPS:
        for border in BORDERS:
            got = W.warp(src, fx, fy, interp=interp, border=border, fill=-1.0)
            ref = W.warp_reference(src, fx, fy, interp=interp, border=border, fill=-1.0)
            assert np.isfinite(got).all()
            assert np.abs(got - ref).max() <= TOL, (interp, border)


def test_zero_flow_is_bit_exact_identity() -> None:
    rng = np.random.default_rng(3)
    src = padded(rng.random((31, 45), dtype=np.float32) * 7 - 3)
    zero = np.zeros(src.shape, np.float32)
    for interp in INTERPS:
        for border in BORDERS:
            np.testing.assert_array_equal(W.warp(src, zero, zero, interp=interp, border=border), src)


@pytest.mark.parametrize("dx, dy", [(3, -2), (-5, 4), (0, 7)])
def test_integer_flow_is_a_shift(dx: int, dy: int) -> None:
    rng = np.random.default_rng(4)
    h, w = 40, 50
    src = rng.random((h, w), dtype=np.float32)
    fx, fy = np.full((h, w), dx, np.float32), np.full((h, w), dy, np.float32)
    rolled = np.roll(src, (-dy, -dx), axis=(0, 1))  # out[y, x] = src[y + dy, x + dx]
    inner = np.s_[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    for interp in INTERPS:
        for border in BORDERS:
            got = W.warp(src, fx, fy, interp=interp, border=border)
            np.testing.assert_array_equal(got[inner], rolled[inner])


def test_out_padded_plane_is_written_in_place() -> None:
    rng = np.random.default_rng(5)
    src = rng.random((20, 33), dtype=np.float32)
    fx, fy = flows(rng, 20, 33, 1.5)
    wide = np.full((20, 40), -7.0, np.float32)
    out = wide[:, 2:35]
    assert W.warp(src, fx, fy, out=out) is out
    np.testing.assert_allclose(out, W.warp_reference(src, fx, fy), atol=TOL)
    assert (wide[:, :2] == -7.0).all() and (wide[:, 35:] == -7.0).all()


def test_errors_name_the_function_and_the_fix() -> None:
    a = np.zeros((8, 9), np.float32)
    with pytest.raises(ValueError, match=r"warp: src must be a 2-D float32.*astype"):
        W.warp(a.astype(np.float64), a, a)
    with pytest.raises(ValueError, match=r"warp: flow_y has shape \(8, 8\).*plane's shape"):
        W.warp(a, a, a[:, :8])
    with pytest.raises(ValueError, match=r"warp: src must be a 2-D"):
        W.warp(np.zeros((2, 8, 9), np.float32), a, a)
    with pytest.raises(ValueError, match=r"warp: interp='nearest' is not one of"):
        W.warp(a, a, a, interp="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"warp_reference: border='wrap'"):
        W.warp_reference(a, a, a, border="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"warp: out overlaps an input"):
        W.warp(a, a, np.zeros_like(a), out=a)
    ro = np.zeros_like(a)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"warp: out is read-only"):
        W.warp(a, a, a, out=ro)
    with pytest.raises(ValueError, match=r"occlusion_mask: bwd_x must be a 2-D float32"):
        W.occlusion_mask(a, a, a.astype(np.float16), a)


def test_kernels_compiled_at_import() -> None:
    for k in (W._warp_cpu, W._warp_rest_cpu, W._mask_cpu):
        assert k.signatures, k  # compiled (or loaded from cache) by the import-time warm-up
        assert k.targetoptions["nogil"]


def moving_square(h: int = 40, w: int = 48, d: int = 3) -> tuple[np.ndarray, ...]:
    """A 10x10 square moving d px right over a static background: flows t -> t+1 and back."""
    fwd_x, bwd_x = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    fwd_x[15:25, 12:22] = d  # the square at t
    bwd_x[15:25, 12 + d:22 + d] = -d  # the square at t+1
    zero = np.zeros((h, w), np.float32)
    return fwd_x, zero, bwd_x, zero


def test_occlusion_mask_moving_square() -> None:
    fwd_x, fwd_y, bwd_x, bwd_y = moving_square(d=3)
    occluded = np.zeros(fwd_x.shape, bool)
    occluded[15:25, 22:25] = True  # background at t covered by the square at t+1
    mask_t = W.occlusion_mask(fwd_x, fwd_y, bwd_x, bwd_y)
    assert mask_t.dtype == np.float32
    np.testing.assert_array_equal(mask_t == 0.0, occluded)
    disoccluded = np.zeros(fwd_x.shape, bool)
    disoccluded[15:25, 12:15] = True  # background at t+1 revealed behind the square
    np.testing.assert_array_equal(W.occlusion_mask(bwd_x, bwd_y, fwd_x, fwd_y) == 0.0, disoccluded)
    np.testing.assert_array_equal(mask_t, W.occlusion_mask_reference(fwd_x, fwd_y, bwd_x, bwd_y))


def test_occlusion_mask_cpu_equals_reference_exactly() -> None:
    rng = np.random.default_rng(6)
    for h, w in [(33, 47), (1, 9), (7, 1)]:
        for scale in (0.4, 3.0, 30.0):
            fx, fy = flows(rng, h, w, scale)
            bx, by = flows(rng, h, w, 0.5)
            bx, by = -fx + bx, -fy + by  # near-consistent, so both outcomes occur
            fx[0, 0] = np.nan
            got = W.occlusion_mask(padded(fx), fy, bx, padded(by), alpha=0.02, beta=0.3)
            np.testing.assert_array_equal(got, W.occlusion_mask_reference(fx, fy, bx, by, alpha=0.02,
                                                                          beta=0.3))
            assert set(np.unique(got)) <= {0.0, 1.0}


CUDA_SCRIPT = textwrap.dedent("""
    import numpy as np
    from numba import cuda
    from vsrestore.kernels import warp as W

    if not cuda.is_available():  # True under the simulator
        raise SystemExit("NO GPU")
    rng = np.random.default_rng(7)
    h, w = 24, 31
    src = rng.random((h, w + 6), dtype=np.float32)
    fx = (rng.standard_normal((h, w)) * 5).astype(np.float32)
    fy = (rng.standard_normal((h, w)) * 5).astype(np.float32)
    fx[2, 3] = np.nan
    d_src = cuda.to_device(src)[:, 3:3 + w]  # a row-padded device view
    d_fx, d_fy = cuda.to_device(fx), cuda.to_device(fy)
    worst = 0.0
    for interp in ("bilinear", "bicubic"):
        for border in ("clamp", "reflect", "constant"):
            got = W.warp_cuda(d_src, d_fx, d_fy, interp=interp, border=border, fill=0.25).copy_to_host()
            ref = W.warp_reference(src[:, 3:3 + w], fx, fy, interp=interp, border=border, fill=0.25)
            worst = max(worst, float(np.abs(got - ref).max()))
    bx, by = -fx + 0.3 * rng.standard_normal((h, w)).astype(np.float32), -fy
    out = cuda.device_array((h, w), np.float32)
    W.occlusion_mask_cuda(d_fx, d_fy, cuda.to_device(bx), cuda.to_device(by), out=out)
    mism = int((out.copy_to_host() != W.occlusion_mask_reference(fx, fy, bx, by)).sum())
    print("RESULT", worst, mism)
""")


def run_cuda_script(sim: bool) -> tuple[float, int]:
    """numba.cuda reads NUMBA_ENABLE_CUDASIM once, at import: hence a fresh interpreter."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1" if sim else "0"}
    res = subprocess.run([sys.executable, "-c", CUDA_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=600)
    if not sim and "NO GPU" in res.stderr:
        pytest.skip("no CUDA GPU here (the simulator test covers the kernel logic)")
    assert res.returncode == 0, res.stderr[-3000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1]
    worst, mism = line.split()[1:]
    return float(worst), int(mism)


def test_cuda_kernels_under_simulator() -> None:
    worst, mism = run_cuda_script(sim=True)
    assert worst <= TOL
    assert mism == 0


def test_cuda_kernels_on_gpu() -> None:
    worst, mism = run_cuda_script(sim=False)
    assert worst <= TOL
    assert mism <= 2  # FMA contraction on the device may flip a pixel sitting exactly on the threshold


PTX_SCRIPT = textwrap.dedent("""
    import types
    import numba.cuda.dispatcher as disp
    from numba import cuda
    from vsrestore.kernels import warp as W
    # No GPU: give device-function compilation a compute capability instead of a device.
    disp.get_current_device = lambda: types.SimpleNamespace(compute_capability=(7, 5))
    f = "float32[::1]"
    arrays = lambda n: ", ".join([f + ", int64"] * n)  # flat plane, row stride
    sig_w = f"void({arrays(4)}, int64, int64, int64, int64, float64)"
    sig_m = f"void({arrays(5)}, int64, int64, float64, float64)"
    for kernel, sig in zip(W._cuda_kernels(), (sig_w, sig_m)):
        cuda.compile_ptx(kernel.py_func, sig, cc=(7, 5))
    print("PTX OK")
""")


def test_cuda_kernels_compile_to_ptx() -> None:
    """Type-check and compile the real CUDA kernels (no GPU needed, but NVVM from a CUDA toolkit)."""
    res = subprocess.run([sys.executable, "-c", PTX_SCRIPT], capture_output=True, text=True, timeout=600)
    if res.returncode and ("NvvmSupportError" in res.stderr or "libNVVM cannot be found" in res.stderr):
        pytest.skip("no NVVM (CUDA toolkit) on this machine")
    assert res.returncode == 0 and "PTX OK" in res.stdout, res.stderr[-3000:]


@pytest.mark.parametrize("border", BORDERS)
def test_bilinear_agrees_with_opencv_remap(border: str) -> None:
    """cv2.remap(INTER_LINEAR) on map = grid + flow. OpenCV < 4.11 rounds coordinates to 1/32 px
    (INTER_TAB_SIZE), i.e. up to 1/64 px per axis; 4.11+ interpolates in float32, but map = grid + flow
    itself rounds in float32. On a smooth image (|grad| <= 0.025 per px) that stays below 1e-3."""
    cv2 = pytest.importorskip("cv2")
    h, w = 61, 83
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    src = (0.5 + 0.25 * np.sin(xx / 13.0) * np.cos(yy / 11.0)).astype(np.float32)
    rng = np.random.default_rng(8)
    fx, fy = flows(rng, h, w, 4.0)
    mode = {"clamp": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101,
            "constant": cv2.BORDER_CONSTANT}[border]
    theirs = cv2.remap(src, xx + fx, yy + fy, cv2.INTER_LINEAR, borderMode=mode, borderValue=0.2)
    ours = W.warp(src, fx, fy, border=border, fill=0.2)  # type: ignore[arg-type]
    assert np.abs(ours - theirs).max() <= 1e-3
