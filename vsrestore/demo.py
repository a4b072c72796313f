"""The README's main job: restore an embedded clip end to end, no download.

``vsrestore demo -o OUT`` builds a short degraded clip from a photo that ships
inside the scikit-image wheel (a panning crop, downscaled 2x with Catmull-Rom, sensor
noise of sigma 8 (0-255), 8-bit YUV 4:2:0), writes ``OUT/demo.vpy`` that restores it
(blind ``vr.denoise``, then ``vr.upscale`` x2), encodes it with ``vsrestore encode`` to
HEVC Main10 (``OUT/demo.mkv``) and saves a side-by-side before/after PNG
(``OUT/demo_compare.png``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("vsrestore.demo")

VPY = '''\
# vsrestore demo: written by `vsrestore demo`; render with `vsrestore encode demo.vpy -o demo.mkv`
import vsrestore as vr
from vsrestore.demo import demo_clip

src = demo_clip()                 # 224x168 YUV420P8, 24 frames, noisy, from a scikit-image photo
clip = vr.denoise(src)            # noise level estimated from the clip
clip = vr.upscale(clip, 2)        # shipped x2 fidelity model
clip.set_output()
'''


def demo_frames(frames: int = 24, size: tuple[int, int] = (336, 448)) -> list[np.ndarray]:
    """Ground-truth RGB frames: a crop window panning over scikit-image's astronaut."""
    from skimage import data

    img = data.astronaut().astype(np.float32).transpose(2, 0, 1) / 255.0  # (3, 512, 512)
    h, w = size
    out = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        y = int(round(t * (img.shape[1] - h) * 0.5))
        x = int(round(t * (img.shape[2] - w)))
        out.append(np.ascontiguousarray(img[:, y: y + h, x: x + w]))
    return out


NOISE = 8.0  # sigma of the demo's sensor noise, 0-255 scale


def demo_clip(frames: int = 24):  # -> vs.VideoNode
    """The degraded demo input: ground truth downscaled 2x, seeded Gaussian noise, 8-bit YUV
    4:2:0 BT.709."""
    import vapoursynth as vs

    from .bridge import clip_from_arrays

    hr = clip_from_arrays(demo_frames(frames), vs.RGBS)
    rng = np.random.default_rng(2024)
    noise = [rng.normal(0.0, NOISE / 255.0, (3, hr.height // 2, hr.width // 2)).astype(np.float32)
             for _ in range(frames)]
    lr = vs.core.resize.Bicubic(hr, hr.width // 2, hr.height // 2, filter_param_a=0,
                                filter_param_b=0.5)
    lr = vs.core.std.Expr([lr, clip_from_arrays(noise, vs.RGBS)], "x y +")
    lr = vs.core.resize.Point(lr, format=vs.YUV420P8, matrix_s="709", range_s="limited",
                              dither_type="none")
    return vs.core.std.SetFrameProps(lr, _Matrix=1, _Transfer=1, _Primaries=1, _Range=0,
                                     _ChromaLocation=0)


def compare_png(path: Path, frame: int = 12) -> None:
    """Before (Lanczos) | after (vr.denoise + vr.upscale) | ground truth, one frame, as a PNG."""
    import vapoursynth as vs
    from PIL import Image, ImageDraw

    import vsrestore as vr

    from .bridge import frame_to_array

    src = demo_clip()
    before = vs.core.resize.Lanczos(src, src.width * 2, src.height * 2, format=vs.RGB24,
                                    filter_param_a=3)
    after = vs.core.resize.Point(vr.upscale(vr.denoise(src), 2), format=vs.RGB24)
    truth = (np.clip(demo_frames()[frame], 0, 1) * 255 + 0.5).astype(np.uint8)
    tiles = [frame_to_array(c.get_frame(frame), np.uint8) for c in (before, after)] + [truth]
    canvas = np.concatenate([t.transpose(1, 2, 0) for t in tiles], axis=1)
    im = Image.fromarray(canvas)
    draw = ImageDraw.Draw(im)
    w = tiles[0].shape[2]
    for i, label in enumerate(("before: Lanczos 2x", "after: vr.denoise, vr.upscale 2x",
                               "ground truth")):
        draw.rectangle([i * w + 4, 4, i * w + 8 + 7 * len(label), 18], fill=(0, 0, 0))
        draw.text((i * w + 6, 5), label, fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vsrestore demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, default=Path("demo-out"), help="output folder")
    ap.add_argument("--crf", type=int, default=16)
    a = ap.parse_args(argv)
    from .encode import main as encode_main

    a.out.mkdir(parents=True, exist_ok=True)  # an unwritable -o: cli.main reports it in one line
    vpy = a.out / "demo.vpy"
    vpy.write_text(VPY)
    mkv = a.out / "demo.mkv"
    rc = encode_main([str(vpy), "-o", str(mkv), "--crf", str(a.crf), "--x265-preset", "medium"])
    if rc != 0:
        return rc
    png = a.out / "demo_compare.png"
    compare_png(png)
    print(f"vsrestore demo: wrote {png} (before | after | ground truth) and {vpy}", file=sys.stderr)
    return 0
