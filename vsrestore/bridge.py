"""Frame bridge: per-frame Python work on VapourSynth clips, plane <-> NumPy views.

Every filter that runs Python code on pixels goes through :func:`map_frames`.
It wraps a small pool of ``std.ModifyFrame`` nodes in ``std.FrameEval`` so
VapourSynth can run the callback for several frames at once (a bare ModifyFrame
never runs two callbacks concurrently). Callbacks receive the frame number and a list with
one frame per input clip and return a new frame.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import vapoursynth as vs

core = vs.core

FrameFn = Callable[[int, list[vs.VideoFrame]], vs.VideoFrame]
_MIN_POOL = 4  # ModifyFrame nodes per map_frames at least


def map_frames(template: vs.VideoNode, clips: Sequence[vs.VideoNode], fn: FrameFn) -> vs.VideoNode:
    """Run ``fn(n, frames)`` for every output frame, in parallel across frames.

    *template* fixes the output format, size and length (use :func:`resized_template`
    for resolution changes). *clips* are the inputs whose frame ``n`` is passed.
    ``fn`` must return a frame shaped like *template* (see :func:`new_frame`).
    """
    clips = list(clips)

    def cb(n: int, f: vs.VideoFrame | list[vs.VideoFrame]) -> vs.VideoFrame:
        return fn(n, list(f) if isinstance(f, list) else [f])

    # A pool of ModifyFrame nodes, frame n on node n mod k: each node runs one callback at a
    # time, so k = twice the threads keeps them all busy, and no node is built per frame
    # (benchmarks/profile_flow.py shows the pipeline total; tests/test_bridge.py the parallelism).
    k = max(_MIN_POOL, 2 * core.num_threads)
    pool = [template.std.ModifyFrame(clips, cb) for _ in range(k)]

    def per_frame(n: int) -> vs.VideoNode:
        return pool[n % k]

    return template.std.FrameEval(per_frame, clip_src=clips)


def resized_template(clip: vs.VideoNode, width: int, height: int,
                     fmt: vs.VideoFormat | int | None = None) -> vs.VideoNode:
    """A blank clip with *clip*'s length and frame rate at a new size (and format)."""
    kwargs: dict[str, object] = {"width": width, "height": height, "keep": True}
    if fmt is not None:
        kwargs["format"] = fmt if isinstance(fmt, int) else fmt.id
    return core.std.BlankClip(clip, **kwargs)  # type: ignore[arg-type]


def temporal_neighbours(clip: vs.VideoNode, radius: int = 1) -> list[vs.VideoNode]:
    """Clips shifted by ``-radius..+radius`` frames (edges repeat), centre included.

    Pass them to :func:`map_frames` to get frames ``n-r .. n+r`` without calling
    ``get_frame`` inside a callback.
    """
    out = []
    for d in range(-radius, radius + 1):
        if d < 0:
            k = min(-d, clip.num_frames)
            first, n = clip[0], clip.num_frames
            shifted = first * k + clip[: n - k] if n > k else first * n
        elif d > 0:
            k = min(d, clip.num_frames)
            last, n = clip[clip.num_frames - 1], clip.num_frames
            shifted = clip[k:] + last * k if n > k else last * n
        else:
            shifted = clip
        out.append(shifted)
    return out


def plane_view(frame: vs.VideoFrame, plane: int) -> np.ndarray:
    """Zero-copy (strided) NumPy view of one plane; read-only for source frames."""
    return np.asarray(frame[plane])


def frame_to_array(frame: vs.VideoFrame, dtype: type = np.float32) -> np.ndarray:
    """Copy all planes of a frame into a contiguous ``(planes, H, W)`` array.

    Planes must share one size (RGB, GRAY, YUV444); subsampled YUV is converted by
    the caller first.
    """
    fmt = frame.format
    arr = np.empty((fmt.num_planes, frame.height, frame.width), dtype=dtype)
    for p in range(fmt.num_planes):
        arr[p] = np.asarray(frame[p])
    return arr


def new_frame(template: vs.VideoNode, props_from: vs.VideoFrame | None = None,
              width: int | None = None, height: int | None = None) -> vs.VideoFrame:
    """Allocate an output frame for *template* (cheaper than ``f.copy()`` when overwritten)."""
    assert template.format is not None
    fout = core.create_video_frame(template.format, width or template.width, height or template.height)
    if props_from is not None:
        fout.props.update(props_from.props)
    return fout


def array_to_frame(arr: np.ndarray, frame: vs.VideoFrame) -> vs.VideoFrame:
    """Write a ``(planes, H, W)`` array into a writable frame (casts to the plane type)."""
    for p in range(frame.format.num_planes):
        np.copyto(np.asarray(frame[p]), arr[p], casting="unsafe")
    return frame


def clip_from_arrays(arrays: Sequence[np.ndarray], fmt: int = vs.RGBS,
                     fps: tuple[int, int] = (24, 1)) -> vs.VideoNode:
    """Make a clip from ``(planes, H, W)`` arrays (all the same shape) in *fmt*.

    Float formats take values in 0..1; integer formats take code values.
    """
    arrays = [np.ascontiguousarray(a) for a in arrays]
    if not arrays:
        raise ValueError("clip_from_arrays: no arrays")
    planes, h, w = arrays[0].shape
    blank = core.std.BlankClip(format=fmt, width=w, height=h, length=len(arrays),
                               fpsnum=fps[0], fpsden=fps[1], keep=True)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        out = new_frame(blank, f[0])
        return array_to_frame(arrays[n], out)

    return map_frames(blank, [blank], fn)


def clip_to_arrays(clip: vs.VideoNode, dtype: type = np.float32) -> list[np.ndarray]:
    """Render every frame of *clip* into ``(planes, H, W)`` arrays (tests, tools)."""
    return [frame_to_array(f, dtype) for f in clip.frames(close=True)]


class PerThread[T]:
    """Lazily created per-thread state for frame callbacks (sessions, CUDA streams)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._local = threading.local()

    def get(self) -> T:
        obj = getattr(self._local, "obj", None)
        if obj is None:
            obj = self._factory()
            self._local.obj = obj
        return obj


class Shared[K, V]:
    """A small thread-safe LRU of results that the callbacks of several frames share.

    E.g. the flows between frames ``n`` and ``n + 1``, which the callbacks of both frames
    need, or an encoded window of frames. ``get(key, compute)`` returns the stored value or
    computes, stores and returns it; each key is computed once: a concurrent request for
    the same key waits for that computation, other keys proceed in parallel. At most
    *capacity* values are kept (least recently used dropped first; a dropped key is
    computed again when asked for).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"Shared: capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[K, threading.Lock] = {}

    def get(self, key: K, compute: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:  # computed by the thread this one waited for
                    return self._items[key]
            value = compute()  # outside the shared lock: other keys' work goes on meanwhile
            with self._lock:
                self._items[key] = value
                while len(self._items) > self._capacity:
                    old, _ = self._items.popitem(last=False)
                    self._key_locks.pop(old, None)
            return value

    def __len__(self) -> int:
        return len(self._items)
