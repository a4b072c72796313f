"""benchmarks/gpu_check.py --dry-run: the prepared GPU run works end to end on its CPU stand-ins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_dry_run_reports_every_section(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path),
                          "--train-steps", "2"], capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(rep) == ["environment", "warp kernels", "grain kernels", "optical flow", "upscale",
                         "training"]
    assert not any("error" in section for section in rep.values())
    # the CUDA kernels' logic (simulator) against the NumPy references, as on a GPU
    assert rep["warp kernels"]["worst_vs_reference"] <= 1e-5
    assert rep["warp kernels"]["mask_mismatches"] == 0
    assert all(m["nan_agree"] for m in rep["warp kernels"]["modes"])
    assert rep["grain kernels"]["int_max_code_diff_vs_cpu"] <= 1
    assert rep["grain kernels"]["float_max_abs_vs_reference"] <= 1e-5
    assert rep["optical flow"]["medium"]["max_vector_diff_px"] == 0.0  # TorchCPU both sides here
    assert rep["upscale"]["x2"]["fp32_psnr_vs_cpu_fp32"] > 60
    assert all(rep["training"][p]["returncode"] == 0 for p in ("fp32", "bf16"))
    assert "(CPU stand-ins" in (tmp_path / "gpu_check.md").read_text()
