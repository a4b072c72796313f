"""Train a compact fidelity super-resolution model (spandrel "Compact" / SRVGGNetCompact).

Reproduce the shipped model with the command in its model card, e.g.::

    vsrestore train sr --name sr-compact-x2 --scale 2 --steps 20000

Checkpoints are written every ``--ckpt-every`` steps to ``--work`` and a run that
finds one resumes from it. The result is a safetensors file plus a JSON model
card (architecture, parameters, data, held-out set, steps, measured metrics).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data

log = logging.getLogger("vsrestore.train")


@dataclass(frozen=True, kw_only=True)
class SRConfig:
    name: str = "sr-compact-x2"
    scale: int = 2
    num_feat: int = 48
    num_conv: int = 12
    steps: int = 20000
    batch: int = 16
    patch: int = 48
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
    ckpt_every: int = 500
    eval_crop: int = 384


def build_model(cfg: SRConfig) -> torch.nn.Module:
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=3, num_out_ch=3, num_feat=cfg.num_feat, num_conv=cfg.num_conv,
                   upscale=cfg.scale)


class PatchSampler:
    """Random aligned LR/HR patches with flips and 90-degree rotations."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]], scale: int, patch: int,
                 rng: np.random.Generator) -> None:
        self.pairs = [(lr, hr) for lr, hr in pairs if min(lr.shape[1:]) > patch]
        areas = np.array([lr.shape[1] * lr.shape[2] for lr, _ in self.pairs], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.scale, self.patch, self.rng = scale, patch, rng

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, p = self.scale, self.patch
        lrs = np.empty((n, 3, p, p), np.float32)
        hrs = np.empty((n, 3, p * s, p * s), np.float32)
        for i in range(n):
            lr, hr = self.pairs[self.rng.choice(len(self.pairs), p=self.weights)]
            y = int(self.rng.integers(0, lr.shape[1] - p + 1))
            x = int(self.rng.integers(0, lr.shape[2] - p + 1))
            a = lr[:, y: y + p, x: x + p]
            b = hr[:, y * s: (y + p) * s, x * s: (x + p) * s]
            k = int(self.rng.integers(0, 8))
            if k & 1:
                a, b = a[:, :, ::-1], b[:, :, ::-1]
            if k & 2:
                a, b = a[:, ::-1], b[:, ::-1]
            if k & 4:
                a, b = a.transpose(0, 2, 1), b.transpose(0, 2, 1)
            lrs[i], hrs[i] = a, b
        return torch.from_numpy(lrs), torch.from_numpy(hrs)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    model.eval()
    scores = []
    for lr, hr in pairs:
        out = model(torch.from_numpy(lr)[None]).clamp(0, 1)[0].numpy()
        scores.append(data.psnr_y(out, hr))
    model.train()
    return float(np.mean(scores))


def _save_ckpt(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LRScheduler, step: int,
               rng: np.random.Generator) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "step": step, "torch_rng": torch.get_rng_state()}, tmp)
    tmp.with_suffix(".rng.json").write_text(json.dumps(rng.bit_generator.state))
    tmp.replace(path)
    tmp.with_suffix(".rng.json").replace(path.with_suffix(".rng.json"))


def train(cfg: SRConfig, manifest: Path, out_dir: Path, work: Path) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    paths = data.read_manifest(manifest)
    train_paths, held = data.split(paths)
    log.info("corpus: %d training pictures, %d held out", len(train_paths), len(held))
    t0 = time.time()
    train_pairs = data.sr_pairs(train_paths, cfg.scale)
    eval_pairs = data.sr_pairs(held, cfg.scale, crop=cfg.eval_crop)
    log.info("prepared pairs in %.0f s", time.time() - t0)

    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps,
                                                pct_start=0.05, final_div_factor=100)
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / f"{cfg.name}.ckpt"
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = json.loads(ckpt.with_suffix(".rng.json").read_text())
        step = int(state["step"])
        log.info("resumed from %s at step %d", ckpt, step)
    sampler = PatchSampler(train_pairs, cfg.scale, cfg.patch, rng)
    t_train = time.time()
    model.train()
    while step < cfg.steps:
        lr_b, hr_b = sampler.batch(cfg.batch)
        loss = F.l1_loss(model(lr_b), hr_b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if step % 100 == 0:
            log.info("step %d/%d loss %.5f (%.2f s/step)", step, cfg.steps, loss.item(),
                     (time.time() - t_train) / 100)
            t_train = time.time()
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            _save_ckpt(ckpt, model, opt, sched, step, rng)
        if step % (cfg.ckpt_every * 4) == 0:
            log.info("step %d held-out PSNR-Y %.3f dB", step, evaluate(model, eval_pairs))

    psnr_model = evaluate(model, eval_pairs)
    lanczos = data.lanczos_up([lr for lr, _ in eval_pairs], cfg.scale)
    psnr_lanczos = float(np.mean([data.psnr_y(u, hr)
                                  for u, (_, hr) in zip(lanczos, eval_pairs, strict=True)]))
    params = sum(p.numel() for p in model.parameters())
    card = {
        "name": cfg.name,
        "task": "sr",
        "scale": cfg.scale,
        "kind": "fidelity",
        "architecture": "Compact (SRVGGNetCompact; spandrel id 'Compact')",
        "params": params,
        "receptive_radius": cfg.num_conv + 2,
        "input": "RGB float 0..1, NCHW",
        "loss": "L1 (pixel)",
        "training_data": "offline corpus (shared/data/corpus.sh): plasma/gnome/ukui wallpapers and "
                         "backgrounds, opencv-doc photos; box-shrunk by 2, LR by zimg bicubic b=0 c=0.5",
        "training_pictures": sorted({data.picture_name(p) for p in train_paths}),
        "held_out": sorted({data.picture_name(p) for p in held}),
        "held_out_metric": f"PSNR-Y BT.601 (16-235), 4 px shave, centre {cfg.eval_crop} crop",
        "held_out_psnr_y": round(psnr_model, 3),
        "held_out_psnr_y_lanczos": round(psnr_lanczos, 3),
        "config": asdict(cfg),
        "command": (f"vsrestore train sr --name {cfg.name} --scale {cfg.scale} --num-feat {cfg.num_feat} "
                    f"--num-conv {cfg.num_conv} --steps {cfg.steps} --batch {cfg.batch} "
                    f"--patch {cfg.patch} --lr {cfg.lr} --seed {cfg.seed}"),
        "trained_on": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                      f"{cfg.threads} CPU threads",
        "train_seconds": None,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out_dir / f"{cfg.name}.safetensors"))
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vsrestore train sr", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    d = SRConfig()
    ap.add_argument("--name", default=d.name)
    ap.add_argument("--scale", type=int, default=d.scale)
    ap.add_argument("--num-feat", type=int, default=d.num_feat)
    ap.add_argument("--num-conv", type=int, default=d.num_conv)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--batch", type=int, default=d.batch)
    ap.add_argument("--patch", type=int, default=d.patch)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--threads", type=int, default=d.threads)
    ap.add_argument("--manifest", type=Path, default=data.env_manifest())
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: shipped weights)")
    ap.add_argument("--work", type=Path, default=Path(".vsrestore-train"))
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = SRConfig(name=a.name, scale=a.scale, num_feat=a.num_feat, num_conv=a.num_conv,
                   steps=a.steps, batch=a.batch, patch=a.patch, lr=a.lr, seed=a.seed,
                   threads=a.threads)
    out = a.out or Path(__file__).resolve().parent.parent / "models" / "weights"
    t0 = time.time()
    card = train(cfg, a.manifest, out, a.work)
    card["train_seconds"] = round(time.time() - t0)
    (out / f"{cfg.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    log.info("wrote %s: held-out PSNR-Y %.3f dB (Lanczos %.3f dB)", out / cfg.name,
             card["held_out_psnr_y"], card["held_out_psnr_y_lanczos"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
