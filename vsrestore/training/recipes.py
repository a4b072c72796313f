"""Recipes: the exact configuration of every shipped model, by name.

``vsrestore train NAME`` reproduces shipped model NAME from its recipe (the command is
in its model card); ``--steps``/``--out``/``--work``/``--device`` change where and how
long it runs, nothing else. A recipe names the task, the architecture (spandrel ids, so
other tools load the files too), the data, the degradation and the optimiser schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    task: str  # "sr" | "denoise" | "deblock" | "dnsr" (joint denoise + SR)
    scale: int = 1
    kind: str = "fidelity"  # "fidelity" (pixel loss) | "perceptual" (perceptual + adversarial)
    arch: str = "compact"  # "compact" | "drunet" | "chain" (drunet then compact, one network)
    arch_args: dict[str, Any] = field(default_factory=dict)
    data: str = "photo"  # "photo" | "art"
    steps: int = 10000
    batch: int = 16
    patch: int = 48  # input patch side (LR side for SR)
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
    ckpt_every: int = 500
    eval_crop: int = 384  # ground-truth (HR) side of the held-out crops
    max_level: float = 50.0  # denoise/dnsr: noise sigma drawn from U(0, max_level) (0-255 scale)
    init: tuple[str, ...] = ()  # shipped models the weights start from (fine-tuning)
    loss_weights: dict[str, float] = field(default_factory=lambda: {"l1": 1.0})
    summary: str = ""

    def with_overrides(self, **kw: Any) -> Recipe:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


_COMPACT_S = {"num_feat": 32, "num_conv": 12}
_DRUNET_S = {"nc": [32, 48, 96, 192], "nb": 2}
_PERCEPTUAL = {"l1": 1.0, "perceptual": 1.0, "gan": 0.1}

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(name="sr-compact-x2", task="sr", scale=2, arch="compact", arch_args=_COMPACT_S,
           steps=12000, batch=16, patch=48, lr=1e-3,
           summary="x2 fidelity SR for photos and film"),
    Recipe(name="sr-compact-x4", task="sr", scale=4, arch="compact",
           arch_args=_COMPACT_S, steps=8000, batch=16, patch=48, lr=1e-3,
           eval_crop=768, summary="x4 fidelity SR for photos and film"),
    Recipe(name="sr-anime-x2", task="sr", scale=2, arch="compact", arch_args=_COMPACT_S, data="art",
           init=("sr-compact-x2",), steps=2500, batch=16, patch=48, lr=2e-4,
           summary="x2 SR for line art, anime and flat-colour artwork"),
    Recipe(name="sr-perceptual-x2", task="sr", scale=2, kind="perceptual", arch="compact",
           arch_args=_COMPACT_S, init=("sr-compact-x2",), steps=1500, batch=8, patch=32, lr=1e-4,
           loss_weights=_PERCEPTUAL, summary="x2 perceptual SR (sharper, invents texture)"),
    Recipe(name="sr-perceptual-x4", task="sr", scale=4, kind="perceptual", arch="compact",
           arch_args=_COMPACT_S, init=("sr-compact-x4",), steps=1500, batch=8,
           patch=24, lr=1e-4, eval_crop=768,
           loss_weights={**_PERCEPTUAL, "featnorm": 2.0},  # x4: 0.71x the fidelity ST-LPIPS (0.78x without)
           summary="x4 perceptual SR (sharper, invents texture)"),
    Recipe(name="denoise-drunet", task="denoise", arch="drunet", arch_args=_DRUNET_S,
           steps=11000, batch=16, patch=64, lr=4e-4, eval_crop=256,
           summary="noise-level-conditioned denoiser (Gaussian sigma 0-50, blind via estimation)"),
    Recipe(name="deblock-drunet", task="deblock", arch="drunet", arch_args=_DRUNET_S,
           init=("denoise-drunet",), steps=3000, batch=16, patch=64, lr=2e-4, eval_crop=256,
           summary="compression artefact removal (H.264/HEVC/JPEG blocking, ringing, mosquito noise)"),
    Recipe(name="dnsr-x2", task="dnsr", scale=2, arch="chain", init=("denoise-drunet", "sr-compact-x2"),
           steps=5000, batch=16, patch=48, lr=5e-4, eval_crop=384,
           summary="joint denoise + x2 SR: denoise-drunet and sr-compact-x2 fine-tuned end to end"),
)}


def get(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"no recipe named {name!r}; known: {', '.join(RECIPES)}") from None
