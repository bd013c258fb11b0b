"""Pooling against the plain-NumPy references (and torch when installed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from tests import reference as ref
from tests.arrays import layouts

# (nd, spatial, kernel, stride, padding, dilation, ceil_mode): ceil-mode edge
# windows, padding == kernel // 2, kernel == input, 1-wide inputs, dilation
MAX_CASES = [
    (1, (9,), 3, 2, 1, 1, False),
    (1, (10,), 3, 2, 1, 1, True),
    (1, (7,), 2, 3, 1, 2, True),
    (1, (1,), 1, 1, 0, 1, False),
    (1, (5,), 5, 1, 2, 1, False),
    (2, (7, 9), 3, 2, 1, 1, False),
    (2, (7, 9), 3, 2, 1, 1, True),
    (2, (8, 8), 2, 2, 0, 1, True),
    (2, (6, 5), (2, 3), (1, 2), (1, 1), (2, 1), True),
    (2, (5, 5), 5, 1, 0, 1, False),
    (2, (1, 6), (1, 3), (1, 2), (0, 1), 1, True),
    (2, (11, 12), 3, 1, 1, 1, False),
    (2, (13, 17), 4, 3, 2, 1, True),
    (2, (9, 9), 3, 3, 0, 3, False),
    (3, (5, 6, 7), 3, 2, 1, 1, True),
    (3, (4, 4, 4), 2, 2, 0, 1, False),
    (3, (3, 5, 1), (3, 2, 1), 1, (1, 1, 0), (1, 2, 1), False),
]

AVG_CASES = [
    (1, (9,), 3, 2, 1, False),
    (1, (10,), 4, 3, 2, True),
    (1, (1,), 1, 1, 0, True),
    (2, (7, 9), 3, 2, 1, False),
    (2, (7, 9), 3, 2, 1, True),
    (2, (5, 5), 3, 2, 1, True),
    (2, (8, 8), 2, 2, 0, False),
    (2, (6, 7), (2, 3), (1, 2), (1, 1), True),
    (2, (4, 4), 4, 1, 0, False),
    (2, (12, 11), 3, 1, 1, False),
    (3, (5, 6, 7), 3, 2, 1, True),
    (3, (4, 1, 4), (2, 1, 2), 2, 0, False),
]


@pytest.fixture(params=["kernel", "numpy"])
def path(request, monkeypatch):
    """Run the test on the compiled kernel and on tier 0 (the NumPy path a
    call takes while the kernel compiles)."""
    if request.param == "kernel":
        yield request.param
        return
    from fastconv import _warm

    monkeypatch.setattr(_warm, "run", lambda key, spec, kernel, fallback, *rest: fallback())
    with fastconv.set_config(background_compile=True):
        yield request.param


def _x(rng, nd, spatial, dtype, n=2, c=3):
    return rng.standard_normal((n, c, *spatial)).astype(dtype)


def _pool_fn(kind, nd):
    return getattr(fastconv, f"{kind}_pool{nd}d")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", MAX_CASES, ids=lambda c: f"{c[0]}d{c[1]}k{c[2]}s{c[3]}p{c[4]}d{c[5]}c{int(c[6])}")
def test_max_pool_matches_reference(path, rng, case, dtype):
    nd, spatial, k, s, p, d, ceil = case
    x = _x(rng, nd, spatial, dtype)
    tup = lambda v: v if isinstance(v, tuple) else (v,) * nd  # noqa: E731
    want, want_idx = ref.max_pool_nd(x, tup(k), tup(s), tup(p), tup(d), ceil)
    got, idx = _pool_fn("max", nd)(x, k, s, p, d, ceil, True)
    assert got.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(got, want.astype(dtype))
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(_pool_fn("max", nd)(x, k, s, p, d, ceil), got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("case", AVG_CASES, ids=lambda c: f"{c[0]}d{c[1]}k{c[2]}s{c[3]}p{c[4]}c{int(c[5])}")
def test_avg_pool_matches_reference(path, rng, case, include_pad, dtype):
    nd, spatial, k, s, p, ceil = case
    x = _x(rng, nd, spatial, dtype)
    tup = lambda v: v if isinstance(v, tuple) else (v,) * nd  # noqa: E731
    want = ref.avg_pool_nd(x, tup(k), tup(s), tup(p), ceil, include_pad)
    got = _pool_fn("avg", nd)(x, k, s, p, ceil, include_pad)
    assert got.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("divisor", [1, 3, -2])
def test_avg_pool_divisor_override(path, rng, divisor):
    x = _x(rng, 2, (7, 8), np.float64)
    want = ref.avg_pool_nd(x, (3, 3), (2, 2), (1, 1), True, True, divisor)
    np.testing.assert_allclose(fastconv.avg_pool2d(x, 3, 2, 1, True, True, divisor), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_pools_match_reference(path, rng, nd, dtype):
    spatial = (7, 10, 5)[:nd]
    x = _x(rng, nd, spatial, dtype)
    for size in [1, (3, 4, 2)[:nd], (7, 10, 5)[:nd], (4, 3, 5)[:nd], (2, 5, 1)[:nd], (9, 13, 6)[:nd]]:
        tsize = size if isinstance(size, tuple) else (size,) * nd
        want_v, want_i = ref.adaptive_pool_nd(x, tsize, "max")
        got_v, got_i = getattr(fastconv, f"adaptive_max_pool{nd}d")(x, size, True)
        np.testing.assert_array_equal(got_v, want_v.astype(dtype))
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_array_equal(getattr(fastconv, f"adaptive_max_pool{nd}d")(x, size), got_v)
        want_a, _ = ref.adaptive_pool_nd(x, tsize, "avg")
        got_a = getattr(fastconv, f"adaptive_avg_pool{nd}d")(x, size)
        tol = 1e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got_a, want_a, rtol=tol, atol=tol)


def test_adaptive_none_keeps_input_size(path, rng):
    x = _x(rng, 2, (6, 9), np.float64)
    y = fastconv.adaptive_avg_pool2d(x, (None, 3))
    assert y.shape == (2, 3, 6, 3)
    np.testing.assert_allclose(y, ref.adaptive_pool_nd(x, (6, 3), "avg")[0], rtol=1e-13)
    assert fastconv.adaptive_max_pool3d(_x(rng, 3, (2, 3, 4), np.float32), (1, None, 2)).shape == (2, 3, 1, 3, 2)


@pytest.mark.parametrize("parallel", [False, True])
def test_global_pooling_fast_path(rng, monkeypatch, parallel):
    """output_size 1 and kernel == input take the global reduction path, on
    the calling thread (small inputs) or on Numba's threads."""
    from fastconv.kernels import pool

    monkeypatch.setattr(pool, "_GLOBAL_SERIAL_BELOW", 0 if parallel else 1 << 40)
    x = _x(rng, 2, (13, 11), np.float32, n=3, c=40)
    np.testing.assert_allclose(
        fastconv.adaptive_avg_pool2d(x, 1)[..., 0, 0], x.astype(np.float64).mean((2, 3)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        fastconv.avg_pool2d(x, (13, 11))[..., 0, 0], x.astype(np.float64).mean((2, 3)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(fastconv.adaptive_max_pool2d(x, 1)[..., 0, 0], x.max((2, 3)))
    np.testing.assert_array_equal(fastconv.max_pool2d(x, (13, 11))[..., 0, 0], x.max((2, 3)))
    y = fastconv.avg_pool2d(x, (13, 11), divisor_override=7)
    np.testing.assert_allclose(y[..., 0, 0], x.astype(np.float64).sum((2, 3)) / 7, rtol=1e-5, atol=1e-5)
    x[1, 5, 3, 4] = np.nan
    x[2, 7] = -np.inf
    g = fastconv.adaptive_max_pool2d(x, 1)[..., 0, 0]
    assert np.isnan(g[1, 5]) and np.isneginf(g[2, 7])
    assert np.isnan(g).sum() == 1
    assert np.isnan(fastconv.adaptive_avg_pool2d(x, 1)[1, 5, 0, 0])


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_index_ties(nd, path, rng):
    # many equal maxima: post-ReLU activations (zeros) and small integers;
    # the index is the window's first maximum in row-major order, as torch
    relu = np.maximum(rng.standard_normal((2, 3, *(9,) * nd)), 0).astype(np.float32)
    relu[0, 0] = 0.0  # a whole plane of ties
    ints = rng.integers(0, 3, (2, 3, *(9,) * nd)).astype(np.float64)
    f = getattr(fastconv, f"max_pool{nd}d")
    for x in (relu, ints):
        for k, s, p, d, ceil in [(3, 2, 1, 1, True), (2, 1, 0, 1, False), (3, 1, 1, 2, False), (4, 3, 2, 1, True)]:
            want, want_idx = ref.max_pool_nd(x, (k,) * nd, (s,) * nd, (p,) * nd, (d,) * nd, ceil)
            got, idx = f(x, k, s, p, d, ceil, return_indices=True)
            np.testing.assert_array_equal(got, want.astype(x.dtype))
            np.testing.assert_array_equal(idx, want_idx, err_msg=f"{x.dtype} k{k} s{s} p{p} d{d}")


def test_max_pool_nan_and_neg_inf(path, rng):
    x = _x(rng, 2, (8, 9), np.float32)
    x[0, 0, 2, 3] = np.nan
    x[0, 0, 2, 4] = np.nan  # two NaN in one window: torch's index is the last
    x[1, 2] = -np.inf  # a whole plane of -inf: value -inf, index of the first tap
    x[0, 1, 0, 0] = np.inf
    for args in [(3, 2, 1, 1, True), (2, 1, 0, 1, False), (3, 1, 1, 2, False)]:
        want, want_idx = ref.max_pool_nd(x, (args[0],) * 2, (args[1],) * 2, (args[2],) * 2, (args[3],) * 2, args[4])
        got, idx = fastconv.max_pool2d(x, *args, return_indices=True)
        np.testing.assert_array_equal(got, want.astype(np.float32))
        np.testing.assert_array_equal(idx, want_idx)
        assert np.isnan(got[0, 0]).any() and not np.isnan(got[0, 1:]).any()


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_layouts_unbatched_and_input_untouched(path, rng, kind):
    x = _x(rng, 2, (7, 6), np.float64, n=1)
    want = _pool_fn(kind, 2)(np.ascontiguousarray(x), 3, 2, 1)
    for name, arr in layouts(x):
        before = np.array(arr, copy=True)
        np.testing.assert_array_equal(_pool_fn(kind, 2)(arr, 3, 2, 1), want, err_msg=name)
        np.testing.assert_array_equal(arr, before)
    np.testing.assert_array_equal(_pool_fn(kind, 2)(x[0], 3, 2, 1), want[0])


def test_pool_dtypes(path):
    x = np.arange(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) % 7
    for dt, want in [(np.int32, np.float64), (np.uint8, np.float64), (bool, np.float64), (np.float16, np.float32)]:
        y = fastconv.max_pool2d(x.astype(dt), 2)
        assert y.dtype == want
        np.testing.assert_array_equal(y, ref.max_pool_nd(x.astype(dt), (2, 2), (2, 2), (0, 0), (1, 1), False)[0])
        assert fastconv.avg_pool2d(x.astype(dt), 2).dtype == want


def test_size_zero_batch_and_channels(path):
    assert fastconv.max_pool2d(np.zeros((0, 3, 4, 4), np.float32), 2).shape == (0, 3, 2, 2)
    v, i = fastconv.max_pool2d(np.zeros((2, 0, 4, 4)), 2, return_indices=True)
    assert v.shape == i.shape == (2, 0, 2, 2)
    assert fastconv.adaptive_avg_pool1d(np.zeros((0, 2, 5)), 1).shape == (0, 2, 1)


@given(
    nd=st.integers(1, 3),
    data=st.data(),
)
def test_pool_property(nd, data):
    """Random sizes and parameters: max (values and indices) and avg agree with the references."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    k = tuple(data.draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    p = tuple(data.draw(st.integers(0, kk // 2)) for kk in k)
    d = tuple(data.draw(st.integers(1, 2)) for _ in range(nd))
    ceil = data.draw(st.booleans())
    size = tuple(max(d_ * (kk - 1) + 1 - 2 * pp, 1) + data.draw(st.integers(0, 6)) for kk, pp, d_ in zip(k, p, d))
    x = rng.standard_normal((1, 2, *size))
    if data.draw(st.booleans()):
        x[0, 0].flat[data.draw(st.integers(0, int(np.prod(size)) - 1))] = np.nan
    want, want_idx = ref.max_pool_nd(x, k, s, p, d, ceil)
    got, idx = _pool_fn("max", nd)(x, k, s, p, d, ceil, True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(idx, want_idx)
    size_avg = tuple(max(kk - 2 * pp, 1) + extra for kk, pp, extra in zip(k, p, (0, 1, 2)))
    xa = rng.standard_normal((1, 2, *size_avg))
    include = data.draw(st.booleans())
    want = ref.avg_pool_nd(xa, k, s, p, ceil, include)
    np.testing.assert_allclose(_pool_fn("avg", nd)(xa, k, s, p, ceil, include), want, rtol=1e-12, atol=1e-12)


TORCH_CASES = [
    ("max", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max", dict(kernel_size=2, dilation=2, ceil_mode=True, padding=1)),
    ("max", dict(kernel_size=(3, 1), stride=(1, 2))),
    ("avg", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg", dict(kernel_size=2, ceil_mode=True, divisor_override=3)),
]


@pytest.mark.parametrize("kind,kw", TORCH_CASES)
def test_pool_matches_torch(torch, rng, kind, kw):
    F = torch.nn.functional
    for shape in [(2, 3, 7, 7), (1, 2, 8, 5), (2, 1, 3, 6), (1, 1, 9, 10)]:
        x = rng.standard_normal(shape).astype(np.float32)
        x.flat[rng.integers(0, x.size)] = np.nan
        if kind == "max":
            want, widx = F.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
            got, idx = fastconv.max_pool2d(x, return_indices=True, **kw)
            np.testing.assert_array_equal(idx, widx.numpy())
            np.testing.assert_array_equal(got, want.numpy())
        else:
            want = F.avg_pool2d(torch.from_numpy(x), **kw)
            np.testing.assert_allclose(fastconv.avg_pool2d(x, **kw), want.numpy(), rtol=1e-5, atol=1e-6)
    x = rng.standard_normal((2, 3, 11, 9)).astype(np.float32)
    for size in [1, (4, 5), (None, 2), (11, 9)]:
        got, idx = fastconv.adaptive_max_pool2d(x, size, True)
        want, widx = F.adaptive_max_pool2d(torch.from_numpy(x), size, True)
        np.testing.assert_array_equal(got, want.numpy())
        np.testing.assert_array_equal(idx, widx.numpy())
        np.testing.assert_allclose(
            fastconv.adaptive_avg_pool2d(x, size),
            F.adaptive_avg_pool2d(torch.from_numpy(x), size).numpy(),
            rtol=1e-5,
            atol=1e-6,
        )
