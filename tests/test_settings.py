"""Settings are per thread and per asyncio task; BLAS limits are shared
safely by concurrent callers; autotune works for every operation family."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastconv
from fastconv import ndimage, signal

from .reference import conv_nd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_each_thread_keeps_its_own_settings(rng):
    # four threads at once, each inside its own `with set_config(...)`: a
    # 1 MiB workspace limit, autotune, one thread, and a forced method whose
    # workspace exceeds 1 MiB -- no thread's settings reach another's calls
    x = rng.standard_normal((2, 32, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    want = conv_nd(x.astype(np.float64), w.astype(np.float64), padding=1)
    sig, taps = rng.standard_normal(100_000), rng.standard_normal(31)
    img, k = rng.standard_normal((200, 200)), rng.standard_normal((5, 5))
    assert fastconv.explain(fastconv.conv2d, x, w, padding=1, method="winograd_f4").workspace_bytes > 1 << 20
    barrier = threading.Barrier(4)
    errors, seen = [], {}

    def work(name, settings, call):
        try:
            with fastconv.set_config(**settings):
                barrier.wait(10)
                for _ in range(5):
                    call()
                    seen.setdefault(name, set()).add(fastconv.get_config())
        except Exception as exc:
            errors.append((name, exc))

    def winograd():
        np.testing.assert_allclose(fastconv.conv2d(x, w, padding=1, method="winograd_f4"), want, rtol=1e-3, atol=1e-3)

    calls = {
        "small workspace": ({"workspace_limit": 1 << 20}, lambda: fastconv.conv2d(x, w, padding=1)),
        "autotune": ({"autotune": False, "num_threads": 2}, lambda: ndimage.correlate(img, k, mode="reflect")),
        "one thread": ({"num_threads": 1}, lambda: signal.fftconvolve(sig, taps)),
        "forced winograd": ({}, winograd),
    }
    threads = [threading.Thread(target=work, args=(n, s, c)) for n, (s, c) in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert {c.workspace_limit for c in seen["small workspace"]} == {1 << 20}
    assert {c.num_threads for c in seen["one thread"]} == {1}
    assert {c.workspace_limit for c in seen["forced winograd"]} == {fastconv.get_config().workspace_limit}


def test_a_new_thread_starts_with_the_process_defaults():
    got = []
    with fastconv.set_config(num_threads=1, workspace_limit=12345):
        t = threading.Thread(target=lambda: got.append(fastconv.get_config()))
        t.start()
        t.join()
        assert fastconv.get_config().workspace_limit == 12345
    assert got[0].workspace_limit != 12345 and got[0] == fastconv.get_config()


def test_each_asyncio_task_keeps_its_own_settings():
    async def task(n):
        with fastconv.set_config(num_threads=n):
            for _ in range(3):
                await asyncio.sleep(0)  # the other task runs here, with its own settings
                assert fastconv.get_config().num_threads == n
        return n

    async def main():
        return await asyncio.gather(task(1), task(3), task(5))

    assert asyncio.run(main()) == [1, 3, 5]


def test_a_dask_graph_keeps_the_settings_it_was_built_under(monkeypatch):
    da = pytest.importorskip("dask.array")
    from fastconv import _execute

    seen = []
    real = _execute.run_filter

    def recording(*args, **kwargs):
        seen.append(fastconv.get_config().workspace_limit)
        return real(*args, **kwargs)

    monkeypatch.setattr(_execute, "run_filter", recording)
    x = da.from_array(np.arange(400.0).reshape(20, 20), chunks=(10, 10))
    with fastconv.set_config(workspace_limit=54321):
        y = ndimage.correlate(x, np.ones((3, 3)))
    out = y.compute(scheduler="threads")  # (worker threads: the process defaults there)
    np.testing.assert_allclose(out, ndimage.correlate(np.arange(400.0).reshape(20, 20), np.ones((3, 3))))
    assert seen and set(seen[:-1]) == {54321}  # (the last call: the in-memory reference)


def test_blas_limit_is_not_lifted_under_a_caller_still_inside():
    # BLAS has one, process-wide limit: thread A enters, B enters, A leaves
    # while B is still inside -- B's BLAS calls must still see one thread,
    # and the original count must come back when B leaves
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastconv._config import blas_threads

    def blas_now():
        info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        return {i["num_threads"] for i in info}

    original = blas_now()
    if not original or original == {1}:
        pytest.skip("needs a BLAS that runs more than one thread here")
    a_in, a_out = threading.Event(), threading.Event()
    seen = []

    def a():
        with blas_threads(1):
            a_in.set()
            a_out.wait(10)

    t = threading.Thread(target=a)
    t.start()
    a_in.wait(10)
    with blas_threads(1):
        a_out.set()
        t.join(10)  # A has left: B is still inside
        seen.append(blas_now())
    seen.append(blas_now())
    assert seen == [{1}, original]


def test_autotune_on_every_family_and_shared_by_processes(tuning_dir, rng):
    # conv, transposed conv, ndimage (the 200x200 reflect call once crashed
    # in the tuner: it timed the kernels on the unpadded input) and signal;
    # pooling has one method (tier 0 is not a candidate): nothing to tune
    img = rng.standard_normal((200, 200))
    k = np.arange(1.0, 26.0).reshape(5, 5) % 7  # (the second process plans the same weights: taps are in the key)
    sig, taps = rng.standard_normal(20_000), np.arange(1.0, 66.0)
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    results = {
        "ndimage": (ndimage.correlate(img, k, mode="reflect"), img, k),
        "signal": (signal.convolve(sig, taps), sig, taps),
        "conv_transpose2d": (fastconv.conv_transpose2d(x, wt, stride=2, padding=1), x, wt),
    }
    with fastconv.set_config(autotune=False):
        np.testing.assert_allclose(results["ndimage"][0], ndimage.correlate(img, k, mode="reflect"), rtol=1e-9)
        np.testing.assert_allclose(results["signal"][0], signal.convolve(sig, taps), rtol=1e-9, atol=1e-9)
        want = fastconv.conv_transpose2d(x, wt, stride=2, padding=1, method="direct")
        np.testing.assert_allclose(results["conv_transpose2d"][0], want, rtol=1e-4, atol=1e-4)
    pooled = fastconv.max_pool2d(x, 2)
    assert pooled.shape == (2, 8, 6, 6)
    entries = json.loads((tuning_dir / "tuning.json").read_text())
    ops = {json.loads(key)[0][0] for key in entries}
    assert {"ndimage", "signal", "conv_transpose2d"} <= ops and not any("pool" in op for op in ops)
    assert all(len(e["times"]) >= 2 and "numpy" not in e["times"] for e in entries.values())
    # a second process with the same cache measures nothing: it reads the winners
    code = (
        "import numpy as np, fastconv\n"
        "from fastconv import ndimage, signal\n"
        "rng = np.random.default_rng(0)\n"
        "img, k = np.zeros((200, 200)), np.arange(1.0, 26.0).reshape(5, 5) % 7\n"
        "x, wt = np.zeros((2, 8, 12, 12), np.float32), np.zeros((8, 4, 4, 4), np.float32)\n"
        f"with fastconv.set_config(autotune=True, cache_dir={str(tuning_dir)!r}):\n"
        "    for f, a, kw in [(ndimage.correlate, (img, k), dict(mode='reflect')),\n"
        "                     (signal.convolve, (np.zeros(20000), np.zeros(65)), {}),\n"
        "                     (fastconv.conv_transpose2d, (x, wt), dict(stride=2, padding=1))]:\n"
        "        print(fastconv.explain(f, *a, **kw).reason)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.splitlines() == ["measured earlier (tuning cache)"] * 3, res.stdout


def test_precision_high_keeps_float32_error_near_direct_summation(rng):
    # post-ReLU activations and He-initialised weights (where Winograd
    # F(4x4)'s float32 error measured 7x direct summation's): "high" picks a
    # method within a small factor of it; "fast" may pick F(4x4)
    x = np.maximum(rng.standard_normal((2, 64, 28, 28)), 0).astype(np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * np.sqrt(2 / 576)).astype(np.float32)
    truth = conv_nd(x.astype(np.float64), w.astype(np.float64), padding=1)

    def error(y):
        return np.abs(y.astype(np.float64) - truth).max() / np.abs(truth).max()

    direct = error(fastconv.conv2d(x, w, padding=1, method="direct"))
    f4 = error(fastconv.conv2d(x, w, padding=1, method="winograd_f4"))
    assert f4 > 2 * direct  # (what "high" keeps away)
    with fastconv.set_config(precision="high"):
        plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
        (cand,) = [c for c in plan.candidates if c.name == "winograd_f4"]
        assert plan.method != "winograd_f4" and "precision='high'" in cand.rejected
        assert error(fastconv.conv2d(x, w, padding=1)) <= 1.5 * direct
        assert "expected error: <= " in repr(plan) and plan.expected_error < 1e-6
        with pytest.raises(ValueError, match="precision='high'"):
            fastconv.conv2d(x, w, padding=1, method="winograd_f4")
        # float64 is not limited
        assert "winograd_f4" in fastconv.available_methods(fastconv.conv2d, x.astype(np.float64), w, padding=1)
    with pytest.raises(ValueError, match="precision must be one of"):
        fastconv.set_config(precision="medium")


@pytest.mark.parametrize("value, ok", [("high", True), ("FAST", True), ("exact", False)])
def test_precision_environment_variable(value, ok):
    code = "import fastconv; print(fastconv.get_config().precision)"
    env = dict(os.environ, FASTCONV_PRECISION=value, PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if ok:
        assert res.returncode == 0 and res.stdout.strip() == value.lower(), res.stderr[-2000:]
    else:
        assert res.returncode != 0 and "FASTCONV_PRECISION" in res.stderr
