"""scipy.ndimage's convolution-based filters (fastconv/_filters.py), against
scipy.ndimage itself: every filter, dtype, boundary mode, axes, per-axis
arguments, ``output=``, errors, dask.  (The filters are passes of
fastconv's correlation, whose kernels are tested against the plain-NumPy
references in test_ndimage.py; here the reference is scipy's filter.)"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from fastconv import ndimage

FILTERS = [
    ("gaussian_filter", (1.5,), {}),
    ("gaussian_filter", (1.0,), {"order": 1, "truncate": 2.5}),
    ("gaussian_filter1d", (2.0,), {"axis": 0, "order": 2}),
    ("gaussian_filter1d", (0.8,), {"radius": 3}),
    ("uniform_filter", (3,), {}),
    ("uniform_filter", (4,), {"origin": -1}),
    ("uniform_filter1d", (5,), {"axis": 0, "origin": 1}),
    ("sobel", (), {"axis": 0}),
    ("prewitt", (), {}),
    ("laplace", (), {}),
    ("gaussian_laplace", (1.2,), {}),
    ("gaussian_gradient_magnitude", (1.2,), {"truncate": 3.0}),
]
MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap"]


def _check(name, x, *args, exact_ints=True, **kwargs):
    want = getattr(scipy.ndimage, name)(x, *args, **kwargs)
    got = getattr(ndimage, name)(x, *args, **kwargs)
    assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, want.dtype)
    if want.dtype.kind in "iub":
        # integer results are truncated after every pass, as scipy's; a Gaussian's
        # float sums may round across an integer in another summation order
        tol = 0 if exact_ints else 1
        assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= tol, (name, kwargs)
    else:
        tol = 2e-5 if want.dtype in (np.float32, np.complex64) else 1e-11
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=f"{name} {args} {kwargs}")
    return got


@pytest.mark.parametrize("name, args, kwargs", FILTERS)
@pytest.mark.parametrize("shape", [(23,), (13, 10), (5, 7, 6)])
def test_filters_match_scipy(rng, name, args, kwargs, shape):
    x = rng.standard_normal(shape)
    for mode in MODES:
        _check(name, x, *args, mode=mode, cval=0.5, **kwargs)
    # float32, Fortran order, a reversed view; the input is left alone
    x32 = np.asfortranarray(x.astype(np.float32))
    before = x32.copy()
    _check(name, x32, *args, **kwargs)
    _check(name, x[::-1], *args, **kwargs)
    np.testing.assert_array_equal(x32, before)


@pytest.mark.parametrize("name, args, kwargs", FILTERS)
def test_integer_and_complex_data(rng, name, args, kwargs):
    img = (rng.standard_normal((11, 9)) * 40).astype(np.int32)
    exact = not name.startswith("gaussian")
    _check(name, img, *args, exact_ints=exact, **kwargs)
    _check(name, np.abs(img).astype(np.uint8), *args, exact_ints=exact, **kwargs)
    _check(name, img, *args, output=np.float64, **kwargs)
    if name in ("gaussian_filter", "gaussian_filter1d", "uniform_filter", "uniform_filter1d"):
        z = rng.standard_normal((9, 8)) + 1j * rng.standard_normal((9, 8))
        _check(name, z, *args, **kwargs)


def test_per_axis_arguments_and_axes(rng):
    x = rng.standard_normal((12, 9, 7))
    _check("gaussian_filter", x, [1.0, 0.0, 2.0], order=[0, 1, 0], mode=["reflect", "wrap", "constant"], cval=1.0)
    _check("gaussian_filter", x, [1.0, 2.0], axes=(2, 0), mode=["nearest", "mirror"], radius=[2, 4])
    _check("gaussian_filter", x, 1.0, axes=-1)
    _check("uniform_filter", x, [3, 1, 4], origin=[0, 0, -1], mode=["wrap", "reflect", "nearest"])
    _check("uniform_filter", x, [2, 5], axes=[1, 2])
    _check("sobel", x, axis=-1, mode=["constant", "wrap", "nearest"], cval=2.0)
    _check("prewitt", x, axis=1, mode=["constant", "wrap", "nearest"])
    _check("laplace", x, mode=["reflect", "wrap", "nearest"])
    _check("laplace", x, axes=(0, 2))
    _check("gaussian_laplace", x, [1.0, 1.5], axes=(1, 2), radius=3)
    _check("gaussian_laplace", x, [1.0, 1.5, 0.5])
    _check("gaussian_gradient_magnitude", x, 1.0, axes=(1,), mode="wrap")
    # sigma 0 everywhere (no axis filtered): a copy in the result dtype
    got = _check("gaussian_filter", x, 0.0)
    assert got is not x


def test_output_arrays_and_dtypes(rng):
    x = rng.standard_normal((10, 8))
    for name, args, kwargs in FILTERS:
        out = np.empty_like(x)
        res = getattr(ndimage, name)(x, *args, output=out, **kwargs)
        assert res is out
        np.testing.assert_allclose(out, getattr(scipy.ndimage, name)(x, *args, **kwargs), rtol=1e-11, atol=1e-11)
        _check(name, x, *args, output=np.float32, **kwargs)
        _check(name, x, *args, output="float32", **kwargs)
    out16 = np.empty((10, 8), np.int16)
    got = ndimage.uniform_filter((x * 30).astype(np.int32), 3, output=out16)
    np.testing.assert_array_equal(got, scipy.ndimage.uniform_filter((x * 30).astype(np.int32), 3, output=np.int16))


def test_nan_and_inf_spread_as_in_scipy(rng):
    x = rng.standard_normal((12, 11))
    x[3, 4] = np.nan
    x[8, 2] = np.inf
    for name, args, kwargs in FILTERS:
        with np.errstate(invalid="ignore"):
            if name.startswith("uniform"):
                # scipy's running sum carries a NaN (or inf - inf) to the end of
                # the line; fastconv's windows hold it to the window: scipy's
                # correlate1d with the box is the reference
                want = _box_reference(x, *args, **kwargs, uniform1d=name.endswith("1d"))
            else:
                want = getattr(scipy.ndimage, name)(x, *args, **kwargs)
            got = getattr(ndimage, name)(x, *args, **kwargs)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10, err_msg=name)


def _box_reference(x, size, origin=0, axis=-1, uniform1d=False):
    axes = [axis] if uniform1d else range(x.ndim)
    for a in axes:
        x = scipy.ndimage.correlate1d(x, np.full(size, 1.0 / size), a, origin=origin)
    return x


def test_bad_arguments_name_themselves(rng):
    x = rng.standard_normal((6, 5))
    with pytest.raises(ValueError, match="axes"):
        ndimage.gaussian_filter(x, 1.0, axes=(0, 0))
    with pytest.raises(ValueError, match="axes"):
        ndimage.gaussian_filter(x, 1.0, axes=(2,))
    with pytest.raises(TypeError, match="axis"):
        ndimage.sobel(x, axis=1.0)
    with pytest.raises(RuntimeError, match="sigma"):
        ndimage.gaussian_filter(x, [1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="mode"):
        ndimage.uniform_filter(x, 3, mode=["reflect"])
    with pytest.raises(ValueError, match="radius"):
        ndimage.gaussian_filter1d(x, 1.0, radius=-1)
    with pytest.raises(ValueError, match="order"):
        ndimage.gaussian_filter(x, 1.0, order=-1)
    with pytest.raises(RuntimeError, match="size"):
        ndimage.uniform_filter1d(x, 0)
    with pytest.raises(ValueError, match="origin"):
        ndimage.uniform_filter1d(x, 3, origin=2)
    with pytest.raises(TypeError, match="truncate and radius"):
        ndimage.gaussian_laplace(x, 1.0, order=1)
    with pytest.raises(RuntimeError, match="shape"):
        ndimage.sobel(x, output=np.empty((5, 6)))
    with pytest.raises(ValueError, match="mode"):
        ndimage.gaussian_filter(x, 1.0, mode="bogus")


def test_dask_arrays_match_scipy(rng):
    da = pytest.importorskip("dask.array")
    x = rng.standard_normal((30, 26))
    d = da.from_array(x, chunks=(11, 9))
    for name, args, kwargs in FILTERS:
        got = getattr(ndimage, name)(d, *args, mode="wrap", **kwargs)
        assert isinstance(got, da.Array), name
        want = getattr(scipy.ndimage, name)(x, *args, mode="wrap", **kwargs)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-11, atol=1e-11, err_msg=name)


def test_correlate_axes_complex_cval_empty_inputs(rng):
    """correlate/convolve's ``axes`` (weights with a dimension per filtered
    axis), a complex ``cval`` for complex data, a real output dtype for
    complex data (promoted with scipy's warning), empty inputs in every mode."""
    x = rng.standard_normal((6, 7, 5))
    for axes, w, origin in (((0, 2), rng.standard_normal((3, 2)), (1, 0)), ((2, 0), rng.standard_normal((3, 4)), 0),
                            ((1,), rng.standard_normal(3), -1), ((0, 1, 2), rng.standard_normal((2, 3, 2)), 0)):  # fmt: skip
        for name in ("correlate", "convolve"):
            for _ in range(2):  # (the repeat: the call cache keys axes)
                got = getattr(ndimage, name)(x, w, axes=axes, origin=origin, mode="wrap")
                want = getattr(scipy.ndimage, name)(x, w, axes=axes, origin=origin, mode="wrap")
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match=r"weights\.ndim \(2\) must match len\(axes\) \(1\)"):
        ndimage.correlate(x, np.ones((3, 3)), axes=(1,))
    with pytest.raises(RuntimeError, match="sequence of modes"):
        ndimage.correlate(x, np.ones((3, 3, 3)), mode=["reflect", "wrap", "wrap"])
    z = rng.standard_normal((6, 5)) + 1j * rng.standard_normal((6, 5))
    k = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    for func in (ndimage.correlate, ndimage.convolve):
        ref = getattr(scipy.ndimage, func.__name__)
        np.testing.assert_allclose(func(z, k, mode="constant", cval=1 - 2j), ref(z, k, mode="constant", cval=1 - 2j),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip
        with pytest.warns(UserWarning, match="promoting specified output dtype to complex"):
            assert func(z, k, output=np.float32).dtype == np.complex64
        with pytest.raises(RuntimeError):
            func(z, k, output=np.zeros((6, 5)))
    with pytest.raises(ValueError, match="complex-valued cval"):
        ndimage.correlate(x, np.ones((2, 2, 2)), cval=1j)
    for shape in ((0, 5), (5, 0), (0,)):
        for mode in ("reflect", "wrap", "constant"):
            e = np.ones(shape)
            assert ndimage.correlate(e, np.ones((3,) * len(shape)), mode=mode).shape == shape
            assert ndimage.correlate1d(e, [1.0, 2.0], axis=0, mode=mode).shape == shape


def test_output_dtypes_between_repeats(rng):
    """numpy's scalar types as ``output`` are distinct keys of the call cache
    (they all have ``shape`` and ``dtype`` attributes)."""
    a = np.array([[1, 2, 3], [4, 5, 6]], np.int8)
    k = np.array([[1, 0], [0, 1]])
    for dtype in (np.int8, np.uint8, np.int16, np.float32, np.float64, np.uint8):
        for func in (ndimage.correlate, ndimage.convolve):
            got = func(a, k, output=dtype)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, getattr(scipy.ndimage, func.__name__)(a, k, output=dtype))


def test_signal_scalars_and_single_elements():
    from fastconv import signal

    for name in ("convolve", "correlate", "fftconvolve", "oaconvolve"):
        ours, theirs = getattr(signal, name), getattr(scipy.signal, name)
        for a, b in ((np.array(2.0), np.array(3.0)), (np.array(2), np.array(3)), (np.array(1 + 2j), np.array(3 - 1j)),
                     (np.array([2]), np.array([3])), (np.array([[2, 3]]), np.array([[3], [1]]))):  # fmt: skip
            got, want = ours(a, b), theirs(a, b)
            assert np.asarray(got).dtype == np.asarray(want).dtype and np.shape(got) == np.shape(want), (name, a, b)
            np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="axes cannot be empty"):
        signal.fftconvolve([1.0], [2.0], axes=[])
    with pytest.raises(ValueError, match="`fillvalue` must be scalar"):
        signal.convolve2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=[1, 2])
    np.testing.assert_allclose(signal.convolve2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=np.array([2.0])),
                               scipy.signal.convolve2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=np.array([2.0])))  # fmt: skip
    x = np.ones(50)
    x[7] = np.nan
    with pytest.warns(RuntimeWarning, match="Use of fft convolution"):
        signal.convolve(x, np.ones(5), method="fft")


def test_padding_into_the_scratch_buffer_matches_numpy(rng):
    """Large inputs are padded into a per-thread buffer, band by band
    (fastconv._execute._pad_into): equal to np.pad for every mode, widths
    per axis up to the axis length, any layout and dtype."""
    import types

    from fastconv._execute import _fits_in_place, _pad, _pad_into

    checked = 0
    for shape in ((7,), (5, 6), (3, 4, 5)):
        for mode in ("reflect", "mirror", "nearest", "wrap", "constant", "grid-wrap", "grid-mirror", "grid-constant"):
            for _ in range(12):
                lo = tuple(int(v) for v in rng.integers(0, 8, len(shape)))
                hi = tuple(int(v) for v in rng.integers(0, 8, len(shape)))
                spec = types.SimpleNamespace(shape=shape, pad_lo=lo, pad_hi=hi, mode=mode, cval=1.5)
                if not _fits_in_place(spec):
                    continue
                for x in (
                    rng.standard_normal(shape),
                    rng.integers(0, 9, shape[::-1]).T,
                    rng.standard_normal(shape)[::-1],
                ):
                    xp = np.full(tuple(s + a + b for s, a, b in zip(shape, lo, hi)), np.nan)
                    _pad_into(x, spec, xp)
                    np.testing.assert_array_equal(xp, _pad(x, spec, np.float64), err_msg=f"{shape} {mode} {lo} {hi}")
                    checked += 1
    assert checked > 300


def test_output_arrays_written_in_place_and_kept_intermediates(rng):
    """An ``output`` array of the computing dtype is written in place (no
    result array) -- also when it is the input itself; a large multi-pass
    filter's intermediates live in buffers kept per thread, and its results
    never alias them (two calls' results stay distinct and correct)."""
    img = rng.standard_normal((600, 500))  # (2.4 MB: above the kept-intermediate threshold)
    want = scipy.ndimage.gaussian_filter(img, 1.5)
    first, second = ndimage.gaussian_filter(img, 1.5), ndimage.gaussian_filter(img * 2, 1.5)
    np.testing.assert_allclose(first, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(second, 2 * want, rtol=1e-12, atol=1e-12)
    for func, args in ((ndimage.sobel, ()), (ndimage.gaussian_laplace, (1.0,)), (ndimage.uniform_filter, (4,))):
        np.testing.assert_allclose(func(img, *args), getattr(scipy.ndimage, func.__name__)(img, *args), rtol=1e-10,
                                   atol=1e-10)  # fmt: skip
    k = rng.standard_normal((3, 3))
    for _ in range(2):
        out = np.empty_like(img)
        assert ndimage.correlate(img, k, output=out) is out
        np.testing.assert_allclose(out, scipy.ndimage.correlate(img, k), rtol=1e-12, atol=1e-12)
        inplace = img.copy()
        assert ndimage.correlate(inplace, k, output=inplace) is inplace  # (output is the input)
        np.testing.assert_allclose(inplace, scipy.ndimage.correlate(img, k), rtol=1e-12, atol=1e-12)
        row = img.copy()
        assert ndimage.correlate1d(row, k[0], axis=-1, output=row) is row
        np.testing.assert_allclose(row, scipy.ndimage.correlate1d(img, k[0], axis=-1), rtol=1e-12, atol=1e-12)


# --- passes in one sweep (fastconv/kernels/passes.py) ----------------------------------------


class _Spy:
    """Counts the calls of a sweep kernel (and may play a cold one)."""

    def __init__(self, kernel, cold=False):
        self.kernel, self.cold, self.calls = kernel, cold, 0

    def __call__(self, *args):
        if self.cold:
            from fastconv import _warm

            raise _warm.NotCompiled("cold sweep")
        self.calls += 1
        return self.kernel(*args)


@pytest.fixture
def sweep_spy(monkeypatch):
    from fastconv.kernels import passes

    spies = [_Spy(passes.two_pass_kernel), _Spy(passes.two_pass_kernel_serial)]
    monkeypatch.setattr(passes, "two_pass_kernel", spies[0])
    monkeypatch.setattr(passes, "two_pass_kernel_serial", spies[1])
    return spies


SWEPT = [  # (each: passes along the last two axes in one sweep, or single passes as sweeps of their own)
    ("gaussian_filter", ((0.7, 2.5),), {}),  # vertical then horizontal, different radii
    ("sobel", (), {"axis": -1}),  # horizontal first: the ring of rows
    ("prewitt", (), {"axis": 0}),
    ("uniform_filter", ((4, 3),), {"origin": (1, -1)}),  # even size, origins: one-sided pads
    ("gaussian_filter1d", (1.5,), {"axis": 0}),
    ("uniform_filter1d", (5,), {"axis": -1, "origin": 2}),
    ("gaussian_gradient_magnitude", (1.0,), {}),
    ("gaussian_laplace", (1.0,), {}),
]
SWEPT_SHAPES = [(1, 1), (1, 9), (9, 1), (3, 4), (19, 37), (4, 3, 21)]  # (pads wider than the axis included)
ALL_MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-constant", "grid-mirror"]


@pytest.mark.parametrize("threads", [1, 2])
def test_sweeps_match_scipy_in_every_mode(rng, sweep_spy, threads):
    import fastconv

    with fastconv.set_config(num_threads=threads):
        for shape in SWEPT_SHAPES:
            for dtype in (np.float64, np.float32):
                x = rng.standard_normal(shape).astype(dtype)
                for name, args, kwargs in SWEPT:
                    if len(shape) == 3:  # (per-axis arguments: one more, first -- a sweep of its own)
                        args = tuple((a[0], *a) if isinstance(a, tuple) else a for a in args)
                        kwargs = {k: (v[0], *v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
                    for mode in ALL_MODES:
                        _check(name, x, *args, mode=mode, cval=-0.75, **kwargs)
    assert sum(s.calls for s in sweep_spy) > 0


def test_sweeps_large_images_use_the_threads_and_keep_nan_rules(rng, sweep_spy):
    import fastconv

    x = rng.standard_normal((300, 257))
    x[7, 9], x[150, 0], x[299, 256] = np.nan, np.inf, -np.inf  # (a NaN under the derivative's zero weight too)
    with fastconv.set_config(num_threads=2):
        for name, args, kwargs in SWEPT:
            if name.startswith("uniform"):  # (scipy's running sums carry a NaN to the row's end: not kept)
                continue
            with np.errstate(invalid="ignore"):  # (inf - inf in the sums: NumPy warns, in scipy too)
                want = getattr(scipy.ndimage, name)(x, *args, **kwargs)
                got = getattr(ndimage, name)(x, *args, **kwargs)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, equal_nan=True, err_msg=name)
    assert sweep_spy[0].calls > 0  # (the parallel build ran)


def test_sweeps_with_output_arrays_views_and_read_only_data(rng, sweep_spy):
    base = rng.standard_normal((40, 60))
    want = scipy.ndimage.gaussian_filter(base, 1.5)
    out = np.full((40, 60), np.nan)
    assert ndimage.gaussian_filter(base, 1.5, output=out) is out  # (written by the kernel itself)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    fortran = np.asfortranarray(np.zeros((40, 60)))
    assert ndimage.gaussian_filter(base, 1.5, output=fortran) is fortran
    np.testing.assert_allclose(fortran, want, rtol=1e-12, atol=1e-12)
    same = base.copy()
    assert ndimage.gaussian_filter(same, 1.5, output=same) is same  # (the output is the input)
    np.testing.assert_allclose(same, want, rtol=1e-12, atol=1e-12)
    frozen = base.copy()
    frozen.flags.writeable = False  # (another signature: the passes one by one)
    np.testing.assert_allclose(ndimage.gaussian_filter(frozen, 1.5), want, rtol=1e-12, atol=1e-12)
    strided = np.zeros((80, 60))[::2]
    strided[...] = base
    np.testing.assert_allclose(ndimage.gaussian_filter(strided, 1.5), want, rtol=1e-12, atol=1e-12)
    for _ in range(2):  # (a repeated call: the call cache's prepared steps)
        np.testing.assert_allclose(ndimage.gaussian_filter(base[::-1], 1.5), want[::-1], rtol=1e-12, atol=1e-12)
    assert sum(s.calls for s in sweep_spy) >= 5


def test_a_cold_sweep_runs_the_passes_and_asks_for_a_build(rng, monkeypatch):
    """With background compilation on and the sweep's kernel not compiled,
    the passes run one by one (right answers) and a build of the sweep is
    queued; once it is compiled, the kernel runs."""
    import fastconv
    from fastconv import _warm, _warmup
    from fastconv.kernels import passes

    spy = _Spy(passes.two_pass_kernel_serial, cold=True)
    monkeypatch.setattr(passes, "two_pass_kernel_serial", spy)
    built = []
    monkeypatch.setattr(_warm, "build", lambda jobs, timeout=None: (built.extend(jobs), (True, ""))[1])
    monkeypatch.setattr(_warm, "_ready", set())
    monkeypatch.setattr(_warm, "_builder", _warm._Builder())
    x = rng.standard_normal((17, 23)).astype(np.float32)
    want = scipy.ndimage.sobel(x, axis=0)
    with fastconv.set_config(background_compile=True, num_threads=1):
        np.testing.assert_allclose(ndimage.sobel(x, axis=0), want, rtol=2e-5, atol=2e-5)
        assert _warm.wait(60)
        assert built and spy.calls == 0
        job = built[-1]
        assert job.spec.op == "ndimage" and job.spec.dtype == np.float32
        spy.cold = False  # (what the build did to the disk cache)
        _warmup.run_job(job)  # (the build process's work: compiles the sweep for float32)
        np.testing.assert_allclose(ndimage.sobel(x, axis=0), want, rtol=2e-5, atol=2e-5)
        assert spy.calls >= 2  # (the build's and the call's)


def test_explain_says_when_a_filter_runs_as_a_sweep():
    import fastconv

    x = np.ones((64, 48), np.float32)
    assert "last two axes in one sweep" in repr(fastconv.explain(ndimage.gaussian_filter, x, 2.0))
    assert "axis 0 in one sweep" in repr(fastconv.explain(ndimage.uniform_filter1d, x, 3, axis=0))
    assert "sweep" not in repr(fastconv.explain(ndimage.gaussian_filter, np.ones(64), 2.0))  # (1-D: correlate1d)
    assert "sweep" not in repr(fastconv.explain(ndimage.gaussian_filter, x.astype(np.int32), 2.0))


def test_boundary_index_is_numpys_pad_of_an_index_array():
    """The sweeps' (and compiled code's) boundary rule as formulas, against
    np.pad of an index array in every mode, pads wider than the axis too."""
    from fastconv._spec import NDIMAGE_PAD
    from fastconv.kernels.passes import MODE_RULE, boundary_index

    for mode, rule in MODE_RULE.items():
        for n in (1, 2, 3, 5):
            for lo, hi in ((0, 0), (1, 2), (7, 3), (12, 12)):
                index = np.arange(n)
                if NDIMAGE_PAD[mode] == "constant":
                    want = np.pad(index, (lo, hi), mode="constant", constant_values=-1)
                else:
                    want = np.pad(index, (lo, hi), mode=NDIMAGE_PAD[mode])
                np.testing.assert_array_equal(boundary_index(n, lo, hi, rule), want, err_msg=f"{mode} {n} {lo} {hi}")
