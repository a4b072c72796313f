"""``vsrestore encode``: vspipe -> x265 with colour and HDR10 metadata from frame props.

Encodes tiny clips (64x48, <= 8 frames, x265 ultrafast) and reads the result back with
PyAV: stream colour tags, profile, frame count, and the first frame's HDR10 side data
(AVMasteringDisplayMetadata / AVContentLightMetadata parsed from the raw bytes).
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vsrestore.encode import main, probe_props, x265_color_params
from vsrestore.errors import VSRestoreError

HEADER = """
import vapoursynth as vs
core = vs.core
n = int(globals().get("frames", "5"))
# every frame differs (luma 300, 340, 380, ...) so x265 codes real P/B frames
clip = core.std.Splice([core.std.BlankClip(format=vs.YUV420P10, width=64, height=48, length=1,
                                           fpsnum=24000, fpsden=1001, color=[300 + 40 * i, 512, 512])
                        for i in range(n)])
"""

# P3-D65 mastering display, 1000 / 0.0001 cd/m2, MaxCLL 1000, MaxFALL 400
HDR_PROPS = dict(
    MasteringDisplayPrimariesX=[0.680, 0.265, 0.150],  # R, G, B
    MasteringDisplayPrimariesY=[0.320, 0.690, 0.060],
    MasteringDisplayWhitePointX=0.3127,
    MasteringDisplayWhitePointY=0.3290,
    MasteringDisplayMaxLuminance=1000.0,
    MasteringDisplayMinLuminance=0.0001,
    ContentLightLevelMax=1000,
    ContentLightLevelAverage=400,
)
HDR_VPY = HEADER + f"""
clip = core.std.SetFrameProps(clip, _Matrix=9, _Transfer=16, _Primaries=9, _Range=0, _ChromaLocation=2,
                              **{HDR_PROPS!r})
clip.set_output()
"""

FAST = ["--x265-preset", "ultrafast", "--crf", "10"]

MASTERING = av.sidedata.sidedata.Type.MASTERING_DISPLAY_METADATA
CLL = av.sidedata.sidedata.Type.CONTENT_LIGHT_LEVEL


def write(tmp_path: Path, text: str, name: str = "clip.vpy") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def parse_mastering(buf: bytes) -> dict:
    """AVMasteringDisplayMetadata: AVRational display_primaries[3][2] (R, G, B; x, y),
    white_point[2], min_luminance, max_luminance (AVRational = int32 num, den), then int
    has_primaries, has_luminance."""
    v = struct.unpack("<22i", buf[:88])
    rat = [Fraction(v[i], v[i + 1]) for i in range(0, 20, 2)]
    return {"primaries": [(rat[0], rat[1]), (rat[2], rat[3]), (rat[4], rat[5])],
            "white": (rat[6], rat[7]), "min": rat[8], "max": rat[9],
            "has_primaries": v[20], "has_luminance": v[21]}


def parse_cll(buf: bytes) -> tuple[int, int]:
    """AVContentLightMetadata: unsigned MaxCLL, unsigned MaxFALL."""
    return struct.unpack("<2I", buf[:8])


def decode(path: Path) -> dict:
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        cc = st.codec_context
        res = {"codec": cc.name, "profile": cc.profile, "pix_fmt": cc.pix_fmt, "width": st.width,
               "height": st.height, "primaries": cc.color_primaries, "trc": cc.color_trc,
               "space": cc.colorspace, "range": cc.color_range, "chroma_loc": cc.chroma_sample_location,
               "frames": 0, "side_data": {}}
        for frame in c.decode(st):
            if res["frames"] == 0:
                res["side_data"] = {k: bytes(frame.side_data[k]) for k in frame.side_data}
                res["y0"] = frame.to_ndarray(format="yuv420p10le")[:48]  # Y plane of frame 0
                res["frame_color"] = (frame.color_primaries, frame.color_trc, frame.colorspace,
                                      frame.color_range)
            res["frames"] += 1
    return res


def test_hdr10_metadata_reaches_the_bitstream(tmp_path: Path, capfd) -> None:
    script = write(tmp_path, HDR_VPY)
    out = tmp_path / "hdr.mkv"
    assert main([str(script), "-o", str(out), "-a", "frames=6", *FAST]) == 0
    assert capfd.readouterr().out == ""  # stdout is never written to (fd level, children included)
    assert out.is_file() and not (tmp_path / "hdr.partial.mkv").exists()

    d = decode(out)
    assert (d["codec"], d["profile"], d["pix_fmt"]) == ("hevc", "Main 10", "yuv420p10le")
    assert (d["width"], d["height"], d["frames"]) == (64, 48, 6)
    # stream tags: 9 bt2020 / 16 smpte2084 / 9 bt2020nc, limited range (AVCOL_RANGE_MPEG = 1)
    assert (d["primaries"], d["trc"], d["space"], d["range"]) == (9, 16, 9, 1)
    assert d["frame_color"] == (9, 16, 9, 1)
    assert d["chroma_loc"] == 3  # AVCHROMA_LOC_TOPLEFT == VapourSynth _ChromaLocation 2 + 1

    assert MASTERING in d["side_data"] and CLL in d["side_data"]
    md = parse_mastering(d["side_data"][MASTERING])
    assert md["has_primaries"] == 1 and md["has_luminance"] == 1
    for (x, y), px, py in zip(md["primaries"], HDR_PROPS["MasteringDisplayPrimariesX"],
                              HDR_PROPS["MasteringDisplayPrimariesY"], strict=True):
        assert (x, y) == (Fraction(round(px * 50000), 50000), Fraction(round(py * 50000), 50000))
    assert md["white"] == (Fraction(15635, 50000), Fraction(16450, 50000))
    assert md["max"] == Fraction(1000 * 10000, 10000)
    assert md["min"] == Fraction(1, 10000)
    assert parse_cll(d["side_data"][CLL]) == (1000, 400)


# .hevc has no container: its colour tags can only come from the x265 VUI
@pytest.mark.parametrize(("rng", "ext"), [(0, ".mkv"), (1, ".hevc"), (1, ".mp4")])
def test_sdr_bt709_flags_and_levels(tmp_path: Path, rng: int, ext: str) -> None:
    script = write(tmp_path, HEADER + f"""
clip = core.std.SetFrameProps(clip, _Matrix=1, _Transfer=1, _Primaries=1, _Range={rng}, _ChromaLocation=0)
clip.set_output()
""")
    out = tmp_path / f"sdr{ext}"
    assert main([str(script), "-o", str(out), "-q", *FAST]) == 0
    d = decode(out)
    av_range = 2 if rng else 1  # AVCOL_RANGE_JPEG / MPEG
    assert (d["primaries"], d["trc"], d["space"], d["range"]) == (1, 1, 1, av_range)
    assert d["frame_color"] == (1, 1, 1, av_range)
    assert d["profile"] == "Main 10"
    assert MASTERING not in d["side_data"] and CLL not in d["side_data"]
    assert d["frames"] == 5
    # no range conversion anywhere: frame 0's luma is still 300 (10-bit code values)
    assert np.abs(d["y0"].astype(np.int32) - 300).max() <= 2


@pytest.mark.parametrize("where", ["evaluation", "frame 3"])
def test_failing_script_leaves_no_output(tmp_path: Path, capfd, where: str) -> None:
    if where == "evaluation":
        body = HEADER + "raise RuntimeError('boom while evaluating')\n"
    else:  # frame 0 renders (the probe passes), frame 3 fails mid-encode
        body = HEADER + """
def sel(n):
    if n >= 3:
        raise RuntimeError('boom at frame %d' % n)
    return clip
core.std.FrameEval(clip, sel).set_output()
"""
    script = write(tmp_path, body)
    out = tmp_path / "bad.mkv"
    assert main([str(script), "-o", str(out), *FAST]) != 0
    err = capfd.readouterr().err
    assert "boom" in err  # vspipe's message is shown
    assert "vsrestore encode: vspipe failed" in err and "Fix:" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.vpy"]  # no bad.partial.mkv either


def test_args_reach_the_script(tmp_path: Path) -> None:
    script = write(tmp_path, HEADER + """
assert label == "hello world=1", label
clip.set_output()
""")
    out = tmp_path / "args.mkv"
    argv = [str(script), "-o", str(out), "-a", "frames=7", "-a", "label=hello world=1", "-q", *FAST]
    assert main(argv) == 0
    assert decode(out)["frames"] == 7
    info = probe_props(script, {"frames": "3", "label": "hello world=1"})
    assert (info["width"], info["height"], info["num_frames"]) == (64, 48, 3)
    assert info["fps"] == (24000, 1001) and info["format"] == "YUV420P10"


def test_probe_props_reads_frame_props(tmp_path: Path) -> None:
    info = probe_props(write(tmp_path, HDR_VPY), {})
    props = info["props"]
    assert props["_Matrix"] == 9 and props["_Transfer"] == 16 and props["_Range"] == 0
    assert props["MasteringDisplayPrimariesX"] == pytest.approx([0.68, 0.265, 0.15])
    assert props["ContentLightLevelAverage"] == 400


def test_clear_errors(tmp_path: Path, capfd) -> None:
    out = tmp_path / "o.mkv"
    assert main([str(tmp_path / "missing.vpy"), "-o", str(out)]) != 0
    assert "does not exist" in capfd.readouterr().err
    noout = write(tmp_path, "import vapoursynth as vs\nx = 1\n", "noout.vpy")
    assert main([str(noout), "-o", str(out)]) != 0
    assert "sets no output" in capfd.readouterr().err
    script = write(tmp_path, HDR_VPY)
    for bad, msg in ((["--crf", "99"], "outside 0..51"), (["--crf", "x"], "not a number"),
                     (["-a", "novalue"], "key=value"), (["--x265-preset", "fastest"], "not an x265 preset")):
        assert main([str(script), "-o", str(out), *bad]) == 2
        err = capfd.readouterr().err
        assert err.startswith("vsrestore encode: ") and msg in err and "Fix:" in err
    assert main([str(script), "-o", str(tmp_path / "o.xyz")]) == 2
    assert not out.exists()
    chatty = write(tmp_path, "import vapoursynth as vs\nprint('hello')\n"
                   "vs.core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=2).set_output()\n",
                   "chatty.vpy")
    assert main([str(chatty), "-o", str(out)]) != 0
    err = capfd.readouterr().err
    assert "writes to stdout ('hello')" in err and "file=sys.stderr" in err and not out.exists()


# ------------------------------------------------------------------------- x265_color_params


def test_color_params_hdr10() -> None:
    p = x265_color_params({"_Matrix": 9, "_Transfer": 16, "_Primaries": 9, "_Range": 0, **HDR_PROPS})
    assert p == {
        "colorprim": "bt2020", "transfer": "smpte2084", "colormatrix": "bt2020nc", "range": "limited",
        "hdr10": "1", "hdr10-opt": "1", "repeat-headers": "1",
        "master-display": "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)",
        "max-cll": "1000,400",
    }


def test_color_params_sdr_and_unspecified() -> None:
    assert x265_color_params({"_Matrix": 1, "_Transfer": 1, "_Primaries": 1, "_Range": 1,
                              "_ChromaLocation": 0}) == {
        "colorprim": "bt709", "transfer": "bt709", "colormatrix": "bt709", "range": "full", "chromaloc": "0"}
    assert x265_color_params({"_Matrix": 6, "_Transfer": 6, "_Primaries": 6}) == {
        "colorprim": "smpte170m", "transfer": "smpte170m", "colormatrix": "smpte170m"}
    assert x265_color_params({"_Matrix": 5, "_Primaries": 5, "_Transfer": 18, "_Matrix2": 1}) == {
        "colorprim": "bt470bg", "transfer": "arib-std-b67", "colormatrix": "bt470bg"}
    assert x265_color_params({"_Transfer": 14, "_Matrix": 10}) == {"transfer": "bt2020-10",
                                                                   "colormatrix": "bt2020c"}
    # 2 = unspecified (omitted) for matrix/transfer/primaries, but 2 = top-left for chroma location
    assert x265_color_params({"_Matrix": 2, "_Transfer": 2, "_Primaries": 2, "_ChromaLocation": 2}) == {
        "chromaloc": "2"}
    assert x265_color_params({}) == {}


def test_color_params_hdr_groups_alone() -> None:
    cll = x265_color_params({"_Transfer": 16, "ContentLightLevelMax": 800, "ContentLightLevelAverage": 200})
    assert cll["max-cll"] == "800,200" and "master-display" not in cll and cll["hdr10"] == "1"
    md_only = {k: v for k, v in HDR_PROPS.items() if k.startswith("Mastering")}
    md = x265_color_params({"_Transfer": 18, **md_only})
    assert md["master-display"].startswith("G(13250,34500)") and "max-cll" not in md
    assert "hdr10-opt" not in md  # PQ-only tuning, not for HLG
    # integers as vspipe's JSON writes whole floats (1000.0 -> 1000)
    assert x265_color_params({**md_only, "MasteringDisplayMaxLuminance": 4000})["master-display"].endswith(
        "L(40000000,1)")


def test_color_params_rejects_bad_hdr_props() -> None:
    md = {k: v for k, v in HDR_PROPS.items() if k.startswith("Mastering")}
    with pytest.raises(VSRestoreError, match="incomplete"):
        x265_color_params({k: v for k, v in md.items() if k != "MasteringDisplayWhitePointY"})
    with pytest.raises(VSRestoreError, match="3 numbers"):
        x265_color_params({**md, "MasteringDisplayPrimariesX": [0.68, 0.265]})
    with pytest.raises(VSRestoreError, match="outside 0..1"):
        x265_color_params({**md, "MasteringDisplayWhitePointX": 31270})
    with pytest.raises(VSRestoreError, match="0..65535"):
        x265_color_params({"ContentLightLevelMax": -1})
