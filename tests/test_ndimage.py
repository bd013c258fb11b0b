"""fastconv.ndimage against scipy.ndimage itself, for every registered method."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage as sn

import fastconv
from fastconv import ndimage as fn
from fastconv._spec import NDIMAGE_MODES
from fastconv.dispatch import methods_for

from . import arrays

METHODS = sorted(methods_for("ndimage"))
TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}

# shape, weights shape, origin
CASES = [
    ((17,), (3,), 0),
    ((16,), (4,), -2),
    ((9,), (5,), 2),
    ((1,), (3,), 0),
    ((4,), (7,), 1),  # kernel longer than the input: padding beyond one reflection
    ((13, 11), (3, 3), 0),
    ((12, 9), (2, 5), (0, -1)),
    ((8, 1), (3, 3), (1, 0)),
    ((6, 7), (1, 4), (0, 1)),
    ((5, 5), (6, 6), (-3, 2)),
    ((7, 6, 5), (3, 2, 3), 0),
    ((4, 5, 6), (2, 3, 1), (0, -1, 0)),
]


def _check(got, want, dtype):
    tol = TOL[np.dtype(dtype)]
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _call(f, method, *args, **kwargs):
    """f(..., method=...) or, when the method cannot serve the call, the ValueError naming it."""
    if method in fastconv.available_methods(f, *args, **kwargs):
        return f(*args, method=method, **kwargs)
    with pytest.raises(ValueError, match=method):
        f(*args, method=method, **kwargs)
    return None


@pytest.mark.parametrize("method", [*METHODS, "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_modes_dims_origins_against_scipy(method, dtype, rng):
    for shape, kshape, origin in CASES:
        x = rng.standard_normal(shape).astype(dtype)
        w = rng.standard_normal(kshape)
        for mode in NDIMAGE_MODES:
            for name in ("correlate", "convolve"):
                if name == "convolve" and not isinstance(origin, int):
                    origin = tuple(-o if k % 2 else min(-o, (k - 1) // 2) for o, k in zip(origin, kshape))
                want = getattr(sn, name)(x, w, mode=mode, cval=0.75, origin=origin)
                got = _call(getattr(fn, name), method, x, w, mode=mode, cval=0.75, origin=origin)
                if got is not None:
                    _check(got, want, dtype)


@pytest.mark.parametrize("method", METHODS)
def test_separable_weights(method, rng):
    """Outer-product kernels (Gaussian, box, Sobel with its zero column) in 2-D and 3-D."""
    g = np.exp(-0.5 * np.linspace(-2, 2, 7) ** 2)
    sobel = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0])
    for x, w in [
        (rng.standard_normal((40, 33)), np.outer(g, g)),
        (rng.standard_normal((20, 21)).astype(np.float32), sobel),
        (rng.standard_normal((9, 10, 11)), np.ones((3, 5, 2)) / 30),
    ]:
        assert fastconv.explain(fn.correlate, x, w).spec.rank1
        for mode in ("reflect", "constant", "wrap"):
            got = _call(fn.correlate, method, x, w, mode=mode)
            if got is not None:
                _check(got, sn.correlate(x, w, mode=mode), x.dtype)


def test_complex_int_bool_float16(rng):
    x = rng.standard_normal((9, 8)) + 1j * rng.standard_normal((9, 8))
    w = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    wr = rng.standard_normal((3, 2))
    for name in ("correlate", "convolve"):
        f, g = getattr(fn, name), getattr(sn, name)
        for a, b in [(x, w), (x, wr), (x.real, w), (x.astype(np.complex64), wr)]:
            for mode in ("reflect", "constant"):
                want = g(a, b, mode=mode, cval=0.5)
                got = f(a, b, mode=mode, cval=0.5)
                assert got.dtype == want.dtype
                np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    xi = rng.integers(-50, 50, (11, 7))
    wf = np.array([[0.5, -1.25, 0.3], [1.1, 0.0, -0.7]])
    for dt in (np.int16, np.int32, np.int64, np.uint8):
        a = xi.astype(dt)
        got, want = fn.correlate(a, wf), sn.correlate(a, wf)
        assert got.dtype == dt
        np.testing.assert_array_equal(got, want)  # truncation toward zero, wrap-around
    b = rng.integers(0, 2, (6, 6)).astype(bool)
    np.testing.assert_array_equal(fn.correlate(b, np.ones((2, 2))), sn.correlate(b, np.ones((2, 2))))
    # a bool result is scipy's C cast: a non-zero low byte of the truncated sum (0.5 and 256 False, -1 True)
    for weights in (rng.integers(-4, 5, (3, 3)) / 4, np.full((2, 2), 64.0), np.array([[0.5, -1.5]])):
        for func in (fn.correlate, fn.convolve):
            want = getattr(sn, func.__name__)(b, weights)
            np.testing.assert_array_equal(func(b, weights), want)
        np.testing.assert_array_equal(fn.uniform_filter(b, 3), sn.uniform_filter(b, 3))
        np.testing.assert_array_equal(fn.gaussian_filter(b, 0.8), sn.gaussian_filter(b, 0.8))
    h = rng.standard_normal((7, 7)).astype(np.float16)  # scipy refuses float16: computed in float32
    got = fn.correlate(h, np.ones((3, 3)))
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, sn.correlate(h.astype(np.float32), np.ones((3, 3))), rtol=2e-3, atol=2e-3)


def test_output_argument_and_layouts(rng):
    x = rng.standard_normal((10, 12))
    w = rng.standard_normal((3, 4))
    want = sn.correlate(x, w, mode="mirror")
    out = np.empty((10, 12), np.float32)
    assert fn.correlate(x, w, out, mode="mirror") is out
    np.testing.assert_allclose(out, want.astype(np.float32), rtol=1e-6)
    assert fn.correlate(x, w, np.float32, mode="mirror").dtype == np.float32
    np.testing.assert_array_equal(fn.correlate(x, w, np.int32), sn.correlate(x, w, np.int32))
    for name, arr in arrays.layouts(x):
        before = np.array(arr, copy=True)
        _check(fn.correlate(arr, w, mode="mirror"), want, np.float64)
        _check(fn.convolve(arr, w), sn.convolve(x, w), np.float64)
        np.testing.assert_array_equal(arr, before, err_msg=name)


def test_footprint_nan_and_non_finite(rng):
    """scipy skips zero weights: a NaN under one stays put; auto never spreads NaN (no FFT/separable)."""
    x = rng.standard_normal((15, 15))
    x[7, 7] = np.nan
    w = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(np.isnan(fn.correlate(x, w)), np.isnan(sn.correlate(x, w)))
    big = rng.standard_normal((15, 15))
    got = fn.correlate(x, big)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(sn.correlate(x, big)))
    assert np.isnan(got).sum() == 15 * 15  # a 15x15 window covers the whole image from everywhere
    g = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0])
    got = fn.correlate(x, g, method="separable")  # forced: replaced by direct on NaN input
    np.testing.assert_array_equal(np.isnan(got), np.isnan(sn.correlate(x, g)))
    assert np.isnan(got).sum() == 9


def test_more_than_three_axes_and_1d_functions(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    w = rng.standard_normal((2, 1, 3, 2))
    for mode in ("reflect", "wrap", "constant"):
        _check(fn.correlate(x, w, mode=mode, cval=2.0), sn.correlate(x, w, mode=mode, cval=2.0), np.float64)
        _check(
            fn.convolve(x, w, mode=mode, origin=(0, 0, 1, -1)),
            sn.convolve(x, w, mode=mode, origin=(0, 0, 1, -1)),
            np.float64,
        )
    for axis in (0, 1, -1, 3):
        for origin in (-1, 0, 1):
            for name in ("correlate1d", "convolve1d"):
                want = getattr(sn, name)(x, [0.5, -1.0, 2.0], axis=axis, mode="nearest", origin=origin)
                got = getattr(fn, name)(x, [0.5, -1.0, 2.0], axis=axis, mode="nearest", origin=origin)
                _check(got, want, np.float64)
    v = rng.standard_normal(50).astype(np.float32)
    _check(
        fn.convolve1d(v, [1.0, 2.0, 3.0, 4.0], mode="wrap"),
        sn.convolve1d(v, [1.0, 2.0, 3.0, 4.0], mode="wrap"),
        np.float32,
    )
    out = np.empty_like(x)
    assert fn.correlate1d(x, [1.0, 2.0], axis=2, output=out) is out
    _check(out, sn.correlate1d(x, [1.0, 2.0], axis=2), np.float64)


@given(
    ndim=st.integers(1, 3),
    mode=st.sampled_from(NDIMAGE_MODES),
    data=st.data(),
)
def test_property_against_scipy(ndim, mode, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    shape = tuple(data.draw(st.integers(1, 9)) for _ in range(ndim))
    kshape = tuple(data.draw(st.integers(1, 5)) for _ in range(ndim))
    origin = tuple(data.draw(st.integers(-(k // 2), (k - 1) // 2)) for k in kshape)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(kshape)
    cval = data.draw(st.floats(-3, 3))
    _check(
        fn.correlate(x, w, mode=mode, cval=cval, origin=origin),
        sn.correlate(x, w, mode=mode, cval=cval, origin=origin),
        np.float64,
    )
    _check(
        fn.convolve(x, w, mode=mode, cval=cval, origin=origin),
        sn.convolve(x, w, mode=mode, cval=cval, origin=origin),
        np.float64,
    )


BAD = [
    (dict(weights=np.ones(3)), ValueError, ["weights", "dimensions"]),
    (dict(weights=np.ones((0, 3))), ValueError, ["weights", "empty"]),
    (dict(mode="foo"), ValueError, ["mode", "reflect"]),
    (dict(mode=["reflect", "wrap"]), ValueError, ["mode"]),
    (dict(origin=2), ValueError, ["origin", "range"]),
    (dict(origin=(0, 0, 0)), ValueError, ["origin", "2"]),
    (dict(origin=0.5), TypeError, ["origin", "int"]),
    (dict(cval="a"), TypeError, ["cval"]),
    (dict(method="winograd"), ValueError, ["method", "direct"]),
    (dict(method=1), TypeError, ["method"]),
    (dict(output=np.empty((4, 4))), ValueError, ["output", "shape"]),
    (dict(output="nonsense"), TypeError, ["output"]),
    (dict(input=np.ones((5, 5), dtype=object)), TypeError, ["input", "dtype"]),
    (dict(input="abc"), TypeError, ["input"]),
    (dict(weights=None), TypeError, ["weights"]),
]


@pytest.mark.parametrize("changes, exc, words", BAD)
def test_bad_calls(changes, exc, words):
    kw = dict(input=np.ones((5, 6)), weights=np.ones((3, 3)))
    kw.update(changes)
    with pytest.raises(exc) as info:
        fn.correlate(**kw)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_bad_1d_calls():
    with pytest.raises(ValueError, match="axis"):
        fn.correlate1d(np.ones((3, 4)), [1.0, 2.0], axis=2)
    with pytest.raises(ValueError, match="1-D"):
        fn.convolve1d(np.ones((3, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="origin"):
        fn.correlate1d(np.ones(5), [1.0, 2.0, 3.0], origin=2)


def test_concurrent_python_threads_single_threaded_calls(rng):
    """With one thread per call the serial kernel runs from several Python threads at once, correctly."""
    import threading

    xs = [rng.standard_normal((300, 257)).astype(np.float32) for _ in range(4)]
    w = rng.standard_normal((5, 5))
    results = [None] * 4

    def work(i):
        results[i] = fn.correlate(xs[i], w, mode="wrap")

    with fastconv.set_config(num_threads=1):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for x, got in zip(xs, results):
        _check(got, sn.correlate(x, w, mode="wrap"), np.float32)


def test_explain_filter_plan(rng):
    x = rng.standard_normal((64, 64))
    plan = fastconv.explain(fn.convolve, x, np.ones((5, 5)), mode="nearest")
    assert plan.op == "ndimage" and "separable" in repr(plan) and "mode 'nearest'" in repr(plan)
    assert fastconv.available_methods(fn.correlate, x, rng.standard_normal((3, 3))) == [
        "auto",
        "direct",
        "fft",
        "numpy",
    ]


def test_serial_kernel_never_loads_the_parallel_one_from_the_disk_cache(tmp_path):
    """Process 1 compiles (and caches) the parallel kernel; process 2 runs the
    one-thread build from two Python threads at once: it must be the serial
    machine code (the parallel one aborts under the workqueue layer)."""
    import os
    import subprocess
    import sys

    code = """
import sys, threading, numpy as np, fastconv
from fastconv import ndimage
x = np.random.default_rng(0).standard_normal((300, 300)).astype(np.float32)
w = np.ones((3, 3))
if sys.argv[1] == "parallel":
    with fastconv.set_config(num_threads=2):
        ndimage.correlate(x, w)
else:
    with fastconv.set_config(num_threads=1):
        ts = [threading.Thread(target=ndimage.correlate, args=(x, w)) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
print("ok")
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_NUM_THREADS="2")
    for stage in ("parallel", "serial"):
        res = subprocess.run([sys.executable, "-c", code, stage], capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
