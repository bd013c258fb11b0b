"""pytest-benchmark suites over the same case table as ``fastconv bench``.

Run: ``pip install -e ".[bench]" && python -m pytest bench/bench_conv.py
--benchmark-group-by=param:case``.  torch cases are skipped when torch is not
installed.  Every case is first checked against torch (or, without torch, the
plain-NumPy reference on a shrunk batch).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _bench

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tests.reference import adaptive_pool_nd, avg_pool_nd, conv_nd, conv_transpose_nd, max_pool_nd

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))
CASES = [
    (suite, *case)
    for suite, cases in _bench.SUITES.items()
    if suite not in ("pool2d", "signal", "ndimage")
    for case in cases
]
POOL_CASES = _bench.SUITES["pool2d"]
REFERENCE = {"conv_transpose2d": conv_transpose_nd}


def _data(xs, ws):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
    return x, w


@pytest.mark.parametrize("suite, case, xs, ws, kw", CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("library", ["fastconv", "torch"])
def test_conv(benchmark, library, suite, case, xs, ws, kw):
    x, w = _data(xs, ws)
    f = getattr(fastconv, suite)
    benchmark.extra_info.update(case=case, gflop=fastconv.explain(f, x, w, **kw).flops / 1e9)
    with fastconv.set_config(num_threads=THREADS):
        if library == "fastconv":
            small = x[:1]
            ref = REFERENCE.get(suite, conv_nd)
            np.testing.assert_allclose(f(small, w, **kw), ref(small, w, **kw), rtol=1e-3, atol=1e-3)
            benchmark(f, x, w, **kw)
        else:
            torch = pytest.importorskip("torch")
            torch.set_num_threads(THREADS)
            tf = getattr(torch.nn.functional, suite)
            xt, wt = torch.from_numpy(x), torch.from_numpy(w)
            np.testing.assert_allclose(tf(xt, wt, **kw).numpy(), f(x, w, **kw), rtol=1e-3, atol=1e-3)
            benchmark(tf, xt, wt, **kw)


def _pool_reference(fname, x, kw):
    """The plain-NumPy reference of one pooling case (on a shrunk batch)."""
    nd = 2
    if fname.startswith("adaptive"):
        size = kw["output_size"]
        size = size if isinstance(size, tuple) else (size,) * nd
        return adaptive_pool_nd(x, size, "max" if "max" in fname else "avg")[0]
    k = kw["kernel_size"]
    k = k if isinstance(k, tuple) else (k,) * nd
    s = kw.get("stride", k)
    s = s if isinstance(s, tuple) else (s,) * nd
    p = kw.get("padding", 0)
    p = p if isinstance(p, tuple) else (p,) * nd
    ceil = kw.get("ceil_mode", False)
    if fname.startswith("max"):
        return max_pool_nd(x, k, s, p, (1,) * nd, ceil)[0]
    return avg_pool_nd(x, k, s, p, ceil, kw.get("count_include_pad", True))


@pytest.mark.parametrize("case, xs, fname, kw", POOL_CASES, ids=[c[0] for c in POOL_CASES])
@pytest.mark.parametrize("library", ["fastconv", "torch"])
def test_pool(benchmark, library, case, xs, fname, kw):
    x = np.random.default_rng(0).standard_normal(xs).astype(np.float32)
    f = getattr(fastconv, fname)
    benchmark.extra_info.update(case=case, bytes=x.nbytes + f(x, **kw).nbytes)
    with fastconv.set_config(num_threads=THREADS):
        if library == "fastconv":
            small = x[:1, :4]
            np.testing.assert_allclose(f(small, **kw), _pool_reference(fname, small, kw), rtol=1e-5, atol=1e-6)
            benchmark(f, x, **kw)
        else:
            torch = pytest.importorskip("torch")
            torch.set_num_threads(THREADS)
            tf = getattr(torch.nn.functional, fname)
            xt = torch.from_numpy(x)
            np.testing.assert_allclose(tf(xt, **kw).numpy(), f(x, **kw), rtol=1e-5, atol=1e-6)
            benchmark(tf, xt, **kw)


@pytest.mark.parametrize(
    "case, sa, sb, mode, dtype", _bench.SUITES["signal"], ids=[c[0] for c in _bench.SUITES["signal"]]
)
@pytest.mark.parametrize("library", ["fastconv", "scipy"])
def test_signal(benchmark, library, case, sa, sb, mode, dtype):
    from scipy import signal as ss

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    benchmark.extra_info.update(case=case)
    with fastconv.set_config(num_threads=THREADS):
        f = fastconv.signal.convolve if library == "fastconv" else ss.convolve
        tol = 1e-8 if dtype == "float64" else 1e-3
        np.testing.assert_allclose(fastconv.signal.convolve(a, b, mode), ss.convolve(a, b, mode), rtol=tol, atol=tol)
        benchmark(f, a, b, mode)


@pytest.mark.parametrize(
    "case, shape, dtype, weights, mode", _bench.SUITES["ndimage"], ids=[c[0] for c in _bench.SUITES["ndimage"]]
)
@pytest.mark.parametrize("library", ["fastconv", "scipy"])
def test_ndimage(benchmark, library, case, shape, dtype, weights, mode):
    from scipy import ndimage as sn

    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    w = _bench.filter_weights(weights[0], weights[1], len(shape))
    benchmark.extra_info.update(case=case)
    with fastconv.set_config(num_threads=THREADS):
        f = fastconv.ndimage.correlate if library == "fastconv" else sn.correlate
        np.testing.assert_allclose(
            fastconv.ndimage.correlate(x, w, mode=mode), sn.correlate(x, w, mode=mode), rtol=1e-4, atol=1e-4
        )
        benchmark(f, x, w, mode=mode)
