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
from tests.reference import conv_nd

THREADS = int(os.environ.get("FASTCONV_BENCH_THREADS", "2"))
CASES = [(suite, *case) for suite, cases in _bench.SUITES.items() for case in cases]


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
            np.testing.assert_allclose(f(small, w, **kw), conv_nd(small, w, **kw), rtol=1e-3, atol=1e-3)
            benchmark(f, x, w, **kw)
        else:
            torch = pytest.importorskip("torch")
            torch.set_num_threads(THREADS)
            tf = getattr(torch.nn.functional, suite)
            xt, wt = torch.from_numpy(x), torch.from_numpy(w)
            np.testing.assert_allclose(tf(xt, wt, **kw).numpy(), f(x, w, **kw), rtol=1e-3, atol=1e-3)
            benchmark(tf, xt, wt, **kw)
