"""``vsrestore train NAME``: train a shipped model from its recipe, resumably.

Checkpoints go to ``--work`` every ``ckpt_every`` steps; a run that finds one resumes
from it (same result as an uninterrupted run). The result is ``NAME.safetensors`` plus a
model card ``NAME.json`` (architecture, parameters, data, held-out set, recipe, measured
metrics, the command, the machine and the time it took) in ``--out`` (default: the
package's shipped weights). ``--verify`` retrains a shipped model from scratch into
``WORK/verify/`` and compares its metrics with the shipped card (PSNRs within 0.2 dB) and
its weights with the shipped file.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data, evaluate, recipes, tasks
from .recipes import Recipe

log = logging.getLogger("vsrestore.train")

WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "weights"
HALF_ABOVE = 1_000_000  # parameters: larger networks are stored as float16 (half the size on disk)
_ARCH_TEXT = {"compact": "Compact (SRVGGNetCompact; spandrel id 'Compact')",
              "drunet": "DRUNet (spandrel id 'DRUNet'), noise-level plane as 4th input channel",
              "chain": "chain: DRUNet (spandrel 'DRUNet') then Compact (spandrel 'Compact'), one network"}
_LOSS_TEXT = {"l1": "L1 (pixel)", "perceptual": "VGG16 features (stlpips-pytorch backbone)",
              "featnorm": "unit-normalised VGG16 feature distance (LPIPS-style, no learned weights)",
              "gan": "relativistic average GAN (patch discriminator)"}
_PERCEPTUAL_LOSSES = ("l1", "perceptual", "featnorm", "gan")  # what --loss may set on a perceptual recipe


def build(recipe: Recipe) -> nn.Module:
    """The recipe's network, initialised (from shipped models when ``recipe.init`` names them)."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.DRUNet import DRUNet

    a = recipe.arch_args
    if recipe.arch == "compact":
        net: nn.Module = Compact(num_in_ch=3, num_out_ch=3, num_feat=a["num_feat"], num_conv=a["num_conv"],
                                 upscale=recipe.scale)
    elif recipe.arch == "drunet":
        net = DRUNet(in_nc=4, out_nc=3, nc=list(a["nc"]), nb=a["nb"], act_mode="R",
                     downsample_mode="strideconv", upsample_mode="convtranspose")
    elif recipe.arch == "chain":
        from .. import models
        from ..runtime.chain import Chain

        net = Chain([_copy(models.resolve(name, "train").module) for name in recipe.init])
        return net.train()
    else:
        raise ValueError(f"unknown arch {recipe.arch!r}")
    if recipe.init:
        from safetensors.torch import load_file

        from .. import models

        net.load_state_dict(load_file(str(models.info(recipe.init[0]).path)))
    return net


def _copy(net: nn.Module) -> nn.Module:
    import copy

    net = copy.deepcopy(net)
    for p in net.parameters():
        p.requires_grad_(True)
    return net


def _save_ckpt(path: Path, state: dict[str, Any], rng: np.random.Generator) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.with_suffix(".rng.json").write_text(json.dumps(rng.bit_generator.state))
    tmp.replace(path)
    tmp.with_suffix(".rng.json").replace(path.with_suffix(".rng.json"))


def _receptive_radius(recipe: Recipe) -> int:
    if recipe.arch == "compact":
        return int(recipe.arch_args["num_conv"]) + 2
    return 64  # DRUNet's three downsamplings: context far beyond any tile overlap we would pick


PRECISIONS = ("fp32", "bf16", "fp16")


def train(recipe: Recipe, manifest: Path, out_dir: Path, work: Path, device: str = "cpu",
          precision: str = "fp32") -> dict[str, Any]:
    """Train *recipe* and write its weights to *out_dir*; returns the model card.

    *precision*: ``"fp32"`` (default, the shipped models), or mixed precision for the forward
    and loss (``torch.autocast``): ``"bf16"`` (CPU or GPU) or ``"fp16"`` (CUDA, with a
    gradient scaler). Weights, optimiser state and evaluation stay float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError("precision fp16 needs a CUDA device (use bf16 on the CPU)")
    dev_type = "cuda" if device.startswith("cuda") else "cpu"
    autocast = torch.autocast(dev_type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16,
                              enabled=precision != "fp32")
    scaler = torch.amp.GradScaler(dev_type, enabled=precision == "fp16")
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    train_paths, held = tasks.split_for(recipe, data.read_manifest(manifest))
    log.info("%s: %d training files, %d held out", recipe.name, len(train_paths), len(held))
    t0 = time.time()
    pairs = tasks.prepare(recipe, train_paths, rng)
    log.info("prepared %d pairs in %.0f s", len(pairs), time.time() - t0)

    net = build(recipe).to(device)
    perceptual = recipe.kind == "perceptual"
    params: list[nn.Parameter] = list(net.parameters())
    opt = torch.optim.Adam(params, lr=recipe.lr, betas=(0.9, 0.99))
    sched: torch.optim.lr_scheduler.LRScheduler
    if recipe.steps >= 3:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps,
                                                    pct_start=max(0.05, 2.5 / recipe.steps),
                                                    final_div_factor=100)
    else:  # OneCycleLR fails on 1-2 steps: a smoke run that short keeps the learning rate
        sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    disc = feat = d_opt = None
    if perceptual:
        from .perceptual import PatchDiscriminator, VGGFeatureLoss, relativistic_losses

        disc = PatchDiscriminator().to(device)
        feat = VGGFeatureLoss(recipe.loss_weights.get("perceptual", 0.0),
                              recipe.loss_weights.get("featnorm", 0.0)).to(device)
        d_opt = torch.optim.Adam(disc.parameters(), lr=recipe.lr, betas=(0.9, 0.99))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / f"{recipe.name}.ckpt"
    step, spent = 0, 0.0  # training-loop seconds so far, summed over resumed runs
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True, map_location=device)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        if disc is not None and d_opt is not None:
            disc.load_state_dict(state["disc"])
            d_opt.load_state_dict(state["d_opt"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = json.loads(ckpt.with_suffix(".rng.json").read_text())
        step = int(state["step"])
        spent = float(state.get("seconds", 0.0))
        log.info("resumed from %s at step %d", ckpt, step)
    sampler = tasks.PatchSampler(pairs, recipe.scale, recipe.patch, rng)
    w = recipe.loss_weights
    t_log = t_run = time.time()
    net.train()
    while step < recipe.steps:
        inp, tgt = tasks.training_batch(recipe, sampler, rng)
        inp, tgt = inp.to(device), tgt.to(device)
        with autocast:
            out = net(inp)
            loss = w.get("l1", 1.0) * F.l1_loss(out.float(), tgt)
            if disc is not None and feat is not None and d_opt is not None:
                loss = loss + feat(out, tgt)  # its weights: the recipe's perceptual and featnorm
                for p in disc.parameters():
                    p.requires_grad_(False)
                g_adv, _ = relativistic_losses(disc(tgt).detach().float(), disc(out).float())
                loss = loss + w["gan"] * g_adv
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        if disc is None:
            scaler.update()  # once per step, after every optimiser stepped
        sched.step()
        if disc is not None and d_opt is not None:
            for p in disc.parameters():
                p.requires_grad_(True)
            with autocast:
                _, d_loss = relativistic_losses(disc(tgt).float(), disc(out.detach()).float())
            d_opt.zero_grad(set_to_none=True)
            scaler.scale(d_loss).backward()
            scaler.step(d_opt)
            scaler.update()
        step += 1
        if step % 100 == 0:
            dt = (time.time() - t_log) / 100
            log.info("step %d/%d loss %.5f (%.2f s/step, %.0f min left)", step, recipe.steps, loss.item(),
                     dt, dt * (recipe.steps - step) / 60)
            t_log = time.time()
        if step % recipe.ckpt_every == 0 or step == recipe.steps:
            state = {"model": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "step": step, "torch_rng": torch.get_rng_state(), "seconds": spent + time.time() - t_run}
            if disc is not None and d_opt is not None:
                state |= {"disc": disc.state_dict(), "d_opt": d_opt.state_dict()}
            if scaler.is_enabled():
                state["scaler"] = scaler.state_dict()
            _save_ckpt(ckpt, state, rng)

    spent += time.time() - t_run
    net.eval()
    reference = None
    if perceptual and recipe.init:
        from .. import models

        reference = models.resolve(recipe.init[0], "train").module
    log.info("evaluating on %d held-out files", len(held))
    half = sum(p.numel() for p in net.parameters()) > HALF_ABOVE
    if half:  # measured as stored: the weights rounded to float16
        with torch.no_grad():
            for v in net.state_dict().values():
                if v.is_floating_point():
                    v.copy_(v.half().float())
    calibration = _calibrate(recipe, net, train_paths, device)
    metrics = evaluate.evaluate(recipe, net, held, device, reference, _scale(calibration))
    out_dir.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in net.state_dict().items()}, str(out_dir / f"{recipe.name}.safetensors"))
    return card(recipe, net, train_paths, held, metrics, device, round(spent),
                "float16" if half else "float32", precision, calibration)


def _calibrate(recipe: Recipe, net: nn.Module, train_paths: list[Path], device: str) -> dict[str, Any] | None:
    """Deblock models: the blind level's calibration factor, from training pictures."""
    if recipe.task != "deblock":
        return None
    log.info("calibrating the blind level on training pictures")
    return evaluate.calibrate_level_scale(net, train_paths, device)


def _scale(calibration: dict[str, Any] | None) -> float:
    return float(calibration["level_scale"]) if calibration else 1.0


def _command(recipe: Recipe, precision: str = "fp32") -> str:
    """The command that reproduces this run (overrides of the registered recipe spelled out)."""
    cmd = f"vsrestore train {recipe.name}"
    if precision != "fp32":
        cmd += f" --precision {precision}"
    base = recipes.RECIPES.get(recipe.name)
    if base is not None and recipe.steps != base.steps:
        cmd += f" --steps {recipe.steps}"
    if base is not None and recipe.threads != base.threads:
        cmd += f" --threads {recipe.threads}"
    if base is not None and recipe.loss_weights != base.loss_weights:
        cmd += " --loss " + ",".join(f"{k}={v:g}" for k, v in recipe.loss_weights.items())
    return cmd


def parse_loss(text: str, recipe: Recipe) -> dict[str, float]:
    """``"l1=0.5,gan=0.2"`` -> *recipe*'s loss weights with those changed (ValueError if bad)."""
    weights = dict(recipe.loss_weights)
    known = list(_PERCEPTUAL_LOSSES) if recipe.kind == "perceptual" else list(weights)
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"--loss {text!r}: use NAME=WEIGHT[,NAME=WEIGHT...] with NAME one of "
                             f"{', '.join(known)} (the losses of {recipe.name})")
        try:
            weights[key] = float(value)
        except ValueError:
            raise ValueError(f"--loss {text!r}: {value.strip()!r} is not a number") from None
        if not 0 <= weights[key] < float("inf"):
            raise ValueError(f"--loss {text!r}: a weight must be finite and >= 0")
    if not any(weights.values()):
        raise ValueError(f"--loss {text!r}: at least one weight must be above 0")
    return weights


def card(recipe: Recipe, net: nn.Module, train_paths: list[Path], held: list[Path],
         metrics: dict[str, Any], device: str, seconds: int | None = None,
         stored: str = "float32", precision: str = "fp32",
         calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    level = {"denoise": "4th input plane = noise sigma / 255 (0-255 scale sigma)",
             "dnsr": "4th input plane = noise sigma / 255 of the low-resolution input",
             "deblock": "4th input plane = RMS compression error / 255 (0-255 scale)"}.get(recipe.task)
    where = (torch.cuda.get_device_name(0) if device.startswith("cuda")
             else f"{platform.processor() or platform.machine()}, {recipe.threads} CPU threads")
    extra = {} if calibration is None else {
        "level_scale": calibration["level_scale"],  # vr.deblock: levels.scaled_level(..., this)
        "level_calibration": {"method": "mean Y-PSNR over factors on training-picture pans "
                                        "(x264 CRF 32/40/46), see training.evaluate.calibrate_level_scale",
                              **{k: v for k, v in calibration.items() if k != "level_scale"}}}
    return {
        "name": recipe.name, "task": recipe.task, "scale": recipe.scale, "kind": recipe.kind,
        "summary": recipe.summary,
        "architecture": _ARCH_TEXT[recipe.arch],
        "params": sum(p.numel() for p in net.parameters()),
        "receptive_radius": _receptive_radius(recipe),
        "input": "RGB float 0..1, NCHW" + (f"; {level}" if level else ""),
        "loss": " + ".join(f"{v:g} x {_LOSS_TEXT[k]}" for k, v in recipe.loss_weights.items()),
        "init": list(recipe.init),
        "training_data": (f"offline corpus (shared/data/corpus.sh), {recipe.data} pictures: "
                          + tasks.DESCRIPTIONS[recipe.task]),
        "training_pictures": sorted({data.picture_name(p) for p in train_paths}),
        "held_out": sorted({data.picture_name(p) for p in held}),
        "metrics_method": evaluate.METHODS[recipe.task],
        "metrics": metrics,
        "recipe": asdict(recipe),
        "command": _command(recipe, precision),
        "trained_on": f"{where}, torch {torch.__version__}",
        "train_seconds": seconds,  # the training loop, summed over resumed runs (no data prep, no eval)
        "weights_dtype": stored,  # the file's; the network runs in float32 (or fp16 where asked)
        **extra,
    }


def reevaluate(name: str, manifest: Path, device: str = "cpu") -> dict[str, Any]:
    """Measure shipped model *name* again on its held-out set (``vsrestore models evaluate``):
    its card with fresh ``metrics`` (the training record -- time, machine, recipe, command -- is kept)."""
    from .. import models

    recipe = recipes.get(name)
    info = models.info(name)
    net = models.resolve(name, "evaluate").module.to(device)
    train_paths, held = tasks.split_for(recipe, data.read_manifest(manifest))
    reference = models.resolve(recipe.init[0], "evaluate").module if recipe.kind == "perceptual" else None
    calibration = _calibrate(recipe, net, train_paths, device)
    metrics = evaluate.evaluate(recipe, net, held, device, reference, _scale(calibration))
    from safetensors import safe_open

    with safe_open(str(info.path), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    fresh = card(recipe, net, train_paths, held, metrics, device,
                 stored="float16" if "F16" in dtypes else "float32", calibration=calibration)
    for key in ("trained_on", "train_seconds", "recipe", "command"):  # the training record
        fresh[key] = info.card.get(key, fresh.get(key))
    return fresh


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vsrestore train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help=f"recipe: {', '.join(recipes.RECIPES)}")
    ap.add_argument("--steps", type=int, default=None,
                    help="override (a shorter run is not the shipped model)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--loss", default=None, metavar="NAME=W,...",
                    help="change loss weights of the recipe, e.g. l1=0.5,gan=0.2 (an experiment: "
                         "the card's command spells it out)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="mixed precision of the forward pass: bf16 (CPU/GPU) or fp16 (CUDA); "
                         "the shipped models are fp32 runs")
    ap.add_argument("--manifest", type=Path, default=data.env_manifest())
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: shipped weights)")
    ap.add_argument("--work", type=Path, default=Path(".vsrestore-train"))
    ap.add_argument("--verify", action="store_true",
                    help="retrain the shipped model from scratch (into WORK/verify/, never from the "
                         "shipped run's checkpoints) and compare with its card: exit 1 if a PSNR "
                         "moves by more than 0.2 dB")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        recipe = recipes.get(a.name).with_overrides(steps=a.steps, threads=a.threads)
    except KeyError as e:
        ap.error(str(e))
    if a.loss is not None:
        try:
            recipe = recipe.with_overrides(loss_weights=parse_loss(a.loss, recipe))
        except ValueError as e:
            ap.error(str(e))
    if a.steps is not None and a.steps < 1:
        ap.error(f"--steps {a.steps}: a run needs at least 1 step")
    if a.threads is not None and a.threads < 1:
        ap.error(f"--threads {a.threads}: use 1 or more (the shipped cards name theirs)")
    device_error = _device_problem(a.device)
    if device_error:
        ap.error(device_error)
    if a.verify and (a.steps is not None or a.out is not None or a.loss is not None):
        ap.error("--verify retrains the shipped recipe as it is: drop --steps, --loss and --out")
    work = a.work / "verify" / recipe.name if a.verify else a.work
    out = a.work / "verify" / "out" if a.verify else (a.out or WEIGHTS)
    if a.precision == "fp16" and not a.device.startswith("cuda"):
        ap.error("--precision fp16 needs --device cuda (use bf16 on the CPU)")
    try:
        result = train(recipe, a.manifest, out, work, a.device, a.precision)
    except FileNotFoundError as e:  # the manifest, or a picture it lists
        ap.error(str(e))
    (out / f"{recipe.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s (%s): %s", out / recipe.name, f"{result['train_seconds'] / 60:.0f} min",
             json.dumps(result["metrics"]))
    if not a.verify:
        return 0
    shipped = json.loads((WEIGHTS / f"{recipe.name}.json").read_text())
    rows = compare_metrics(shipped["metrics"], result["metrics"])
    same = (WEIGHTS / f"{recipe.name}.safetensors").read_bytes() == (
        out / f"{recipe.name}.safetensors").read_bytes()
    for key, old, new, ok in rows:
        log.info("%-40s shipped %9.4f  retrained %9.4f  %+.4f%s", key, old, new, new - old,
                 "" if ok else "  (> 0.2 dB)")
    log.info("weights %s the shipped file; shipped run %s min on %s, this one %.0f min on %s",
             "bit-identical to" if same else "differ from", f"{shipped.get('train_seconds', 0) / 60:.0f}",
             shipped.get("trained_on", "?"), result["train_seconds"] / 60, result["trained_on"])
    return 0 if all(ok for *_, ok in rows) else 1


def _device_problem(device: str) -> str | None:
    """Why *device* cannot train here (None: it can)."""
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return None
    if kind != "cuda" or (index and not index.isdigit()):
        return f"--device {device!r}: use cpu, cuda or cuda:N"
    if not torch.cuda.is_available():
        return f"--device {device}: torch sees no CUDA GPU here; use --device cpu"
    if index and int(index) >= torch.cuda.device_count():
        return f"--device {device}: torch sees {torch.cuda.device_count()} GPU(s); use cuda:0"
    return None


def compare_metrics(shipped: dict[str, Any], new: dict[str, Any], prefix: str = "",
                    tolerance_db: float = 0.2) -> list[tuple[str, float, float, bool]]:
    """(key, shipped, retrained, within tolerance) for every number in two cards' metrics.

    PSNR figures (keys with "psnr") must agree within *tolerance_db*; other numbers (ST-LPIPS,
    estimated levels) are listed but not judged. A metric missing from *new* fails.
    """
    rows: list[tuple[str, float, float, bool]] = []
    for k, v in shipped.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += compare_metrics(v, new.get(k, {}) if isinstance(new.get(k), dict) else {},
                                    f"{key}.", tolerance_db)
        elif isinstance(v, int | float):
            got = new.get(k)
            if not isinstance(got, int | float):
                rows.append((key, float(v), float("nan"), False))
            else:
                rows.append((key, float(v), float(got), "psnr" not in k or abs(got - v) <= tolerance_db))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
