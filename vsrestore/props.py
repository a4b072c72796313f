"""Frame props vsrestore writes, and the synthesized-content marker (see DESIGN: forensic honesty)."""

from __future__ import annotations

from typing import Any

import vapoursynth as vs

SYNTH_PROP = "vsrestore_synthesized"


def synthesized_stages(props: Any) -> list[str]:
    """The stage names in a frame's ``vsrestore_synthesized`` prop (VapourSynth returns a
    one-element list as a plain value; bytes are decoded)."""
    v = props.get(SYNTH_PROP)
    if v is None:
        return []
    items = v if isinstance(v, (list, tuple)) else [v]
    return [x.decode() if isinstance(x, bytes) else str(x) for x in items]


def mark_synthesized(frame: vs.VideoFrame, stage: str) -> None:
    """Append *stage* to a writable frame's ``vsrestore_synthesized`` list."""
    frame.props[SYNTH_PROP] = [*synthesized_stages(frame.props), stage]
