"""Every case of the benchmark table (``fastconv._bench.SUITES``), shrunk to
test size, checked against the references: the table that is timed is also
the table that is tested."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import _bench

from .reference import adaptive_pool_nd, avg_pool_nd, conv_nd, conv_transpose_nd, max_pool_nd


def _shrink_conv(xs, ws, kw, transposed):
    kw = dict(kw)
    g = kw.get("groups", 1)
    g2 = min(g, 4)
    if transposed:
        cig, cog = ws[0] // g, ws[1]
    else:
        cig, cog = ws[1], ws[0] // g
    cig, cog = min(cig, 6), min(cog, 6)
    if g > 1:
        kw["groups"] = g2
    spatial = tuple(min(s, 11) for s in xs[2:])
    x_shape = (1, cig * g2, *spatial)
    w_shape = (cig * g2, cog, *ws[2:]) if transposed else (cog * g2, cig, *ws[2:])
    return x_shape, w_shape, kw


CONV_CASES = [(s, c) for s in ("conv1d", "conv2d", "conv3d", "conv_transpose2d") for c in _bench.SUITES[s]]


@pytest.mark.parametrize("suite, case", CONV_CASES, ids=[f"{s}:{c[0]}" for s, c in CONV_CASES])
def test_conv_cases(suite, case, rng):
    _, xs, ws, kw = case
    transposed = suite.startswith("conv_transpose")
    x_shape, w_shape, kw = _shrink_conv(xs, ws, kw, transposed)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    got = getattr(fastconv, suite)(x, w, **kw)
    want = (conv_transpose_nd if transposed else conv_nd)(x, w, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", _bench.SUITES["pool2d"], ids=[c[0] for c in _bench.SUITES["pool2d"]])
def test_pool_cases(case, rng):
    _, xs, fname, kw = case
    x = rng.standard_normal((1, 3, *(min(s, 15) for s in xs[2:])))
    got = getattr(fastconv, fname)(x, **kw)
    if fname.startswith("adaptive"):
        size = kw["output_size"]
        want = adaptive_pool_nd(x, (size, size), "max" if "max" in fname else "avg")[0]
    else:
        k = (kw["kernel_size"],) * 2
        s = (kw.get("stride", kw["kernel_size"]),) * 2
        p = (kw.get("padding", 0),) * 2
        if fname.startswith("max"):
            want = max_pool_nd(x, k, s, p, (1, 1), kw.get("ceil_mode", False))[0]
        else:
            want = avg_pool_nd(x, k, s, p, kw.get("ceil_mode", False), True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", _bench.SUITES["signal"], ids=[c[0] for c in _bench.SUITES["signal"]])
def test_signal_cases(case, rng):
    from scipy import signal as ss

    _, sa, sb, mode, dtype = case
    limit = 400 if len(sa) == 1 else 30 if len(sa) == 2 else 12
    a = rng.standard_normal(tuple(min(n, limit) for n in sa)).astype(dtype)
    b = rng.standard_normal(tuple(min(k, limit // 3) for k in sb)).astype(dtype)
    tol = 1e-9 if dtype == "float64" else 2e-4
    for method in fastconv.available_methods(fastconv.signal.convolve, a, b, mode=mode):
        got = fastconv.signal.convolve(a, b, mode=mode, method=method)
        assert got.dtype == ss.convolve(a, b, mode=mode).dtype
        np.testing.assert_allclose(got, ss.convolve(a, b, mode=mode), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", _bench.SUITES["ndimage"], ids=[c[0] for c in _bench.SUITES["ndimage"]])
def test_ndimage_cases(case, rng):
    from scipy import ndimage as sn

    _, shape, dtype, (kind, k), mode = case
    x = rng.standard_normal(tuple(min(s, 24) for s in shape)).astype(dtype)
    w = _bench.filter_weights(kind, min(k, 7), len(shape))
    tol = 2e-5 if dtype == "float32" else 1e-12
    for method in fastconv.available_methods(fastconv.ndimage.correlate, x, w, mode=mode):
        got = fastconv.ndimage.correlate(x, w, mode=mode, method=method)
        np.testing.assert_allclose(got, sn.correlate(x, w, mode=mode), rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("case", _bench.SUITES["filters"], ids=[c[0] for c in _bench.SUITES["filters"]])
def test_filter_cases(case, rng):
    from scipy import ndimage as sn

    _, shape, dtype, filt, args, mode = case
    x = rng.standard_normal(tuple(min(s, 24) for s in shape)).astype(dtype)
    tol = 2e-5 if dtype == "float32" else 1e-12
    got = getattr(fastconv.ndimage, filt)(x, *args, mode=mode)
    np.testing.assert_allclose(got, getattr(sn, filt)(x, *args, mode=mode), rtol=tol, atol=tol * 10)
