"""``vsrestore eval TASK``: command line of :mod:`vsrestore.evaluation` (files to --out, log to stderr).

Pictures: ``--images`` (as given), ``--manifest`` (its held-out pictures, one file per
picture; ``--all-pictures`` for every listed photo), ``--clips`` (video files read with
bestsource), or by default the held-out photos that ship inside scikit-image. Photos are
box-shrunk by 2 (the project's measure: JPEG washed out); clip frames are used as they are.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import evaluation as ev

log = logging.getLogger("vsrestore.eval")
MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".onnx", ".ckpt")


def skimage_held_out() -> list[Path]:
    """The held-out photos shipped in the scikit-image wheel (no corpus needed)."""
    import skimage

    from ..training.data import HELD_OUT_SKIMAGE

    root = Path(skimage.__file__).resolve().parent / "data"
    found = [next((root / f"{n}{ext}" for ext in (".png", ".jpg") if (root / f"{n}{ext}").is_file()), None)
             for n in HELD_OUT_SKIMAGE]
    return [p for p in found if p is not None]


STAGES = {"sr": "vr.upscale", "denoise": "vr.denoise (blind; --oracle: true sigma)",
          "deblock": "vr.deblock (blind; --oracle: true level), the x264 input",
          "dnsr": "vr.denoise(scale=2), vr.upscale(vr.denoise), vr.upscale(noisy)"}


def description() -> str:
    tasks = "\n".join(f"  {t:<8} {STAGES[t]}\n           peers: {', '.join(ev.peer_keys(t))}"
                      for t in ev.TASKS)
    return ("Measure vsrestore's stages against named peers on one degradation; write results.json,\n"
            "results.md, a bar plot of the main metric and side-by-side crops to --out. Peers with a\n"
            "parameter run at their best setting from a sweep over the same pictures.\n\n"
            f"tasks (--peers takes the peer keys or their prefixes):\n{tasks}\n\n"
            "pictures: --images (as given), --manifest (its held-out pictures, one file per picture;\n"
            "--all-pictures: every listed photo), --clips (video files, bestsource), or by default the\n"
            "held-out photos shipped inside scikit-image. Photos are box-shrunk by 2 (JPEG washed out);\n"
            "clip frames are used as they are.")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vsrestore eval", description=description(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=ev.TASKS, help="sr | denoise | deblock | dnsr")
    src = ap.add_argument_group("inputs")
    src.add_argument("--images", type=Path, nargs="+", metavar="PATH", help="image files")
    src.add_argument("--manifest", type=Path, metavar="FILE", help="text file of image paths (held-out only)")
    src.add_argument("--all-pictures", action="store_true", help="with --manifest: training pictures too")
    src.add_argument("--clips", type=Path, nargs="+", metavar="PATH", help="video files (bestsource)")
    src.add_argument("--frames", type=int, metavar="N",
                     help="deblock: frames per pan / from the start of a clip (default 8); other tasks: "
                          "frames spread over each clip (default 3)")
    src.add_argument("--start", type=int, default=0, metavar="N",
                     help="clips: first frame used (default 0; e.g. past black leader frames)")
    src.add_argument("--crop", type=int, metavar="N", help="centre crop side of the ground truth, 0 = whole "
                     "(default: sr/dnsr 384, denoise 256; deblock: N x N pans / clip centres instead "
                     "of 320x240)")
    src.add_argument("--limit", type=int, metavar="N", help="only the first N pictures")
    deg = ap.add_argument_group("degradation")
    deg.add_argument("--scale", type=int, choices=(2, 4), help="sr: 2 (default) or 4")
    deg.add_argument("--sigma", type=float, help="denoise/dnsr: Gaussian sigma, 0-255 scale (default 25)")
    deg.add_argument("--crf", type=float, help="deblock: libx264 CRF (default 40)")
    deg.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    met = ap.add_argument_group("methods")
    met.add_argument("--model", action="append", default=[], metavar="NAME_OR_PATH",
                     help="also evaluate this model (repeatable); dnsr: the joint model")
    met.add_argument("--oracle", action="store_true",
                     help="denoise/deblock/dnsr: also ours at the true level")
    met.add_argument("--peers", metavar="LIST", help="comma-separated peer keys or prefixes (e.g. "
                     "lanczos,znedi3 or bm3d), or 'none'; default: all peers of the task")
    ap.add_argument("--out", type=Path, help="output folder (default eval-out/TASK)")
    ap.add_argument("--crops", type=int, default=3, metavar="N", help="side-by-side crops of the first N "
                    "pictures (default 3)")
    return ap


def _check(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    t = a.task
    for opt, tasks in (("scale", ("sr",)), ("sigma", ("denoise", "dnsr")), ("crf", ("deblock",))):
        if getattr(a, opt) is not None and t not in tasks:
            note = " (dnsr is x2)" if opt == "scale" else ""
            ap.error(f"--{opt} applies to {' and '.join(tasks)}, not {t}{note}")
    if a.sigma is not None and not 0 < a.sigma <= 75:
        ap.error(f"--sigma must be in (0, 75] (0-255 scale), got {a.sigma:g}")
    if a.crf is not None and not 0 <= a.crf <= 51:
        ap.error(f"--crf must be in 0..51 (libx264), got {a.crf:g}")
    for opt, lo in (("crop", 0), ("limit", 1), ("frames", 1), ("crops", 0), ("start", 0)):
        v = getattr(a, opt)
        if v is not None and v < lo:
            ap.error(f"--{opt} must be >= {lo}, got {v}")
    if a.crop and a.crop < 32:
        ap.error(f"--crop must be 0 (whole picture) or at least 32, got {a.crop}")
    if a.all_pictures and not a.manifest:
        ap.error("--all-pictures needs --manifest")
    if a.start and not a.clips:
        ap.error("--start applies to --clips")
    for m in a.model:
        p = Path(m).expanduser()
        if (p.suffix in MODEL_SUFFIXES or "/" in m) and not p.is_file():
            ap.error(f"--model {m}: no such model file")
    for p in [*(a.images or []), *(a.clips or [])]:
        if not p.is_file():
            ap.error(f"no such file: {p}")
    if a.peers and a.peers != "none":
        keys = ev.peer_keys(t)
        bad = [x for x in a.peers.split(",") if not any(k == x or k.startswith(x) for k in keys)]
        if bad:
            ap.error(f"--peers: unknown for {t}: {', '.join(bad)}; {t} peers: {', '.join(keys)}")


def _pictures(ap: argparse.ArgumentParser, a: argparse.Namespace) -> list[tuple[str, list[np.ndarray]]]:
    from ..training import data, tasks

    paths: list[Path] = list(a.images or [])
    if a.manifest:
        try:
            listed = data.read_manifest(a.manifest)
        except FileNotFoundError as e:
            ap.error(str(e))
        train, held = data.split(listed)
        chosen = [p for p in (train + held if a.all_pictures else held) if p.is_file()]
        if not chosen:
            ap.error(f"{a.manifest}: no {'' if a.all_pictures else 'held-out '}pictures found "
                     f"(held out: {', '.join(data.HELD_OUT_WALLPAPERS + data.HELD_OUT_SKIMAGE)})")
        paths += tasks.unique_pictures(chosen)
    if not paths and not a.clips:
        paths = skimage_held_out()
    out: list[tuple[str, list[np.ndarray]]] = []
    names: set[str] = set()
    for p in paths:
        try:
            img = data.box_shrink(data.load_rgb(p), 2)
        except OSError as e:
            ap.error(f"cannot read image {p}: {e}")
        out.append((_unique(data.picture_name(p), names), [img]))
    for c in a.clips or []:
        out.append((_unique(c.stem, names), _clip_frames(ap, c, a)))
    return out[: a.limit] if a.limit else out


def _unique(name: str, seen: set[str]) -> str:
    n, k = name, 2
    while n in seen:
        n, k = f"{name}-{k}", k + 1
    seen.add(n)
    return n


def _clip_frames(ap: argparse.ArgumentParser, path: Path, a: argparse.Namespace) -> list[np.ndarray]:
    import vapoursynth as vs

    from .. import color
    from ..bridge import frame_to_array

    if not hasattr(vs.core, "bs"):
        ap.error("--clips needs the bestsource plugin (pip install vapoursynth-bestsource)")
    try:
        clip = vs.core.bs.VideoSource(str(path))
    except vs.Error as e:
        ap.error(f"cannot open clip {path}: {e}")
    rgb = color.to_rgbs(clip, color.describe(clip))
    n = clip.num_frames
    if a.start >= n:
        ap.error(f"{path}: --start {a.start} is past the clip's last frame ({n - 1})")
    if a.task == "deblock":
        picks = list(range(a.start, min(n, a.start + (a.frames or 8))))
        if len(picks) < 2:
            ap.error(f"{path}: deblock needs at least 2 frames, the clip has {n - a.start} from "
                     f"--start {a.start}")
    else:
        k = min(n - a.start, a.frames or 3)
        picks = sorted({a.start + round(i * (n - 1 - a.start) / max(1, k - 1)) for i in range(k)})
    return [np.clip(frame_to_array(rgb.get_frame(i)), 0.0, 1.0) for i in picks]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser()
    a = ap.parse_args(argv)
    _check(ap, a)
    pkg = logging.getLogger("vsrestore")
    if not logging.getLogger().handlers and not pkg.handlers:  # progress of vsrestore only, to stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        pkg.addHandler(handler)
        pkg.setLevel(logging.INFO)
    cfg = ev.Config(task=a.task, scale=a.scale or 2, sigma=a.sigma if a.sigma is not None else 25.0,
                    crf=a.crf if a.crf is not None else 40.0, models=tuple(a.model), oracle=a.oracle,
                    peers=None if a.peers is None else tuple(p for p in a.peers.split(",") if p != "none"),
                    seed=a.seed, keep=a.crops)
    pictures = _pictures(ap, a)
    if not pictures:
        ap.error("no pictures to evaluate")
    crop = a.crop if a.crop is not None else ev.DEFAULT_CROP.get(a.task)
    window = (a.crop, a.crop) if a.task == "deblock" and a.crop else None
    log.info("eval %s: %d pictures: %s", a.task, len(pictures), ", ".join(n for n, _ in pictures))
    try:
        samples = ev.make_samples(cfg, pictures, crop, window=window, frames=a.frames or 8)
    except (ValueError, RuntimeError) as e:
        print(f"vsrestore eval: {e}", file=sys.stderr)
        return 2
    res = ev.evaluate(cfg, samples)
    res["command"] = "vsrestore eval " + shlex.join(argv)
    res["settings"] = _settings(a, cfg, crop, samples)
    from . import report as eval_report

    out = a.out or Path("eval-out") / a.task
    files = eval_report.write(res, out, samples)
    _summary(res)
    print(f"wrote {', '.join(str(f) for f in files)}", file=sys.stderr)
    return 0


def _settings(a: argparse.Namespace, cfg: ev.Config, crop: int | None,
              samples: list[ev.Sample]) -> dict[str, Any]:
    import vsrestore

    s: dict[str, Any] = {"task": cfg.task, "seed": cfg.seed, "models": list(cfg.models), "oracle": cfg.oracle,
                         "peers": a.peers or "all", "vsrestore": vsrestore.__version__,
                         "sizes": {x.name: list(x.ref[0].shape[1:]) for x in samples},
                         "frames": {x.name: len(x.ref) for x in samples}}
    if cfg.task == "sr":
        s["scale"] = cfg.scale
    if cfg.task in ("denoise", "dnsr"):
        s["sigma"] = cfg.sigma
    if cfg.task == "deblock":
        s["crf"] = cfg.crf
        s["encoded_frames"] = a.frames or 8
        s["levels"] = {x.name: round(float(x.level or 0), 3) for x in samples}
        kind = "clip centres" if not (a.images or a.manifest) and a.clips else "pans"
        size = f"{samples[0].ref[0].shape[2]}x{samples[0].ref[0].shape[1]}" if samples else ""
        s["crop_text"] = f"{size} {kind}" if samples else ""
        if a.clips:
            s["start"] = a.start
    else:
        s["crop"] = crop
        s["crop_text"] = f"centre crops of {crop} px" if crop else "whole pictures"
    return s


def _summary(res: dict[str, Any]) -> None:
    from . import report as eval_report

    main = res["main_metric"]
    label = res["metrics"][main]["label"]
    n = len(res["pictures"])
    print(f"\nvsrestore eval {res['task']} on {n} picture{'s' * (n != 1)}: {label}", file=sys.stderr)
    for r in res["methods"]:
        if r["status"] == "ok":
            d = r.get("delta_vs_best_peer")
            st = f" [{eval_report.setting_text(r['setting'])}]" if r.get("setting") else ""
            print(f"  {r['mean'][main]:8.3f} {'' if d is None else f'{d:+7.2f}':>7}  {r['label']}{st}",
                  file=sys.stderr)
        else:
            print(f"  skipped          {r['label']}: {r['reason']}", file=sys.stderr)
