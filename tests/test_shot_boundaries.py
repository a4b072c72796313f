"""Scene cuts across the temporal filters: a one-frame shot (a flash frame between two cuts) takes
nothing from the shots around it, and every filter renders it.

Material: three shots of real photos shipped in scikit-image (4-frame pan of astronaut, one frame
of coffee, 4-frame pan of chelsea), with mild noise, YUV420P8.
"""

from __future__ import annotations

import numpy as np
import pytest
import vapoursynth as vs
from vsrestore.filters.deflicker import deflicker
from vsrestore.filters.degrain import degrain
from vsrestore.filters.despot import despot
from vsrestore.filters.optical_flow import SCENECUT_PROP, optical_flow
from vsrestore.filters.temporal_consistency import temporal_consistency

from tests.conftest import photo
from vsrestore import filmdamage as fd
from vsrestore import grainmodel as G
from vsrestore.bridge import clip_from_arrays

core = vs.core
W, H = 192, 128
LONE = 4  # the one-frame shot


@pytest.fixture(scope="module")
def shots() -> vs.VideoNode:
    rng = np.random.default_rng(7)
    frames = (fd.pan(photo("astronaut"), 4, W, H, step=(3, 1), rng=rng)
              + fd.pan(photo("coffee"), 1, W, H, step=(0, 0), rng=rng)
              + fd.pan(photo("chelsea"), 4, W, H, step=(2, 1), rng=rng))
    frames = [np.clip(f / 255 + rng.normal(0, 2 / 255, f.shape), 0, 1).astype(np.float32) for f in frames]
    rgb = clip_from_arrays(frames, vs.RGBS)
    return core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix_s="709")


def _planes(clip: vs.VideoNode, n: int) -> list[np.ndarray]:
    f = clip.get_frame(n)
    return [np.array(f[p]) for p in range(f.format.num_planes)]


def test_flow_marks_both_cuts_and_carries_nothing(shots):
    for direction, cut_frames in (("backward", {LONE, LONE + 1}), ("forward", {LONE - 1, LONE})):
        flow = optical_flow(shots, direction=direction)
        found = {n for n, f in enumerate(flow.frames(close=True)) if f.props[SCENECUT_PROP]}
        assert found == cut_frames, direction
        assert not np.any(_planes(flow, LONE)[2])  # confidence 0: nothing propagates into it


@pytest.mark.parametrize("name", ["temporal_consistency", "deflicker", "despot"])
def test_lone_frame_is_left_bit_identical(shots, name):
    out = {"temporal_consistency": lambda c: temporal_consistency(c, radius=2),
           "deflicker": deflicker, "despot": despot}[name](shots)
    for a, b in zip(_planes(out, LONE), _planes(shots, LONE), strict=True):
        assert np.array_equal(a, b)
    for n in range(out.num_frames):
        out.get_frame(n)


def test_degrain_lone_frame_is_spatial_only(shots):
    """With no neighbour in its shot, the temporal stage has nothing to average: the frame gets
    exactly what radius=0 (spatial only) gives it."""
    prof = G.stock_profile("16mm", ("Y", "U", "V"))
    full, spatial = degrain(shots, prof, radius=2), degrain(shots, prof, radius=0)
    for a, b in zip(_planes(full, LONE), _planes(spatial, LONE), strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(_planes(full, LONE - 1)[0], _planes(spatial, LONE - 1)[0])  # inside a shot
