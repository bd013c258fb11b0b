"""dask arrays in, lazy dask arrays out, equal to the in-memory results."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv import ndimage as fn
from fastconv import signal as fs

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from scipy import ndimage as sn  # noqa: E402
from scipy import signal as ss  # noqa: E402

MODES = ("reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror", "grid-wrap")
# odd chunkings: smaller than the halo, uneven last chunks, one chunk
CHUNKS = [(7, 3), (2, 2), (37, 41), (10, 13)]


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads"):
        yield


def _poison(shape, dtype=np.float64):
    """A dask array whose computation raises: building graphs on it must not compute."""

    def boom():
        raise AssertionError("computed too early")

    return da.from_delayed(dask.delayed(boom)(), shape=shape, dtype=dtype)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_ndimage_equals_in_memory(chunks, rng):
    x = rng.standard_normal((37, 41))
    w = rng.standard_normal((5, 4))
    dx = da.from_array(x, chunks=chunks)
    # chunks smaller than the halo make many tasks: two modes suffice there
    for mode in MODES if min(chunks) > 2 else ("mirror", "constant"):
        y = fn.correlate(dx, w, mode=mode, cval=1.5, origin=(1, -1))
        assert isinstance(y, da.Array)
        np.testing.assert_allclose(y.compute(), sn.correlate(x, w, mode=mode, cval=1.5, origin=(1, -1)), atol=1e-12)
        z = fn.convolve(dx, w, mode=mode, origin=(-2, 1))
        np.testing.assert_allclose(z.compute(), sn.convolve(x, w, mode=mode, origin=(-2, 1)), atol=1e-12)
    for axis in (0, 1):
        y = fn.correlate1d(dx, [1.0, -2.0, 3.0], axis=axis, mode="mirror", origin=1)
        np.testing.assert_allclose(y.compute(), sn.correlate1d(x, [1.0, -2.0, 3.0], axis=axis, mode="mirror", origin=1))
        y = fn.convolve1d(dx, [0.5, 2.0], axis=axis, mode="wrap")
        np.testing.assert_allclose(y.compute(), sn.convolve1d(x, [0.5, 2.0], axis=axis, mode="wrap"))
    v = rng.standard_normal((9, 10, 11)).astype(np.float32)
    dv = da.from_array(v, chunks=(4, 3, 5))
    np.testing.assert_allclose(
        fn.correlate(dv, np.ones((3, 3, 3))).compute(), sn.correlate(v, np.ones((3, 3, 3))), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("chunks", [37, 5, 200, 11])
def test_signal_modes_equal_in_memory(chunks, rng):
    s = rng.standard_normal(200)
    k = rng.standard_normal(13)
    ds = da.from_array(s, chunks=chunks)
    for mode in ("full", "same", "valid"):
        for f, g in ((fs.convolve, ss.convolve), (fs.correlate, ss.correlate), (fs.fftconvolve, ss.fftconvolve),
                     (fs.oaconvolve, ss.oaconvolve)):  # fmt: skip
            y = f(ds, k, mode)
            assert isinstance(y, da.Array) and y.shape == g(s, k, mode).shape
            np.testing.assert_allclose(y.compute(), g(s, k, mode), atol=1e-10)
    img = rng.standard_normal((23, 19))
    dimg = da.from_array(img, chunks=(5, 7))
    w = rng.standard_normal((4, 3))
    for boundary in ("fill", "wrap", "symm"):
        for mode in ("full", "same", "valid"):
            np.testing.assert_allclose(
                fs.convolve2d(dimg, w, mode, boundary, 0.5).compute(), ss.convolve2d(img, w, mode, boundary, 0.5)
            )
            np.testing.assert_allclose(
                fs.correlate2d(dimg, w, mode, boundary, 0.5).compute(), ss.correlate2d(img, w, mode, boundary, 0.5)
            )


def _check_nn(f, x, chunks, *args, **kw):
    """f on a dask array chunked as ``chunks`` equals f on the NumPy array."""
    y = f(da.from_array(x, chunks=chunks), *args, **kw)
    ref = f(x, *args, **kw)
    for got, want in zip(y, ref) if isinstance(ref, tuple) else [(y, ref)]:
        assert isinstance(got, da.Array) and got.shape == want.shape and got.dtype == want.dtype
        if want.dtype.kind == "i":
            np.testing.assert_array_equal(got.compute(), want)
        else:  # each tile runs its own dispatcher (maybe Winograd): rounding differs at float32 level
            scale = max(1.0, float(np.abs(want).max(initial=0.0)))
            np.testing.assert_allclose(got.compute(), want, rtol=2e-5, atol=2e-5 * scale)
    return y


# batch chunks, spatial chunks smaller than the halo, uneven last chunks, one chunk
NN_CHUNKS = [(2, 4, 5, 4), (3, 2, 2, 3), (1, 4, 23, 19), (2, 1, 7, 11)]


@pytest.mark.parametrize("chunks", NN_CHUNKS)
def test_nn_conv_spatial_tiles(chunks, rng):
    x = rng.standard_normal((3, 4, 23, 19)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 4)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y = _check_nn(fastconv.conv2d, x, chunks, w, b, padding=(2, 1), stride=(2, 3), dilation=(1, 2))
    assert y.chunks[0] == da.from_array(x, chunks=chunks).chunks[0]  # the batch chunking is kept
    _check_nn(fastconv.conv2d, x, chunks, w, padding="same")
    for mode in ("reflect", "replicate", "circular"):
        _check_nn(fastconv.conv2d, x, chunks, w, padding=2, padding_mode=mode, stride=2)
    _check_nn(fastconv.conv2d, x, chunks, rng.standard_normal((4, 2, 3, 3)).astype(np.float32), groups=2)
    wt = rng.standard_normal((4, 3, 4, 3)).astype(np.float32)
    _check_nn(fastconv.conv_transpose2d, x, chunks, wt, stride=(2, 3), padding=(1, 2), output_padding=(1, 2),
              dilation=(2, 1))  # fmt: skip
    _check_nn(fastconv.conv_transpose2d, x, chunks, wt, b[:3], stride=2, output_padding=1)
    _check_nn(fastconv.conv_transpose2d, x, chunks, wt[:, :2], stride=3, groups=2, padding=4)


@pytest.mark.parametrize("chunks", NN_CHUNKS)
def test_nn_pool_spatial_tiles(chunks, rng):
    x = rng.standard_normal((3, 4, 23, 19))
    x[0, 0, 3:8, 2:9] = -np.inf  # windows of -inf: torch's index of the first tap inside
    x[1, 1, 5, 5] = x[2, 3, 20, 0] = np.nan
    x[1, 2, 10:12, :] = np.inf
    for kw in (dict(stride=2, padding=1, ceil_mode=True), dict(stride=1, dilation=(3, 4), padding=1),
               dict(dilation=5, padding=1, ceil_mode=True, stride=3)):  # fmt: skip
        _check_nn(fastconv.max_pool2d, x, chunks, 3 if kw.get("dilation") != 5 else 2, return_indices=True, **kw)
    _check_nn(fastconv.avg_pool2d, x, chunks, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    _check_nn(fastconv.avg_pool2d, x, chunks, (4, 3), stride=(3, 2), padding=(2, 1), ceil_mode=True)
    _check_nn(fastconv.avg_pool2d, x.astype(np.float32), chunks, 2, divisor_override=3)
    _check_nn(fastconv.adaptive_avg_pool2d, x, chunks, (5, None))
    _check_nn(fastconv.adaptive_max_pool2d, x, chunks, (7, 30), return_indices=True)


def test_nn_tiles_1d_3d_unbatched_and_edge_windows(rng):
    s = rng.standard_normal((3, 50)).astype(np.float32)  # unbatched conv1d
    y = _check_nn(fastconv.conv1d, s, (3, 7), rng.standard_normal((2, 3, 5)).astype(np.float32), stride=3, padding=2)
    assert y.numblocks[1] > 3
    _check_nn(fastconv.max_pool1d, s, (1, 6), 4, stride=3, padding=2, ceil_mode=True, return_indices=True)
    _check_nn(fastconv.conv_transpose1d, s, 4, rng.standard_normal((3, 2, 3)).astype(np.float32), stride=2)
    v = rng.standard_normal((2, 2, 9, 10, 11)).astype(np.float32)
    chunks = (1, 1, 4, 3, 5)
    _check_nn(fastconv.conv3d, v, chunks, rng.standard_normal((3, 2, 3, 2, 3)).astype(np.float32), padding=1,
              stride=(1, 2, 2))  # fmt: skip
    _check_nn(fastconv.conv_transpose3d, v, chunks, rng.standard_normal((2, 3, 2, 3, 2)).astype(np.float32),
              stride=2, padding=1)  # fmt: skip
    _check_nn(fastconv.max_pool3d, v, chunks, 2, ceil_mode=True, return_indices=True)
    _check_nn(fastconv.avg_pool3d, v, chunks, 3, stride=2, padding=1)
    _check_nn(fastconv.adaptive_max_pool3d, v, chunks, (2, 3, 4))
    # a dilated window with no tap inside the input: -inf, index past the edge, as torch
    xs = rng.standard_normal((1, 1, 2, 5))
    v, i = _check_nn(fastconv.max_pool2d, xs, 1, 2, stride=1, padding=1, dilation=3, return_indices=True)
    assert np.isneginf(v.compute()).all() and (i.compute() >= xs[0, 0].size).all()


def test_tiles_follow_the_stride():
    from fastconv._dask import _split_axis

    s, span, n = 3, 7, 100
    starts = np.arange((n - span) // s + 1) * s
    tiles, outs, halo = _split_axis([0, 10, 20, 50, 51, 52, 100], starts, starts, starts + span)
    assert all(t % s == 0 for t in tiles[:-1]) and tiles[-1] == n
    assert halo == (0, span - s) and min(np.diff(tiles)) >= span - s
    assert outs[0] == 0 and outs[-1] == len(starts)
    for j in range(len(tiles) - 1):  # each tile computes the outputs whose window starts in it
        assert all(tiles[j] <= starts[o] < tiles[j + 1] for o in range(outs[j], outs[j + 1]))


def test_lazy_until_computed():
    x = _poison((30, 30))
    fn.correlate(x, np.ones((3, 3)), mode="mirror")
    fs.convolve(_poison((100,)), np.ones(5), mode="same")
    fastconv.conv2d(_poison((2, 1, 8, 8), np.float32), np.ones((1, 1, 3, 3), np.float32))
    fastconv.max_pool2d(_poison((2, 1, 8, 8), np.float32), 2, return_indices=True)
    fastconv.conv_transpose2d(_poison((2, 1, 8, 8), np.float32), np.ones((1, 2, 3, 3), np.float32), stride=2)
    fastconv.adaptive_avg_pool3d(_poison((1, 4, 5, 6)), 2)
    with pytest.raises(AssertionError, match="too early"):
        fn.correlate(x, np.ones((3, 3))).compute()


def test_bad_dask_calls(rng):
    dx = da.from_array(rng.standard_normal((10, 10)), chunks=5)
    with pytest.raises(TypeError, match="output"):
        fn.correlate(dx, np.ones((3, 3)), output=np.empty((10, 10)))
    with pytest.raises(ValueError, match="mode"):
        fn.correlate(dx, np.ones((3, 3)), mode="bogus")
    with pytest.raises(ValueError, match="origin"):
        fn.correlate(dx, np.ones((3, 3)), origin=2)
    with pytest.raises(ValueError, match="valid"):
        fs.convolve(da.from_array(np.ones(3), chunks=2), np.ones(5), "valid")
    with pytest.raises(TypeError, match="out"):
        fastconv.conv2d(da.ones((1, 1, 4, 4), chunks=1), np.ones((1, 1, 3, 3)), out=np.empty((1, 1, 2, 2)))


def test_distributed_local_cluster(rng):
    """Worker processes started here compute the graph; results equal the NumPy path."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            x = rng.standard_normal((64, 48)).astype(np.float32)
            dx = da.from_array(x, chunks=(17, 20))
            y = client.compute(fn.correlate(dx, np.ones((5, 5)) / 25, mode="mirror")).result()
            np.testing.assert_allclose(y, sn.correlate(x, np.ones((5, 5)) / 25, mode="mirror"), rtol=1e-5, atol=1e-6)
            b = rng.standard_normal((6, 2, 9, 9)).astype(np.float32)
            db = da.from_array(b, chunks=(2, 2, 9, 9))
            w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
            got = client.compute(fastconv.conv2d(db, w, padding=1)).result()
            np.testing.assert_allclose(got, fastconv.conv2d(b, w, padding=1), rtol=1e-5, atol=1e-5)
            ds = da.from_array(b, chunks=(3, 2, 4, 5))  # spatial tiles with halos
            v, i = client.compute(list(fastconv.max_pool2d(ds, 3, 2, 1, ceil_mode=True, return_indices=True)))
            v2, i2 = fastconv.max_pool2d(b, 3, 2, 1, ceil_mode=True, return_indices=True)
            np.testing.assert_array_equal(v.result(), v2)
            np.testing.assert_array_equal(i.result(), i2)
            wt = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
            got = client.compute(fastconv.conv_transpose2d(ds, wt, stride=2, padding=1)).result()
            np.testing.assert_allclose(got, fastconv.conv_transpose2d(b, wt, stride=2, padding=1), rtol=1e-5, atol=1e-5)


def _tiles_property():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(
        n=st.integers(5, 40),
        chunk=st.integers(1, 12),
        k=st.integers(1, 5),
        s=st.integers(1, 4),
        d=st.integers(1, 3),
        p=st.integers(0, 3),
        ceil=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def check(n, chunk, k, s, d, p, ceil, seed):
        """Any chunking and window: the tiled dask result equals the NumPy one."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((2, 2, n))
        dx = da.from_array(x, chunks=(1, 2, chunk))
        w = rng.standard_normal((3, 2, k))
        if (k - 1) * d + 1 <= n + 2 * p:
            np.testing.assert_allclose(fastconv.conv1d(dx, w, stride=s, padding=p, dilation=d).compute(),
                                       fastconv.conv1d(x, w, stride=s, padding=p, dilation=d), rtol=1e-10, atol=1e-10)  # fmt: skip
        if (k - 1) * d + 1 <= n + 2 * (min(p, k // 2)):
            kw = dict(stride=s, padding=min(p, k // 2), dilation=d, ceil_mode=ceil, return_indices=True)
            v, i = fastconv.max_pool1d(dx, k, **kw)
            v2, i2 = fastconv.max_pool1d(x, k, **kw)
            np.testing.assert_array_equal(v.compute(), v2)
            np.testing.assert_array_equal(i.compute(), i2)
        wt = rng.standard_normal((2, 2, k))
        bt = rng.standard_normal(2) if seed % 2 else None
        op = s - 1 if s > 1 else 0
        if (n - 1) * s - 2 * p + (k - 1) * d + op + 1 >= 1:
            np.testing.assert_allclose(
                fastconv.conv_transpose1d(dx, wt, bt, stride=s, padding=p, output_padding=op, dilation=d).compute(),
                fastconv.conv_transpose1d(x, wt, bt, stride=s, padding=p, output_padding=op, dilation=d),
                rtol=1e-10, atol=1e-10,
            )  # fmt: skip

    return check


def test_tiled_nn_ops_property():
    _tiles_property()()
