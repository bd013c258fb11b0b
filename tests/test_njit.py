"""fastconv's functions called from Numba-compiled code (fastconv/_numba_ext.py,
fastconv/kernels/injit.py), against the plain-NumPy references
(tests/reference.py) and scipy.ndimage: many shapes and arguments per
compiled signature (arguments are run-time values of one type), ``prange``
bodies under each threading layer, errors at compile time and at run time."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

numba = pytest.importorskip("numba")

import fastconv  # noqa: E402
from fastconv import ndimage  # noqa: E402

from .reference import adaptive_pool_nd, avg_pool_nd, conv_nd, conv_transpose_nd, max_pool_nd  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@numba.njit
def _conv2d(x, w, b, s, p, d, g):
    return fastconv.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)


@numba.njit
def _conv1d_same(x, w):
    return fastconv.conv1d(x, w, padding="same")


@numba.njit
def _conv3d(x, w, b, s, p, d, g):
    return fastconv.conv3d(x, w, b, stride=s, padding=p, dilation=d, groups=g)


@numba.njit
def _transposed(x, w, b, s, p, op, g, d):
    return (fastconv.conv_transpose2d(x, w, b, s, p, op, g, d),
            fastconv.conv_transpose1d(x[:, :, 0], w[:, :, 0], b, s[1], p[1], op[1], g, d[1]),
            fastconv.conv_transpose3d(x[:1].reshape((1, x.shape[1], 1, x.shape[2], x.shape[3])),
                                      w.reshape((w.shape[0], w.shape[1], 1, w.shape[2], w.shape[3])),
                                      None, (1, s[0], s[1]), (0, p[0], p[1]), (0, op[0], op[1]), g,
                                      (1, d[0], d[1])))  # fmt: skip


@numba.njit
def _transposed2d(x, w, b, s, p, op, g, d):  # (unbatched)
    return fastconv.conv_transpose2d(x, w, b, s, p, op, g, d)


@numba.njit
def _pools3d(x, k, s, p, ceil, size):
    return (fastconv.max_pool3d(x, k, s, p, 1, ceil), fastconv.avg_pool3d(x, k, s, p, ceil),
            fastconv.adaptive_max_pool3d(x, size), fastconv.adaptive_avg_pool2d(x[0], size[1:]),
            fastconv.adaptive_avg_pool1d(x[0, 0], size[2]))  # fmt: skip


@numba.njit
def _pools(x, k, s, p, d, ceil):
    return (fastconv.max_pool2d(x, k, s, p, d, ceil), fastconv.avg_pool2d(x, k, s, p, ceil, False),
            fastconv.avg_pool2d(x, k, s, p, ceil), fastconv.max_pool1d(x[0], k[1], s[1], p[1], d[1], ceil))  # fmt: skip


@numba.njit
def _filters(x, w, mode, cval, origin):
    return (
        ndimage.correlate(x, w, mode=mode, cval=cval, origin=origin),
        ndimage.convolve(x, w, mode=mode, cval=cval, origin=origin),
        ndimage.gaussian_filter(x, 1.3, mode=mode, cval=cval),
        ndimage.uniform_filter(x, 4, mode=mode, cval=cval, origin=origin),
        ndimage.sobel(x, 0, mode=mode, cval=cval),
        ndimage.prewitt(x, -1, mode=mode, cval=cval),
        ndimage.laplace(x, mode=mode, cval=cval),
    )


@numba.njit
def _filters32(x, w, mode, cval, origin):  # (float32: the weights' rounding, cval's cast; fewer calls to compile)
    return (
        ndimage.correlate(x, w, mode=mode, cval=cval, origin=origin),
        ndimage.gaussian_filter(x, 1.3, mode=mode, cval=cval),
        ndimage.sobel(x, 0, mode=mode, cval=cval),
    )


@numba.njit
def _correlate3d(x, w, mode):
    return ndimage.correlate(x, w, mode=mode, cval=0.5)


@numba.njit
def _filters1d(x, w, axis, mode, cval, origin):
    return (
        ndimage.correlate1d(x, w, axis, mode=mode, cval=cval, origin=origin),
        ndimage.convolve1d(x, w, axis, mode=mode, cval=cval, origin=origin),
        ndimage.gaussian_filter1d(x, 0.9, axis, mode=mode, cval=cval),
        ndimage.uniform_filter1d(x, 3, axis, mode=mode, cval=cval, origin=origin),
    )


@numba.njit
def _signal(a, b, mode, boundary, fill):
    return (fastconv.signal.convolve(a, b, mode), fastconv.signal.correlate(a, b, mode),
            fastconv.signal.convolve2d(a, b, mode, boundary, fill), fastconv.signal.correlate2d(a, b, mode, boundary,
                                                                                              fill))  # fmt: skip


@numba.njit
def _derivatives(x, sigma, truncate):
    return (ndimage.gaussian_filter(x, sigma, order=(1, 2), mode="wrap"), ndimage.gaussian_filter1d(x, sigma, 0, 3),
            ndimage.gaussian_laplace(x, sigma), ndimage.gaussian_gradient_magnitude(x, sigma, truncate=truncate))  # fmt: skip


MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-constant", "grid-mirror"]


class _without_builds:
    """The table without the builds ``names`` (``kernels.injit.BUILDS``, both
    dtypes), as in a process that loaded a user's function from Numba's disk
    cache and typed no fastconv call: the loops compiled into the caller run."""

    def __init__(self, *names: str) -> None:
        from fastconv import _numba_ext
        from fastconv.kernels import injit

        self.table = _numba_ext._thread_table
        self.slots = [injit.BUILDS_AT + 2 * getattr(injit, n) + i for n in names for i in (0, 1)]

    def __enter__(self):
        self.saved = [self.table[i] for i in self.slots]
        for i in self.slots:
            self.table[i] = 0

    def __exit__(self, *exc) -> None:
        for i, v in zip(self.slots, self.saved):
            self.table[i] = v


def test_compiled_boundary_tables_are_numpys_pad_of_an_index_array():
    """``injit.boundary`` (the scalar loop compiled calls use) against NumPy's
    own pad of ``arange(n)``, pads wider than the axis and n = 1 included."""
    from fastconv.kernels.injit import boundary

    for rule, numpy_mode in ((0, "symmetric"), (1, "reflect"), (2, "edge"), (3, "wrap"), (4, "constant")):
        for n in (1, 2, 3, 7):
            for lo, hi in ((0, 0), (1, 2), (5, 0), (9, 13)):
                extra = {"constant_values": -1} if rule == 4 else {}
                want = np.pad(np.arange(n), (lo, hi), mode=numpy_mode, **extra)
                np.testing.assert_array_equal(boundary(n, lo, hi, rule), want, err_msg=f"{numpy_mode} {n} {lo} {hi}")


def test_the_extension_is_registered_and_import_stays_light():
    names = [ep.value for ep in importlib.metadata.entry_points(group="numba_extensions", name="init")]
    assert "fastconv._numba_ext:init" in names
    code = "import sys, fastconv; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_and_conv1d_in_njit_match_the_reference(rng, dtype):
    from fastconv import _numba_ext
    from fastconv.kernels import injit

    tol = 1e-4 if dtype == np.float32 else 1e-11
    direct = ("DIRECT_RUN", "DIRECT_PART", "DIRECT_LOOPS")
    # every build (the direct kernel past _DIRECT_PAYS, its loops' build below, the register-blocked
    # kernel on one thread from _BLOCKED_TAPS multiply-adds per output); the blocked kernel where it
    # applies and the plain loops elsewhere; the plain loops alone
    for without in ((), direct, (*direct, "BLOCKED_RUN")):
        context = _without_builds(*without) if without else contextlib.nullcontext()
        for n, c, o, g, hw, k, s, p, d in [
            (2, 3, 4, 1, (8, 9), (3, 3), (1, 1), (1, 1), (1, 1)),
            (1, 4, 6, 2, (7, 5), (3, 2), (2, 1), (0, 1), (1, 2)),
            (3, 6, 6, 6, (6, 6), (3, 3), (1, 2), (1, 0), (2, 1)),  # depthwise
            (2, 8, 12, 2, (30, 33), (3, 3), (2, 1), (1, 2), (1, 2)),  # (past _DIRECT_PAYS)
            (1, 1, 1, 1, (1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),
            (2, 2, 3, 1, (5, 11), (5, 1), (3, 2), (2, 0), (1, 1)),
            (2, 6, 10, 2, (9, 13), (3, 3), (2, 1), (1, 2), (1, 2)),  # (blocked: 27 per output, groups, stride 2)
            (1, 5, 7, 1, (12, 10), (2, 4), (1, 3), (0, 2), (2, 1)),  # (blocked: stride 3, 7 outputs in 2 blocks)
            (3, 4, 9, 1, (3, 40), (3, 5), (2, 2), (2, 1), (1, 2)),  # (blocked: every stride phase, a wide row)
        ]:
            x = rng.standard_normal((n, c, *hw)).astype(dtype)
            w = rng.standard_normal((o, c // g, *k)).astype(dtype)
            b = rng.standard_normal(o).astype(dtype)
            want = conv_nd(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), s, p, d, g)
            with context:
                got = _conv2d(x, w, b, s, p, d, g)
            assert got.dtype == dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
            np.testing.assert_allclose(_conv2d(x[0], w, b, s, p, d, g), want[0], rtol=tol, atol=tol)  # (unbatched)
    blocked = _numba_ext._thread_table[injit.BUILDS_AT + 2 * injit.BLOCKED_RUN + np.dtype(dtype).itemsize // 8]
    assert blocked != 0  # (in the table: the cases above ran it)
    for n, c, o, g, dhw, k, s, p, d in [
        (1, 2, 4, 1, (4, 5, 6), (2, 3, 1), (1, 2, 1), (1, 0, 1), (1, 1, 2)),
        (2, 4, 4, 2, (3, 3, 7), (1, 2, 3), (2, 1, 2), (0, 1, 1), (1, 2, 1)),
        (1, 3, 5, 1, (5, 6, 7), (2, 3, 3), (2, 1, 2), (1, 1, 0), (2, 1, 1)),  # (blocked: depth taps, strides)
    ]:
        x = rng.standard_normal((n, c, *dhw)).astype(dtype)
        w = rng.standard_normal((o, c // g, *k)).astype(dtype)
        b = rng.standard_normal(o).astype(dtype)
        want = conv_nd(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), s, p, d, g)
        np.testing.assert_allclose(_conv3d(x, w, b, s, p, d, g), want, rtol=tol, atol=tol)
    x = rng.standard_normal((2, 3, 17)).astype(dtype)
    for k in (1, 2, 3, 4, 6):  # (6: 18 per output, the blocked kernel, padding 2 before and 3 after)
        w = rng.standard_normal((5, 3, k)).astype(dtype)
        want = fastconv.conv1d(x, w, padding="same")  # (torch's asymmetric "same": tested in Python against torch)
        np.testing.assert_allclose(_conv1d_same(x, w), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_convolutions_in_njit_match_the_reference(rng, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for n, c, o, g, hw, k, s, p, op, d in [
        (2, 3, 4, 1, (5, 6), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)),
        (1, 4, 6, 2, (4, 7), (3, 2), (1, 3), (2, 0), (0, 2), (2, 1)),
        (3, 2, 2, 2, (1, 1), (1, 1), (1, 1), (0, 0), (0, 0), (1, 1)),  # (size 1, depthwise)
        (1, 2, 3, 1, (6, 1), (4, 1), (3, 1), (1, 0), (2, 0), (1, 1)),
        (2, 1, 1, 1, (64, 80), (3, 3), (2, 2), (0, 1), (1, 0), (1, 2)),  # (past the serial threshold)
        (2, 8, 12, 4, (20, 24), (3, 3), (2, 2), (1, 0), (1, 1), (1, 1)),
    ]:
        x = rng.standard_normal((n, c, *hw)).astype(dtype)
        w = rng.standard_normal((c, o // g, *k)).astype(dtype)
        b = rng.standard_normal(o).astype(dtype)
        x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
        two, one, three = _transposed(x, w, b, s, p, op, g, d)
        want = conv_transpose_nd(x64, w64, b64, s, p, op, g, d)
        with _without_builds("TRANSPOSE_PART", "TRANSPOSE_LOOPS"):  # (the plain loops compiled into the caller)
            np.testing.assert_allclose(_transposed(x, w, b, s, p, op, g, d)[0], want, rtol=tol, atol=tol)
        assert two.dtype == dtype and two.shape == want.shape
        np.testing.assert_allclose(two, want, rtol=tol, atol=tol)
        want1 = conv_transpose_nd(x64[:, :, 0], w64[:, :, 0], b64, s[1], p[1], op[1], g, d[1])
        np.testing.assert_allclose(one, want1, rtol=tol, atol=tol)
        want3 = conv_transpose_nd(x64[:1, :, None], w64[:, :, None], None, (1, *s), (0, *p), (0, *op), g, (1, *d))
        np.testing.assert_allclose(three, want3, rtol=tol, atol=tol)
        np.testing.assert_allclose(_transposed2d(x[0], w, b, s, p, op, g, d), want[0], rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="output_padding"):
        _transposed(x, w, b, (1, 1), (0, 0), (1, 1), g, (1, 1))


@numba.njit
def _large_calls(x, w, wt, w1, a, b, method):
    return (fastconv.conv2d(x, w, None, 1, 1, 1, 1, "zeros", method), fastconv.conv_transpose2d(x, wt, None, 2),
            fastconv.signal.convolve(a, b, "same", method), fastconv.conv1d(x.reshape((1, 16, -1)), w1, padding="same"))  # fmt: skip


def test_large_calls_from_serial_code_run_the_python_dispatcher(rng, monkeypatch):
    """Past ``injit.ROUTE_PAYS`` multiply-adds, a call from serial compiled
    code runs the Python path's entry (every method, the cost model, the
    workspace limit); forced ``method="direct"`` runs the compiled kernels
    (as calls in a prange body do: ``injit.routed`` there is tested under
    each threading layer below).  Both against the reference; bad values
    raise the Python path's ValueError through the entry."""
    from fastconv import _numba_ext
    from fastconv.kernels import injit

    entered = []

    def spy(name, *args):
        entered.append(name)
        return entry(name, *args)

    entry = _numba_ext._python_entry
    monkeypatch.setattr(_numba_ext, "_python_entry", spy)
    x = rng.standard_normal((2, 8, 64, 48)).astype(np.float32)
    w, wt = rng.standard_normal((24, 8, 3, 3)).astype(np.float32), rng.standard_normal((8, 24, 3, 3)).astype(np.float32)
    a, b = rng.standard_normal(30000), rng.standard_normal(301)
    w1 = rng.standard_normal((48, 16, 4)).astype(np.float32)  # (an even kernel: torch's extra pad after)
    assert 2 * 24 * 8 * 64 * 48 * 9 >= injit.ROUTE_PAYS and x.size * 24 * 9 >= injit.ROUTE_PAYS
    x64, w64, wt64 = x.astype(np.float64), w.astype(np.float64), wt.astype(np.float64)
    want = (conv_nd(x64, w64, None, (1, 1), (1, 1), (1, 1), 1), conv_transpose_nd(x64, wt64, None, (2, 2), (0, 0), (0, 0), 1, (1, 1)),
            np.convolve(a, b, "same"), fastconv.conv1d(x.reshape((1, 16, -1)), w1, padding="same", method="direct"))  # fmt: skip
    every = ["conv2d", "conv_transpose2d", "signal.convolve", "conv1d"]
    for method, routed in (("auto", every), ("direct", ["conv_transpose2d", "conv1d"]), ("fft", every)):
        entered.clear()
        got = _large_calls(x, w, wt, w1, a, b, method)
        assert entered == routed
        for g, v in zip(got, want):
            assert g.dtype == (a.dtype if g.ndim == 1 else x.dtype) and g.shape == v.shape and g.flags.c_contiguous
            np.testing.assert_allclose(g, v, rtol=1e-4, atol=1e-3 if g.dtype == np.float32 else 1e-9)
    entered.clear()
    with pytest.raises(ValueError, match="groups"):
        _conv2d(x, w, None, (1, 1), (1, 1), (1, 1), 3)  # (24 and 8 channels: groups=3 divides one)
    assert entered == ["conv2d"]


def test_pooling_in_njit_matches_the_reference(rng):
    """The Python path's pooling kernels called by address (serial, and on
    Numba's threads past the serial threshold), the small work's loops (a
    build too), and the plain loops compiled into the caller that run while
    the table does not hold them (a first use, its builds compiling in the
    background)."""

    def check():
        x = rng.standard_normal((2, 3, 9, 10))
        x[0, 1, 4, 4] = np.nan
        for k, s, p, d, ceil in [((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 2), (2, 1), (1, 1), (1, 2), True),
                                 ((3, 3), (3, 3), (1, 0), (2, 1), True), ((1, 4), (1, 3), (0, 2), (1, 1), False)]:  # fmt: skip
            mx, avg_real, avg_pad, mx1 = _pools(x, k, s, p, d, ceil)
            want, _ = max_pool_nd(x, k, s, p, d, ceil)
            np.testing.assert_array_equal(mx, want)
            if d == (1, 1):
                np.testing.assert_allclose(avg_pad, avg_pool_nd(x, k, s, p, ceil, True), rtol=1e-12)
                np.testing.assert_allclose(avg_real, avg_pool_nd(x, k, s, p, ceil, False), rtol=1e-12)
            want1, _ = max_pool_nd(x[0], (k[1],), (s[1],), (p[1],), (d[1],), ceil)
            np.testing.assert_array_equal(mx1, want1)
        v = rng.standard_normal((2, 2, 5, 6, 7))
        v[1, 0, 2, 3, 4] = np.nan
        for k, s, p, ceil, size in [((2, 2, 2), (2, 2, 2), (0, 0, 0), False, (2, 3, 4)),
                                    ((3, 1, 2), (2, 1, 3), (1, 0, 1), True, (5, 1, 7)),
                                    ((1, 3, 3), (1, 2, 2), (0, 1, 1), False, (1, 6, 3))]:  # fmt: skip
            mx, avg, amax, aavg2, aavg1 = _pools3d(v, k, s, p, ceil, size)
            np.testing.assert_array_equal(mx, max_pool_nd(v, k, s, p, (1, 1, 1), ceil)[0])
            np.testing.assert_allclose(avg, avg_pool_nd(v, k, s, p, ceil, True), rtol=1e-12)
            np.testing.assert_array_equal(amax, adaptive_pool_nd(v, size, "max")[0])
            np.testing.assert_allclose(aavg2, adaptive_pool_nd(v[0], size[1:], "avg")[0], rtol=1e-12)
            np.testing.assert_allclose(aavg1, adaptive_pool_nd(v[0, 0], size[2:], "avg")[0], rtol=1e-12)
        big = rng.standard_normal((4, 8, 64, 64))
        big[1, 2, 10, 10] = np.nan
        mx, avg_real, avg_pad, _ = _pools(big, (3, 3), (2, 2), (1, 1), (1, 1), True)
        np.testing.assert_array_equal(mx, max_pool_nd(big, (3, 3), (2, 2), (1, 1), (1, 1), True)[0])
        np.testing.assert_allclose(
            avg_real, avg_pool_nd(big, (3, 3), (2, 2), (1, 1), True, False), rtol=1e-12, atol=1e-14
        )

    check()
    with _without_builds("MAX_POOL", "MAX_POOL_SERIAL", "AVG_POOL", "AVG_POOL_SERIAL", "POOL_WINDOWS", "POOL_LOOPS",
                         "ADAPTIVE_WINDOWS", "ADAPTIVE_LOOPS"):  # (the plain loops)  # fmt: skip
        check()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ndimage_in_njit_matches_scipy_in_every_mode(rng, dtype):
    tol = 2e-5 if dtype == np.float32 else 1e-11
    builds = ("SWEEP", "SWEEP_SERIAL", "BANDS", "BANDS_SERIAL")  # (without them: the plain loops)
    cases = [((9, 13), False), ((1, 7), False), ((6, 1), False), ((3, 3), False), ((300, 600), False),
             ((11, 8), True), ((1, 3), True)]  # (pads wider than the axis; 2 bands of rows)  # fmt: skip
    for shape, plain in cases:
        x = rng.standard_normal(shape).astype(dtype)
        w = rng.standard_normal((3, 2))
        for mode in MODES:
            for origin in (0, -1):
                want = (
                    scipy.ndimage.correlate(x, w, mode=mode, cval=0.5, origin=origin),
                    scipy.ndimage.convolve(x, w, mode=mode, cval=0.5, origin=origin),
                    scipy.ndimage.gaussian_filter(x, 1.3, mode=mode, cval=0.5),
                    scipy.ndimage.uniform_filter(x, 4, mode=mode, cval=0.5, origin=origin),
                    scipy.ndimage.sobel(x, 0, mode=mode, cval=0.5),
                    scipy.ndimage.prewitt(x, -1, mode=mode, cval=0.5),
                    scipy.ndimage.laplace(x, mode=mode, cval=0.5),
                )
                names = ("correlate", "convolve", "gaussian", "uniform", "sobel", "prewitt", "laplace")
                with _without_builds(*builds) if plain else contextlib.nullcontext():
                    if dtype == np.float32:  # (_filters32: correlate, gaussian, sobel)
                        got, keep = _filters32(x, w, mode, 0.5, origin), (0, 2, 4)
                    else:
                        got, keep = _filters(x, w, mode, 0.5, origin), range(7)
                for name, a, b in zip([names[i] for i in keep], got, [want[i] for i in keep]):
                    assert a.dtype == b.dtype, name
                    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"{name} {shape} {mode} {origin}")
    if dtype == np.float32:
        return
    v = rng.standard_normal((4, 40, 1200))  # (3-D weights: bands of 36 rows of three planes)
    w3 = rng.standard_normal((3, 3, 3))
    for mode in ("wrap", "constant"):
        np.testing.assert_allclose(_correlate3d(v, w3, mode), scipy.ndimage.correlate(v, w3, mode=mode, cval=0.5),
                                   rtol=1e-11, atol=1e-11)  # fmt: skip
    x3 = rng.standard_normal((4, 5, 6)).astype(dtype)
    for axis in (0, 1, -1):
        got = _filters1d(x3, np.array([0.5, -1.0, 2.0, 0.25]), axis, "mirror", -2.0, 1)
        want = (
            scipy.ndimage.correlate1d(x3, [0.5, -1.0, 2.0, 0.25], axis, mode="mirror", cval=-2.0, origin=1),
            scipy.ndimage.convolve1d(x3, [0.5, -1.0, 2.0, 0.25], axis, mode="mirror", cval=-2.0, origin=1),
            scipy.ndimage.gaussian_filter1d(x3, 0.9, axis, mode="mirror", cval=-2.0),
            scipy.ndimage.uniform_filter1d(x3, 3, axis, mode="mirror", cval=-2.0, origin=1),
        )
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_signal_and_gaussian_derivatives_in_njit_match_scipy(rng):
    import scipy.signal

    for sa, sb in [((7, 9), (3, 2)), ((5, 4), (2, 4)), ((3, 3), (5, 6)), ((6, 6), (4, 4)), ((1, 5), (1, 1))]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        for mode in ("full", "same", "valid"):
            for boundary in ("fill", "wrap", "symm"):
                try:
                    want = (scipy.signal.convolve(a, b, mode, method="direct"),
                            scipy.signal.correlate(a, b, mode, method="direct"),
                            scipy.signal.convolve2d(a, b, mode, boundary, 0.5),
                            scipy.signal.correlate2d(a, b, mode, boundary, 0.5))  # fmt: skip
                except ValueError:  # ('valid' with neither input the larger in every axis)
                    with pytest.raises(ValueError, match="valid"):
                        _signal(a, b, mode, boundary, 0.5)
                    continue
                for plain in (False, True):  # (the bands' builds; the plain loops)
                    with _without_builds("BANDS", "BANDS_SERIAL") if plain else contextlib.nullcontext():
                        got = _signal(a, b, mode, boundary, 0.5)
                    for g, w in zip(got, want):
                        assert g.shape == w.shape, (sa, sb, mode, boundary)
                        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-11, err_msg=f"{sa} {sb} {mode} {boundary}")
    for shape in [(20, 17), (3, 40)]:
        x = rng.standard_normal(shape)
        for sigma, truncate in ((1.2, 4.0), (0.7, 2.0)):
            want = (scipy.ndimage.gaussian_filter(x, sigma, order=(1, 2), mode="wrap"),
                    scipy.ndimage.gaussian_filter1d(x, sigma, 0, 3), scipy.ndimage.gaussian_laplace(x, sigma),
                    scipy.ndimage.gaussian_gradient_magnitude(x, sigma, truncate=truncate))  # fmt: skip
            for got, w in zip(_derivatives(x, sigma, truncate), want):
                np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-10)


@numba.njit
def _integers(x, w, flags):
    return (fastconv.conv2d(x, w, None, 1, 1), fastconv.conv_transpose2d(x, w, None, 2, 1),
            fastconv.max_pool2d(flags, 2), fastconv.adaptive_avg_pool2d(x, 3))  # fmt: skip


def test_integer_and_bool_inputs_are_computed_in_float64_as_in_python(rng):
    """The torch-style functions take integer and bool arrays in compiled
    code as in Python (API.md): computed and returned in float64."""
    x = rng.integers(-5, 6, (2, 3, 7, 8)).astype(np.int32)
    w = rng.integers(-3, 4, (3, 3, 3, 3))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    conv, transposed, mx, avg = _integers(x, w, x > 0)
    want = (conv_nd(x64, w64, None, (1, 1), (1, 1), (1, 1), 1),
            conv_transpose_nd(x64, w64, None, (2, 2), (1, 1), (0, 0), 1, (1, 1)),
            max_pool_nd((x > 0).astype(np.float64), (2, 2), (2, 2), (0, 0), (1, 1), False)[0],
            adaptive_pool_nd(x64, (3, 3), "avg")[0])  # fmt: skip
    python = (fastconv.conv2d(x, w, None, 1, 1), fastconv.conv_transpose2d(x, w, None, 2, 1),
              fastconv.max_pool2d(x > 0, 2), fastconv.adaptive_avg_pool2d(x, 3))  # fmt: skip
    for got, ref, py in zip((conv, transposed, mx, avg), want, python):
        assert got.dtype == py.dtype == np.float64 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@numba.njit
def _integer_filters(u, w, w1, o16):
    return (ndimage.correlate(u, w, mode="constant", cval=2.0), ndimage.correlate1d(u, w1, axis=0, mode="wrap"),
            ndimage.gaussian_filter(u, 1.0), ndimage.uniform_filter(u, 3), ndimage.sobel(u),
            ndimage.gaussian_laplace(u, 1.0), ndimage.gaussian_gradient_magnitude(u, 1.0),
            ndimage.uniform_filter(u, 3, output=np.float64), ndimage.gaussian_filter(u, 0.7, output=o16))  # fmt: skip


@numba.njit
def _integer_signals(a, b):
    return (fastconv.signal.convolve(a, b), fastconv.signal.correlate(a, b, mode="same"),
            fastconv.signal.convolve2d(a, b, boundary="symm"), fastconv.signal.fftconvolve(a, b),
            fastconv.signal.convolve(a, b.astype(np.float32)))  # fmt: skip


@numba.njit
def _bool_filters(f, w):
    return ndimage.correlate(f, w), ndimage.gaussian_filter(f, 1.0)


def test_integer_and_bool_images_and_signals_as_scipy_computes_them(rng):
    """ndimage and signal take integer and bool arrays in compiled code as in
    Python (and scipy): computed in float64, the result in the input's dtype
    (``output``'s where given), ndimage's truncated toward zero after every
    pass of a multi-pass filter and wrapped (bool: scipy's C cast), signal's
    direct sums rounded; the FFT's result float64.  (One function per
    form of the wrapper -- ``_numba_ext.integers_too`` -- and per pass
    scheme: each compiled call costs seconds.)"""
    u = rng.integers(0, 256, (9, 11)).astype(np.uint8)
    w = rng.integers(-4, 5, (3, 3)) / 4  # (sums exact in float64: no truncation decided by summation order)
    w1 = np.array([1.0, -2.5, 0.75])
    o16 = np.zeros(u.shape, np.int16)
    got = _integer_filters(u, w, w1, o16)
    S = scipy.ndimage
    want = (S.correlate(u, w, mode="constant", cval=2.0), S.correlate1d(u, w1, axis=0, mode="wrap"),
            S.gaussian_filter(u, 1.0), S.uniform_filter(u, 3), S.sobel(u), S.gaussian_laplace(u, 1.0),
            S.gaussian_gradient_magnitude(u, 1.0), S.uniform_filter(u, 3, output=np.float64),
            S.gaussian_filter(u, 0.7, output=np.zeros(u.shape, np.int16)))  # fmt: skip
    for i, (g, ref) in enumerate(zip(got, want)):
        assert g.dtype == ref.dtype, i
        if ref.dtype.kind == "f":
            np.testing.assert_allclose(g, ref, rtol=1e-12, atol=1e-12, err_msg=str(i))
        else:
            np.testing.assert_array_equal(g, ref, err_msg=str(i))
    assert got[-1] is o16
    a = rng.integers(-50, 50, (6, 7)).astype(np.int32)
    b = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    got = _integer_signals(a, b)
    want = (scipy.signal.convolve(a, b), scipy.signal.correlate(a, b, mode="same"),
            scipy.signal.convolve2d(a, b, boundary="symm"), scipy.signal.fftconvolve(a, b),
            scipy.signal.convolve(a, b.astype(np.float32)))  # fmt: skip
    for i, (g, ref) in enumerate(zip(got, want)):
        assert g.dtype == ref.dtype, i
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-9, err_msg=str(i))
    f = rng.random((8, 9)) > 0.6
    for g, ref in zip(_bool_filters(f, w), (S.correlate(f, w), S.gaussian_filter(f, 1.0))):
        assert g.dtype == ref.dtype == np.bool_
        np.testing.assert_array_equal(g, ref)


def test_errors_name_the_argument_at_compile_and_run_time(rng):
    x = rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((2, 2, 3, 3))
    with pytest.raises(numba.core.errors.TypingError, match="input must be a float32, float64, integer or bool array"):
        _conv2d(x.astype(np.complex128), w, np.zeros(2), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(numba.core.errors.TypingError, match="in1 must be a float32, float64, integer or bool array"):
        _signal(x[0, 0].astype(np.complex128), w[0, 0], "full", "fill", 0.0)

    @numba.njit
    def bad_out(x, w):
        return fastconv.conv2d(x, w, out=x[0])

    with pytest.raises(numba.core.errors.TypingError, match="out must be None or a float64 array with 4 dimensions"):
        bad_out(x, w)

    @numba.njit
    def bad_mode(x):
        return ndimage.gaussian_filter(x, 1.0, mode=["reflect", "wrap"])

    with pytest.raises(numba.core.errors.TypingError, match="mode must be a string"):
        bad_mode(x[0, 0])

    @numba.njit
    def transposed(x, w):
        return fastconv.conv_transpose2d(x, w, padding="same")

    with pytest.raises(numba.core.errors.TypingError, match="padding must be an int or a tuple"):
        transposed(x, w)
    with pytest.raises(ValueError, match="mode must be one of"):
        _filters(x[0, 0], np.ones((3, 3)), "bogus", 0.0, 0)
    with pytest.raises(ValueError, match="origin"):
        _filters(x[0, 0], np.ones((3, 3)), "reflect", 0.0, 5)
    with pytest.raises(ValueError, match="groups"):
        _conv2d(x, w, np.zeros(2), (1, 1), (0, 0), (1, 1), 3)
    with pytest.raises(ValueError, match="smaller than the"):
        _conv2d(x, w, np.zeros(2), (1, 1), (0, 0), (4, 4), 1)
    before = x.copy()
    _conv2d(x, w, np.zeros(2), (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("layer", ["workqueue", "omp"])
def test_threads_inside_prange_and_from_serial_code_under_each_threading_layer(layer):
    """The issue's per-image loop: fastconv.conv2d and a filter in a prange
    body, each call large enough to run in parallel from serial code, runs
    on its thread (a nested launch would abort under workqueue); the same
    calls from serial compiled code run on Numba's threads; a forked child
    of the process computes too (OpenMP cannot run a region there)."""
    code = textwrap.dedent(
        """
        import os, numba, numpy as np, fastconv
        from fastconv import ndimage
        from fastconv.kernels import injit

        @numba.njit(parallel=True)
        def per_image(x, w):
            out = np.empty((x.shape[0], w.shape[0], x.shape[2], x.shape[3]), np.float32)
            smooth = np.empty_like(x)
            for i in numba.prange(x.shape[0]):
                out[i] = fastconv.conv2d(x[i], w, padding=1)
                smooth[i, 0] = ndimage.gaussian_filter(x[i, 0], 1.0)
            return out, smooth

        @numba.njit
        def serial(x, w):
            return (fastconv.conv2d(x, w, padding=1), ndimage.gaussian_filter(x[:, 0], (0.0, 1.0, 1.0)),
                    ndimage.correlate(x[:, 0], w[0], mode="wrap"))

        @numba.njit
        def here():  # (threads for a large call, and whether it goes through the Python entry)
            return injit.threads_for(10**9) * 10 + injit.routed(10**9)

        @numba.njit(parallel=True)
        def in_prange(n):
            out = np.zeros(n, np.int64)
            for i in numba.prange(n):
                out[i] = here()  # (a serial function called from a prange body)
            return out

        rng = np.random.default_rng(0)
        x = rng.standard_normal((6, 3, 64, 64)).astype(np.float32)
        w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
        want = fastconv.conv2d(x, w, padding=1)
        want_smooth = np.stack([ndimage.gaussian_filter(v, 1.0) for v in x[:, 0]])
        out, smooth = per_image(x, w)
        assert numba.threading_layer() == LAYER, numba.threading_layer()
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(smooth[:, 0], want_smooth, rtol=1e-5, atol=1e-5)
        assert here() == 21 and set(in_prange(64).tolist()) == {10}  # (the Python path's entry: serial code only)
        assert injit.threads_for(10) == 1  # (below the serial threshold)
        got, got_smooth, got_correlate = serial(x, w)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got_smooth, want_smooth, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_correlate, ndimage.correlate(x[:, 0], w[0], mode="wrap"), rtol=1e-5, atol=1e-5)
        numba.set_num_threads(1)
        assert here() // 10 == 1
        numba.set_num_threads(2)
        pid = os.fork()
        if pid == 0:
            ok = np.allclose(serial(x, w)[0], want, rtol=1e-4, atol=1e-4)
            one = here() == 10
            os._exit(0 if ok and one == (LAYER == "omp") else 3)
        assert os.waitpid(pid, 0)[1] == 0
        print("ok")
        """
    ).replace("LAYER", repr(layer))
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2")
    if layer == "omp":
        try:
            from numba.np.ufunc import omppool  # noqa: F401
        except ImportError:
            pytest.skip("Numba's omp layer is not available here")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


def test_prange_bodies_stay_serial_with_a_second_openmp_runtime():
    """torch brings its own libgomp into the process's global scope: Numba's
    omp regions then run on whichever runtime its layer bound first, and
    only that runtime's ``omp_in_parallel`` knows them (the table holds the
    one that said yes inside a region).  torch imported before Numba's
    first parallel region (imported after it, Numba's calls are bound to
    its own runtime: checked by hand, 2026-12-07)."""
    pytest.importorskip("torch")
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        pytest.skip("Numba's omp layer is not available here")
    code = textwrap.dedent(
        """
        import numpy as np, numba
        import torch
        @numba.njit(parallel=True)
        def region(n):
            s = 0
            for i in numba.prange(n):
                s += i
            return s
        region(100)
        import fastconv
        from fastconv.kernels import injit

        @numba.njit
        def here():
            return injit.threads_for(10**9) * 10 + injit.routed(10**9)

        @numba.njit(parallel=True)
        def in_prange(n):
            out = np.zeros(n, np.int64)
            for i in numba.prange(n):
                out[i] = here()
            return out

        numba.njit(lambda x, w: fastconv.conv2d(x, w))(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))  # (fills the table)
        assert here() == 21 and set(in_prange(64).tolist()) == {10}, (here(), set(in_prange(64).tolist()))
        print("ok")
        """
    )
    env = dict(os.environ, NUMBA_THREADING_LAYER="omp", NUMBA_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


@pytest.mark.parametrize("child_builds", [True, False])
def test_builds_missing_from_the_disk_cache_compile_in_the_background(monkeypatch, child_builds):
    """Typing a call whose build is not on disk does not compile it: a child
    process builds it (here: in-process, the build already in memory) while
    the user's function runs its loops, and the table is filled after; a
    build the child failed is compiled by the background thread itself."""
    from fastconv import _numba_ext, _warm, _warmup
    from fastconv.kernels import injit

    fastconv.ndimage.correlate1d(np.ones(8), np.ones(3))  # (the filters' kernels typed: the SWEEP build exists)
    numba.njit(lambda x: fastconv.ndimage.uniform_filter1d(x, 3))(np.ones((4, 4)))  # (the table filled)
    slot = injit.BUILDS_AT + 2 * injit.SWEEP + 1
    address = _numba_ext._thread_table[slot]
    assert address != 0
    jobs = []

    def child(given, timeout=None):
        jobs.extend(given)
        if child_builds:
            for job in given:
                _warmup.run_job(job)
            return True, ""
        return False, "(test) the child failed"

    @contextlib.contextmanager
    def on_disk():  # (``_warm.no_compile`` where the disk cache holds only what the child built)
        if not jobs or not child_builds:
            raise _warm.NotCompiled("(test) not on disk")
        yield

    monkeypatch.setattr(_warm, "build", child)
    monkeypatch.setattr(_warm, "no_compile", on_disk)
    errors = len(_warm._builder.errors)
    _numba_ext._thread_table[slot] = 0
    try:
        with fastconv.set_config(background_compile=True):
            _numba_ext._need_build(injit.SWEEP, numba.float64)
            assert (injit.SWEEP, "float64") in _numba_ext._wanted
            _numba_ext._need_build(injit.SWEEP, numba.float64)  # (asked once)
            # the user's function runs meanwhile, on the loops compiled into it
            x = np.random.default_rng(0).standard_normal((40, 50))
            got = numba.njit(lambda x: fastconv.ndimage.uniform_filter1d(x, 5, axis=0))(x)
            np.testing.assert_allclose(got, scipy.ndimage.uniform_filter1d(x, 5, axis=0), rtol=1e-12, atol=1e-12)
            assert _warm.wait(120)
    finally:
        if not _numba_ext._thread_table[slot]:
            _numba_ext._thread_table[slot] = address
    assert _numba_ext._thread_table[slot] == address and not _numba_ext._wanted and not _numba_ext._filling
    assert [job.builds for job in jobs] == [((injit.SWEEP, "float64"),)]
    assert (len(_warm._builder.errors) > errors) == (not child_builds)


def test_a_cached_user_function_fills_the_table_when_a_new_process_loads_it(tmp_path):
    """Numba loads a user's ``cache=True`` function in a new process without
    typing its fastconv calls: the hook its calls compiled in (Numba's
    ``reload_init``) puts the builds they reach by address in the table
    there, else it would run the loops compiled into it, and route nothing."""
    (tmp_path / "userfn.py").write_text(
        "import numba, fastconv\n\n\n@numba.njit(cache=True)\ndef smooth(x, w):\n"
        "    return fastconv.ndimage.correlate1d(x, w, 0, mode='wrap')\n"
    )
    code = textwrap.dedent(f"""
        import sys, numpy as np, scipy.ndimage
        sys.path.insert(0, {str(tmp_path)!r})
        import userfn
        from fastconv import _numba_ext
        from fastconv.kernels import injit
        x, w = np.arange(600.0).reshape(30, 20) % 7, np.array([1.0, -2.0, 0.5])
        ok = np.allclose(userfn.smooth(x, w), scipy.ndimage.correlate1d(x, w, 0, mode='wrap'))
        filled = _numba_ext._thread_table[injit.BUILDS_AT + 2 * injit.SWEEP + 1] != 0
        print(len(userfn.smooth.stats.cache_hits), filled, ok)
    """)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
            for _ in range(2)]  # fmt: skip
    assert [r.stdout.strip() for r in runs] == ["0 True True", "1 True True"], runs[-1].stderr[-3000:]


def test_the_build_process_compiles_builds_into_the_disk_cache(tmp_path, monkeypatch):
    """The job :func:`_numba_ext._need_build` queues runs in the real child
    process (pickled, ``python -m fastconv._warmup``) and leaves the build in
    the disk cache (an empty one here)."""
    from fastconv import _numba_ext, _warm
    from fastconv.kernels import injit

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    ok, err = _warm.build([_numba_ext.Builds([(injit.ADAPTIVE_WINDOWS, "float32")])], timeout=300)
    assert ok, err
    cached = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert any("adaptive_tables_run" in f and f.endswith(".nbi") for f in cached), cached


@numba.njit
def _python_only(x, w, padding_mode, method, a, b, mode):
    return (fastconv.conv2d(x, w, None, 1, 2, 1, 1, padding_mode, method),
            fastconv.signal.fftconvolve(a, b, mode), fastconv.signal.oaconvolve(a, b, mode))  # fmt: skip


def test_methods_padding_modes_and_ffts_of_the_python_path_from_serial_code(rng):
    """A method or padding mode that only the Python path has, and
    ``fftconvolve``/``oaconvolve``, run its entry from serial compiled code
    (any size); inside a prange body they raise ValueError saying why."""
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for padding_mode, method in (
        ("reflect", "auto"),
        ("circular", "direct"),
        ("zeros", "im2col"),
        ("replicate", "fft"),
    ):
        numpy_mode = {"reflect": "reflect", "circular": "wrap", "zeros": "constant", "replicate": "edge"}[padding_mode]
        padded = np.pad(x64, ((0, 0), (0, 0), (2, 2), (2, 2)), mode=numpy_mode)
        want = conv_nd(padded, w64, None, (1, 1), (0, 0), (1, 1), 1)
        for a, b in ((rng.standard_normal(50).astype(np.float32), rng.standard_normal(7).astype(np.float32)),
                     (rng.standard_normal(40), rng.standard_normal(41))):  # fmt: skip
            for mode in ("full", "same", "valid"):
                got, fft, oa = _python_only(x, w, padding_mode, method, a, b, mode)
                assert got.dtype == np.float32 and got.shape == want.shape
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
                ref = scipy.signal.fftconvolve(a.astype(np.float64), b.astype(np.float64), mode)
                for y in (fft, oa):
                    assert y.dtype == a.dtype and y.shape == ref.shape and y.flags.c_contiguous
                    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 if a.dtype == np.float32 else 1e-10)
    with pytest.raises(ValueError, match="method"):
        _python_only(x, w, "zeros", "bogus", a, b, "full")  # (the Python path's own check)

    @numba.njit(parallel=True)
    def in_prange(x, w, method, a, b):
        out = np.zeros(4)
        for i in numba.prange(4):
            if method == "":
                out[i] = fastconv.signal.fftconvolve(a, b)[0]
            else:
                out[i] = fastconv.conv2d(x, w, method=method)[0, 0, 0, 0]
        return out

    with pytest.raises(ValueError, match="not inside a prange body"):
        in_prange(x, w, "im2col", a, b)
    if _ROCKET_FFT:  # (compiled: see the next test)
        np.testing.assert_allclose(in_prange(x, w, "", a, b), scipy.signal.fftconvolve(a, b)[0], rtol=1e-10)
    else:
        with pytest.raises(ValueError, match="rocket-fft"):
            in_prange(x, w, "", a, b)

    @numba.njit
    def pooled(x):
        return fastconv.max_pool2d(x, 3, 2, 1, 1, True, return_indices=True)

    got, where = pooled(x)
    want, want_where = max_pool_nd(x, (3, 3), (2, 2), (1, 1), (1, 1), True)
    assert got.dtype == np.float32 and where.dtype == np.int64 and got.shape == where.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(where, want_where)

    @numba.njit(parallel=True)
    def pooled_in_prange(x):
        out = np.zeros(4)
        for i in numba.prange(4):
            out[i] = fastconv.max_pool2d(x, 2, return_indices=True)[1][0, 0, 0, 0]
        return out

    with pytest.raises(ValueError, match="not inside a prange body"):
        pooled_in_prange(x)

    @numba.njit
    def with_axes(a, b):
        return fastconv.signal.fftconvolve(a, b, axes=0)

    with pytest.raises(numba.core.errors.TypingError, match="axes must be None"):
        with_axes(a, b)


_ROCKET_FFT = importlib.util.find_spec("rocket_fft") is not None


@numba.njit(parallel=True)
def _ffts_in_prange(a, b, mode):
    full = 1
    for k in range(a.ndim):
        full *= a.shape[k] + b.shape[k] - 1
    res = np.zeros((4, full), a.dtype)
    sizes = np.zeros(4, np.int64)
    for i in numba.prange(4):  # (each call on its thread: the compiled FFTs, never the Python path)
        if i == 0:
            y = fastconv.signal.fftconvolve(a, b, mode).ravel()
        elif i == 1:
            y = fastconv.signal.oaconvolve(a, b, mode).ravel()
        elif i == 2:
            y = fastconv.signal.convolve(a, b, mode, "fft").ravel()
        else:
            y = fastconv.signal.correlate(a, b, mode, "fft").ravel()
        res[i, : y.size] = y
        sizes[i] = y.size
    return [res[i, : sizes[i]] for i in range(4)]


@pytest.mark.skipif(not _ROCKET_FFT, reason="rocket-fft is not installed (pip install 'fastconv[njit]')")
def test_fft_convolutions_compiled_with_rocket_fft_in_prange_bodies(rng):
    """With rocket-fft, fftconvolve/oaconvolve and convolve/correlate with
    method="fft" run compiled (the FFT a build called by address), so they
    run inside a prange body, against scipy: 1-D and 2-D (3-D is the same
    kernel, unlifted), every mode, "valid" with either input the larger,
    odd and size-1 axes, float32 and float64, by FFT and by the direct
    correlation (picked by the estimate, as in Python; and while the build
    is missing), a NaN reaching only its windows where direct runs."""
    # (the large kernels by FFT, the short ones direct: the estimate's pick, as in Python; plain: the FFT
    # build out of the table, the direct correlation instead)
    big = [((40, 30), (20, 25)), ((19, 23), (24, 31))]
    for dtype, shapes, plain in (
        (np.float64, [((7, 9), (3, 2)), ((3, 4), (5, 6)), ((1, 8), (1, 3)), *big], False),
        (np.float64, [((40, 30), (20, 25)), ((3, 4), (5, 6))], True),
        (np.float32, [((17,), (4,)), ((5,), (9,)), ((1,), (1,)), ((300,), (251,))], False),
    ):
        tol = 2e-5 if dtype == np.float32 else 1e-10
        for sa, sb in shapes:
            a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
            for mode in ("full", "same", "valid"):
                larger = all(p >= q for p, q in zip(sa, sb)) or all(q >= p for p, q in zip(sa, sb))
                if mode == "valid" and not larger:
                    with pytest.raises(ValueError, match="valid"):
                        _ffts_in_prange(a, b, mode)
                    continue
                a64, b64 = a.astype(np.float64), b.astype(np.float64)
                want = (scipy.signal.fftconvolve(a64, b64, mode), scipy.signal.fftconvolve(a64, b64, mode),
                        scipy.signal.convolve(a64, b64, mode, "direct"), scipy.signal.correlate(a64, b64, mode, "direct"))  # fmt: skip
                with _without_builds("FFT_FULL") if plain else contextlib.nullcontext():
                    gots = _ffts_in_prange(a, b, mode)
                for got, w in zip(gots, want):
                    assert got.dtype == dtype and got.size == w.size, (sa, sb, mode)
                    scale = max(1.0, np.abs(w).max())
                    np.testing.assert_allclose(got, w.ravel(), rtol=tol, atol=tol * scale, err_msg=f"{sa} {sb} {mode}")
    a = rng.standard_normal(40)
    a[7] = np.nan
    got = _ffts_in_prange(a, np.ones(3), "same")[0]  # (a short kernel: direct, as the Python path picks)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(fastconv.signal.fftconvolve(a, np.ones(3), "same")))
    assert np.isnan(got).sum() == 3


@numba.njit
def _into(x, w, out, image, weights, output, output2):
    return (fastconv.conv2d(x, w, None, 1, 1, out=out), ndimage.correlate(image, weights, output, "nearest"),
            ndimage.gaussian_filter(image, 1.5, output=np.float32), ndimage.sobel(image, 0, output2))  # fmt: skip


def test_out_and_output_in_njit_are_filled_and_returned(rng):
    """``out=`` (the result's dtype) and ndimage's ``output=`` (an array of
    any float dtype, cast as scipy casts; or a dtype) as in Python: the
    result is written there and the same memory comes back."""
    x, w = rng.standard_normal((2, 3, 7, 9)), rng.standard_normal((4, 3, 3, 3))
    image, weights = rng.standard_normal((11, 13)), rng.standard_normal((3, 4))
    out = np.full((4, 7, 9, 2), np.nan).transpose(3, 0, 1, 2)  # (non-contiguous)
    output, output2 = np.zeros((11, 13), np.float32), np.zeros((11, 13))
    conv, corr, gauss, sobel = _into(x, w, out, image, weights, output, output2)
    assert np.shares_memory(conv, out) and np.shares_memory(corr, output) and np.shares_memory(sobel, output2)
    np.testing.assert_allclose(out, conv_nd(x, w, None, (1, 1), (1, 1), (1, 1), 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(output, scipy.ndimage.correlate(image, weights, np.float32, "nearest"), rtol=1e-6,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(output2, scipy.ndimage.sobel(image, 0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gauss, scipy.ndimage.gaussian_filter(image, 1.5, output=np.float32), rtol=1e-6,
                               atol=1e-6)  # fmt: skip
    assert gauss.dtype == np.float32 and corr.dtype == np.float32 and sobel.dtype == np.float64
    with pytest.raises(ValueError, match="out must have the result's shape"):
        _into(x, w, out[:, :, :-1], image, weights, output, output2)
    with pytest.raises(ValueError, match="output must have the result's shape"):
        _into(x, w, out, image, weights, output[:-1], output2)
