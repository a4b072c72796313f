"""vsrestore: AI video restoration filters for VapourSynth.

Stages are plain functions taking and returning ``vs.VideoNode``::

    import vapoursynth as vs
    import vsrestore as vr
    clip = vs.core.bs.VideoSource("film.mkv")
    clip = vr.upscale(clip, 2)
    clip.set_output()
"""

from __future__ import annotations

from . import metrics, models
from .errors import VSRestoreError
from .filters.analyze_grain import analyze_grain
from .filters.deblock import deblock
from .filters.deflicker import deflicker
from .filters.degrade import degrade
from .filters.degrain import degrain
from .filters.denoise import denoise
from .filters.despot import despot
from .filters.optical_flow import optical_flow
from .filters.regrain import regrain
from .filters.restore_color import restore_color
from .filters.stabilize import stabilize
from .filters.temporal_consistency import temporal_consistency
from .filters.upscale import upscale
from .runtime.backends import Backend, OrtCPU, OrtCUDA, TensorRT, TorchCPU, TorchCUDA, auto_backend

__version__ = "0.1.0"

__all__ = [
    "analyze_grain", "auto_backend", "Backend", "deblock", "deflicker", "degrade", "degrain", "denoise",
    "despot", "metrics", "models",
    "optical_flow", "OrtCPU", "OrtCUDA", "regrain", "restore_color", "stabilize",
    "temporal_consistency", "TensorRT", "TorchCPU", "TorchCUDA", "upscale", "VSRestoreError",
    "__version__",
]
