"""Tiled inference with overlap and feathered blending, plus padding to size multiples.

A frame is cut into equal windows that overlap by at least ``2 * overlap`` pixels.
Neighbouring windows hand over with a linear ramp ``overlap`` pixels wide centred
in their shared band, so every output pixel comes from window pixels at least
``overlap / 2`` away from a window edge (where the network saw no real context)
and the weights always sum to one: no seams, and with ``overlap / 2`` beyond the
model's receptive radius the result equals untiled inference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Infer = Callable[[np.ndarray], np.ndarray]  # (1, C, H, W) float32 -> (1, C', sH, sW)


def pad_to_multiple(x: np.ndarray, multiple: int, minimum: int = 1) -> tuple[np.ndarray, int, int]:
    """Pad a ``(1, C, H, W)`` array at the bottom/right (reflect, else edge) to fit a model."""
    _, _, h, w = x.shape
    th = max(minimum, math.ceil(h / multiple) * multiple)
    tw = max(minimum, math.ceil(w / multiple) * multiple)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x, 0, 0
    widths = ((0, 0), (0, 0), (0, ph), (0, pw))
    padded = np.pad(x, widths, mode="reflect") if ph < h and pw < w else np.pad(x, widths, mode="edge")
    return padded, ph, pw


def run_padded(infer: Infer, x: np.ndarray, scale: int, multiple: int, minimum: int = 1) -> np.ndarray:
    _, _, h, w = x.shape
    xp, ph, pw = pad_to_multiple(x, multiple, minimum)
    y = infer(np.ascontiguousarray(xp))
    if ph or pw:
        y = y[:, :, : h * scale, : w * scale]
    return y


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Starts of equal windows covering ``length`` with >= 2*overlap shared pixels."""
    if length <= window:
        return [0]
    step = max(1, window - 2 * overlap)
    n = 1 + math.ceil((length - window) / step)
    return [round(i * (length - window) / (n - 1)) for i in range(n)]


def axis_weights(starts: list[int], window: int, length: int, overlap: int, scale: int) -> list[np.ndarray]:
    """Per-window 1-D blend weights in output pixels (a partition of unity)."""
    out_len = window * scale
    ramp = max(1, overlap) * scale
    ws = []
    for i, s in enumerate(starts):
        pos = (np.arange(out_len, dtype=np.float64) + 0.5) + s * scale
        w = np.ones(out_len, np.float64)
        if i > 0:
            mid = (starts[i - 1] + window + s) / 2 * scale
            w = np.minimum(w, np.clip((pos - (mid - ramp / 2)) / ramp, 0, 1))
        if i < len(starts) - 1:
            mid = (s + window + starts[i + 1]) / 2 * scale
            w = np.minimum(w, np.clip(((mid + ramp / 2) - pos) / ramp, 0, 1))
        ws.append(w.astype(np.float32))
    return ws


def run_tiled(infer: Infer, x: np.ndarray, *, scale: int, tile: tuple[int, int] | None,
              overlap: int, multiple: int = 1, minimum: int = 1,
              out_channels: int | None = None) -> np.ndarray:
    """Run *infer* on ``x`` (1, C, H, W), tiled when ``tile`` (height, width) is smaller.

    ``tile`` is the core size of a tile; each window the model sees is
    ``tile + 2 * overlap`` (clamped to the frame).
    """
    _, c, h, w = x.shape
    if tile is None:
        return run_padded(infer, x, scale, multiple, minimum)
    win_h = min(h, tile[0] + 2 * overlap)
    win_w = min(w, tile[1] + 2 * overlap)
    if win_h >= h and win_w >= w:
        return run_padded(infer, x, scale, multiple, minimum)
    ys, xs = window_starts(h, win_h, overlap), window_starts(w, win_w, overlap)
    wy, wx = axis_weights(ys, win_h, h, overlap, scale), axis_weights(xs, win_w, w, overlap, scale)
    out: np.ndarray | None = None
    wsum = np.zeros((h * scale, w * scale), np.float32)
    for i, y0 in enumerate(ys):
        for j, x0 in enumerate(xs):
            part = run_padded(infer, x[:, :, y0: y0 + win_h, x0: x0 + win_w], scale, multiple, minimum)
            if out is None:
                out = np.zeros((1, out_channels or part.shape[1], h * scale, w * scale), np.float32)
            wgt = wy[i][:, None] * wx[j][None, :]
            sl = (slice(y0 * scale, (y0 + win_h) * scale), slice(x0 * scale, (x0 + win_w) * scale))
            out[:, :, sl[0], sl[1]] += part * wgt
            wsum[sl] += wgt
    assert out is not None
    out /= np.maximum(wsum, 1e-12)  # exactly 1 by construction; guards degenerate layouts
    return out
