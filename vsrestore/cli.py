"""The ``vsrestore`` command: encode, models, train, demo.

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
  models export NAME --onnx PATH
                         export a shipped model (or a model file) to ONNX
  train sr [...]         train a super-resolution model on the offline corpus
  demo [-o DIR]          restore the embedded demo clip (HEVC Main10 + before/after PNG)
"""


def _models(argv: list[str]) -> int:
    from . import models
    from .errors import VSRestoreError

    ap = argparse.ArgumentParser(prog="vsrestore models")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    p_info = sub.add_parser("info")
    p_info.add_argument("name")
    p_exp = sub.add_parser("export")
    p_exp.add_argument("name", help="shipped model name or model file")
    p_exp.add_argument("--onnx", type=Path, required=True, help="output .onnx path")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "list":
            print(f"{'name':<20} {'task':<8} {'scale':>5} {'kind':<11} {'params':>9}")
            for m in models.available():
                print(f"{m.name:<20} {m.task:<8} {m.scale:>5} {m.kind:<11} {m.params:>9,}")
        elif a.cmd == "info":
            print(json.dumps(models.info(a.name).card, indent=2))
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
    if cmd == "encode":
        from .encode import main as encode_main

        return encode_main(rest)
    if cmd == "models":
        return _models(rest)
    if cmd == "train":
        if not rest or rest[0] != "sr":
            print("vsrestore train: name a task: `vsrestore train sr --help`", file=sys.stderr)
            return 2
        from .training.sr import main as train_main

        return train_main(rest[1:])
    if cmd == "demo":
        from .demo import main as demo_main

        return demo_main(rest)
    print(f"vsrestore: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
