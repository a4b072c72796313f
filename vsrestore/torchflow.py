"""Dense optical flow in PyTorch (DIS-style), for ``vr.optical_flow(..., backend=TorchCUDA())``.

The same method as OpenCV's DIS flow (Kroeger et al., ECCV 2016), written in tensor
operations so that it runs wherever torch does, a CUDA GPU in particular:

1. a pyramid of 2x2 box-averaged levels, coarse to fine, each starting from the flow of
   the level below (bilinearly upsampled, vectors doubled);
2. on each level, square patches on a regular grid (size ``patch``, step ``stride``), one
   vector per patch: initialised with the patch mean of that flow, then one parallel
   spatial-propagation sweep (each patch tries its four neighbours' vectors and keeps the
   one with the lowest patch SSD) and ``iters`` inverse-compositional Gauss-Newton steps
   on mean-normalised patches (so brightness offsets between frames do not bias it). The
   patch Hessians get a Tikhonov term ``ridge`` that keeps flat, ambiguous patches near
   their initial vector instead of chasing noise;
3. densification: each pixel's vector is the average of the vectors of all patches that
   cover it, weighted by ``1 / max(1, |prev(x + v) - cur(x)| * 255)``, so a patch that
   straddles a motion boundary counts where it matches.

Unlike OpenCV's DIS it has no variational refinement and its propagation is one parallel
sweep (DIS sweeps sequentially), so it is a little less accurate; every operation is
exact float32 (no convolutions, so no TF32 on GPUs). Where it was checked: the tests run
it with torch on the CPU (``tests/test_optical_flow.py``: end-point error on the known-
motion scenes, against OpenCV DIS's); the CUDA device was not available to this project's
development machine, so it has not been timed or compared on a GPU yet.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# preset -> (patch, stride, Gauss-Newton iterations, propagation sweeps, finest factor):
# the frames are searched downscaled by the finest factor (vr.optical_flow downscales them
# once in the clip graph). Mean end-point error on tests/test_optical_flow.py's two scenes
# (torch on the CPU): ultrafast 0.45/0.53 px, fast 0.22/0.31, medium 0.16/0.25, slow
# 0.12/0.20; OpenCV DIS "fast" 0.22/0.29, "medium" 0.15/0.18; Farneback (15-px window) 0.21/0.26.
PRESETS: dict[str, tuple[int, int, int, int, int]] = {
    "ultrafast": (8, 6, 4, 1, 4),
    "fast": (8, 4, 6, 1, 2),
    "medium": (8, 4, 12, 2, 1),
    "slow": (12, 3, 16, 3, 1),
}


def finest_factor(preset: str) -> int:
    """How many times smaller than the clip the finest level searched for *preset* is."""
    if preset not in PRESETS:
        raise ValueError(f"torchflow.finest_factor: unknown preset {preset!r}; "
                         f"use one of {', '.join(PRESETS)}")
    return PRESETS[preset][4]


_RIDGE = 0.03  # Tikhonov weight on the patch Hessians (intensity 0..1, sums over a patch)
_PRESMOOTH = (0.25, 0.5, 0.25)  # 3-tap binomial pre-smoothing of both frames
_MIN_COARSE = 16  # the coarsest level keeps at least 2 patches of 8 per side


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """3x3 binomial blur of a (H, W) plane with replicated edges (exact float32 adds)."""
    a, b, c = _PRESMOOTH
    p = F.pad(x[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    rows = a * p[:-2] + b * p[1:-1] + c * p[2:]
    return a * rows[:, :-2] + b * rows[:, 1:-1] + c * rows[:, 2:]


def _down(x: torch.Tensor) -> torch.Tensor:
    """2x2 box average (odd last row/column dropped)."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _sample(img: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of the (H, W) plane *img* at pixel coordinates (x, y), edges clamped."""
    h, w = img.shape
    g = torch.stack([x * (2 / max(w - 1, 1)) - 1, y * (2 / max(h - 1, 1)) - 1], -1)
    out = F.grid_sample(img[None, None], g.reshape(1, 1, -1, 2), mode="bilinear",
                        padding_mode="border", align_corners=True)
    return out.reshape(x.shape)


def _level(cur: torch.Tensor, prev: torch.Tensor, init: torch.Tensor, patch: int, stride: int,
           iters: int, sweeps: int) -> torch.Tensor:
    """One pyramid level: the dense backward flow (2, H, W) of *cur* from *init*."""
    h, w = cur.shape
    ny, nx = max(1, math.ceil((h - patch) / stride)) + 1, max(1, math.ceil((w - patch) / stride)) + 1
    hp, wp = patch + (ny - 1) * stride, patch + (nx - 1) * stride
    pad = (0, wp - w, 0, hp - h)  # a regular patch grid that covers the plane

    def grow(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[None], pad, mode="replicate")[0]

    def patches(x: torch.Tensor) -> torch.Tensor:  # (hp, wp) -> (patches, patch * patch)
        return F.unfold(x[None, None], patch, stride=stride)[0].T

    t0 = grow(cur[None])[0]
    gy, gx = torch.gradient(t0)
    tmpl, px, py = patches(t0), patches(gx), patches(gy)
    px, py = px - px.mean(1, keepdim=True), py - py.mean(1, keepdim=True)
    hxx, hxy, hyy = (px * px).sum(1) + _RIDGE, (px * py).sum(1), (py * py).sum(1) + _RIDGE
    det = hxx * hyy - hxy * hxy
    yy, xx = torch.meshgrid(torch.arange(hp, dtype=cur.dtype, device=cur.device),
                            torch.arange(wp, dtype=cur.dtype, device=cur.device), indexing="ij")
    cx, cy = patches(xx), patches(yy)
    flow0 = grow(init)
    u, v = patches(flow0[0]).mean(1), patches(flow0[1]).mean(1)

    def residual(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return _sample(prev, cx + u[:, None], cy + v[:, None]) - tmpl

    def cost(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r = residual(u, v)
        r = r - r.mean(1, keepdim=True)
        return (r * r).sum(1)

    best = cost(u, v)
    for _ in range(sweeps):
        grid_u, grid_v = u.view(ny, nx), v.view(ny, nx)
        bu, bv = u, v
        for shift in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            cu = torch.roll(grid_u, shift, (0, 1)).reshape(-1)
            cv = torch.roll(grid_v, shift, (0, 1)).reshape(-1)
            c = cost(cu, cv)
            better = c < best
            best = torch.where(better, c, best)
            bu, bv = torch.where(better, cu, bu), torch.where(better, cv, bv)
        u, v = bu, bv
    for _ in range(iters):
        r = residual(u, v)
        r = r - r.mean(1, keepdim=True)
        bx, by = (px * r).sum(1), (py * r).sum(1)
        u = u - (hyy * bx - hxy * by) / det
        v = v - (hxx * by - hxy * bx) / det
    wgt = 1 / torch.clamp(residual(u, v).abs() * 255, min=1.0)

    def fold(z: torch.Tensor) -> torch.Tensor:
        return F.fold(z.T[None], (hp, wp), patch, stride=stride)[0, 0]

    den = fold(wgt)
    dense = torch.stack([fold(wgt * u[:, None]), fold(wgt * v[:, None])]) / den
    return dense[:, :h, :w]


def dense_flow(prev: torch.Tensor, cur: torch.Tensor, *, preset: str = "medium") -> torch.Tensor:
    """Backward flow of *cur*: ``(2, H, W)`` float32 on the frames' device, ``cur(x) ~= prev(x + flow)``.

    *prev*, *cur*: ``(H, W)`` grey tensors 0..1 on one device. *preset*: a key of
    :data:`PRESETS`. The frames are searched at their own size (give them downscaled by
    :func:`finest_factor`, as ``vr.optical_flow`` does).
    """
    if preset not in PRESETS:
        raise ValueError(f"torchflow.dense_flow: unknown preset {preset!r}; "
                         f"use one of {', '.join(PRESETS)}")
    if prev.dim() != 2 or prev.shape != cur.shape:
        raise ValueError(f"torchflow.dense_flow: expected two (H, W) planes of one shape, got "
                         f"{tuple(prev.shape)} and {tuple(cur.shape)}")
    patch, stride, iters, sweeps, _ = PRESETS[preset]
    with torch.no_grad():
        c, p = _smooth(cur.float()), _smooth(prev.float())
        h, w = c.shape
        side = max(patch, _MIN_COARSE)
        if h < side or w < side:  # too small for one patch: pad (replicated), crop the flow
            c = F.pad(c[None, None], (0, max(0, side - w), 0, max(0, side - h)), mode="replicate")[0, 0]
            p = F.pad(p[None, None], (0, max(0, side - w), 0, max(0, side - h)), mode="replicate")[0, 0]
        levels_c, levels_p = [c], [p]
        while min(levels_c[-1].shape) // 2 >= _MIN_COARSE:
            levels_c.append(_down(levels_c[-1]))
            levels_p.append(_down(levels_p[-1]))
        flow = torch.zeros((2, *levels_c[-1].shape), dtype=torch.float32, device=c.device)
        for lc, lp in zip(reversed(levels_c), reversed(levels_p), strict=True):
            if flow.shape[1:] != lc.shape:
                flow = 2 * F.interpolate(flow[None], size=tuple(lc.shape), mode="bilinear",
                                         align_corners=False)[0]
            flow = _level(lc, lp, flow, patch, stride, iters, sweeps)
        return flow[:, :h, :w].contiguous()
