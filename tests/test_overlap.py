"""kernels/overlap.py: CPU (Numba) and CUDA (simulator) overlap-add against the NumPy reference."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from vsrestore.kernels import overlap as O

CASES = [(8, 3, 5, 7), (8, 1, 4, 4), (4, 4, 3, 2), (8, 8, 2, 3), (3, 2, 6, 1)]  # b, step, rows, cols


def inputs(rng: np.random.Generator, b: int, step: int, nby: int, nbx: int) -> tuple[np.ndarray, ...]:
    vals = rng.standard_normal((nby * nbx, b * b)).astype(np.float32)
    return vals, rng.random(nby * nbx).astype(np.float32)


@pytest.mark.parametrize("case", CASES)
def test_cpu_matches_reference_band_by_band(case: tuple[int, int, int, int]) -> None:
    b, step, nby, nbx = case
    vals, wgt = inputs(np.random.default_rng(1), *case)
    shape = ((nby - 1) * step + b + 2, (nbx - 1) * step + b + 1)  # a margin the blocks never touch
    got = [np.zeros(shape, np.float32) for _ in range(2)]
    want = [np.zeros(shape, np.float32) for _ in range(2)]
    for r0 in range(0, nby, 2):  # bands of two block rows
        sl = slice(r0 * nbx, min(nby, r0 + 2) * nbx)
        O.overlap_add(vals[sl], wgt[sl], nbx, step, r0, *got)
        O.overlap_add_reference(vals[sl], wgt[sl], nbx, step, r0, *want)
    for g, w in zip(got, want, strict=True):
        assert np.abs(g - w).max() <= 1e-5
    assert got[1][-1].max() == 0 and got[1][:, -1].max() == 0
    if step <= b:  # every pixel of the grid covered: the normalised result is a weighted mean
        ws = got[1][:shape[0] - 2, :shape[1] - 1]
        assert ws.min() > 0


def test_errors() -> None:
    vals, wgt = inputs(np.random.default_rng(2), 8, 3, 2, 2)
    acc = np.zeros((20, 20), np.float32)
    with pytest.raises(ValueError, match=r"overlap_add: .*do not make rows of nbx=3"):
        O.overlap_add(vals, wgt, 3, 3, 0, acc, acc.copy())
    with pytest.raises(ValueError, match=r"overlap_add: acc and ws must be .*at least \(11, 11\)"):
        O.overlap_add(vals, wgt, 2, 3, 0, acc[:8], acc[:8].copy())
    with pytest.raises(ValueError, match=r"overlap_add: vals must be float32.*astype"):
        O.overlap_add(vals.astype(np.float64), wgt, 2, 3, 0, acc, acc.copy())


CUDA_SCRIPT = textwrap.dedent("""
    import numpy as np
    from numba import cuda
    from vsrestore.kernels import overlap as O
    rng = np.random.default_rng(3)
    worst = 0.0
    for b, step, nby, nbx in %r:
        vals = rng.standard_normal((nby * nbx, b * b)).astype(np.float32)
        wgt = rng.random(nby * nbx).astype(np.float32)
        shape = ((nby - 1) * step + b + 1, (nbx - 1) * step + b)
        acc, ws = cuda.to_device(np.zeros(shape, np.float32)), cuda.to_device(np.zeros(shape, np.float32))
        ra, rw = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        for r0 in range(0, nby, 2):
            sl = slice(r0 * nbx, min(nby, r0 + 2) * nbx)
            O.overlap_add_cuda(cuda.to_device(vals[sl]), cuda.to_device(wgt[sl]), nbx, step, r0, acc, ws)
            O.overlap_add_reference(vals[sl], wgt[sl], nbx, step, r0, ra, rw)
        worst = max(worst, float(np.abs(acc.copy_to_host() - ra).max()),
                    float(np.abs(ws.copy_to_host() - rw).max()))
    print("RESULT", worst)
""") % ([(8, 3, 3, 3), (4, 4, 3, 2), (3, 2, 4, 2)],)


def test_cuda_simulator_matches_reference() -> None:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    res = subprocess.run([sys.executable, "-c", CUDA_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    worst = float([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1].split()[1])
    assert worst <= 1e-5
