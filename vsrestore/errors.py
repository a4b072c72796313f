"""Errors raised by vsrestore: always a :class:`vapoursynth.Error` naming the filter and the fix."""

from __future__ import annotations

import vapoursynth as vs


class VSRestoreError(vs.Error):
    """A :class:`vs.Error` whose message reads ``filter: problem. Fix: ...``."""

    def __init__(self, filter_name: str, problem: str, fix: str | None = None) -> None:
        msg = f"{filter_name}: {problem}"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)
        self.filter_name = filter_name
        self.problem = problem
        self.fix = fix


def check_clip(clip: object, filter_name: str) -> vs.VideoNode:
    """Validate that *clip* is a constant-format, constant-size video node."""
    if not isinstance(clip, vs.VideoNode):
        raise VSRestoreError(
            filter_name,
            f"expected a vs.VideoNode, got {type(clip).__name__}",
            "pass a clip, e.g. core.bs.VideoSource('file.mkv')",
        )
    if clip.format is None or clip.format.id == vs.NONE or clip.width == 0 or clip.height == 0:
        raise VSRestoreError(
            filter_name,
            "the clip has a variable format or size",
            "make it constant first, e.g. clip = core.resize.Bicubic(clip, 1920, 1080, vs.YUV420P10)",
        )
    return clip
