"""TensorRT engine cache and identity, tested WITHOUT TensorRT.

These tests pass plain Python callables as "build" (returns bytes) and
"deserialize" (accepts or rejects bytes). They test the cache logic only --
keys, storage, atomicity, corrupt-entry rebuild, locking -- and say nothing about
TensorRT building or running engines (that needs ``tensorrt`` and an NVIDIA GPU;
see the optional test at the end, which skips when they are missing).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vsrestore.errors import VSRestoreError
from vsrestore.runtime.backends import TensorRT
from vsrestore.runtime.loader import LoadedModel
from vsrestore.runtime.trt import (
    EngineCache,
    build_engine,
    check_input,
    check_profile,
    engine_key,
    import_tensorrt,
)

MAGIC = b"FAKEENG1"


def fake_engine(payload: bytes) -> bytes:
    """Bytes our fake deserializer accepts: magic, payload length, payload."""
    return MAGIC + len(payload).to_bytes(4, "little") + payload


def fake_deserialize(data: bytes) -> bytes | None:
    """Stands in for ``trt.Runtime.deserialize_cuda_engine`` (None on bad bytes).
    Cache logic only: this is not TensorRT."""
    if len(data) < 12 or data[:8] != MAGIC:
        return None
    n = int.from_bytes(data[8:12], "little")
    return data[12:] if len(data) == 12 + n else None


def raising_deserialize(data: bytes) -> bytes:
    out = fake_deserialize(data)
    if out is None:
        raise RuntimeError("engine plan is corrupt")
    return out


BASE = dict(channels=3, min_shape=(16, 16), opt_shape=(720, 1280), max_shape=(1088, 1920),
            fp16=True, int8=False, trt_version="10.3.0", gpu="NVIDIA GeForce RTX 4090 sm_89")
SHA = "ab" * 32


def key(**over) -> str:
    fields = {**BASE, **over}
    return engine_key(fields.pop("onnx", SHA), **fields)


class Counter:
    def __init__(self, payload: bytes = b"engine") -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self) -> bytes:
        self.calls += 1
        return fake_engine(self.payload)


# ----------------------------------------------------------------------------- key


def test_key_is_stable_hex_and_canonical():
    k = key()
    assert k == key() and len(k) == 64 and int(k, 16) >= 0
    # the same values written as lists or in another keyword order give the same key
    assert engine_key(SHA, gpu=BASE["gpu"], trt_version="10.3.0", int8=False, fp16=True,
                      max_shape=[1088, 1920], opt_shape=[720, 1280], min_shape=[16, 16],
                      channels=3) == k


@pytest.mark.parametrize("field,value", [
    ("onnx", "cd" * 32),
    ("channels", 1),
    ("min_shape", (32, 16)), ("min_shape", (16, 32)),
    ("opt_shape", (1080, 1920)), ("opt_shape", (1280, 720)),
    ("max_shape", (2160, 3840)), ("max_shape", (1920, 1088)),
    ("fp16", False),
    ("int8", True),
    ("trt_version", "10.4.0"),
    ("gpu", "NVIDIA GeForce RTX 4090 sm_90"), ("gpu", "NVIDIA H100 80GB HBM3 sm_90"),
])
def test_every_identity_field_changes_the_key(field, value):
    assert key(**{field: value}) != key()


# ----------------------------------------------------------------------------- cache


def test_store_load_round_trip_and_sidecar(tmp_path):
    cache = EngineCache(tmp_path)
    k = key()
    assert cache.load(k, fake_deserialize) is None  # absent
    path = cache.store(k, fake_engine(b"plan"), {"model": "tiny", "fp16": True, "min_shape": (16, 16)})
    assert path == tmp_path / "trt" / f"{k}.engine" == cache.path_for(k)
    assert cache.load(k, fake_deserialize) == b"plan"
    import json

    side = json.loads((tmp_path / "trt" / f"{k}.json").read_text())
    assert side["key"] == k and side["model"] == "tiny" and side["min_shape"] == [16, 16]
    assert side["bytes"] == len(fake_engine(b"plan"))


def test_store_leaves_no_temp_files(tmp_path):
    cache = EngineCache(tmp_path)
    k = key()
    cache.store(k, fake_engine(b"a"), {})
    cache.store(k, fake_engine(b"b"), {})  # overwrite
    assert sorted(p.name for p in (tmp_path / "trt").iterdir()) == [f"{k}.engine", f"{k}.json"]
    assert cache.load(k, fake_deserialize) == b"b"


def test_failed_store_leaves_no_partial_entry(tmp_path, monkeypatch):
    cache = EngineCache(tmp_path)
    k = key()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.store(k, fake_engine(b"x"), {})
    assert list((tmp_path / "trt").iterdir()) == []


@pytest.mark.parametrize("deserialize", [fake_deserialize, raising_deserialize])
def test_corrupt_entry_is_deleted_and_rebuilt(tmp_path, caplog, deserialize):
    cache = EngineCache(tmp_path)
    k = key()
    good = fake_engine(b"engine")
    cache.store(k, good, {})
    cache.path_for(k).write_bytes(good[:-3])  # truncated, as after a crash or a full disk
    with caplog.at_level("WARNING", logger="vsrestore.trt"):
        assert cache.load(k, deserialize) is None
    assert "deleting it" in caplog.text
    assert not cache.path_for(k).exists() and not cache.meta_path_for(k).exists()

    cache.path_for(k).write_bytes(b"garbage")  # corrupt again, then through get_or_build
    build = Counter()
    assert cache.get_or_build(k, build, deserialize, {}) == b"engine"
    assert build.calls == 1
    assert cache.path_for(k).read_bytes() == good


def test_valid_entry_is_not_rebuilt(tmp_path):
    cache = EngineCache(tmp_path)
    k = key()
    build = Counter()
    assert cache.get_or_build(k, build, fake_deserialize, {"model": "m"}) == b"engine"
    assert cache.get_or_build(k, build, fake_deserialize, {"model": "m"}) == b"engine"
    assert EngineCache(tmp_path).get_or_build(k, build, fake_deserialize, {}) == b"engine"
    assert build.calls == 1


def test_unloadable_fresh_build_is_not_cached(tmp_path):
    cache = EngineCache(tmp_path)
    k = key()
    with pytest.raises(VSRestoreError, match="freshly built TensorRT engine could not be loaded"):
        cache.get_or_build(k, lambda: b"not an engine", fake_deserialize, {})
    assert not cache.path_for(k).exists()


def test_bad_key_is_refused(tmp_path):
    with pytest.raises(ValueError):
        EngineCache(tmp_path).path_for("../evil")


# ----------------------------------------------------------------------------- locking


def test_two_threads_build_once(tmp_path):
    """Thread A builds and is held mid-build; thread B must wait, then load A's engine."""
    cache = EngineCache(tmp_path)
    k = key()
    building, release = threading.Event(), threading.Event()
    builds: list[str] = []
    results: dict[str, bytes] = {}

    def build_a() -> bytes:
        builds.append("a")
        building.set()
        assert release.wait(30)
        return fake_engine(b"from-a")

    def build_b() -> bytes:
        builds.append("b")
        return fake_engine(b"from-b")

    ta = threading.Thread(target=lambda: results.__setitem__(
        "a", cache.get_or_build(k, build_a, fake_deserialize, {})), daemon=True)
    tb = threading.Thread(target=lambda: results.__setitem__(
        "b", EngineCache(tmp_path).get_or_build(k, build_b, fake_deserialize, {})), daemon=True)
    try:
        ta.start()
        assert building.wait(30)
        tb.start()
        time.sleep(0.3)
        assert tb.is_alive(), "the second thread should be waiting for the first one's build"
    finally:
        release.set()
        ta.join(30)
        tb.join(30)
    assert builds == ["a"]
    assert results == {"a": b"from-a", "b": b"from-a"}


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vsrestore.runtime.trt import EngineCache

    cache_dir, key, role, work = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
    payload = role.encode()
    plan = b"FAKEENG1" + len(payload).to_bytes(4, "little") + payload

    def deserialize(data):  # cache logic only, not TensorRT
        if data[:8] != b"FAKEENG1" or int.from_bytes(data[8:12], "little") != len(data) - 12:
            return None
        return data[12:]

    def build():
        with open(work / "builds", "a") as fh:
            fh.write(role + "\\n")
        (work / f"{role}_building").touch()
        deadline = time.monotonic() + 60
        while role == "a" and not (work / "release").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return plan

    (work / f"{role}_started").touch()
    got = EngineCache(Path(cache_dir)).get_or_build(key, build, deserialize, {"role": role})
    (work / f"{role}_result").write_bytes(got)
""")


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.02)


def test_two_processes_build_once(tmp_path):
    """Process A holds the flock mid-build; process B must wait, then load A's engine."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    work = tmp_path / "work"
    work.mkdir()
    k = key()

    def spawn(role: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), k, role, str(work)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    a = spawn("a")
    b = None
    try:
        _wait_for(work / "a_building", a)
        b = spawn("b")
        _wait_for(work / "b_started", b)
        time.sleep(0.5)
        assert b.poll() is None, "process b should be blocked on the lock"
        (work / "release").touch()
        for p in (a, b):
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert (work / "builds").read_text() == "a\n"
    assert (work / "a_result").read_bytes() == b"a"
    assert (work / "b_result").read_bytes() == b"a"


# ----------------------------------------------------------------------------- no TensorRT


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make ``import tensorrt`` fail as on a machine without it (also where it is installed)."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def _assert_install_message(err: VSRestoreError) -> None:
    msg = str(err)
    assert msg.startswith("upscale: ")
    assert "TensorRT is not installed" in msg
    assert "vsrestore[tensorrt]" in msg and "NVIDIA's package index" in msg


def test_import_tensorrt_missing_says_how_to_install(no_tensorrt):
    with pytest.raises(VSRestoreError) as ei:
        import_tensorrt()
    _assert_install_message(ei.value)


def test_build_engine_without_tensorrt(no_tensorrt, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"")  # never read: the missing package is reported first
    with pytest.raises(VSRestoreError) as ei:
        build_engine(onnx_path, TensorRT(), 3)
    _assert_install_message(ei.value)


def test_trt_runner_without_tensorrt(no_tensorrt):
    from vsrestore.runtime.runners import make_runner

    model = LoadedModel(name="tiny", scale=2, in_channels=3, out_channels=3)
    with pytest.raises(VSRestoreError) as ei:
        make_runner(model, TensorRT(), "upscale")
    _assert_install_message(ei.value)


# ----------------------------------------------------------------------------- checks before TensorRT


@pytest.mark.parametrize("kw", [
    dict(min_shape=(64, 64), opt_shape=(32, 32)),
    dict(opt_shape=(2000, 1280)),
    dict(max_shape=(0, 1920), min_shape=(0, 16), opt_shape=(0, 16)),
    dict(max_shape=(1088,)),
])
def test_bad_profile_is_refused(kw):
    with pytest.raises(VSRestoreError, match="upscale: TensorRT"):
        check_profile(TensorRT(**kw))


def test_default_profile_is_valid():
    assert check_profile(TensorRT()) == ((16, 16), (720, 1280), (1088, 1920))


def test_int8_needs_qdq_model(no_tensorrt, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(g), str(path))
    with pytest.raises(VSRestoreError, match="QDQ"):
        build_engine(path, TensorRT(int8=True), 3)


def test_input_outside_profile_is_refused():
    mn, mx = (16, 16), (1088, 1920)
    check_input(np.zeros((1, 3, 16, 1920), np.float32), 3, mn, mx)
    with pytest.raises(VSRestoreError, match="outside the TensorRT engine's shape profile"):
        check_input(np.zeros((1, 3, 1089, 64), np.float32), 3, mn, mx)
    with pytest.raises(VSRestoreError, match="outside"):
        check_input(np.zeros((1, 3, 8, 64), np.float32), 3, mn, mx)
    with pytest.raises(VSRestoreError, match="3 channels"):
        check_input(np.zeros((1, 1, 64, 64), np.float32), 3, mn, mx)


# ----------------------------------------------------------------------------- real TensorRT (optional)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT not installed")
def test_real_engine_matches_onnxruntime(tiny_model, tmp_path):
    """The only test here that exercises TensorRT itself: build, cache, run, compare to ORT."""
    import onnxruntime as ort
    import torch

    from vsrestore.runtime.export import cached_onnx
    from vsrestore.runtime.loader import load_model
    from vsrestore.runtime.trt import TrtRunner

    if not torch.cuda.is_available():
        pytest.skip("no NVIDIA GPU")
    lm = load_model(tiny_model, "upscale")
    backend = TensorRT(fp16=False, min_shape=(16, 16), opt_shape=(64, 64), max_shape=(128, 128),
                       cache_dir=tmp_path)
    x = np.random.default_rng(0).random((1, 3, 48, 80), dtype=np.float32)
    runner = TrtRunner(lm, backend)
    assert runner.max_shape == (128, 128)
    sess = ort.InferenceSession(str(cached_onnx(lm, tmp_path)), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(runner(x), ref, atol=2e-3)
    assert list((tmp_path / "trt").glob("*.engine"))
    TrtRunner(lm, backend)  # second construction loads the cached engine
