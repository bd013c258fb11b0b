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


def test_nn_ops_batch_chunks(rng):
    x = rng.standard_normal((7, 3, 12, 11)).astype(np.float32)
    dx = da.from_array(x, chunks=(3, 2, 5, 4))
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    cases = [
        (fastconv.conv2d, (w,), dict(padding=1, stride=2)),
        (fastconv.conv_transpose2d, (rng.standard_normal((3, 2, 4, 4)).astype(np.float32),), dict(stride=2, padding=1)),
        (fastconv.max_pool2d, (3,), dict(stride=2, padding=1, ceil_mode=True)),
        (fastconv.avg_pool2d, (2,), dict(count_include_pad=False)),
        (fastconv.adaptive_avg_pool2d, ((3, None),), {}),
    ]
    for f, args, kw in cases:
        y = f(dx, *args, **kw)
        assert isinstance(y, da.Array) and y.chunks[0] == dx.chunks[0]
        np.testing.assert_allclose(y.compute(), f(x, *args, **kw), rtol=1e-6, atol=1e-6)
    v, i = fastconv.adaptive_max_pool2d(dx, 4, return_indices=True)
    v2, i2 = fastconv.adaptive_max_pool2d(x, 4, return_indices=True)
    np.testing.assert_array_equal(v.compute(), v2)
    np.testing.assert_array_equal(i.compute(), i2)
    np.testing.assert_allclose(fastconv.conv1d(da.from_array(x[0], chunks=2)[:, 0], w[:, :, 0]).compute(),
                               fastconv.conv1d(x[0][:, 0], w[:, :, 0]), rtol=1e-6)  # fmt: skip


def test_lazy_until_computed():
    x = _poison((30, 30))
    fn.correlate(x, np.ones((3, 3)), mode="mirror")
    fs.convolve(_poison((100,)), np.ones(5), mode="same")
    fastconv.conv2d(_poison((2, 1, 8, 8), np.float32), np.ones((1, 1, 3, 3), np.float32))
    fastconv.max_pool2d(_poison((2, 1, 8, 8), np.float32), 2)
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
