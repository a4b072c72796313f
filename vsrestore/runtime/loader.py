"""Load models safely: spandrel architectures from .pth/.safetensors, or .onnx files.

Weights are never unpickled with code execution: ``.safetensors`` holds tensors
only, and ``.pth``/``.pt``/``.ckpt`` go through ``torch.load(weights_only=True)``,
which refuses any pickle that would import or call code. TorchScript archives are
refused (they carry code).
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VSRestoreError

TORCH_EXTS = (".pth", ".pt", ".ckpt", ".bin")


@dataclass(frozen=True, kw_only=True)
class LoadedModel:
    """A model ready for a runtime: a torch module and/or an ONNX file."""

    name: str
    scale: int
    in_channels: int  # image channels (RGB 3, grey 1)
    out_channels: int
    cond_channels: int = 0  # constant "level" planes the network takes after the image (DRUNet: 1)
    module: Any = None  # torch.nn.Module (eval mode, CPU, float32)
    onnx_path: Path | None = None
    size_multiple: int = 1
    min_size: int = 1
    receptive_radius: int | None = None
    supports_half: bool = True
    kind: str = "fidelity"
    identity: str = ""  # content hash: keys caches (exported ONNX, TensorRT engines)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def input_channels(self) -> int:
        """Channels of the network's input tensor: image plus level planes."""
        return self.in_channels + self.cond_channels


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def load_state_dict(path: Path, filter_name: str) -> dict[str, Any]:
    """Tensors of a weights file, without executing code."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as e:
            raise VSRestoreError(filter_name, f"{path} is not a valid safetensors file ({e})",
                                 "pass a model file (.safetensors, .pth, .onnx)") from e
    if suffix in TORCH_EXTS:
        import pickle

        import torch

        if _is_torchscript(path):
            raise VSRestoreError(filter_name, f"{path} is a TorchScript archive, which carries code",
                                 "convert it to .safetensors or export it to .onnx")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise VSRestoreError(
                filter_name,
                f"refused to load {path}: it contains pickled code or objects that "
                f"weights_only loading does not allow ({str(e).splitlines()[0]})",
                "use a .safetensors file, or a .pth holding only tensors") from e
        except Exception as e:  # torch raises many types for non-pickle bytes
            raise VSRestoreError(filter_name, f"{path} is not a readable PyTorch weights file ({e})",
                                 "pass a model file (.safetensors, .pth, .onnx)") from e
        if not isinstance(obj, dict):
            raise VSRestoreError(filter_name, f"{path} holds a {type(obj).__name__}, not a state dict",
                                 "save the model's state_dict() to .safetensors")
        return obj
    raise VSRestoreError(filter_name, f"unknown model file type '{path.suffix}' ({path})",
                         "use .safetensors, .pth/.pt or .onnx")


# spandrel architectures whose descriptor does more than ``model(image)``
_CONDITIONED = {"DRUNet": 1}  # takes level planes (noise map) after the image: we feed them
_CUSTOM_CALL = {"DnCNN", "FBCNN", "GFPGAN", "IPT", "MMRealSR", "MixDehazeNet", "RestoreFormer",
                "RetinexFormer"}


def _describe(sd: dict[str, Any], path: Path, filter_name: str) -> Any:
    import spandrel

    try:
        desc = spandrel.ModelLoader("cpu").load_from_state_dict(spandrel.canonicalize_state_dict(sd))
    except spandrel.UnsupportedModelError as e:
        raise VSRestoreError(filter_name, f"{path} is not a model architecture spandrel recognises",
                             "pass a super-resolution/restoration model supported by spandrel, "
                             "or an .onnx file") from e
    except (KeyError, RuntimeError, ValueError, IndexError) as e:
        raise VSRestoreError(filter_name, f"{path}: weights do not fit their architecture ({e})",
                             "check the file is a complete, unmodified model") from e
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise VSRestoreError(filter_name, f"{path} is not a single-image model",
                             "use a super-resolution or restoration model")
    return desc


def _module(desc: Any) -> tuple[Any, int]:
    """The module to call on the (image + level planes) tensor, and the number of level planes."""
    arch = desc.architecture.id
    if arch in _CUSTOM_CALL:
        from .chain import Called

        return Called(desc.model, desc._call_fn), 0
    return desc.model, _CONDITIONED.get(arch, 0)


def load_spandrel(path: Path, filter_name: str) -> LoadedModel:
    from .chain import Chain, split_stages

    sd = load_state_dict(path, filter_name)
    parts = split_stages(sd)
    descs = [_describe(p, path, filter_name) for p in parts] if parts else [_describe(sd, path, filter_name)]
    mods = [_module(d) for d in descs]
    for i, (d, (_, cond)) in enumerate(zip(descs, mods, strict=True)):
        if i and (cond or d.input_channels != descs[i - 1].output_channels):
            raise VSRestoreError(filter_name, f"{path}: chain stage {i} does not take stage {i - 1}'s "
                                 "output", "chain stages must map image to image")
    module = mods[0][0] if len(mods) == 1 else Chain([m for m, _ in mods])
    module = module.eval().float()
    for p in module.parameters():
        p.requires_grad_(False)
    scale = 1
    multiple, minimum = 1, 1
    for d in descs:
        req = d.size_requirements
        multiple = math.lcm(multiple, int(req.multiple_of))  # conservative for later stages
        minimum = max(minimum, int(req.minimum))
        scale *= int(d.scale)
    return LoadedModel(
        name=path.stem, scale=scale, in_channels=int(descs[0].input_channels),
        out_channels=int(descs[-1].output_channels), cond_channels=mods[0][1], module=module,
        size_multiple=multiple, min_size=minimum,
        supports_half=all(bool(d.supports_half) for d in descs), identity=file_sha256(path))


def load_onnx(path: Path, filter_name: str) -> LoadedModel:
    import numpy as np
    import onnx
    import onnxruntime as ort

    try:
        proto = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx raises several unrelated types
        raise VSRestoreError(filter_name, f"{path} is not a valid ONNX model ({e})",
                             "pass a valid .onnx file") from e
    inp = proto.graph.input[0].type.tensor_type.shape.dim
    if len(inp) != 4:
        raise VSRestoreError(filter_name, f"{path}: input has {len(inp)} dims, expected NCHW",
                             "export the model with a 4-D NCHW input")
    in_ch = inp[1].dim_value
    fixed_hw = [d.dim_value if d.HasField("dim_value") else 0 for d in inp[2:]]
    probe_h, probe_w = [v or 32 for v in fixed_hw]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.zeros((1, in_ch or 3, probe_h, probe_w), np.float32)
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    scale = y.shape[2] // probe_h
    if y.shape[2] != probe_h * scale or y.shape[3] != probe_w * scale or scale < 1:
        raise VSRestoreError(filter_name, f"{path}: output {y.shape} is not an integer upscale "
                             f"of input {x.shape}", "use an image-to-image model")
    return LoadedModel(name=path.stem, scale=scale, in_channels=in_ch or 3,
                       out_channels=int(y.shape[1]), onnx_path=path,
                       size_multiple=1, identity=file_sha256(path))


def load_model(path: str | Path, filter_name: str) -> LoadedModel:
    p = Path(path).expanduser()
    if not p.is_file():
        raise VSRestoreError(filter_name, f"model file {p} does not exist",
                             "check the path, or use a shipped model name (vsrestore models list)")
    if p.suffix.lower() == ".onnx":
        return load_onnx(p, filter_name)
    return load_spandrel(p, filter_name)
