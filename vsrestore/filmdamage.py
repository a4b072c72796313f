"""Synthetic film damage with ground truth, for tests and benchmarks of ``vr.despot``.

NumPy only; frames are float32 ``(3, H, W)`` RGB code values 0..255. Every function takes
its randomness from the :class:`numpy.random.Generator` passed in (same seed, same damage).

* :func:`pan` — a slow, sub-pixel camera pan across a photo: each frame is a 2x area
  downscale of a crop shifted by whole source pixels, so every frame is equally sharp.
* :func:`add_dust` — one-frame dust and dirt: blobs, curved hairs and short straight lines
  of random polarity (dark or bright, opaque, a little noise), added until a given fraction of
  the frame is covered. Defects of one frame never touch; each frame draws its own.
* :func:`add_scratches` — persistent line scratches: 1-3 px wide, mostly vertical (a slight
  slant), fixed to the film and wandering slowly in x from frame to frame, lighter or darker,
  partly transparent, spanning the frame height.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["pan", "add_dust", "add_scratches", "Scratch"]


def pan(img: np.ndarray, n: int, w: int, h: int, *, step: tuple[int, int] = (3, 1),
        noise: float = 1.5, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """*n* frames of *w* x *h* panning across *img* (``(3, H, W)`` float 0..1).

    The camera moves *step* source pixels a frame, i.e. ``step / 2`` output pixels (default
    1.5 px right, 0.5 px down). Gaussian noise of *noise* code values; rounded to integers.
    """
    rng = rng or np.random.default_rng(0)
    sx, sy = step
    need_w, need_h = 2 * w + abs(sx) * n, 2 * h + abs(sy) * n
    src = img.transpose(1, 2, 0)
    k = max(need_w / src.shape[1], need_h / src.shape[0])
    if k > 1:
        src = cv2.resize(src, (int(np.ceil(src.shape[1] * k)), int(np.ceil(src.shape[0] * k))),
                         interpolation=cv2.INTER_CUBIC)
    x0 = (src.shape[1] - need_w) // 2 + (abs(sx) * n if sx < 0 else 0)
    y0 = (src.shape[0] - need_h) // 2 + (abs(sy) * n if sy < 0 else 0)
    out = []
    for i in range(n):
        x, y = x0 + sx * i, y0 + sy * i
        crop = src[y:y + 2 * h, x:x + 2 * w]
        fr = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) * 255
        fr = fr + rng.normal(0, noise, fr.shape)
        out.append(np.clip(np.rint(fr), 0, 255).astype(np.float32))
    return out


def _shape(rng: np.random.Generator, h: int, w: int, margin: int) -> np.ndarray:
    """One random defect shape: a blob (55 %), a curved hair (25 %) or a short line (20 %)."""
    m = np.zeros((h, w), np.uint8)
    x, y = int(rng.integers(margin, w - margin)), int(rng.integers(margin, h - margin))
    kind = rng.random()
    if kind < 0.55:
        ax = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        cv2.ellipse(m, (x, y), ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind < 0.8:
        ang, ln = rng.uniform(0, 2 * np.pi), int(rng.integers(12, 40))
        pts, a = [(x, y)], ang
        for _ in range(ln // 4):
            a += rng.normal(0, 0.35)
            px, py = pts[-1]
            pts.append((int(round(px + 4 * np.cos(a))), int(round(py + 4 * np.sin(a)))))
        cv2.polylines(m, [np.array(pts, np.int32)], False, 1, 1)
    else:
        ang, ln = rng.uniform(0, np.pi), int(rng.integers(6, 20))
        cv2.line(m, (x, y), (int(x + ln * np.cos(ang)), int(y + ln * np.sin(ang))), 1,
                 int(rng.integers(1, 3)))
    return m.astype(bool)


def add_dust(frames: list[np.ndarray], rng: np.random.Generator, *, coverage: float = 0.10,
             min_contrast: float = 50.0, margin: int = 4) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Damaged copies of *frames* and, per frame, the boolean mask of every defect added.

    Defects are drawn until *coverage* of each frame is covered (the last one may overshoot).
    A defect's level is dark (0..35) or bright (220..255) at random; one whose mean contrast
    against the clean pixels below it is under *min_contrast* is invisible and is redrawn.
    Defects of a frame stay one pixel apart so they remain separate objects.
    """
    out, masks = [], []
    for fr in frames:
        _, h, w = fr.shape
        bad, objs = fr.copy(), []
        taken = np.zeros((h, w), bool)
        luma = fr.mean(0)
        covered, tries = 0, 0
        while covered < coverage * h * w and tries < 20000:
            tries += 1
            mb = _shape(rng, h, w, margin)
            if not mb.any():
                continue
            grown = cv2.dilate(mb.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            level = float(rng.uniform(0, 35) if rng.random() < 0.5 else rng.uniform(220, 255))
            if (grown & taken).any() or abs(level - luma[mb].mean()) < min_contrast:
                continue
            taken |= grown
            bad[:, mb] = level + rng.normal(0, 2, (3, int(mb.sum())))
            objs.append(mb)
            covered += int(mb.sum())
        out.append(np.clip(np.rint(bad), 0, 255).astype(np.float32))
        masks.append(objs)
    return out, masks


class Scratch:
    """One persistent line scratch: its centre ``x(t, y)`` and the frames it lives on."""

    def __init__(self, rng: np.random.Generator, w: int, h: int, n: int, *, width: float | None = None,
                 alpha: float | None = None, bright: bool | None = None, start: int = 0,
                 length: int | None = None) -> None:
        self.width = float(width if width is not None else rng.uniform(1.0, 3.0))
        self.alpha = float(alpha if alpha is not None else rng.uniform(0.35, 0.8))
        self.bright = bool(rng.random() < 0.5) if bright is None else bright
        self.level = 245.0 if self.bright else 10.0
        self.x0 = float(rng.uniform(0.1 * w, 0.9 * w))
        self.slant = float(rng.uniform(-3.0, 3.0)) / h  # px of x per row: under 3 px over the height
        self.speed = float(rng.uniform(-0.4, 0.4))  # wander, px per frame
        self.phase = float(rng.uniform(0, 2 * np.pi))
        self.start, self.stop = start, start + (length if length is not None else n)
        self.h = h

    def centre(self, t: int) -> np.ndarray:
        """Centre x of the scratch on every row of frame *t*."""
        y = np.arange(self.h, dtype=np.float64) - self.h / 2
        wander = self.speed * t + 0.6 * np.sin(0.5 * t + self.phase)
        return self.x0 + wander + self.slant * y

    def alpha_map(self, t: int, w: int) -> np.ndarray:
        """``(H, W)`` opacity of the scratch on frame *t* (0 where it is not, soft 1-px edges)."""
        if not self.start <= t < self.stop:
            return np.zeros((self.h, w), np.float32)
        dist = np.abs(np.arange(w)[None, :] - self.centre(t)[:, None])
        cover = np.clip(self.width / 2 + 0.5 - dist, 0.0, 1.0)  # box profile, antialiased
        return (self.alpha * cover).astype(np.float32)


def add_scratches(frames: list[np.ndarray], rng: np.random.Generator, count: int = 2,
                  **kwargs: object) -> tuple[list[np.ndarray], list[Scratch], list[list[np.ndarray]]]:
    """Frames with *count* persistent scratches, the scratches, and per frame their masks
    (pixels whose opacity is at least 0.1)."""
    _, h, w = frames[0].shape
    scratches = [Scratch(rng, w, h, len(frames), **kwargs) for _ in range(count)]  # type: ignore[arg-type]
    out, masks = [], []
    for t, fr in enumerate(frames):
        bad = fr.copy()
        objs = []
        for s in scratches:
            a = s.alpha_map(t, w)
            bad = bad * (1 - a) + s.level * a
            if (a >= 0.1 * s.alpha).any():
                objs.append(a >= 0.1 * s.alpha)
        out.append(np.clip(np.rint(bad), 0, 255).astype(np.float32))
        masks.append(objs)
    return out, scratches, masks
