"""vspipe end to end: a .vpy using vr.upscale gives pure y4m on stdout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VPY = """
import vapoursynth as vs
import vsrestore as vr
core = vs.core
clip = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=3, color=[80, 100, 150])
clip = core.std.AddBorders(core.std.Crop(clip, 8, 8, 8, 8), 8, 8, 8, 8, color=[200, 128, 128])
clip = vr.upscale(clip, 2)
clip.set_output()
"""


def vspipe() -> str:
    exe = Path(sys.executable).with_name("vspipe")
    found = str(exe) if exe.exists() else shutil.which("vspipe")
    if not found:
        pytest.fail("vspipe not found next to the interpreter: the vapoursynth wheel provides it")
    return found


def test_vspipe_stdout_is_pure_y4m(tmp_path: Path) -> None:
    script = tmp_path / "up.vpy"
    script.write_text(VPY)
    res = subprocess.run([vspipe(), "-c", "y4m", str(script), "-"], capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    data = res.stdout
    header, _, rest = data.partition(b"\n")
    assert header.startswith(b"YUV4MPEG2 ") and b" W128 " in header + b" " and b" H96 " in header + b" "
    frame_bytes = 128 * 96 * 3 // 2
    pos, frames = 0, 0
    while pos < len(rest):
        assert rest[pos: pos + 6] == b"FRAME\n", f"unexpected bytes at frame {frames}"
        pos += 6 + frame_bytes
        frames += 1
    assert pos == len(rest) and frames == 3  # nothing but y4m, byte for byte
