"""Calibration of the scene-cut check (``vsrestore.motion``): full score, coarse first stage, flat frames.

Views of 19 scikit-image pictures (grey, cropped at (30, 40) from the picture, enlarged first
when smaller than the view) with noise sigma 2.5/255, at several sizes. Same-shot pairs: a
pan by (3.5, -1.7) px, a fade to 60 %, a smooth +0.5 flash; cuts: every pair of two
different pictures. Each pair is scored with the flow given (``dense_flow``, "medium") and,
for same-shot pairs, without. Printed per size: the range of the full score
(``scene_change``) and of the coarse one (``scene_change_coarse``) per kind, the lowest
coarse score where the full score is over the cut threshold (the coarse stage must stay above
``_SC_SKIP`` there), the share of same-shot pairs the coarse stage clears, the views
``_flat`` calls detail-free, and the median time of each stage on the 213x120 frames that
``optical_flow(preset="fast")`` searches at 640x360; and the pairs the full score
misclassifies (a same-shot pair over the threshold, a cut at or under it).

    .venv/bin/python benchmarks/calib_scenecut.py [--sizes 224x160,213x120,480x270]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
from skimage import data

from vsrestore import motion

NAMES = ["astronaut", "coffee", "chelsea", "camera", "rocket", "retina", "hubble_deep_field",
         "immunohistochemistry", "brick", "grass", "gravel", "moon", "page", "text", "coins", "horse",
         "colorwheel", "logo", "clock"]


def grey(name: str) -> np.ndarray:
    img = getattr(data, name)()
    img = img[..., :3] if img.ndim == 3 else img
    img = img.astype(np.float32) / (1 if img.dtype == bool else 255)
    return img @ np.array([0.2126, 0.7152, 0.0722], np.float32) if img.ndim == 3 else img


def view(img: np.ndarray, x: float, y: float, w: int, h: int) -> np.ndarray:
    big = cv2.resize(img, (max(w + 80, img.shape[1]), max(h + 80, img.shape[0])))
    m = np.float32([[1, 0, -x], [0, 1, -y]])
    return cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="224x160,213x120,480x270")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(1)
    imgs = {n: grey(n) for n in NAMES}

    def noisy(x: np.ndarray) -> np.ndarray:
        return np.clip(x + rng.normal(0, 2.5 / 255, x.shape), 0, 1).astype(np.float32)

    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        gx, gy = np.arange(w)[None], np.arange(h)[:, None]
        blob = 0.5 * np.exp(-(((gx - w * 0.4) / (w / 4)) ** 2 + ((gy - h / 2) / (h / 4)) ** 2))
        res: dict[str, list[tuple[float, float]]] = {"pan": [], "fade": [], "flash": [], "cut": []}
        wrong: list[str] = []  # misclassified pairs by the full score
        flat = []
        for n, img in imgs.items():
            v = view(img, 30, 40, w, h)
            if motion._flat(motion._working(v, v, None, "calib")[0]):
                flat.append(n)
            same = {"pan": view(img, 33.5, 38.3, w, h), "fade": v * 0.6,
                    "flash": np.clip(v + blob, 0, 1).astype(np.float32)}
            for kind, other in same.items():
                pa, pb = noisy(v), noisy(other)
                for fl in (None, motion.dense_flow(pa, pb, preset="medium")):
                    res[kind].append((motion.scene_change(pa, pb, flow=fl),
                                      motion.scene_change_coarse(pa, pb, flow=fl)))
                    if res[kind][-1][0] > motion.CUT_THRESHOLD:
                        wrong.append(f"{kind} {n} ({'own' if fl is None else 'given'} flow) "
                                     f"{res[kind][-1][0]:.3f}")
            for m, img2 in imgs.items():
                if m != n:
                    pa, pb = noisy(v), noisy(view(img2, 30, 40, w, h))
                    fl = motion.dense_flow(pa, pb, preset="medium")
                    res["cut"].append((motion.scene_change(pa, pb, flow=fl),
                                       motion.scene_change_coarse(pa, pb, flow=fl)))
                    if res["cut"][-1][0] <= motion.CUT_THRESHOLD:
                        wrong.append(f"cut {n} -> {m} {res['cut'][-1][0]:.3f}")
        print(f"{w}x{h}")
        for kind, v in res.items():
            full, coarse = [x[0] for x in v], [x[1] for x in v]
            print(f"  {kind:6s} full {min(full):.3f}..{max(full):.3f}  "
                  f"coarse {min(coarse):.3f}..{max(coarse):.3f}")
        every = [x for v in res.values() for x in v]
        over = [c for f, c in every if f > motion.CUT_THRESHOLD]
        print(f"  lowest coarse score where the full one is over {motion.CUT_THRESHOLD}: "
              f"{min(over):.3f} (coarse stage threshold {motion._SC_SKIP})")
        cleared = [c < motion._SC_SKIP for k in ("pan", "fade", "flash") for _, c in res[k]]
        print(f"  same-shot pairs cleared by the coarse stage: {100 * np.mean(cleared):.0f} %")
        print(f"  detail-free views (_flat): {', '.join(flat) or 'none'}")
        print(f"  misclassified by the full score: {'; '.join(wrong) or 'none'}")

    ast = imgs["astronaut"]
    pa, pb = noisy(view(ast, 30, 40, 213, 120)), noisy(view(ast, 33.5, 38.3, 213, 120))
    fl = motion.dense_flow(pa, pb, preset="medium")
    for name, fn in (("scene_change (full score)", motion.scene_change),
                     ("scene_change_coarse", motion.scene_change_coarse)):
        ts = []
        for _ in range(300):
            t0 = time.perf_counter()
            fn(pa, pb, flow=fl)
            ts.append(time.perf_counter() - t0)
        print(f"213x120, flow given: {name:26s} {statistics.median(ts) * 1e3:.3f} ms (median of 300)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
