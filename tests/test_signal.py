"""fastconv.signal against scipy.signal itself, for every registered method."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import signal as ss

import fastconv
from fastconv import signal as fs
from fastconv._spec import swap_for_valid
from fastconv.dispatch import methods_for

from . import arrays

METHODS = sorted(methods_for("signal"))
MODES = ("full", "same", "valid")

# (in1 shape, in2 shape): odd/even, size-1 axes, in2 larger (valid swaps), long-by-short
SHAPES = [
    ((17,), (4,)),
    ((9,), (9,)),
    ((5,), (12,)),
    ((1,), (1,)),
    ((64,), (3,)),
    ((13, 11), (3, 4)),
    ((6, 7), (8, 9)),
    ((1, 9), (1, 3)),
    ((40, 5), (3, 2)),
    ((5, 6, 7), (2, 3, 2)),
]


def _check(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape, got.dtype, want.dtype)
    tol = 2e-5 if want.dtype in (np.float32, np.complex64) else 1e-10
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def _valid_ok(a, b):
    return all(i >= j for i, j in zip(a, b)) or all(j >= i for i, j in zip(a, b))


@pytest.mark.parametrize("method", [*METHODS, "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convolve_correlate_against_scipy(method, dtype, rng):
    for sa, sb in SHAPES:
        a = rng.standard_normal(sa).astype(dtype)
        b = rng.standard_normal(sb).astype(dtype)
        for mode in MODES:
            if mode == "valid" and not _valid_ok(sa, sb):
                continue
            for name in ("convolve", "correlate"):
                want = getattr(ss, name)(a, b, mode=mode)
                f = getattr(fs, name)
                ok = method in ("auto", "direct", "fft", "numpy") or max(max(n / k, k / n) for n, k in zip(sa, sb)) >= 4
                if not ok:
                    with pytest.raises(ValueError, match="oa"):
                        f(a, b, mode=mode, method=method)
                    continue
                _check(f(a, b, mode=mode, method=method), want)


@pytest.mark.parametrize("threads", [2, 3])
def test_long_1d_fft_split_across_threads(threads, rng, monkeypatch):
    # past _SPLIT_MIN samples a 1-D FFT convolution is cut into one block per
    # thread (overlap-add): blocks of unequal length, either operand longer,
    # every mode, float32 and float64, and ndimage's correlate on the same path
    from scipy import ndimage as sn

    from fastconv import ndimage as fn
    from fastconv.kernels import filter as kf
    from fastconv.kernels.filter import _SPLIT_MIN

    calls = []
    split = kf._split_1d
    monkeypatch.setattr(kf, "_split_1d", lambda *args: calls.append(1) or split(*args))

    with fastconv.set_config(num_threads=threads):
        for dtype in (np.float32, np.float64):
            for na, nb in [(_SPLIT_MIN + 1001, 3001), (2001, _SPLIT_MIN + 7)]:
                a = rng.standard_normal(na).astype(dtype)
                b = rng.standard_normal(nb).astype(dtype)
                for mode in MODES:
                    _check(fs.convolve(a, b, mode=mode, method="fft"), ss.convolve(a, b, mode=mode, method="direct"))
                _check(fs.correlate(a, b, method="fft"), ss.correlate(a, b, method="direct"))
            a = rng.standard_normal(_SPLIT_MIN + 5).astype(dtype)
            w = rng.standard_normal(301).astype(dtype)
            for mode in ("reflect", "constant", "wrap"):
                want = sn.correlate1d(a.astype(np.float64), w.astype(np.float64), mode=mode)
                _check(fn.correlate(a, w, mode=mode, method="fft"), want.astype(dtype))
    assert len(calls) == 2 * (2 * 4 + 3)  # every call above took the split path


def test_fftconvolve_oaconvolve_axes(rng):
    a = rng.standard_normal((6, 50))
    b = rng.standard_normal((6, 7))
    for mode in MODES:
        for f, g in ((fs.fftconvolve, ss.fftconvolve), (fs.oaconvolve, ss.oaconvolve)):
            _check(f(a, b, mode=mode), g(a, b, mode=mode))
            _check(f(a, b, mode=mode, axes=1), g(a, b, mode=mode, axes=1))
            _check(f(a, b[:1], mode=mode, axes=[-1]), g(a, b[:1], mode=mode, axes=[-1]))
    i = np.arange(10)
    _check(fs.fftconvolve(i, i[:3]), ss.fftconvolve(i, i[:3]))  # integers: a float result


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_convolve2d_correlate2d_boundaries(boundary, rng):
    for sa, sb in [((13, 11), (3, 4)), ((7, 9), (4, 4)), ((3, 5), (7, 2)), ((1, 3), (1, 7)), ((20, 17), (5, 2))]:
        a = rng.standard_normal(sa)
        b = rng.standard_normal(sb)
        for mode in MODES:
            if mode == "valid" and not _valid_ok(sa, sb):
                continue
            for name in ("convolve2d", "correlate2d"):
                want = getattr(ss, name)(a, b, mode=mode, boundary=boundary, fillvalue=0.5)
                _check(getattr(fs, name)(a, b, mode=mode, boundary=boundary, fillvalue=0.5), want)
            # every method the dispatcher may pick for it (autotune measures
            # them all): overlap-add once computed wrap/symm as zeros (found
            # by bench/fuzz.py), and a plan cached for fillvalue 0 ran the FFT
            # on the bare signal for fillvalue 0.5 (cval was not in its key)
            want = ss.convolve2d(a, b, mode=mode, boundary=boundary, fillvalue=0.5)
            methods = fastconv.available_methods(fs.convolve2d, a, b, mode=mode, boundary=boundary, fillvalue=0.5)
            assert "oa" not in methods  # (fillvalue 0.5, wrap, symm: never a zero boundary)
            a2, b2 = (b, a) if swap_for_valid(mode, a, b) else (a, b)
            for method in methods[1:]:
                _check(fs._convolve(a2, b2, mode, method, boundary=boundary, fillvalue=0.5), want)


def test_dtypes_integers_complex(rng):
    for dt in (np.int8, np.int16, np.int32, np.int64, np.uint8):
        a = rng.integers(-20, 20, 30).astype(dt)
        b = rng.integers(-20, 20, 5).astype(dt)
        for mode in MODES:
            for name in ("convolve", "correlate"):
                want = getattr(ss, name)(a, b, mode=mode)
                got = getattr(fs, name)(a, b, mode=mode)
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want)  # exact, wrapping like the dtype
    big = np.array([2**40, 3, -(2**41)], dtype=np.int64)  # beyond float64's exact range: integer path
    np.testing.assert_array_equal(fs.convolve(big, big), ss.convolve(big, big, method="direct"))
    c = rng.standard_normal(12) + 1j * rng.standard_normal(12)
    d = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    for mode in MODES:
        for a, b in [(c, d), (c.astype(np.complex64), d.real.astype(np.float32)), (d, c), (c.real, d)]:
            if mode == "valid" and not _valid_ok(a.shape, b.shape):
                continue
            _check(fs.correlate(a, b, mode=mode), ss.correlate(a, b, mode=mode))
            _check(fs.convolve(a, b, mode=mode), ss.convolve(a, b, mode=mode))
    _check(fs.convolve([1, 2, 3], [0.5, 1.0]), ss.convolve([1, 2, 3], [0.5, 1.0]))  # lists


def test_layouts_and_non_finite(rng):
    a = rng.standard_normal((12, 9))
    b = rng.standard_normal((3, 3))
    want = ss.convolve(a, b)
    for name, arr in arrays.layouts(a):
        before = np.array(arr, copy=True)
        _check(fs.convolve(arr, b), want)
        np.testing.assert_array_equal(arr, before, err_msg=name)
    x = rng.standard_normal(2000)
    x[1000] = np.nan
    y = fs.convolve(x, np.ones(300))  # auto: never an FFT on non-finite input
    assert np.isnan(y).sum() == 300
    assert fs.choose_conv_method(x, np.ones(300)) == "direct"


def test_choose_conv_method():
    assert fs.choose_conv_method(np.ones(50), np.ones(5)) == "direct"
    assert fs.choose_conv_method(np.ones(200_000), np.ones(20_000)) in ("fft", "oa")
    method, times = fs.choose_conv_method(np.ones(300), np.ones(30), measure=True)
    assert method in times and set(times) <= {"direct", "fft", "oa"} and min(times.values()) > 0
    assert fs.choose_conv_method(np.array([2**40]), np.array([2**40])) == "direct"
    plan = fastconv.explain(fs.convolve, np.ones(4000), np.ones(33), mode="same")
    assert plan.op == "signal" and "candidates" in repr(plan)


@given(nd=st.integers(1, 3), mode=st.sampled_from(MODES), data=st.data())
def test_property_against_scipy(nd, mode, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    sa = tuple(data.draw(st.integers(1, 8)) for _ in range(nd))
    sb = tuple(data.draw(st.integers(1, 6)) for _ in range(nd))
    if mode == "valid" and not _valid_ok(sa, sb):
        sb = tuple(min(i, j) for i, j in zip(sa, sb))
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    _check(fs.convolve(a, b, mode=mode), ss.convolve(a, b, mode=mode))
    _check(fs.correlate(a, b, mode=mode), ss.correlate(a, b, mode=mode))


def test_bad_calls():
    with pytest.raises(ValueError, match="dimensionality"):
        fs.convolve(np.ones((3, 3)), np.ones(3))
    with pytest.raises(ValueError, match="mode"):
        fs.convolve(np.ones(3), np.ones(3), mode="circular")
    with pytest.raises(ValueError, match="method"):
        fs.convolve(np.ones(3), np.ones(3), method="winograd")
    with pytest.raises(ValueError, match="valid"):
        fs.convolve(np.ones((3, 5)), np.ones((5, 3)), mode="valid")
    with pytest.raises(ValueError, match="boundary"):
        fs.convolve2d(np.ones((3, 3)), np.ones((2, 2)), boundary="reflect")
    with pytest.raises(ValueError, match="2-D"):
        fs.convolve2d(np.ones((3, 3, 3)), np.ones((2, 2, 2)))
    with pytest.raises(TypeError, match="fillvalue"):
        fs.correlate2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue="x")
    with pytest.raises(ValueError, match="axes"):
        fs.fftconvolve(np.ones((3, 5)), np.ones((3, 2)), axes=2)
    with pytest.raises(ValueError, match="incompatible"):
        fs.fftconvolve(np.ones((3, 5)), np.ones((2, 2)), axes=1)
    with pytest.raises(TypeError, match="in1"):
        fs.convolve("abc", np.ones(3))
    with pytest.raises(TypeError, match="measure"):
        fs.choose_conv_method(np.ones(3), np.ones(3), measure="yes")
    assert fs.convolve(np.ones(0), np.ones(3)).size == 0
