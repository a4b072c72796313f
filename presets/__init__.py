"""Presets: TOML files naming a chain of vsrestore stages and their options.

Format (``presets/default.toml``)::

    name = "default"
    description = "..."
    forensic = false          # true: refuse stages that synthesize detail

    [[stage]]
    filter = "upscale"        # a public vsrestore filter
    scale = 2                 # its keyword options

Use from a ``.vpy``::

    import vsrestore.presets as presets
    clip = presets.apply(clip, "default")
"""

from __future__ import annotations

import inspect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vapoursynth as vs

from vsrestore.errors import VSRestoreError

PRESET_DIR = Path(__file__).resolve().parent
NAME = "presets"


@dataclass(frozen=True, kw_only=True)
class Stage:
    filter: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    description: str
    forensic: bool
    stages: tuple[Stage, ...]


def available() -> list[str]:
    """Names of the shipped presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def _filters() -> dict[str, Any]:
    import vsrestore

    return {n: getattr(vsrestore, n) for n in vsrestore.__all__
            if inspect.isfunction(getattr(vsrestore, n)) and n != "auto_backend"}


def load(preset: str | Path) -> Preset:
    """Load a shipped preset by name, or a TOML file by path, and validate it."""
    path = Path(preset)
    if path.suffix != ".toml":
        path = PRESET_DIR / f"{preset}.toml"
    if not path.is_file():
        raise VSRestoreError(NAME, f"no preset '{preset}'",
                             f"use one of {', '.join(available())} or a path to a .toml file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise VSRestoreError(NAME, f"{path} is not valid TOML ({e})", "fix the file's syntax") from e
    filters = _filters()
    stages = []
    for i, raw in enumerate(data.get("stage", [])):
        opts = dict(raw)
        fname = opts.pop("filter", None)
        if fname not in filters:
            raise VSRestoreError(NAME, f"{path.name}: stage {i + 1} names unknown filter {fname!r}",
                                 f"use one of {', '.join(sorted(filters))}")
        params = inspect.signature(filters[fname]).parameters
        bad = [k for k in opts if k not in params or k == "clip"]
        if bad:
            raise VSRestoreError(NAME, f"{path.name}: stage {i + 1} ({fname}) has unknown options "
                                 f"{bad}", f"valid options: {', '.join(p for p in params if p != 'clip')}")
        stages.append(Stage(filter=fname, options=opts))
    return Preset(name=str(data.get("name", path.stem)), description=str(data.get("description", "")),
                  forensic=bool(data.get("forensic", False)), stages=tuple(stages))


def apply(clip: vs.VideoNode, preset: str | Path | Preset, **overrides: Any) -> vs.VideoNode:
    """Run a preset's stages on *clip*. ``overrides`` (e.g. ``backend=...``) go to every
    stage that accepts them."""
    p = preset if isinstance(preset, Preset) else load(preset)
    filters = _filters()
    for st in p.stages:
        fn = filters[st.filter]
        params = inspect.signature(fn).parameters
        opts = {**st.options, **{k: v for k, v in overrides.items() if k in params}}
        clip = fn(clip, **opts)
    return clip
