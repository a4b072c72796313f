from __future__ import annotations

import threading

import numpy as np
import vapoursynth as vs

from vsrestore.bridge import (
    PerThread,
    Shared,
    clip_from_arrays,
    clip_to_arrays,
    frame_to_array,
    map_frames,
    new_frame,
    plane_view,
    resized_template,
    temporal_neighbours,
)

core = vs.core


def test_round_trip_arrays_rgbs() -> None:
    rng = np.random.default_rng(0)
    arrs = [rng.random((3, 17, 1918), dtype=np.float32) for _ in range(3)]  # padded stride
    back = clip_to_arrays(clip_from_arrays(arrs, vs.RGBS))
    for a, b in zip(arrs, back, strict=True):
        assert np.array_equal(a, b)


def test_plane_view_is_strided_zero_copy() -> None:
    clip = core.std.BlankClip(format=vs.RGBS, width=1918, height=4, length=1)
    f = clip.get_frame(0)
    v = plane_view(f, 0)
    assert v.shape == (4, 1918) and v.strides[0] >= 1918 * 4 and not v.flags.writeable


def test_map_frames_runs_in_parallel_and_in_order() -> None:
    core.num_threads = 2
    src = clip_from_arrays([np.full((1, 8, 8), i, np.float32) for i in range(12)], vs.GRAYS)
    active, peak, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(2, timeout=5)

    def fn(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        if n < 2:
            barrier.wait()  # frames 0 and 1 must be in flight together
        out = new_frame(src, f[0])
        np.copyto(np.asarray(out[0]), frame_to_array(f[0])[0] * 2)
        with lock:
            active[0] -= 1
        return out

    res = clip_to_arrays(map_frames(src, [src], fn))
    assert [float(a[0, 0, 0]) for a in res] == [2.0 * i for i in range(12)]
    assert peak[0] >= 2


def test_temporal_neighbours_and_template() -> None:
    src = clip_from_arrays([np.full((1, 4, 4), i, np.float32) for i in range(5)], vs.GRAYS)
    prev, cur, nxt = temporal_neighbours(src, 1)
    vals = [[float(frame_to_array(c.get_frame(n))[0, 0, 0]) for n in range(5)] for c in (prev, cur, nxt)]
    assert vals == [[0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 4]]
    t = resized_template(src, 10, 6)
    assert (t.width, t.height, t.num_frames, t.fps) == (10, 6, 5, src.fps)


def test_per_thread_state() -> None:
    made = []
    pt = PerThread(lambda: made.append(1) or object())
    a = pt.get()
    assert pt.get() is a
    other = []
    th = threading.Thread(target=lambda: other.append(pt.get()))
    th.start()
    th.join()
    assert other[0] is not a and len(made) == 2


def test_shared_computes_once_and_drops_the_least_recently_used() -> None:
    calls: list[int] = []

    def make(k: int):
        return lambda: calls.append(k) or k * 10

    cache: Shared[int, int] = Shared(2)
    assert [cache.get(1, make(1)), cache.get(2, make(2)), cache.get(1, make(1))] == [10, 20, 10]
    assert calls == [1, 2]  # the second get of 1 was a hit
    cache.get(3, make(3))  # evicts 2, the least recently used
    assert len(cache) == 2 and cache.get(1, make(1)) == 10 and calls == [1, 2, 3]
    cache.get(2, make(2))
    assert calls == [1, 2, 3, 2]
    try:
        Shared(0)
    except ValueError as e:
        assert "capacity" in str(e)
    else:
        raise AssertionError("capacity 0 accepted")


def test_shared_concurrent_requests_compute_a_key_once() -> None:
    cache: Shared[str, int] = Shared(4)
    started, release, calls = threading.Event(), threading.Event(), []

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 7

    got: list[int] = []
    first = threading.Thread(target=lambda: got.append(cache.get("k", slow)))
    first.start()
    started.wait(5)
    second = threading.Thread(target=lambda: got.append(cache.get("k", slow)))  # waits for the first
    second.start()
    other = cache.get("other", lambda: 3)  # another key is not held up
    release.set()
    first.join(5)
    second.join(5)
    assert other == 3 and got == [7, 7] and calls == [1]
