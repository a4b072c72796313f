"""Presets: TOML files naming a chain of vsrestore stages and their options.

Format (``presets/default.toml``)::

    name = "default"
    description = "..."
    forensic = false          # true: refuse stages that synthesize detail

    [[stage]]
    filter = "upscale"        # a public vsrestore filter
    scale = 2                 # its keyword options

Shipped: ``default`` (x2 fidelity SR), ``anime`` (deblock, x2 line-art SR), ``film``
(stabilize, deflicker, despot, degrain, x2 SR, 35 mm regrain: synthesizes grain),
``archival`` (the film repairs plus faded-colour restoration and denoising, no upscale,
no grain), ``forensic`` (deblock, x2 fidelity SR; refuses synthesizing stages),
``realtime`` (x2 luma-only SR). ``vsrestore script VIDEO --preset NAME -o OUT.vpy`` writes
a preset out as an editable script.

Use from a ``.vpy``::

    import vsrestore.presets as presets
    clip = presets.apply(clip, "film")
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
    stage that accepts them.

    A forensic preset (``forensic = true``) refuses, before anything runs, every stage that
    would synthesize detail (see :func:`synthesizing_reason`), and guards its output: a frame
    that still carries ``vsrestore_synthesized`` (e.g. despot inpainting a defect no other
    frame shows) raises an error when requested instead of reaching the encoder.
    """
    p = preset if isinstance(preset, Preset) else load(preset)
    check_forensic(p, **overrides)
    filters = _filters()
    for st in p.stages:
        fn = filters[st.filter]
        clip = fn(clip, **_options(fn, st, overrides))
    return forensic_guard(clip, p.name) if p.forensic else clip


def _options(fn: Any, st: Stage, overrides: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    return {**st.options, **{k: v for k, v in overrides.items() if k in params}}


def check_forensic(preset: Preset, **overrides: Any) -> None:
    """Raise if *preset* is forensic and a stage (with *overrides*) would synthesize detail."""
    if not preset.forensic:
        return
    filters = _filters()
    for i, st in enumerate(preset.stages):
        why = synthesizing_reason(st.filter, _options(filters[st.filter], st, overrides))
        if why:
            raise VSRestoreError(NAME, f"forensic preset '{preset.name}': stage {i + 1} ({st.filter}) "
                                 f"{why}", "remove the stage, or use a fidelity model (vsrestore "
                                 "models list: kind 'fidelity'), or a preset that is not forensic")


def synthesizing_reason(filter_name: str, options: dict[str, Any]) -> str | None:
    """Why a stage would synthesize detail (DESIGN: synthesized content), or None.

    ``regrain`` at any strength above 0 synthesizes grain; a stage whose ``model`` is a
    shipped perceptual or generative model invents detail; a model given as a file has no
    card saying what it was trained for, so forensic work cannot vouch for it.
    """
    if filter_name == "regrain" and options.get("strength", 1.0) != 0:
        return "synthesizes film grain"
    model = options.get("model")
    if model is None:
        return None
    from vsrestore import models

    shipped = {m.name: m for m in models.available()}
    if isinstance(model, str) and model in shipped:
        m = shipped[model]
        return f"uses the {m.kind} model '{m.name}', which invents detail" if m.synthesizes else None
    return f"uses the model file '{model}', whose kind (fidelity or not) is unknown"


def forensic_guard(clip: vs.VideoNode, preset_name: str) -> vs.VideoNode:
    """*clip*, but requesting a frame marked ``vsrestore_synthesized`` raises an error."""
    from vsrestore.props import SYNTH_PROP, synthesized_stages

    def check(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        if SYNTH_PROP in f.props:
            stages = ", ".join(synthesized_stages(f.props))
            raise VSRestoreError(NAME, f"forensic preset '{preset_name}': frame {n} holds content "
                                 f"synthesized by {stages}", "remove that stage from the preset")
        return f

    return vs.core.std.ModifyFrame(clip, clip, check)
