from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsrestore", *args], capture_output=True, text=True,
                          timeout=300)


def test_models_list_and_info() -> None:
    res = run("models", "list")
    assert res.returncode == 0 and "sr-compact-x2" in res.stdout and "fidelity" in res.stdout
    info = run("models", "info", "sr-compact-x2")
    card = json.loads(info.stdout)
    assert card["scale"] == 2 and card["held_out"] and card["command"].startswith("vsrestore train")
    bad = run("models", "info", "nope")
    assert bad.returncode != 0 and "no shipped model named 'nope'" in bad.stderr and bad.stdout == ""
    bad = run("models", "evaluate", "nope")
    assert bad.returncode == 2 and "no shipped model named 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_models_export_onnx(tmp_path: Path) -> None:
    out = tmp_path / "x2.onnx"
    res = run("models", "export", "sr-compact-x2", "--onnx", str(out))
    assert res.returncode == 0, res.stderr
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": np.zeros((1, 3, 20, 30), np.float32)})[0]
    assert y.shape == (1, 3, 40, 60)


def test_help_and_unknown_command() -> None:
    assert run("--help").returncode == 0
    res = run("frobnicate")
    assert res.returncode == 2 and "unknown command" in res.stderr


def test_unwritable_outputs_are_clear_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"  # a file where a folder would have to be
    blocker.write_text("")
    video = tmp_path / "in.mkv"
    video.write_bytes(b"")
    for args, says in ((("demo", "-o", str(blocker / "sub")), "vsrestore demo: "),
                       (("script", str(video), "-o", str(blocker / "sub" / "x.vpy")), "vsrestore script: "),
                       (("models", "export", "sr-compact-x2", "--onnx", str(blocker / "sub" / "x.onnx")),
                        "vsrestore models: ")):
        res = run(*args)
        assert res.returncode == 2 and says in res.stderr and "Fix:" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
