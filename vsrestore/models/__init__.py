"""Shipped models: weights (safetensors) and model cards (JSON) inside the package.

>>> import vsrestore as vr
>>> [m.name for m in vr.models.available()]
['sr-compact-x2']
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import VSRestoreError
from ..runtime.loader import LoadedModel, load_model

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# model=None picks these: (task, scale) -> shipped model name
DEFAULTS: dict[tuple[str, int], str] = {
    ("sr", 2): "sr-compact-x2", ("sr", 4): "sr-compact-x4", ("denoise", 1): "denoise-drunet",
    ("denoise", 2): "dnsr-x2", ("deblock", 1): "deblock-drunet"}


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    name: str
    task: str
    scale: int
    kind: str  # fidelity | perceptual | generative
    params: int
    path: Path
    card: dict[str, Any]

    @property
    def synthesizes(self) -> bool:
        """Perceptual/generative models invent detail (see DESIGN: synthesized content)."""
        return self.kind in ("perceptual", "generative")


def available() -> list[ModelInfo]:
    """Every shipped model with its name, task, scale, kind and parameter count."""
    out = []
    for card_path in sorted(WEIGHTS_DIR.glob("*.json")):
        card = json.loads(card_path.read_text())
        weights = card_path.with_suffix(".safetensors")
        if not weights.exists():
            continue
        out.append(ModelInfo(name=card["name"], task=card["task"], scale=int(card["scale"]),
                             kind=card["kind"], params=int(card["params"]), path=weights, card=card))
    return out


def headline(card: dict[str, Any]) -> str:
    """The card's main held-out figure in a few words (``vsrestore models list``)."""
    m = card.get("metrics") or {}
    try:
        if card["task"] == "sr" and card["kind"] == "perceptual":
            return f"ST-LPIPS {m['stlpips']:.4f} (fidelity model {m['stlpips_reference']:.4f})"
        if card["task"] == "sr":
            return f"PSNR-Y {m['psnr_y']:.2f} dB (Lanczos {m['psnr_y_lanczos']:.2f})"
        if card["task"] == "denoise":
            s = m["sigma25"]
            return f"sigma 25: {s['psnr_blind']:.2f} dB blind (noisy {s['psnr_noisy']:.2f})"
        if card["task"] == "deblock":
            s = m["x264_crf40"]
            return f"x264 CRF 40: Y {s['psnr_y_blind']:.2f} dB blind (input {s['psnr_y_input']:.2f})"
        if card["task"] == "dnsr":
            s = m["sigma25"]
            return (f"sigma 25: Y {s['psnr_y_joint']:.2f} dB (denoise then upscale "
                    f"{s['psnr_y_denoise_then_upscale']:.2f})")
    except (KeyError, TypeError):
        pass
    return ""


def info(name: str) -> ModelInfo:
    for m in available():
        if m.name == name:
            return m
    names = ", ".join(m.name for m in available()) or "none"
    raise VSRestoreError("models", f"no shipped model named '{name}'",
                         f"use one of: {names} (vsrestore models list), or a file path")


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime: float, filter_name: str) -> LoadedModel:
    return load_model(path, filter_name)


def resolve(model: str | Path, filter_name: str) -> LoadedModel:
    """A shipped model name or a model file path -> a loaded model (cached per file)."""
    names = {m.name: m for m in available()}
    if isinstance(model, str) and model in names:
        m = names[model]
        lm = _load_cached(str(m.path), m.path.stat().st_mtime, filter_name)
        return LoadedModel(**{**lm.__dict__, "name": m.name, "kind": m.kind,
                              "receptive_radius": m.card.get("receptive_radius"), "card": m.card})
    path = Path(model).expanduser()
    if not path.is_file():
        shipped = ", ".join(names) or "none"
        raise VSRestoreError(filter_name, f"model '{model}' is neither a shipped model nor an "
                             "existing file", f"use a shipped model ({shipped}) or a path to "
                             ".safetensors/.pth/.onnx")
    return _load_cached(str(path), path.stat().st_mtime, filter_name)


def default_for(task: str, scale: int) -> str | None:
    """The shipped model ``model=None`` picks for (task, scale), if it is installed."""
    name = DEFAULTS.get((task, scale))
    return name if name is not None and any(m.name == name for m in available()) else None
