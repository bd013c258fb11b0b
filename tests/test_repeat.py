"""Repeated calls: the call cache (fastconv._ops) and its executors.

A repeated call with the same key skips validation and planning; these tests
change, between two calls, everything the key leaves out or holds -- an
argument, the weights' values in the same buffer, the layout, the dtype,
``out=``, the settings -- and check every answer against the plain-NumPy
references (tests/reference.py) or scipy."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import fastconv
from fastconv import ndimage, nn, signal
from fastconv._ops import MAX_CALLS
from fastconv.dispatch.selector import clear_plan_cache

from .reference import avg_pool_nd, conv_nd, conv_transpose_nd, max_pool_nd


def _calls(func) -> dict:
    """The call cache of a public function (its executors by key)."""
    return func.__globals__["_calls"]


def _rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def test_second_call_uses_the_executor(rng, monkeypatch):
    x, w = _rand(rng, 2, 3, 9, 9), _rand(rng, 4, 3, 3, 3)
    fastconv.conv2d(x, w, padding=1)
    assert len(_calls(fastconv.conv2d)) >= 1

    # the executor serves the repeat: the spec builder is not asked again
    def fail(*a, **k):
        raise AssertionError("validated again")

    monkeypatch.setattr(nn, "conv_spec", fail)
    y = fastconv.conv2d(x, w, padding=1)
    np.testing.assert_allclose(y, conv_nd(x, w, padding=1), rtol=1e-4, atol=1e-4)


def test_changed_arguments_are_new_keys(rng):
    x, w = _rand(rng, 2, 3, 11, 10), _rand(rng, 4, 3, 3, 3)
    for kw in ({"padding": 1}, {"padding": 0}, {"stride": 2}, {"stride": (2, 1)}, {"dilation": 2},
               {"padding": "same"}, {"padding": 1, "padding_mode": "reflect"}, {"padding": (1, 0)}):  # fmt: skip
        for _ in range(2):
            y = fastconv.conv2d(x, w, **kw)
            np.testing.assert_allclose(y, conv_nd(x, w, **kw), rtol=1e-4, atol=1e-4, err_msg=str(kw))


def test_bad_arguments_still_raise_after_a_good_call(rng):
    """1.0 == 1 == True hash alike: the key holds each argument's type (and a
    tuple's element types), so a repeated call cannot skip these errors."""
    x, w = _rand(rng, 1, 3, 8, 8), _rand(rng, 2, 3, 3, 3)
    fastconv.conv2d(x, w, stride=1, padding=(1, 1))
    fastconv.conv2d(x, w, stride=1, padding=(1, 1))
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv2d(x, w, stride=1.0, padding=(1, 1))
    with pytest.raises(TypeError, match="stride"):
        fastconv.conv2d(x, w, stride=True, padding=(1, 1))
    with pytest.raises(TypeError, match="padding"):
        fastconv.conv2d(x, w, stride=1, padding=(1.0, 1))
    # lists are not keys: the full path answers (and validates) every time
    y = fastconv.conv2d(x, w, stride=[1, 1], padding=[1, 1])
    np.testing.assert_allclose(y, conv_nd(x, w, padding=1), rtol=1e-4, atol=1e-4)


def test_weights_changed_in_the_same_buffer(rng):
    x, w, b = _rand(rng, 2, 4, 9, 9), _rand(rng, 4, 1, 3, 3), _rand(rng, 4)
    for _ in range(3):
        w[...] = _rand(rng, 4, 1, 3, 3)
        b[...] = _rand(rng, 4)
        x[...] = _rand(rng, 2, 4, 9, 9)
        y = fastconv.conv2d(x, w, b, padding=1, groups=4)
        np.testing.assert_allclose(y, conv_nd(x, w, b, padding=1, groups=4), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("func", [ndimage.correlate, ndimage.convolve])
def test_ndimage_weights_changed_in_the_same_buffer(rng, func):
    """The plan reads the weights' values (footprint, separability): a new
    footprint or a separable kernel turned dense must not reuse them."""
    ref = getattr(scipy.ndimage, func.__name__)
    x = rng.standard_normal((20, 17))
    w = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])  # separable, 6 taps
    kernels = [
        np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0]),
        rng.standard_normal((3, 3)),  # dense, not separable
        np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]),  # one tap
        np.outer([1.0, 4.0, 1.0], [2.0, 1.0, 3.0]),  # separable again, other values
    ]
    for k in kernels * 2:
        w[...] = k
        np.testing.assert_allclose(func(x, w, mode="nearest"), ref(x, w, mode="nearest"), rtol=1e-10, atol=1e-10)


def test_nan_under_a_zero_weight_after_a_repeat(rng):
    """scipy leaves weights of magnitude <= eps out: a NaN under one does
    not spread; the same buffer's zero made non-zero must then spread it."""
    x = rng.standard_normal((12, 12))
    x[5, 5] = np.nan
    w = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    for value in (0.0, 0.5, 0.0):
        w[0, 1] = value
        got, want = ndimage.correlate(x, w), scipy.ndimage.correlate(x, w)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "layout",
    [
        lambda a: a,
        np.asfortranarray,
        lambda a: np.flip(np.flip(a, -1).copy(), -1),
        lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
        lambda a: a.astype(a.dtype.newbyteorder(">")),
        lambda a: _read_only(a),
    ],
    ids=["c", "fortran", "reversed", "strided", "big-endian", "read-only"],
)
def test_layouts_between_repeats(rng, layout):
    x, w = _rand(rng, 2, 3, 10, 9), _rand(rng, 4, 3, 3, 3)
    want = conv_nd(x, w, padding=1)
    fastconv.conv2d(x, w, padding=1)
    for _ in range(2):
        y = fastconv.conv2d(layout(x.copy()), layout(w.copy()), padding=1)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
        img = x[0, 0].astype(np.float64)
        np.testing.assert_allclose(ndimage.convolve(layout(img.copy()), w[0, 0].astype(np.float64)),
                                   scipy.ndimage.convolve(img, w[0, 0].astype(np.float64)), rtol=1e-10, atol=1e-10)  # fmt: skip
        np.testing.assert_allclose(
            fastconv.max_pool2d(layout(x.copy()), 2), max_pool_nd(x, (2, 2), (2, 2), (0, 0), (1, 1), False)[0]
        )


def _read_only(a):
    a.flags.writeable = False
    return a


def test_dtypes_between_repeats(rng):
    x, w = _rand(rng, 1, 2, 8, 8), _rand(rng, 3, 2, 3, 3)
    for dtype in (np.float32, np.float64, np.float32, np.float16):
        xd, wd = x.astype(dtype), w.astype(dtype)
        y = fastconv.conv2d(xd, wd, padding=1)
        assert y.dtype == np.result_type(dtype, np.float32 if dtype == np.float16 else dtype)
        np.testing.assert_allclose(y, conv_nd(x.astype(np.float64), w.astype(np.float64), padding=1), rtol=2e-2,
                                   atol=2e-2)  # fmt: skip
    img = rng.standard_normal((9, 9))
    for dtype in (np.float64, np.float32, np.int32, np.float64, np.complex128):
        got = ndimage.convolve(img.astype(dtype), np.ones((3, 3)))
        want = scipy.ndimage.convolve(img.astype(dtype), np.ones((3, 3)))
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_out_between_repeats(rng):
    x, w = _rand(rng, 2, 3, 8, 8), _rand(rng, 4, 3, 3, 3)
    want = conv_nd(x, w, padding=1)
    out = np.empty((2, 4, 8, 8), np.float32)
    for _ in range(2):
        out[...] = 0
        assert fastconv.conv2d(x, w, padding=1, out=out) is out
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    strided = np.empty((2, 4, 8, 16), np.float32)[..., ::2]
    assert fastconv.conv2d(x, w, padding=1, out=strided) is strided
    np.testing.assert_allclose(strided, want, rtol=1e-4, atol=1e-4)
    frozen = np.empty((2, 4, 8, 8), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        fastconv.conv2d(x, w, padding=1, out=frozen)
    with pytest.raises(ValueError, match="out must have shape"):
        fastconv.conv2d(x, w, padding=0, out=out)
    # out aliasing the input: the kernel must not write into what it reads
    xx = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    ww = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    want = conv_nd(xx, ww, padding=1)
    for _ in range(2):
        xa = xx.copy()
        np.testing.assert_allclose(fastconv.conv2d(xa, ww, padding=1, out=xa), want, rtol=1e-4, atol=1e-4)
    # ndimage output= array and dtype
    img = rng.standard_normal((10, 10))
    k = rng.standard_normal((3, 3))
    for _ in range(2):
        o = np.zeros_like(img)
        assert ndimage.correlate(img, k, output=o) is o
        np.testing.assert_allclose(o, scipy.ndimage.correlate(img, k), rtol=1e-10, atol=1e-10)
        got = ndimage.correlate(img, k, output=np.float32)
        assert got.dtype == np.float32
        o1 = np.zeros_like(img)
        assert ndimage.correlate1d(img, k[0], axis=0, output=o1) is o1
        np.testing.assert_allclose(o1, scipy.ndimage.correlate1d(img, k[0], axis=0), rtol=1e-10, atol=1e-10)
    frozen = np.zeros_like(img)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="output must be writeable"):
        ndimage.correlate(img, k, output=frozen)


def test_settings_between_repeats(rng):
    x, w = _rand(rng, 2, 8, 12, 12), _rand(rng, 8, 8, 3, 3)
    want = conv_nd(x, w, padding=1)
    seen = set()
    for threads, precision, limit in ((1, "fast", None), (2, "high", None), (1, "high", 1 << 12), (2, "fast", None)):
        with fastconv.set_config(num_threads=threads, precision=precision, workspace_limit=limit):
            for _ in range(2):
                np.testing.assert_allclose(fastconv.conv2d(x, w, padding=1), want, rtol=1e-4, atol=1e-4)
            plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
            seen.add(plan.method)
            assert plan.num_threads == threads
            if limit is not None:
                assert plan.workspace_bytes <= limit
            if precision == "high":
                assert plan.method != "winograd_f4"


def test_dask_and_numpy_with_one_shape(rng):
    da = pytest.importorskip("dask.array")
    x, w = _rand(rng, 2, 3, 8, 8), _rand(rng, 4, 3, 3, 3)
    fastconv.conv2d(x, w, padding=1)
    lazy = fastconv.conv2d(da.from_array(x, chunks=(1, 3, 8, 8)), w, padding=1)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), conv_nd(x, w, padding=1), rtol=1e-4, atol=1e-4)


def test_nan_after_finite_repeats(rng):
    """A plan whose method spreads NaN/Inf (FFT) is guarded on every
    repeat: the NaN's neighbourhood only, as the full path."""
    x = rng.standard_normal(4000)
    w = rng.standard_normal(300)
    for _ in range(2):
        np.testing.assert_allclose(signal.convolve(x, w), scipy.signal.convolve(x, w, method="direct"), atol=1e-8)
    x[100] = np.nan
    got = signal.convolve(x, w)
    want = scipy.signal.convolve(x, w, method="direct")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_pooling_and_transpose_repeats(rng):
    x = _rand(rng, 2, 3, 9, 9)
    for kw in (
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 2, "ceil_mode": True},
    ):
        k = kw["kernel_size"]
        for _ in range(2):
            got = fastconv.max_pool2d(x, **kw)
            s, p = kw.get("stride", k), kw.get("padding", 0)
            want = max_pool_nd(x, (k, k), (s, s), (p, p), (1, 1), kw.get("ceil_mode", False))[0]
            np.testing.assert_allclose(got, want)
            got = fastconv.avg_pool2d(x, **kw)
            want = avg_pool_nd(x, (k, k), (s, s), (p, p), kw.get("ceil_mode", False), True)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    values, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    values2, idx2 = fastconv.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_array_equal(values, values2)
    w = _rand(rng, 3, 2, 4, 4)
    for _ in range(2):
        np.testing.assert_allclose(fastconv.conv_transpose2d(x, w, stride=2, padding=1),
                                   conv_transpose_nd(x, w, stride=2, padding=1), rtol=1e-4, atol=1e-4)  # fmt: skip


def test_signal_repeats_match_scipy(rng):
    a, b = rng.standard_normal((13, 11)), rng.standard_normal((4, 3))
    for _ in range(2):
        for mode in ("full", "same", "valid"):
            for boundary in ("fill", "wrap", "symm"):
                np.testing.assert_allclose(signal.convolve2d(a, b, mode, boundary, 0.5),
                                           scipy.signal.convolve2d(a, b, mode, boundary, 0.5), atol=1e-10)  # fmt: skip
                np.testing.assert_allclose(signal.correlate2d(b, a, mode if mode != "valid" else "full", boundary),
                                           scipy.signal.correlate2d(b, a, mode if mode != "valid" else "full",
                                                                    boundary), atol=1e-10)  # fmt: skip
            np.testing.assert_allclose(signal.correlate(b, a, mode), scipy.signal.correlate(b, a, mode), atol=1e-10)
            np.testing.assert_allclose(signal.fftconvolve(a, b, mode), scipy.signal.fftconvolve(a, b, mode), atol=1e-10)
            np.testing.assert_allclose(signal.oaconvolve(a, b, mode), scipy.signal.oaconvolve(a, b, mode), atol=1e-10)


def test_threads_share_executors(rng):
    x, w = _rand(rng, 2, 4, 16, 16), _rand(rng, 4, 4, 3, 3)
    want = conv_nd(x, w, padding=1)
    img = rng.standard_normal((32, 32))
    want_img = scipy.ndimage.convolve1d(img, [1.0, 2.0, 3.0], axis=0)
    errors = []

    def work():
        try:
            for _ in range(30):
                np.testing.assert_allclose(fastconv.conv2d(x, w, padding=1), want, rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(ndimage.convolve1d(img, np.array([1.0, 2.0, 3.0]), axis=0), want_img)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_cache_is_bounded(rng):
    w = _rand(rng, 1, 1, 1)
    for n in range(MAX_CALLS + 20):
        fastconv.conv1d(np.zeros((1, 1, n + 1), np.float32), w)
    assert len(_calls(fastconv.conv1d)) <= MAX_CALLS
    from fastconv.dispatch import clear_plan_cache

    clear_plan_cache()
    assert len(_calls(fastconv.conv1d)) == 0


def test_large_weights_changed_in_place(rng):
    """Weights above the executors' keep limit are re-read on every call."""
    x = rng.standard_normal(20000)
    k = rng.standard_normal(9000)  # 72 KB of float64
    img = rng.standard_normal((110, 100))
    w = rng.standard_normal((95, 95))
    for _ in range(2):
        k[...] = rng.standard_normal(9000)
        np.testing.assert_allclose(signal.convolve(x, k), scipy.signal.fftconvolve(x, k), atol=1e-8)
        w[...] = rng.standard_normal((95, 95))
        np.testing.assert_allclose(ndimage.correlate(img, w, mode="wrap"), scipy.ndimage.correlate(img, w, mode="wrap"),
                                   atol=1e-8)  # fmt: skip


@pytest.mark.parametrize("mode", ["reflect", "constant", "wrap"])
def test_filters_of_transposed_and_fortran_inputs(rng, mode):
    """Every padding path (a gather for small inputs, np.pad above: it keeps
    a Fortran order the kernels cannot read) on inputs that are not C-ordered."""
    for shape in ((30, 20), (300, 200)):
        base = rng.standard_normal(shape).astype(np.float32)
        k = rng.standard_normal(9).astype(np.float32)
        for img in (base, np.asfortranarray(base), base.T.copy().T):
            for axis in (0, 1):
                for _ in range(2):
                    np.testing.assert_allclose(ndimage.correlate1d(img, k, axis=axis, mode=mode),
                                               scipy.ndimage.correlate1d(base, k, axis=axis, mode=mode),
                                               rtol=1e-5, atol=1e-5)  # fmt: skip
            np.testing.assert_allclose(ndimage.convolve(img, k[:3, None] * k[None, :3], mode=mode),
                                       scipy.ndimage.convolve(base, k[:3, None] * k[None, :3], mode=mode),
                                       rtol=1e-5, atol=1e-5)  # fmt: skip


@pytest.mark.parametrize(
    "method, nd, x_shape, w_shape, kw",
    [
        ("blocked:plane_windows", 2, (2, 3, 9, 30), (5, 3, 3, 3), {"padding": 1}),
        ("blocked:shifted", 2, (2, 3, 6, 7), (5, 3, 3, 3), {"padding": 1}),
        ("blocked:padded", 2, (2, 4, 7, 6), (6, 2, 3, 3), {"padding": 1, "stride": 2, "groups": 2}),
        ("blocked:windowed", 1, (2, 3, 40), (5, 3, 5), {"padding": 2}),
        ("blocked", -2, (2, 3, 6, 7), (3, 5, 4, 4), {"stride": 2, "padding": 1}),
    ],
)
def test_blocked_repeats_read_the_weights_and_bias_of_each_call(rng, method, nd, x_shape, w_shape, kw):
    """The register-blocked runners bind their launches once and keep a small
    weight's packing by value: weights and bias changed in their buffers,
    the bias dropped, and weights too large to keep (packed per call) all
    give each call's answer."""
    func = getattr(fastconv, f"conv_transpose{-nd}d" if nd < 0 else f"conv{nd}d")
    ref = conv_transpose_nd if nd < 0 else conv_nd
    x = _rand(rng, *x_shape, dtype=np.float64)
    for big in (False, True):
        shape = (w_shape[0], w_shape[1] * 128, *w_shape[2:]) if big and nd < 0 else w_shape
        shape = (w_shape[0] * 128, *w_shape[1:]) if big and nd > 0 else shape
        w = _rand(rng, *shape, dtype=np.float64)
        assert (w.nbytes > 1 << 16) == big  # (above the executors' keep limit: packed per call)
        b = _rand(rng, shape[1] * kw.get("groups", 1) if nd < 0 else shape[0], dtype=np.float64)
        for i in range(4):
            w[...] = _rand(rng, *shape, dtype=np.float64)
            b[...] = _rand(rng, b.size, dtype=np.float64)
            bias = b if i % 2 else None
            got = func(x, w, bias, method=method, **kw)
            np.testing.assert_allclose(got, ref(x, w, bias, **kw), rtol=1e-10, atol=1e-10)


def test_kept_weights_do_not_alias_an_older_buffer(rng):
    """An executor keeps small weights by value: a second buffer holding the
    first one's old values must be read as itself after the first changed."""
    img = rng.standard_normal((12, 12))
    w1 = rng.standard_normal((3, 3))
    w2 = w1.copy()
    ndimage.correlate(img, w1)
    w1[...] = rng.standard_normal((3, 3))
    np.testing.assert_allclose(ndimage.correlate(img, w2), scipy.ndimage.correlate(img, w2), rtol=1e-10, atol=1e-10)
    x = rng.standard_normal((1, 2, 6, 6))
    k1 = rng.standard_normal((2, 2, 3, 3))
    k2 = k1.copy()
    fastconv.conv2d(x, k1, padding=1, method="direct")
    k1[...] = 0
    np.testing.assert_allclose(fastconv.conv2d(x, k2, padding=1, method="direct"), conv_nd(x, k2, padding=1),
                               rtol=1e-10, atol=1e-10)  # fmt: skip


def test_tiny_filters_fold_the_padding_into_their_taps(rng, monkeypatch):
    """The tiny form of the direct filter (kernels/gather.py: the boundary
    mode folded into an index table) serves the repeats of small filters:
    every ndimage mode and origin, 1-3 axes, 1-D filters along each axis,
    signal's boundaries, a footprint changed in the same buffer (zeros: a
    new spec) and NaN under a zero weight -- against scipy."""
    import fastconv.kernels.gather as gather

    served = []
    real = gather.gathered_correlate

    def spy(*args):
        served.append(args[1].shape)
        return real(*args)

    monkeypatch.setattr(gather, "gathered_correlate", spy)
    clear_plan_cache()  # (executors made from here on call the spy)
    for shape, kshape in (((13,), (4,)), ((7, 9), (3, 2)), ((5, 4, 3), (2, 3, 3))):
        img = rng.standard_normal(shape)
        for mode in ("reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-constant"):
            w = rng.standard_normal(kshape)
            origin = -(kshape[0] // 2) if kshape[0] > 1 else 0
            for func in (ndimage.correlate, ndimage.convolve):
                ref = getattr(scipy.ndimage, func.__name__)
                for _ in range(2):
                    got = func(img, w, mode=mode, cval=1.5, origin=origin)
                    np.testing.assert_allclose(got, ref(img, w, mode=mode, cval=1.5, origin=origin), rtol=1e-12,
                                               atol=1e-12, err_msg=f"{func.__name__} {shape} {mode}")  # fmt: skip
            for axis in range(len(shape)):
                k = rng.standard_normal(5)
                for _ in range(2):
                    np.testing.assert_allclose(ndimage.convolve1d(img.astype(np.float32), k, axis=axis, mode=mode),
                                               scipy.ndimage.convolve1d(img.astype(np.float32), k, axis=axis,
                                                                        mode=mode), rtol=1e-5, atol=1e-5)  # fmt: skip
    assert len(served) > 50
    # the footprint changed in the same buffer (a zero weight), NaN under it
    img, w = rng.standard_normal((8, 8)), rng.standard_normal((3, 3))
    for _ in range(2):
        ndimage.correlate(img, w)
    w[1, 1] = 0.0
    img[4, 4] = np.nan
    for _ in range(2):
        np.testing.assert_array_equal(np.isnan(ndimage.correlate(img, w)), np.isnan(scipy.ndimage.correlate(img, w)))
    for boundary in ("fill", "symm", "wrap"):
        a, b = rng.standard_normal((6, 7)), rng.standard_normal((3, 3))
        for mode in ("full", "same", "valid"):
            for _ in range(2):
                np.testing.assert_allclose(signal.convolve2d(a, b, mode, boundary, 0.5),
                                           scipy.signal.convolve2d(a, b, mode, boundary, 0.5), atol=1e-12)  # fmt: skip


def _strided(a):
    return np.repeat(a, 2, axis=-1)[..., ::2]


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "transposed"])
def test_tiny_repeats_run_on_the_callers_arrays(rng, monkeypatch, transposed):
    """A tiny convolution's repeats (the ``small`` method) run the kernel on
    the caller's own arrays, past the operands path; what that path would
    copy or convert (layouts, byte order, dtypes, ``out=``) still goes
    through it, and each call reads its arrays anew."""
    f, ref = (fastconv.conv_transpose2d, conv_transpose_nd) if transposed else (fastconv.conv2d, conv_nd)
    x, w, b = _rand(rng, 2, 2, 6, 5), _rand(rng, 2, 3, 3, 3) if transposed else _rand(rng, 3, 2, 3, 3), _rand(rng, 3)
    assert fastconv.explain(f, x, w, b, padding=1).method == "small"
    f(x, w, b, padding=1), f(x, w, padding=1)  # (the first call of a key takes the full path)
    from fastconv import _spec

    ready = _spec.kernel_ready

    def not_here(*a):
        raise AssertionError("the operands path ran")

    monkeypatch.setattr(_spec, "kernel_ready", not_here)
    for _ in range(2):
        x[...], w[...], b[...] = _rand(rng, *x.shape), _rand(rng, *w.shape), _rand(rng, 3)
        np.testing.assert_allclose(f(x, w, b, padding=1), ref(x, w, b, padding=1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(f(x, w, padding=1), ref(x, w, padding=1), rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(_spec, "kernel_ready", ready)
    want = ref(x, w, b, padding=1)
    for layout in (np.asfortranarray, _strided, _read_only, lambda a: a.astype(a.dtype.newbyteorder(">"))):
        for args in ((layout(x.copy()), w, b), (x, layout(w.copy()), b), (x, w, layout(b.copy()))):
            for _ in range(2):
                np.testing.assert_allclose(f(*args, padding=1), want, rtol=1e-5, atol=1e-5)
    x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    for _ in range(2):
        y = f(x64, w64, b64, padding=1)
        assert y.dtype == np.float64
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
        out = np.full(want.shape, np.nan, np.float32)
        assert f(x, w, b, padding=1, out=out) is out
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
        y = f(x[1], w, b, padding=1)  # (unbatched)
        assert y.shape == want.shape[1:]
        np.testing.assert_allclose(y, want[1], rtol=1e-5, atol=1e-5)
    assert not np.isnan(x).any() and x.flags.writeable  # (the caller's arrays untouched)


def test_tiny_pool_repeats_run_on_the_callers_array(rng, monkeypatch):
    x = _rand(rng, 1, 2, 8, 7)
    for f, ref in (
        (lambda a: fastconv.max_pool2d(a, 2), lambda a: max_pool_nd(a, (2, 2), (2, 2), (0, 0), (1, 1), False)[0]),
        (lambda a: fastconv.avg_pool2d(a, 3, 2, 1), lambda a: avg_pool_nd(a, (3, 3), (2, 2), (1, 1), False, True)),
        (lambda a: fastconv.adaptive_avg_pool2d(a, 1), lambda a: a.mean(axis=(2, 3), keepdims=True)),
    ):
        f(x)
        from fastconv import _spec

        ready = _spec.kernel_ready
        monkeypatch.setattr(_spec, "kernel_ready", lambda *a: pytest.fail("the planes path ran"))
        for _ in range(2):
            x[...] = _rand(rng, *x.shape)
            np.testing.assert_allclose(f(x), ref(x), rtol=1e-5, atol=1e-5)
        monkeypatch.setattr(_spec, "kernel_ready", ready)
        for layout in (np.asfortranarray, _strided, _read_only, lambda a: a.astype(a.dtype.newbyteorder(">"))):
            for _ in range(2):
                np.testing.assert_allclose(f(layout(x.copy())), ref(x), rtol=1e-5, atol=1e-5)
        for _ in range(2):
            y = f(x.astype(np.float64))
            assert y.dtype == np.float64
            np.testing.assert_allclose(y, ref(x.astype(np.float64)), rtol=1e-12, atol=1e-12)
    want = max_pool_nd(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    for _ in range(2):  # (return_indices: the planes path)
        values, idx = fastconv.max_pool2d(x, 2, return_indices=True)
        np.testing.assert_array_equal(values, want[0])
        np.testing.assert_array_equal(idx, want[1])
