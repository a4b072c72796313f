"""The ``vsrestore`` command: encode, models, train, script, demo, metrics, eval.

All messages go to stderr; stdout is left for data a command is asked to print
(``models list``/``info``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

USAGE = """vsrestore COMMAND [...]

commands:
  encode SCRIPT.vpy -o OUT.mkv [-a key=value]... [--crf N] [--x265-preset P]
                         render a .vpy with vspipe into x265 (HEVC Main10), colour and HDR10
                         metadata taken from the clip's frame props
  models list            list shipped models
  models info NAME       show a model's card
  models evaluate NAME [--write]
                         measure a shipped model again on its held-out set (offline corpus)
  models export NAME --onnx PATH
                         export a shipped model (or a model file) to ONNX
  models quantize NAME --int8 OUT.onnx [--calib IMAGE...] [--target cpu|tensorrt]
                         statically quantise to an INT8 QDQ ONNX, calibrated on the images
                         (default: photos shipped with scikit-image)
  train NAME [...]       retrain shipped model NAME from its recipe on the offline corpus
  script VIDEO --preset NAME -o OUT.vpy
                         write an editable .vpy running a preset (anime, film, archival,
                         forensic, realtime, default) on VIDEO; `script --list` lists them
  demo [-o DIR]          restore the embedded demo clip (HEVC Main10 + before/after PNG)
  metrics REFERENCE DISTORTED [--metrics psnr,ssim,stlpips,de2000,vmaf,ewarp]
                         compare two images, videos or .vpy scripts (JSON on stdout)
  eval sr|denoise|deblock|dnsr [...]
                         measure the stages against named peers on a degradation: tables
                         (Markdown, JSON), bar plot, side-by-side crops (`vsrestore eval -h`)
"""


def _models(argv: list[str]) -> int:
    from . import models
    from .errors import VSRestoreError

    ap = argparse.ArgumentParser(prog="vsrestore models")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_list = sub.add_parser("list")
    p_list.add_argument("--markdown", action="store_true", help="a Markdown table (for the README)")
    p_info = sub.add_parser("info")
    p_info.add_argument("name")
    p_ev = sub.add_parser("evaluate", help="measure a shipped model again on its held-out set (corpus)")
    p_ev.add_argument("name")
    p_ev.add_argument("--write", action="store_true", help="update the model card's metrics")
    p_exp = sub.add_parser("export")
    p_exp.add_argument("name", help="shipped model name or model file")
    p_exp.add_argument("--onnx", type=Path, required=True, help="output .onnx path")
    p_q = sub.add_parser("quantize", help="INT8 QDQ ONNX (static, calibrated)")
    p_q.add_argument("name", help="shipped model name or model file")
    p_q.add_argument("--int8", type=Path, required=True, metavar="OUT.onnx", help="output .onnx path")
    p_q.add_argument("--calib", type=Path, nargs="+", metavar="IMAGE",
                     help="calibration images (default: photos shipped with scikit-image)")
    p_q.add_argument("--target", choices=("cpu", "tensorrt"), default="cpu",
                     help="cpu: ONNX Runtime CPU (uint8 activations, integer graph); "
                     "tensorrt: symmetric int8 for TensorRT explicit quantization")
    p_q.add_argument("--method", choices=("percentile", "minmax", "entropy"), default="percentile",
                     help="activation range calibration (default percentile: 99.999th, what "
                     "OrtCPU(int8=True) uses)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "list":
            rows = [(m.name, m.task, str(m.scale), m.kind, f"{m.params:,}", models.headline(m.card))
                    for m in models.available()]
            if a.markdown:
                print("| model | task | scale | kind | params | held-out (model card) |")
                print("| --- | --- | ---: | --- | ---: | --- |")
                for r in rows:
                    print(f"| `{r[0]}` | " + " | ".join(r[1:]) + " |")
            else:
                print(f"{'name':<18} {'task':<8} {'scale':>5} {'kind':<11} {'params':>9}  held-out")
                for r in rows:
                    print(f"{r[0]:<18} {r[1]:<8} {r[2]:>5} {r[3]:<11} {r[4]:>9}  {r[5]}")
        elif a.cmd == "info":
            print(json.dumps(models.info(a.name).card, indent=2))
        elif a.cmd == "evaluate":
            from .training import data
            from .training.trainer import reevaluate

            models.info(a.name)  # a clear error for an unknown name
            card = reevaluate(a.name, data.env_manifest())
            print(json.dumps(card["metrics"], indent=2))
            if a.write:
                path = models.info(a.name).path.with_suffix(".json")
                path.write_text(json.dumps(card, indent=2) + "\n")
                print(f"updated {path}", file=sys.stderr)
        elif a.cmd == "quantize":
            from .runtime.export import atomic_write_bytes
            from .runtime.int8 import quantize_int8

            lm = models.resolve(a.name, "models quantize")
            calib = [str(p) for p in a.calib] if a.calib else None
            path = quantize_int8(lm, target=a.target, calibration=calib, method=a.method,
                                 filter_name="models quantize")
            atomic_write_bytes(a.int8, path.read_bytes())
            print(f"wrote {a.int8} (INT8 QDQ for {a.target}, calibrated with {a.method} on "
                  f"{len(calib) if calib else 'the built-in'} images; cached as {path})", file=sys.stderr)
        else:
            from .runtime.export import export_onnx

            lm = models.resolve(a.name, "models export")
            export_onnx(lm, a.onnx)
            print(f"wrote {a.onnx} (x{lm.scale}, input 'input' NCHW float32 RGB 0..1, "
                  "dynamic batch/height/width)", file=sys.stderr)
    except VSRestoreError as e:
        print(f"vsrestore {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stderr)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        return _dispatch(cmd, rest)
    except OSError as e:  # a file or folder that cannot be read or written: no traceback
        where = f" {e.filename}:" if e.filename else ""
        print(f"vsrestore {cmd}:{where} {e.strerror or e}. Fix: check the path exists and is "
              "writable (output folders are created, their parents must be)", file=sys.stderr)
        return 2


def _dispatch(cmd: str, rest: list[str]) -> int:
    if cmd == "encode":
        from .encode import main as encode_main

        return encode_main(rest)
    if cmd == "models":
        return _models(rest)
    if cmd == "train":
        from .training.trainer import main as train_main

        return train_main(rest)
    if cmd == "metrics":
        from .metrics_cli import main as metrics_main

        return metrics_main(rest)
    if cmd == "eval":
        from .evaluation.cli import main as eval_main

        return eval_main(rest)
    if cmd == "script":
        from .script import main as script_main

        return script_main(rest)
    if cmd == "demo":
        from .demo import main as demo_main

        return demo_main(rest)
    print(f"vsrestore: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
