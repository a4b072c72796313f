"""The README's main job: `vsrestore demo` writes HEVC Main10 and a before/after PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image


def test_demo_writes_hevc_main10_and_png(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "vsrestore", "demo", "-o", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    with av.open(str(tmp_path / "demo.mkv")) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == "hevc"
        assert st.codec_context.profile == "Main 10"
        assert (st.width, st.height) == (448, 336)
        frames = [f for f in c.decode(st)]
        assert len(frames) == 24 and frames[0].format.name == "yuv420p10le"
    png = np.asarray(Image.open(tmp_path / "demo_compare.png"))
    assert png.shape == (336, 3 * 448, 3)
    before, after, truth = (png[:, i * 448:(i + 1) * 448].astype(float) for i in range(3))
    rows = slice(24, None)  # below the labels
    mse = [np.mean((x[rows] - truth[rows]) ** 2) for x in (before, after)]
    assert mse[1] < mse[0]  # the restored frame is closer to the truth than Lanczos
