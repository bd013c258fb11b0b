"""Import cost, on-disk kernel cache, threads, settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastconv

from .reference import conv_nd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, env: dict | None = None) -> str:
    full_env = {**os.environ, **(env or {})}
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_import_is_light():
    out = _python(
        """
        import sys, fastconv
        print(sorted(m for m in ("numba", "llvmlite", "fastconv.kernels.direct") if m in sys.modules))
        """
    )
    assert out.strip() == "[]"


def test_second_process_loads_kernels_from_disk_cache(tmp_path):
    code = """
        import json, numpy as np, fastconv
        from fastconv.kernels import filter, gather, passes
        w = np.ones((3, 3), np.float32)
        with fastconv.set_config(num_threads=1):  # (the one-thread build: a small kernel to compile)
            for x in (np.ones((40, 40), np.float32), np.ones((9, 9), np.float32)):  # (9x9: the tiny form)
                fastconv.ndimage.correlate(x, w, method="direct")
                fastconv.ndimage.correlate(x.astype(np.float64), w, mode="constant", method="direct")
                fastconv.ndimage.gaussian_filter(x, 1.0)  # (the filters' sweep)
                fastconv.ndimage.sobel(x.astype(np.float64))
        stats = [filter.correlate_kernel_serial.stats, gather.gathered_correlate.stats,
                 passes.two_pass_kernel_serial.stats]
        print(json.dumps([[sum(s.cache_hits.values()), sum(s.cache_misses.values())] for s in stats]))
    """
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    first = json.loads(_python(code, env))
    second = json.loads(_python(code, env))
    assert first == [[0, 2], [0, 2], [0, 2]], first  # float32 and float64: compiled once each
    assert second == [[2, 0], [2, 0], [2, 0]], second  # loaded from disk, never recompiled


def test_threads_share_kernels_safely(rng):
    xs = [rng.standard_normal((2, 5, 11, 9)).astype(np.float32) for _ in range(6)]
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    wants = [conv_nd(x, w, padding=1) for x in xs]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i):
        try:
            for _ in range(5):
                results[i] = fastconv.conv2d(xs[i], w, padding=1, stride=1 + i % 2)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, want in enumerate(wants):
        want = want[..., :: 1 + i % 2, :: 1 + i % 2]
        np.testing.assert_allclose(results[i], want, rtol=2e-4, atol=2e-4 * np.abs(want).max())


def test_threads_under_the_workqueue_layer():
    # Numba's workqueue layer cannot run two parallel regions at once (it
    # aborts the process): fastconv serialises them there.  The layer is
    # forced in a child, four threads call parallel kernels at once.
    code = """
import threading, numpy as np, numba, fastconv
from fastconv import ndimage
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 8, 40, 40)).astype(np.float32)
w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
img = rng.standard_normal((300, 300))
want = [fastconv.conv2d(x, w, padding=1, method="direct"), fastconv.max_pool2d(x, 2),
        ndimage.correlate(img, np.ones((5, 5)))]
assert numba.threading_layer() == "workqueue", numba.threading_layer()
errors = []
def work():
    try:
        for _ in range(10):
            got = [fastconv.conv2d(x, w, padding=1, method="direct"), fastconv.max_pool2d(x, 2),
                   ndimage.correlate(img, np.ones((5, 5)))]
            for g, v in zip(got, want):
                np.testing.assert_array_equal(g, v)
    except BaseException as exc:
        errors.append(exc)
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not errors, errors
print("ok")
"""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", FASTCONV_NUM_THREADS="2", PYTHONPATH=ROOT)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_computes_after_parent_ran_parallel_kernels(rng):
    """A child forked after the parent ran parallel kernels (GNU OpenMP
    terminates such a child when it starts a parallel region) computes the
    same results on the kernels' serial builds."""
    import multiprocessing

    x = rng.standard_normal((2, 4, 9, 7)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    with fastconv.set_config(num_threads=2):
        parent = fastconv.conv2d(x, w, padding=1, method="direct")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_conv_in_child, args=(queue, x, w))
    child.start()
    child.join(300)  # (the result is a few kB: it fits the pipe, the child exits)
    assert child.exitcode == 0
    got = queue.get(timeout=10)
    np.testing.assert_allclose(got, conv_nd(x, w, padding=1), rtol=2e-4, atol=2e-4 * np.abs(parent).max())


def test_serial_thresholds_follow_the_threading_layer(monkeypatch):
    # kernels run serially below sizes measured under workqueue's costly
    # launches; where launches are cheap (omp, tbb, or none run yet: Numba's
    # first choice) below an eighth of them
    import numba

    from fastconv._config import serial_below

    def layer(name):
        def threading_layer():
            if name is None:
                raise ValueError("no threading layer")
            return name

        return threading_layer

    for name, want in [("workqueue", 800.0), ("omp", 100.0), ("tbb", 100.0), (None, 100.0)]:
        monkeypatch.setattr(numba, "threading_layer", layer(name))
        assert serial_below(800) == want, name


def _conv_in_child(queue, x, w):
    with fastconv.set_config(num_threads=2):
        queue.put(fastconv.conv2d(x, w, padding=1, method="direct"))


def test_set_config_context_manager_restores():
    before = fastconv.get_config()
    with fastconv.set_config(num_threads=1, workspace_limit=1234, autotune=True) as ctx:
        cfg = fastconv.get_config()
        assert (cfg.num_threads, cfg.workspace_limit, cfg.autotune) == (1, 1234, True)
        assert "num_threads=1" in repr(ctx)
    assert fastconv.get_config() == before


def test_num_threads_gives_same_answer(rng):
    x = rng.standard_normal((3, 8, 20, 20)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    want = conv_nd(x, w, padding=1)
    for n in (1, 2, 3):
        with fastconv.set_config(num_threads=n):
            got = fastconv.conv2d(x, w, padding=1)
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())


def test_environment_variables(tmp_path):
    out = _python(
        """
        import fastconv
        c = fastconv.get_config()
        print(c.autotune, c.num_threads, c.cache_dir)
        """,
        {"FASTCONV_AUTOTUNE": "1", "FASTCONV_NUM_THREADS": "3", "FASTCONV_CACHE_DIR": str(tmp_path)},
    )
    assert out.split() == ["True", "3", str(tmp_path)]


@pytest.mark.parametrize("value", ["many", "0"])
def test_bad_environment_variable_is_named(value):
    res = subprocess.run(
        [sys.executable, "-c", "import fastconv; fastconv.get_config()"],
        capture_output=True,
        text=True,
        env={**os.environ, "FASTCONV_NUM_THREADS": value},
        cwd=ROOT,
    )
    assert res.returncode != 0 and "FASTCONV_NUM_THREADS" in res.stderr


def test_im2col_honours_the_workspace_limit():
    """An 8x256x56x56 3x3 layer would need 231 MB of columns at once; with a
    16 MiB limit the process's peak memory grows by about the output only."""
    out = _python(
        """
        import resource, numpy as np, fastconv
        x = np.ones((8, 256, 56, 56), np.float32); w = np.ones((256, 256, 3, 3), np.float32) / 2304
        fastconv.conv2d(x[:1, :8, :8, :8], w[:8, :8], padding=1, method="im2col")  # compile
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with fastconv.set_config(workspace_limit=16 * 2**20):
            plan = fastconv.explain(fastconv.conv2d, x, w, padding=1, method="im2col")
            y = fastconv.conv2d(x, w, padding=1, method="im2col")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert np.allclose(y[:, :, 1:-1, 1:-1], 1.0, rtol=1e-4)
        print(plan.workspace_bytes, (after - before) * 1024)
        """
    )
    workspace, grown = map(int, out.split())
    output = 8 * 256 * 56 * 56 * 4
    assert workspace <= 16 * 2**20
    assert grown < output + 16 * 2**20 + 24 * 2**20, grown


def test_im2col_tiles_always_fit(rng):
    from fastconv._spec import conv_spec
    from fastconv.plans.im2col import plan_tiles, workspace

    for _ in range(200):
        n, c, k = int(rng.integers(1, 9)), int(rng.integers(1, 300)), int(rng.integers(1, 6))
        h = int(rng.integers(k, 80))
        spec, _, _ = conv_spec(
            2, np.empty((n, c, h, h), np.float32), np.empty((16, c, k, k), np.float32),
            None, 1, 0, 1, 1, "zeros", "auto", None, None,
        )  # fmt: skip
        for limit in (2**16, 2**20, 2**26):
            for threads in (1, 2):
                nimg, _ = plan_tiles(spec, limit, threads)
                if nimg:
                    assert workspace(spec, limit, threads) <= limit


def test_scratch_buffers_are_kept_per_thread_and_released():
    from fastconv._config import release_scratch, scratch

    a = scratch("test_buf", (3, 4), np.float32)
    assert a.shape == (3, 4) and a.dtype == np.float32
    b = scratch("test_buf", (2, 5), np.float32)  # smaller: the same memory
    assert np.shares_memory(a, b)
    c = scratch("test_buf", (2, 5), np.float64)  # another dtype: its own buffer
    assert not np.shares_memory(a, c)
    d = scratch("test_buf", (100,), np.float32)  # larger: a new buffer
    assert d.shape == (100,) and not np.shares_memory(a, d)
    seen = []
    t = threading.Thread(target=lambda: seen.append(scratch("test_buf", (100,), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(seen[0], d)  # each thread has its own
    release_scratch()
    assert not np.shares_memory(scratch("test_buf", (100,), np.float32), d)
    release_scratch()


def test_kept_scratch_stays_within_the_workspace_limit():
    """Buffers of several methods are kept up to workspace_limit in total;
    the least recently used go first, the one just asked for always stays."""
    from fastconv._config import kept_scratch_bytes, release_scratch, scratch

    release_scratch()
    with fastconv.set_config(workspace_limit=10_000):
        a = scratch("test_a", (1000,), np.float32)  # 4000 bytes
        b = scratch("test_b", (1000,), np.float32)
        scratch("test_a", (10,), np.float32)  # a used again: b is now the oldest
        c = scratch("test_c", (1000,), np.float32)  # 12000 > 10000: b goes
        assert kept_scratch_bytes() == 8000
        assert np.shares_memory(scratch("test_a", (1000,), np.float32), a)
        assert np.shares_memory(scratch("test_c", (1000,), np.float32), c)
        assert not np.shares_memory(scratch("test_b", (1000,), np.float32), b)
        big = scratch("test_big", (5000,), np.float32)  # alone over the limit: kept, the rest go
        assert kept_scratch_bytes() == big.nbytes
    release_scratch()
    assert kept_scratch_bytes() == 0
