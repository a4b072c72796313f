"""``vsrestore encode``: render a .vpy with vspipe into x265 (HEVC, Main10 by default).

``vspipe -c y4m SCRIPT -`` is piped into ffmpeg/libx265 (the ffmpeg shipped with
``imageio-ffmpeg``). y4m carries no colour information, so the output clip's first
frame is probed first (``vspipe --info`` and ``vspipe -j``) and its props become
x265 VUI/SEI settings and container tags:

- ``_Primaries``/``_Transfer``/``_Matrix``/``_Range``/``_ChromaLocation`` -> x265
  ``colorprim/transfer/colormatrix/range/chromaloc`` and ffmpeg
  ``-color_primaries/-color_trc/-colorspace/-color_range/-chroma_sample_location``
  (the frames are also tagged with ``setparams`` so ffmpeg never range-converts);
- ``MasteringDisplay*`` and ``ContentLightLevelMax/Average`` -> HDR10 SEI
  (``master-display``, ``max-cll``).

The encode goes to ``OUT.partial.EXT`` next to ``OUT`` and is renamed to ``OUT`` only when
vspipe and ffmpeg both succeed; on any failure (or Ctrl-C) the partial file is deleted.
Nothing is written to stdout: progress and messages go to stderr.
"""

from __future__ import annotations

import argparse
import codecs
import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from .errors import VSRestoreError

log = logging.getLogger("vsrestore.encode")

NAME = "encode"

# H.273 code -> name (x265 and ffmpeg share these spellings, except matrix 0).
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
             9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432"}
TRANSFER = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "linear",
            9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
            14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
MATRIX = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
          9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
          13: "chroma-derived-c", 14: "ictcp"}
RANGE = {0: "limited", 1: "full"}
# VapourSynth _ChromaLocation == H.273 chroma_sample_loc_type (x265 --chromaloc); ffmpeg's is +1.
CHROMA_LOC = {0: "left", 1: "center", 2: "topleft", 3: "top", 4: "bottomleft", 5: "bottom"}

MASTERING_KEYS = ("MasteringDisplayPrimariesX", "MasteringDisplayPrimariesY",
                  "MasteringDisplayWhitePointX", "MasteringDisplayWhitePointY",
                  "MasteringDisplayMaxLuminance", "MasteringDisplayMinLuminance")
CLL_KEYS = ("ContentLightLevelMax", "ContentLightLevelAverage")

X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
# -pix_fmt -> x265 profile
PROFILES = {"yuv420p": "main", "yuv420p10le": "main10", "yuv420p12le": "main12",
            "yuv422p10le": "main422-10", "yuv422p12le": "main422-12", "yuv444p": "main444-8",
            "yuv444p10le": "main444-10", "yuv444p12le": "main444-12"}
# output extension -> ffmpeg muxer
MUXERS = {".mkv": "matroska", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".hevc": "hevc",
          ".h265": "hevc", ".265": "hevc", ".ts": "mpegts"}


# ---------------------------------------------------------------------------------------------
# tools


def vspipe_exe() -> str:
    """``vspipe`` next to the running interpreter (the vapoursynth wheel's), else on PATH."""
    here = Path(sys.executable).parent
    for name in ("vspipe", "vspipe.exe"):
        if (here / name).is_file():
            return str(here / name)
    found = shutil.which("vspipe")
    if not found:
        raise VSRestoreError(NAME, f"vspipe was not found next to {sys.executable} nor on PATH",
                             "install VapourSynth into this environment: pip install vapoursynth")
    return found


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise VSRestoreError(NAME, "imageio-ffmpeg is not installed",
                             "pip install imageio-ffmpeg") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def _vs_args(args: dict[str, str]) -> list[str]:
    out: list[str] = []
    for k, v in args.items():
        out += ["-a", f"{k}={v}"]
    return out


def _check_script(script: Path) -> None:
    if not script.is_file():
        what = "is a folder" if script.is_dir() else "does not exist"
        raise VSRestoreError(NAME, f"script {str(script)!r} {what}",
                             "pass the path of a .vpy script that ends with clip.set_output()")


def _last_error_line(text: str) -> str:
    """The last meaningful line of vspipe/ffmpeg stderr (progress lines skipped)."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Frame:", "Output ", "Script evaluation done",
                                                              "Warning: Core freed"))]
    return lines[-1] if lines else ""


def _vspipe_failure(stderr: str, script: Path, rc: int) -> VSRestoreError:
    if "Failed to retrieve output node" in stderr:
        return VSRestoreError(NAME, f"script {str(script)!r} sets no output (vspipe: no output node 0)",
                              "end the script with clip.set_output()")
    said = "\n".join("  | " + ln for ln in stderr.strip().splitlines()[-40:])
    return VSRestoreError(NAME, f"vspipe failed on {str(script)!r} (exit code {rc}); it said:\n{said}\n"
                                f"{_last_error_line(stderr) or 'no message'}",
                          "correct the script error shown above; try it with "
                          f"`vspipe --info {shlex.quote(str(script))} -`")


# ---------------------------------------------------------------------------------------------
# probing


def _parse_info(text: str) -> dict[str, str]:
    """The ``Output Index: 0`` block of ``vspipe --info`` as key -> value."""
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Output Index":
            blocks.append({})
        if blocks:
            blocks[-1][key] = value
    for b in blocks:
        if b.get("Output Index") == "0":
            return b
    return blocks[0] if blocks else {}


def probe_props(script: Path, args: dict[str, str]) -> dict:
    """Evaluate *script* with vspipe and describe its output 0.

    Returns ``width``, ``height``, ``num_frames``, ``fps`` (``(num, den)``, None if
    variable), ``format`` (VapourSynth format name, e.g. ``"YUV420P10"``),
    ``color_family`` (``"YUV"``/``"Gray"``/``"RGB"``), ``sample_type``, ``bits`` and
    ``props``: frame 0's props as vspipe's ``-j`` writes them (binary data becomes a
    ``"[binary data size: N]"`` string). Raises :class:`VSRestoreError` with vspipe's
    message when the script fails or sets no output.
    """
    script = Path(script)
    _check_script(script)
    vspipe = vspipe_exe()
    a = _vs_args(args)
    cmd = [vspipe, "--info", *a, str(script), "-"]
    log.debug("probe: %s", shlex.join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise _vspipe_failure(res.stderr, script, res.returncode)
    info = _parse_info(res.stdout)
    if not info:
        raise VSRestoreError(NAME, f"script {str(script)!r} sets no output", "end it with clip.set_output()")
    if info.get("Type") != "Video":
        raise VSRestoreError(NAME, f"output 0 of {str(script)!r} is {info.get('Type', 'not video')}, "
                                   "not a video clip", "set a video clip as output 0: clip.set_output()")

    def as_int(key: str) -> int | None:
        v = info.get(key, "")
        return int(v) if v.isdigit() else None

    fps: tuple[int, int] | None = None
    f = info.get("FPS", "").split(" ")[0]
    if "/" in f:
        num, _, den = f.partition("/")
        if num.isdigit() and den.isdigit() and int(den) > 0 and int(num) > 0:
            fps = (int(num), int(den))
    out: dict[str, Any] = {
        "width": as_int("Width"),
        "height": as_int("Height"),
        "num_frames": as_int("Frames") or 0,
        "fps": fps,
        "format": info.get("Format Name", "Variable"),
        "color_family": info.get("Color Family"),
        "sample_type": info.get("Sample Type"),
        "bits": as_int("Bits"),
        "props": {},
    }
    if out["num_frames"] == 0:
        return out
    with tempfile.TemporaryDirectory(prefix="vsrestore-probe-") as tmp:
        jpath = Path(tmp) / "props.json"
        cmd = [vspipe, "-j", str(jpath), "-s", "0", "-e", "0", *a, str(script), "--"]
        log.debug("probe: %s", shlex.join(cmd))
        res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            raise _vspipe_failure(res.stderr, script, res.returncode)
        if res.stdout.strip():  # no video was asked for: whatever is there, the script printed
            said = res.stdout.strip()[:60]
            raise VSRestoreError(NAME, f"script {str(script)!r} writes to stdout ({said!r}), which "
                                 "vspipe sends into the video stream",
                                 "print to stderr instead (print(..., file=sys.stderr)) or use logging")
        try:
            frames = json.loads(jpath.read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError) as e:
            raise VSRestoreError(NAME, f"could not read the frame props vspipe wrote ({e})",
                                 "check that vspipe -j works: "
                                 f"vspipe -j props.json -s 0 -e 0 {shlex.quote(str(script))} --") from e
    if isinstance(frames, list) and frames and isinstance(frames[0], dict):
        out["props"] = frames[0]
    return out


# ---------------------------------------------------------------------------------------------
# props -> x265 / ffmpeg settings


def _code(props: dict, key: str, table: dict[int, str]) -> str | None:
    """Name of the H.273 code in prop *key*; None when missing or unspecified."""
    v = props.get(key)
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    if v in table:
        return table[v]
    if not (key in ("_Matrix", "_Transfer", "_Primaries") and v in (2, 3)):  # 2 unspecified, 3 reserved
        log.warning("frame prop %s=%d has no x265 equivalent: left unspecified", key, v)
    return None


def _is_num(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _float(props: dict, key: str) -> float:
    v = props.get(key)
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if not _is_num(v):
        raise VSRestoreError(NAME, f"frame prop {key}={v!r} is not a number",
                             f"set {key} to a float, e.g. core.std.SetFrameProps(clip, {key}=1000.0)")
    return float(v)  # type: ignore[arg-type]


def _floats3(props: dict, key: str) -> list[float]:
    v = props.get(key)
    if not isinstance(v, list) or len(v) != 3 or not all(_is_num(x) for x in v):
        raise VSRestoreError(NAME, f"frame prop {key}={v!r} is not a list of 3 numbers (R, G, B)",
                             f"set {key} to 3 floats in R, G, B order, e.g. [0.68, 0.265, 0.15]")
    return [float(x) for x in v]


def _chroma(v: float, key: str) -> int:
    if not 0.0 <= v <= 1.0:
        raise VSRestoreError(NAME, f"frame prop {key} has chromaticity {v}, outside 0..1",
                             "give CIE 1931 x/y chromaticities as fractions, e.g. 0.3127")
    return round(v * 50000)


def _master_display(props: dict) -> str:
    missing = [k for k in MASTERING_KEYS if k not in props]
    if missing:
        raise VSRestoreError(NAME, f"mastering display props are incomplete: missing {', '.join(missing)}",
                             "set all of " + ", ".join(MASTERING_KEYS)
                             + " or remove them with core.std.RemoveFrameProps")
    px = _floats3(props, "MasteringDisplayPrimariesX")
    py = _floats3(props, "MasteringDisplayPrimariesY")
    r, g, b = ((_chroma(px[i], "MasteringDisplayPrimariesX"), _chroma(py[i], "MasteringDisplayPrimariesY"))
               for i in range(3))
    wx = _chroma(_float(props, "MasteringDisplayWhitePointX"), "MasteringDisplayWhitePointX")
    wy = _chroma(_float(props, "MasteringDisplayWhitePointY"), "MasteringDisplayWhitePointY")
    lmax = _float(props, "MasteringDisplayMaxLuminance")
    lmin = _float(props, "MasteringDisplayMinLuminance")
    if not (0 <= lmin < lmax <= 100000):
        raise VSRestoreError(NAME, f"mastering display luminance min={lmin} max={lmax} cd/m2 is not "
                                   "0 <= min < max <= 100000",
                             "set MasteringDisplayMinLuminance/MaxLuminance in cd/m2, e.g. 0.0001 and 1000.0")
    # x265 order: G, B, R, white point, L(max, min); chromaticity in 1/50000, luminance in 1/10000 cd/m2
    return (f"G({g[0]},{g[1]})B({b[0]},{b[1]})R({r[0]},{r[1]})WP({wx},{wy})"
            f"L({round(lmax * 10000)},{round(lmin * 10000)})")


def _cll(props: dict) -> str:
    vals = []
    for key in CLL_KEYS:
        v = props.get(key, 0)
        if isinstance(v, list) and len(v) == 1:
            v = v[0]
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
            raise VSRestoreError(NAME, f"frame prop {key}={v!r} is not an integer 0..65535 (cd/m2)",
                                 f"set {key} to an int, e.g. core.std.SetFrameProps(clip, {key}=1000)")
        vals.append(v)
    return f"{vals[0]},{vals[1]}"


def x265_color_params(props: dict) -> dict[str, str]:
    """Map VapourSynth frame props to x265 parameters (``--x265-params`` keys).

    Colour: ``colorprim``, ``transfer``, ``colormatrix``, ``range``, ``chromaloc`` from
    ``_Primaries``, ``_Transfer``, ``_Matrix``, ``_Range``, ``_ChromaLocation`` (H.273
    codes; unspecified (2) or missing props are left out). HDR10: when any
    ``MasteringDisplay*`` prop or ``ContentLightLevelMax/Average`` is present,
    ``hdr10=1``, ``hdr10-opt=1`` (only for PQ or unknown transfer), ``repeat-headers=1`` and
    ``master-display=G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)`` (chromaticities in 1/50000,
    luminance in 1/10000 cd/m2) and/or ``max-cll=MaxCLL,MaxFALL``.
    """
    p: dict[str, str] = {}
    for key, table, name in (("_Primaries", PRIMARIES, "colorprim"), ("_Transfer", TRANSFER, "transfer"),
                             ("_Matrix", MATRIX, "colormatrix"), ("_Range", RANGE, "range")):
        v = _code(props, key, table)
        if v is not None:
            p[name] = v
    loc = _code(props, "_ChromaLocation", CHROMA_LOC)
    if loc is not None:
        p["chromaloc"] = str(next(k for k, n in CHROMA_LOC.items() if n == loc))

    has_md = any(k in props for k in MASTERING_KEYS)
    has_cll = any(k in props for k in CLL_KEYS)
    if has_md or has_cll:
        p["hdr10"] = "1"
        if p.get("transfer", "smpte2084") == "smpte2084":
            p["hdr10-opt"] = "1"  # PQ-specific QP tuning
        p["repeat-headers"] = "1"
        if has_md:
            p["master-display"] = _master_display(props)
        if has_cll:
            p["max-cll"] = _cll(props)
    return p


def _ffmpeg_color(x265: dict[str, str]) -> tuple[list[str], str | None]:
    """ffmpeg output options and a ``setparams`` filter for the colour part of *x265*."""
    opts: list[str] = []
    sp: list[str] = []
    if "colorprim" in x265:
        opts += ["-color_primaries", x265["colorprim"]]
        sp.append(f"color_primaries={x265['colorprim']}")
    if "transfer" in x265:
        opts += ["-color_trc", x265["transfer"]]
        sp.append(f"color_trc={x265['transfer']}")
    if "colormatrix" in x265:
        cs = "rgb" if x265["colormatrix"] == "gbr" else x265["colormatrix"]
        opts += ["-colorspace", cs]
        sp.append(f"colorspace={cs}")
    if "range" in x265:
        rng = "tv" if x265["range"] == "limited" else "pc"
        opts += ["-color_range", rng]
        sp.append(f"range={rng}")
    if "chromaloc" in x265:
        name = CHROMA_LOC[int(x265["chromaloc"])]
        opts += ["-chroma_sample_location", name]
        sp.append(f"chroma_location={name}")
    return opts, ("setparams=" + ":".join(sp)) if sp else None


# ---------------------------------------------------------------------------------------------
# running


class _Pump(threading.Thread):
    """Copy a child's stderr to ours as it comes (progress) and keep its text."""

    def __init__(self, stream: IO[bytes], forward: bool) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.forward = forward
        self.chunks: list[str] = []

    def run(self) -> None:
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        read = getattr(self.stream, "read1", self.stream.read)
        while True:
            try:
                data = read(4096)
            except (OSError, ValueError):
                break
            if not data:
                break
            text = dec.decode(data)
            self.chunks.append(text)
            if self.forward and text and sys.stderr is not None:
                try:
                    sys.stderr.write(text)
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
        self.chunks.append(dec.decode(b"", final=True))

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def partial_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.partial{out.suffix}")


def _stop(p: subprocess.Popen | None) -> None:
    if p is None or p.poll() is not None:
        return
    try:
        p.terminate()
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    except OSError:
        pass


def _validate(out: Path, pix_fmt: str, preset: str, crf: float) -> None:
    if out.suffix.lower() not in MUXERS:
        raise VSRestoreError(NAME, f"output {str(out)!r} has no known container extension",
                             "name it .mkv (or " + ", ".join(sorted(set(MUXERS) - {".mkv"})) + ")")
    if pix_fmt not in PROFILES:
        raise VSRestoreError(NAME, f"--pix-fmt {pix_fmt!r} is not supported",
                             "use one of " + ", ".join(PROFILES))
    if preset not in X265_PRESETS:
        raise VSRestoreError(NAME, f"--x265-preset {preset!r} is not an x265 preset",
                             "use one of " + ", ".join(X265_PRESETS))
    if not (math.isfinite(crf) and 0 <= crf <= 51):
        raise VSRestoreError(NAME, f"--crf {crf:g} is outside 0..51", "use e.g. --crf 18 (lower = better)")


def encode(script: Path, out: Path, args: dict[str, str] | None = None, *, crf: float = 18,
           preset: str = "slow", pix_fmt: str = "yuv420p10le", x265_params: str = "",
           ffmpeg_args: list[str] | None = None, progress: bool = True) -> dict:
    """Render *script* into *out*; returns the probe (see :func:`probe_props`).

    Raises :class:`VSRestoreError` on any failure, after deleting the partial output.
    """
    script, out, args = Path(script), Path(out), dict(args or {})
    _validate(out, pix_fmt, preset, crf)
    _check_script(script)
    vspipe, ffmpeg = vspipe_exe(), ffmpeg_exe()

    info = probe_props(script, args)
    if info["num_frames"] == 0:
        raise VSRestoreError(NAME, f"the output clip of {str(script)!r} has no frames",
                             "check the script's source and trims")
    if info["width"] is None or info["format"] == "Variable":
        raise VSRestoreError(NAME, "the output clip has a variable size or format",
                             "make it constant, e.g. clip = core.resize.Bicubic(clip, 1920, 1080, "
                             "format=vs.YUV420P10)")
    if info["fps"] is None:
        raise VSRestoreError(NAME, "the output clip has a variable or zero frame rate",
                             "set one with core.std.AssumeFPS(clip, fpsnum=24000, fpsden=1001)")
    if info["color_family"] not in ("YUV", "Gray") or info["sample_type"] != "Integer":
        raise VSRestoreError(NAME, f"the output clip is {info['format']}; y4m needs integer YUV or Gray",
                             "convert it at the end of the script, e.g. clip = core.resize.Bicubic("
                             "clip, format=vs.YUV420P10, matrix_s='709')")

    props = info["props"]
    x265 = x265_color_params(props)
    color_opts, setparams = _ffmpeg_color(x265)
    x265_all = {"log-level": "warning", **x265}
    x265_str = ":".join(f"{k}={v}" for k, v in x265_all.items())
    if x265_params:
        x265_str += ":" + x265_params.strip(":")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(out)
    vs_cmd = [vspipe, "-c", "y4m", *(["-p"] if progress else []), *_vs_args(args), str(script), "-"]
    ff_cmd = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
              "-f", "yuv4mpegpipe", "-i", "-", "-map", "0:v:0"]
    if setparams:
        ff_cmd += ["-vf", setparams]
    ff_cmd += ["-c:v", "libx265", "-preset", preset, "-crf", f"{crf:g}", "-pix_fmt", pix_fmt,
               "-profile:v", PROFILES[pix_fmt], *color_opts, "-x265-params", x265_str]
    if MUXERS[out.suffix.lower()] in ("mp4", "mov"):
        ff_cmd += ["-tag:v", "hvc1"]
    ff_cmd += [*(ffmpeg_args or []), "-f", MUXERS[out.suffix.lower()], "-y", str(tmp)]
    log.info("vspipe: %s", shlex.join(vs_cmd))
    log.info("ffmpeg: %s", shlex.join(ff_cmd))

    vsp: subprocess.Popen | None = None
    ffp: subprocess.Popen | None = None
    ok = False
    try:
        vsp = subprocess.Popen(vs_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        assert vsp.stdout is not None and vsp.stderr is not None
        try:
            ffp = subprocess.Popen(ff_cmd, stdin=vsp.stdout, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        finally:
            vsp.stdout.close()  # ffmpeg holds the read end; vspipe sees EPIPE if ffmpeg dies
        assert ffp.stderr is not None
        vs_pump, ff_pump = _Pump(vsp.stderr, progress), _Pump(ffp.stderr, True)
        vs_pump.start()
        ff_pump.start()
        ff_rc = ffp.wait()
        vs_rc = vsp.wait()
        vs_pump.join()
        ff_pump.join()
        # vspipe dies of SIGPIPE (or reports a failed write) when ffmpeg stops reading first
        vs_broken = vs_rc in (-13, 243) or "fwrite" in vs_pump.text or "Broken pipe" in vs_pump.text
        if vs_rc != 0 and not (ff_rc != 0 and vs_broken):
            # vspipe's own failure (script error while rendering, no output, ...)
            if not progress:  # its messages were not shown live: include them all
                raise _vspipe_failure(vs_pump.text, script, vs_rc)
            raise VSRestoreError(NAME, f"vspipe failed on {str(script)!r} (exit code {vs_rc}): "
                                       f"{_last_error_line(vs_pump.text) or 'no message'}",
                                 "correct the script error (vspipe's full message is above)")
        if ff_rc != 0:
            raise VSRestoreError(NAME, f"ffmpeg/x265 failed (exit code {ff_rc}): "
                                       f"{_last_error_line(ff_pump.text) or 'no message'}",
                                 "see ffmpeg's messages above; check --pix-fmt/--ffmpeg-args/--x265-params")
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise VSRestoreError(NAME, f"ffmpeg wrote no output to {str(tmp)!r}",
                                 "check that the output folder is writable")
        os.replace(tmp, out)
        ok = True
    finally:
        if not ok:
            _stop(vsp)
            _stop(ffp)
            for p in (vsp, ffp):
                for s in (p.stdout, p.stderr) if p is not None else ():
                    if s is not None:
                        s.close()
            try:
                tmp.unlink(missing_ok=True)
            except OSError as e:
                log.warning("could not delete the partial output %s: %s", tmp, e)
    return info


# ---------------------------------------------------------------------------------------------
# CLI


class _Parser(argparse.ArgumentParser):
    def print_help(self, file: Any = None) -> None:  # stdout stays clean, as everywhere
        super().print_help(file or sys.stderr)

    def error(self, message: str):  # type: ignore[override]
        raise VSRestoreError(NAME, message, "see `vsrestore encode --help`")


def _parse_kv(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise VSRestoreError(NAME, f"-a {item!r} is not key=value with a Python identifier as key",
                                 "pass e.g. -a frames=100 (the script reads the global string `frames`)")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="vsrestore encode", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("script", type=Path, help="VapourSynth script (.vpy) that sets output 0")
    ap.add_argument("-o", "--output", type=Path, required=True,
                    help="output file (.mkv, .mp4, .mov, .hevc, ...); written only on success")
    ap.add_argument("-a", "--arg", action="append", default=[], metavar="KEY=VALUE",
                    help="passed to the script as a global string, as with vspipe -a (repeatable)")
    ap.add_argument("--crf", default="18", help="x265 CRF, 0..51, lower is better (default 18)")
    ap.add_argument("--x265-preset", default="slow", help="x265 preset (default slow)")
    ap.add_argument("--pix-fmt", default="yuv420p10le",
                    help="encoded pixel format (default yuv420p10le = HEVC Main10)")
    ap.add_argument("--x265-params", default="", help="extra x265 params (k=v:k=v), applied last")
    ap.add_argument("--ffmpeg-args", default="",
                    help="extra ffmpeg output options as one string, e.g. --ffmpeg-args='-g 48'")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress")
    try:
        a = ap.parse_args(argv)
        try:
            crf = float(a.crf)
        except ValueError:
            raise VSRestoreError(NAME, f"--crf {a.crf!r} is not a number",
                                 "use e.g. --crf 18 (0..51, lower = better)") from None
        try:
            extra = shlex.split(a.ffmpeg_args)
        except ValueError as e:
            raise VSRestoreError(NAME, f"--ffmpeg-args {a.ffmpeg_args!r} cannot be split ({e})",
                                 "quote it as one shell string, e.g. --ffmpeg-args='-g 48'") from None
        kv = _parse_kv(a.arg)
        _validate(a.output, a.pix_fmt, a.x265_preset, crf)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except VSRestoreError as e:
        print(f"vsrestore {e}", file=sys.stderr)
        return 2
    try:
        info = encode(a.script, a.output, kv, crf=crf, preset=a.x265_preset, pix_fmt=a.pix_fmt,
                      x265_params=a.x265_params, ffmpeg_args=extra, progress=not a.quiet)
    except VSRestoreError as e:
        print(f"vsrestore {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nvsrestore encode: interrupted; no output written. Fix: run it again", file=sys.stderr)
        return 130
    if not a.quiet:
        print(f"\nvsrestore encode: wrote {a.output} ({info['width']}x{info['height']}, "
              f"{info['num_frames']} frames, {a.pix_fmt})", file=sys.stderr)
    return 0
