"""``vsrestore script``: write an editable ``.vpy`` that runs a preset on a video file.

The script spells the preset's stages out as ``vr.<filter>(clip, ...)`` calls (so they can
be edited, reordered or tuned), loads the input with BestSource and ends with
``clip.set_output()``. A forensic preset is checked as ``presets.apply`` checks it (no
synthesizing stage) and its script ends with :func:`vsrestore.presets.forensic_guard`:
if an edit adds a stage that marks its frames ``vsrestore_synthesized`` (a perceptual
model, regrain, despot's inpainting), rendering stops with an error at the first such
frame instead of encoding it. Then::

    vsrestore script film.mkv --preset film -o film.vpy
    vsrestore encode film.vpy -o film-restored.mkv

The file is written atomically (a temporary file renamed into place); messages go to
stderr (``--list`` prints the presets on stdout).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import VSRestoreError

NAME = "script"


def render(source: str | Path, preset: str | Path) -> str:
    """The ``.vpy`` text that loads *source* with BestSource and runs *preset*'s stages."""
    import vsrestore.presets as presets

    p = presets.load(preset)
    presets.check_forensic(p)  # a forensic preset with a synthesizing stage: refused here
    lines = [
        f"# Written by `vsrestore script` from preset '{p.name}'.",
        *(f"# {line}" for line in _wrap(p.description)),
        "# Render with: vsrestore encode THIS.vpy -o OUT.mkv",
        "import vapoursynth as vs",
        "import vsrestore as vr",
    ]
    if p.forensic:
        lines.append("from vsrestore import presets")
    lines += ["", "core = vs.core", f"clip = core.bs.VideoSource({str(Path(source))!r})"]
    for st in p.stages:
        args = "".join(f", {k}={_literal(v)}" for k, v in st.options.items())
        lines.append(f"clip = vr.{st.filter}(clip{args})")
    if p.forensic:
        lines.append(f"clip = presets.forensic_guard(clip, {p.name!r})  # stops synthesized frames")
    lines.append("clip.set_output()")
    return "\n".join(lines) + "\n"


def _literal(v: Any) -> str:
    if isinstance(v, bool | int | float | str) or v is None:
        return repr(v)
    if isinstance(v, list | tuple):
        return repr(list(v))
    raise VSRestoreError(NAME, f"option value {v!r} cannot be written into a script",
                         "use numbers, strings, booleans or lists in the preset")


def _wrap(text: str, width: int = 88) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width - 2:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return out + ([line] if line else [])


def write(source: str | Path, preset: str | Path, out: Path) -> None:
    """Write :func:`render`'s script to *out* atomically."""
    text = render(source, preset)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    import vsrestore.presets as presets

    ap = argparse.ArgumentParser(prog="vsrestore script", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="?", type=Path, help="input video file (read with BestSource)")
    ap.add_argument("--preset", default="default",
                    help=f"shipped preset ({', '.join(presets.available())}) or a .toml file")
    ap.add_argument("-o", "--output", type=Path, help="the .vpy to write")
    ap.add_argument("--list", action="store_true", help="list the shipped presets and exit")
    a = ap.parse_args(argv)
    try:
        if a.list:
            for name in presets.available():
                p = presets.load(name)
                tag = " [forensic]" if p.forensic else ""
                print(f"{name}{tag}: {' -> '.join(s.filter for s in p.stages)}\n    {p.description}")
            return 0
        if a.source is None or a.output is None:
            ap.error("give a source video and -o OUT.vpy (or --list)")
        if a.output.suffix != ".vpy":
            ap.error(f"-o {a.output}: the output must end in .vpy")
        if not a.source.is_file():
            ap.error(f"no such input file: {a.source}")
        write(a.source.resolve(), a.preset, a.output)
    except VSRestoreError as e:
        print(f"vsrestore {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.output} (preset {a.preset}); render it with: vsrestore encode {a.output} "
          "-o OUT.mkv", file=sys.stderr)
    return 0
