"""Training and evaluation data: the offline corpus, held-out split, SR degradation.

The corpus is the photo manifest written by ``shared/data/corpus.sh``
(``/var/tmp/vsrestore-corpus/images.txt``) or any text file listing image paths.
Ground truth follows the project's SR measure: a photo box-shrunk by half (to
wash out JPEG), the low-resolution input made with zimg's bicubic
(b=0, c=0.5, "Catmull-Rom") at 1/scale.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import vapoursynth as vs

from ..bridge import clip_from_arrays, clip_to_arrays

core = vs.core

DEFAULT_MANIFEST = Path("/var/tmp/vsrestore-corpus/images.txt")

# Held out by picture (every size of a wallpaper), never trained on.
HELD_OUT_WALLPAPERS = ("Kite", "Autumn", "Path", "PastelHills", "ColorfulCups", "Volna")
# Photos shipped inside the scikit-image wheel: held out, and usable by the tests.
HELD_OUT_SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")
# Not natural photos in RGB (grey scans, calibration boards, logos, masks).
_SKIP_STEMS = ("left", "right", "chessboard", "logo", "mask", "digits", "notes", "sudoku",
               "gradient", "detect_blob", "pic", "ml", "box", "templ", "tmpl", "text", "cards",
               "imageText", "ellipses", "aloeGT")


def read_manifest(manifest: Path | str = DEFAULT_MANIFEST) -> list[Path]:
    path = Path(manifest)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run `bash shared/data/corpus.sh` (the offline corpus) "
            "or pass a text file listing image paths")
    return [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]


def picture_name(path: Path) -> str:
    """The picture a file shows: the wallpaper folder name, else the file stem."""
    parts = path.parts
    if "wallpapers" in parts:
        return parts[parts.index("wallpapers") + 1]
    return path.stem


def is_held_out(path: Path) -> bool:
    name = picture_name(path)
    return name in HELD_OUT_WALLPAPERS or name in HELD_OUT_SKIMAGE


def split(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(train, held_out) by picture; skips non-photographic helper images."""
    train, held = [], []
    for p in paths:
        if is_held_out(p):
            held.append(p)
        elif "skimage" in p.parts or any(p.stem.startswith(s) for s in _SKIP_STEMS):
            continue
        else:
            train.append(p)
    return train, held


def load_rgb(path: Path | str) -> np.ndarray:
    """Load an image as float32 RGB ``(3, H, W)`` in 0..1 (grey is replicated)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def box_shrink(img: np.ndarray, factor: int = 2) -> np.ndarray:
    c, h, w = img.shape
    h2, w2 = h // factor, w // factor
    v = img[:, : h2 * factor, : w2 * factor].reshape(c, h2, factor, w2, factor)
    return v.mean(axis=(2, 4), dtype=np.float32)


def crop_multiple(img: np.ndarray, m: int) -> np.ndarray:
    _, h, w = img.shape
    return img[:, : h - h % m, : w - w % m]


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    _, h, w = img.shape
    s = min(size, h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return img[:, y: y + s, x: x + s]


def bicubic_down(imgs: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
    """zimg bicubic b=0, c=0.5 downscale by *scale* of RGB float arrays (same shapes)."""
    out: list[np.ndarray] = []
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(imgs):
        by_shape.setdefault(im.shape, []).append(i)
    result: dict[int, np.ndarray] = {}
    for shape, idx in by_shape.items():
        clip = clip_from_arrays([imgs[i] for i in idx], vs.RGBS)
        small = core.resize.Bicubic(clip, shape[2] // scale, shape[1] // scale,
                                    filter_param_a=0, filter_param_b=0.5)
        for i, arr in zip(idx, clip_to_arrays(small), strict=True):
            result[i] = arr
    out = [result[i] for i in range(len(imgs))]
    return out


def lanczos_up(imgs: Sequence[np.ndarray], scale: int) -> list[np.ndarray]:
    """The classic baseline: zimg Lanczos (3 taps) upscale."""
    res = []
    for im in imgs:
        clip = clip_from_arrays([im], vs.RGBS)
        big = core.resize.Lanczos(clip, im.shape[2] * scale, im.shape[1] * scale, filter_param_a=3)
        res.append(clip_to_arrays(big)[0])
    return res


def psnr_y(a: np.ndarray, b: np.ndarray, shave: int = 4) -> float:
    """PSNR on BT.601 Y (16-235 scale) of two RGB float arrays, *shave* px border removed."""
    w = np.array([65.481, 128.553, 24.966], dtype=np.float64)[:, None, None]
    ya = (np.clip(a, 0, 1) * w).sum(0) + 16.0
    yb = (np.clip(b, 0, 1) * w).sum(0) + 16.0
    if shave:
        ya, yb = ya[shave:-shave, shave:-shave], yb[shave:-shave, shave:-shave]
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def sr_pairs(paths: Sequence[Path], scale: int, crop: int | None = None,
             max_side: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(lr, hr) pairs made the project's way from each photo."""
    pairs = []
    for p in paths:
        hr = box_shrink(load_rgb(p), 2)
        if max_side is not None and max(hr.shape[1:]) > max_side:
            f = int(np.ceil(max(hr.shape[1:]) / max_side))
            hr = box_shrink(hr, f)
        if crop is not None:
            hr = center_crop(hr, crop)
        hr = crop_multiple(hr, scale)
        lr = bicubic_down([hr], scale)[0]
        pairs.append((lr, hr))
    return pairs


def env_manifest() -> Path:
    return Path(os.environ.get("VSRESTORE_CORPUS", str(DEFAULT_MANIFEST)))
