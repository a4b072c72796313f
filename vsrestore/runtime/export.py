"""ONNX export of torch models, and a content-keyed cache of exported files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .backends import default_cache_dir
from .loader import LoadedModel

OPSET = 17


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def export_onnx(model: LoadedModel, path: Path | str, *, opset: int = OPSET) -> Path:
    """Export *model* to ONNX: input ``input`` / output ``output``, NCHW float32,
    dynamic batch, height and width (vs-mlrt's ``core.ort.Model`` runs it as is)."""
    import io

    import onnx
    import torch

    path = Path(path)
    if model.onnx_path is not None:
        atomic_write_bytes(path, model.onnx_path.read_bytes())
        return path
    s = max(model.size_multiple, model.min_size, 16)
    x = torch.zeros(1, model.input_channels, s, s)
    buf = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            model.module, (x,), buf,  # type: ignore[arg-type]
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                          "output": {0: "batch", 2: "out_height", 3: "out_width"}},
            opset_version=opset, dynamo=False, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    proto.doc_string = f"vsrestore export of {model.name} (x{model.scale}, {model.kind})"
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def cached_onnx(model: LoadedModel, cache_dir: Path | None = None) -> Path:
    """The model as an ONNX file: its own file, or an export cached by content hash."""
    if model.onnx_path is not None:
        return model.onnx_path
    d = (cache_dir or default_cache_dir()) / "onnx"
    path = d / f"{model.name}-{model.identity[:16]}-opset{OPSET}.onnx"
    if not path.exists():
        export_onnx(model, path)
    return path
