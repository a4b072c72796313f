"""Networks run one after another as one model (e.g. a denoiser feeding an SR network).

A chain's weights are one safetensors file whose keys are ``stages.<i>.<key of stage i>``;
every stage is a spandrel architecture (so each part also loads on its own in other
tools). The first stage may take level planes after the image (DRUNet's noise map);
later stages take the previous stage's image.
"""

from __future__ import annotations

import torch
from torch import nn


class Chain(nn.Module):
    def __init__(self, stages: list[nn.Module]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


class Called(nn.Module):
    """A spandrel model whose descriptor calls it in its own way (input padding, extra inputs)."""

    def __init__(self, model: nn.Module, call: object) -> None:
        super().__init__()
        self.model = model
        self._call = call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(self.model, x)  # type: ignore[operator]


def split_stages(sd: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]] | None:
    """The per-stage state dicts of a chain's weights, or None if *sd* is not a chain."""
    if not sd or not all(k.startswith("stages.") for k in sd):
        return None
    parts: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        idx, _, rest = k[len("stages."):].partition(".")
        if not idx.isdigit() or not rest:
            return None
        parts.setdefault(int(idx), {})[rest] = v
    if sorted(parts) != list(range(len(parts))):
        return None
    return [parts[i] for i in range(len(parts))]
