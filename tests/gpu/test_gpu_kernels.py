"""Every GPU kernel against the CPU path (itself tested against the NumPy
references), on a real GPU or on numba's CUDA simulator.

Collected in the main test run, where it skips unless a GPU is usable; the
simulator run is ``tests/test_cuda.py``, which starts pytest on this file in a
subprocess with ``NUMBA_ENABLE_CUDASIM=1`` (it must be set before numba is
imported).  Under the simulator the launch shapes are shrunk so that small
arrays still span many blocks and partial tiles.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastconv
import fastconv.cuda
from fastconv import ndimage, signal

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

if not fastconv.cuda.is_available():  # pragma: no cover - depends on the machine
    pytest.skip(f"no GPU: {fastconv.cuda.unavailable_reason()}", allow_module_level=True)

from numba import cuda  # noqa: E402

from fastconv.cuda import _kernels  # noqa: E402


@pytest.fixture(autouse=True)
def _tiny_launches(monkeypatch):
    if SIM:  # many blocks, partial tiles and several GEMM k-steps on tiny arrays
        monkeypatch.setattr(_kernels, "THREADS", 16)
        monkeypatch.setattr(_kernels, "TILE", (2, 4))
        monkeypatch.setattr(_kernels, "COB", 2)
        monkeypatch.setattr(_kernels, "GEMM", (4, 8, 4, 2, 2))
        monkeypatch.setattr(_kernels, "SHARED_ELEMS", 64)


def _host(y):
    return y.copy_to_host() if hasattr(y, "copy_to_host") else np.asarray(y)


def _close(got, want, dtype=np.float32):
    tol = 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
    np.testing.assert_allclose(_host(got), want, rtol=tol, atol=tol)


def test_conv2d_methods_and_parameters(rng):
    x = rng.standard_normal((2, 4, 7, 9)).astype(np.float32)
    dx = cuda.to_device(x)
    cases = [
        (rng.standard_normal((6, 2, 3, 2)), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
        (rng.standard_normal((3, 4, 1, 1)), dict(stride=2)),
        (rng.standard_normal((5, 4, 3, 3)), dict(padding="same")),
        (rng.standard_normal((4, 4, 3, 3)), dict(padding=2, padding_mode="reflect")),
        (rng.standard_normal((4, 4, 2, 3)), dict(padding=(1, 2), padding_mode="circular", stride=(1, 2))),
        (rng.standard_normal((8, 1, 3, 3)), dict(groups=4, padding=1, dilation=2)),  # depthwise, multiplier 2
    ]
    for w, kw in cases:
        w = w.astype(np.float32)
        b = rng.standard_normal(w.shape[0]).astype(np.float32)
        want = fastconv.conv2d(x, w, b, **kw)
        methods = [m for m in fastconv.available_methods(fastconv.conv2d, dx, w, b, **kw) if m != "auto"]
        assert "cuda_gemm" in methods and all(m.startswith("cuda_") for m in methods)
        for m in methods:
            got = fastconv.conv2d(dx, w, b, method=m, **kw)
            assert type(got) is type(dx) and got.shape == want.shape
            _close(got, want)


def test_conv1d_conv3d_float64_unbatched_and_host_inputs(rng):
    x = rng.standard_normal((3, 11))
    w = rng.standard_normal((2, 3, 4))
    want = fastconv.conv1d(x, w, stride=2, padding=3)
    for m in ("cuda_direct", "cuda_gemm"):
        got = fastconv.conv1d(x, w, stride=2, padding=3, device="cuda", method=m)  # NumPy in, NumPy out
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        _close(got, want, np.float64)
    v = rng.standard_normal((1, 2, 5, 4, 6)).astype(np.float32)
    w3 = rng.standard_normal((3, 2, 2, 3, 2)).astype(np.float32)
    want = fastconv.conv3d(v, w3, padding=(1, 0, 1), stride=(2, 1, 1), dilation=(1, 1, 2))
    for m in ("cuda_direct", "cuda_gemm"):
        _close(fastconv.conv3d(cuda.to_device(v), w3, padding=(1, 0, 1), stride=(2, 1, 1), dilation=(1, 1, 2),
                               method=m), want)  # fmt: skip
    out = np.empty(want.shape, np.float32)  # out= with device="cuda"
    assert (
        fastconv.conv3d(v, w3, padding=(1, 0, 1), stride=(2, 1, 1), dilation=(1, 1, 2), device="cuda", out=out) is out
    )
    _close(out, want)


def test_conv_inputs_converted_on_the_device(rng):
    x = rng.standard_normal((1, 2, 6, 5))
    w = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    want = fastconv.conv2d(x.astype(np.float32), w)
    # float64 input with float32 weight computes in float64, as the CPU path
    _close(fastconv.conv2d(cuda.to_device(x), w), fastconv.conv2d(x, w), np.float64)
    half = cuda.to_device(x.astype(np.float16))
    np.testing.assert_allclose(_host(fastconv.conv2d(half, w)), want, rtol=2e-2, atol=2e-2)
    wide = np.zeros((1, 2, 6, 10), np.float32)
    wide[..., ::2] = x
    view = cuda.to_device(wide)[..., ::2]  # a strided (non-contiguous) device view
    _close(fastconv.conv2d(view, cuda.to_device(w)), want)


def test_conv_transpose(rng):
    x = rng.standard_normal((2, 4, 5, 4)).astype(np.float32)
    dx = cuda.to_device(x)
    for w, kw in [
        (rng.standard_normal((4, 3, 3, 3)), dict(stride=2, padding=1, output_padding=1)),
        (rng.standard_normal((4, 1, 4, 2)), dict(stride=(2, 3), padding=(1, 0), dilation=(1, 2), groups=2)),
        (rng.standard_normal((4, 2, 2, 2)), dict(stride=2)),
    ]:
        w = w.astype(np.float32)
        b = rng.standard_normal(w.shape[1] * kw.get("groups", 1)).astype(np.float32)
        _close(fastconv.conv_transpose2d(dx, w, b, **kw), fastconv.conv_transpose2d(x, w, b, **kw))
    s = rng.standard_normal((2, 9))
    ws = rng.standard_normal((2, 3, 3))
    _close(fastconv.conv_transpose1d(s, ws, stride=3, padding=1, device="cuda"),
           fastconv.conv_transpose1d(s, ws, stride=3, padding=1), np.float64)  # fmt: skip


def test_pooling(rng):
    x = rng.standard_normal((2, 3, 9, 8))
    x[0, 0, 2:5, 1:4] = -np.inf
    x[1, 1, 4, 4] = np.nan
    x[1, 2, 0, :] = np.inf
    dx = cuda.to_device(x)
    for kw in (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), dict(kernel_size=(2, 3), dilation=(2, 1)),
               dict(kernel_size=2, stride=1, padding=1, dilation=3)):  # fmt: skip
        v, i = fastconv.max_pool2d(dx, return_indices=True, **kw)
        v2, i2 = fastconv.max_pool2d(x, return_indices=True, **kw)
        np.testing.assert_array_equal(_host(v), v2)
        np.testing.assert_array_equal(_host(i), i2)
    for kw in (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
               dict(kernel_size=(3, 2), stride=(2, 1), padding=1), dict(kernel_size=2, divisor_override=3)):  # fmt: skip
        _close(fastconv.avg_pool2d(dx, **kw), fastconv.avg_pool2d(x, **kw), np.float64)
    _close(fastconv.adaptive_avg_pool2d(dx, (4, None)), fastconv.adaptive_avg_pool2d(x, (4, None)), np.float64)
    v, i = fastconv.adaptive_max_pool2d(dx, (3, 5), return_indices=True)
    v2, i2 = fastconv.adaptive_max_pool2d(x, (3, 5), return_indices=True)
    np.testing.assert_array_equal(_host(v), v2)
    np.testing.assert_array_equal(_host(i), i2)
    s = rng.standard_normal((2, 10)).astype(np.float32)
    np.testing.assert_array_equal(fastconv.max_pool1d(s, 3, 2, 1, device="cuda"), fastconv.max_pool1d(s, 3, 2, 1))
    v3 = rng.standard_normal((1, 1, 4, 5, 6)).astype(np.float32)
    _close(fastconv.avg_pool3d(v3, 2, 1, 1, device="cuda"), fastconv.avg_pool3d(v3, 2, 1, 1))
    _close(fastconv.adaptive_avg_pool3d(v3, 1, device="cuda"), fastconv.adaptive_avg_pool3d(v3, 1))


def test_ndimage_modes(rng):
    img = rng.standard_normal((6, 7))
    img[2, 3] = np.nan  # under a zero weight: stays out, as scipy
    dimg = cuda.to_device(img)
    w = rng.standard_normal((3, 4))
    w[0, 0] = 0.0
    for mode in ("reflect", "constant", "nearest", "mirror", "wrap"):
        _close(ndimage.correlate(dimg, w, mode=mode, cval=1.5, origin=(1, -1)),
               ndimage.correlate(img, w, mode=mode, cval=1.5, origin=(1, -1)), np.float64)  # fmt: skip
    img = np.nan_to_num(img).astype(np.float32)
    _close(ndimage.convolve(cuda.to_device(img), w.astype(np.float32), mode="mirror"),
           ndimage.convolve(img, w.astype(np.float32), mode="mirror"))  # fmt: skip
    _close(ndimage.correlate1d(cuda.to_device(img), [1.0, -2.0, 0.5], axis=0, mode="wrap"),
           ndimage.correlate1d(img, [1.0, -2.0, 0.5], axis=0, mode="wrap"))  # fmt: skip
    vol = rng.standard_normal((4, 5, 3))
    _close(ndimage.convolve(cuda.to_device(vol), np.ones((2, 3, 2)), mode="nearest"),
           ndimage.convolve(vol, np.ones((2, 3, 2)), mode="nearest"), np.float64)  # fmt: skip


def test_ndimage_filters(rng):
    """The convolution-based filters on device arrays (their passes run on
    the GPU) against scipy.ndimage on the host."""
    import scipy.ndimage

    img = rng.standard_normal((9, 8)).astype(np.float32)
    for name, args, kwargs in (("gaussian_filter", (1.0,), {}), ("gaussian_filter1d", (1.0,), {"axis": 0}),
                               ("uniform_filter", (3,), {}), ("uniform_filter1d", (3,), {"axis": 0}),
                               ("sobel", (), {}), ("prewitt", (), {"axis": 0}), ("laplace", (), {}),
                               ("gaussian_laplace", (1.0,), {}), ("gaussian_gradient_magnitude", (1.0,), {})):  # fmt: skip
        got = getattr(ndimage, name)(cuda.to_device(img), *args, mode="wrap", **kwargs)
        assert hasattr(got, "copy_to_host"), name
        _close(got, getattr(scipy.ndimage, name)(img, *args, mode="wrap", **kwargs))


def test_signal(rng):
    s = rng.standard_normal(40)
    k = rng.standard_normal(7)
    ds = cuda.to_device(s)
    for mode in ("full", "same", "valid"):
        for f in (signal.convolve, signal.correlate, signal.fftconvolve, signal.oaconvolve):
            got = f(ds, k, mode)
            _close(got, f(s, k, mode), np.float64)
    img = rng.standard_normal((7, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    for boundary in ("fill", "wrap", "symm"):
        for mode in ("full", "same", "valid"):
            _close(signal.convolve2d(cuda.to_device(img), w, mode, boundary, 0.5),
                   signal.convolve2d(img, w, mode, boundary, 0.5))  # fmt: skip
            _close(signal.correlate2d(cuda.to_device(img), w, mode, boundary, 0.5),
                   signal.correlate2d(img, w, mode, boundary, 0.5))  # fmt: skip


def test_gpu_errors(rng):
    dx = cuda.to_device(rng.standard_normal((1, 1, 5, 5)).astype(np.float32))
    w = np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="device='cpu'"):
        fastconv.conv2d(dx, w, device="cpu")
    with pytest.raises(ValueError, match="weight"):
        fastconv.conv2d(dx, np.ones((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="method"):
        fastconv.conv2d(dx, w, method="im2col")  # a CPU method, not for GPU arrays
    with pytest.raises(TypeError, match="complex"):
        ndimage.correlate(cuda.to_device(np.ones((4, 4), np.complex64)), np.ones((2, 2)))
    with pytest.raises(TypeError, match="output"):
        ndimage.correlate(cuda.to_device(np.ones((4, 4))), np.ones((2, 2)), output=np.empty((4, 4)))
    with pytest.raises(ValueError, match="out must have shape"):
        fastconv.conv2d(dx, w, out=np.empty((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="out must have dtype"):
        fastconv.conv2d(dx, w, out=cuda.device_array((1, 1, 3, 3), np.float64))
    with pytest.raises(TypeError, match="out must be"):
        fastconv.conv2d(dx, w, out=[0.0])
    # the GPU filters are direct: another method is refused, not dropped
    img = cuda.to_device(np.ones((6, 6), np.float32))
    for call in (lambda: signal.convolve(img, np.ones((2, 2), np.float32), method="fft"),
                 lambda: ndimage.correlate(img, np.ones((2, 2), np.float32), method="separable")):  # fmt: skip
        with pytest.raises(ValueError, match="not available on the GPU"):
            call()
    out = cuda.device_array((1, 1, 3, 3), np.float32)  # a GPU out= is filled on the GPU
    assert fastconv.conv2d(dx, w, out=out) is out
    np.testing.assert_allclose(_host(out), fastconv.conv2d(_host(dx), w), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(SIM, reason="CuPy/torch arrays need a real GPU")
def _cupy():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception:  # (not installed, or no device behind it)
        return None
    return cupy


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


@pytest.mark.skipif(SIM, reason="CuPy and torch CUDA arrays need a real GPU")
@pytest.mark.parametrize("library", ["cupy", "torch"])
def test_cupy_and_torch_arrays_stay_on_the_gpu(library, rng):  # pragma: no cover - real GPU only
    lib = _cupy() if library == "cupy" else _torch_cuda()
    if lib is None:
        pytest.skip(f"{library} with a usable GPU is not installed here")
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    want = fastconv.conv2d(x, w, padding=1)
    if library == "cupy":
        got = fastconv.conv2d(lib.asarray(x), w, padding=1)
        assert isinstance(got, lib.ndarray)
        _close(lib.asnumpy(got), want)
    else:
        got = fastconv.conv2d(lib.from_numpy(x).cuda(), w, padding=1)
        assert isinstance(got, lib.Tensor) and got.is_cuda
        _close(got.cpu().numpy(), want)


def test_launches_stay_within_the_hardware_grid_limits(rng, monkeypatch):
    # the limits shrunk to a few blocks per dimension: a large batch, many
    # groups and long outputs are covered by the kernels' block and
    # grid-stride loops, and a launch over a limit is refused (the simulator
    # itself checks nothing)
    from fastconv.cuda import _run

    monkeypatch.setattr(_kernels, "MAX_GRID", (3, 2, 2))
    x = rng.standard_normal((5, 6, 7, 9)).astype(np.float32)
    for method, w, kw in [
        ("cuda_direct", rng.standard_normal((6, 2, 3, 3)), dict(padding=1, groups=3)),
        ("cuda_gemm", rng.standard_normal((6, 2, 3, 3)), dict(padding=1, groups=3)),
        ("cuda_depthwise", rng.standard_normal((6, 1, 3, 3)), dict(padding=1, groups=6)),
    ]:
        w = w.astype(np.float32)
        _close(fastconv.conv2d(x, w, device="cuda", method=method, **kw), fastconv.conv2d(x, w, **kw))
    wt = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    _close(fastconv.conv_transpose2d(x, wt, stride=2, groups=3, device="cuda"),
           fastconv.conv_transpose2d(x, wt, stride=2, groups=3))  # fmt: skip
    _close(fastconv.max_pool2d(x, 2, device="cuda"), fastconv.max_pool2d(x, 2))
    _close(fastconv.avg_pool2d(x, 3, 1, 1, device="cuda"), fastconv.avg_pool2d(x, 3, 1, 1))
    img = rng.standard_normal((20, 30)).astype(np.float32)
    k = rng.standard_normal((3, 3)).astype(np.float32)
    _close(ndimage.correlate(cuda.to_device(img), k), ndimage.correlate(img, k))
    with pytest.raises(ValueError, match="exceeds the GPU's limits"):
        _run._start(_kernels.pad_kernel("float32"), (4, 1, 1), 16)


def test_launches_per_operation():
    # one kernel launch per operation (two where a padding mode is
    # materialised first): Numba's launch costs ~0.1-0.2 ms, small calls
    # must not pay it several times
    from fastconv.cuda import _run

    x = np.ones((1, 2, 8, 8), np.float32)
    w = np.ones((2, 2, 3, 3), np.float32)
    calls = [
        (lambda: fastconv.conv2d(x, w, padding=1, device="cuda", method="cuda_direct"), 1),
        (lambda: fastconv.conv2d(x, w, padding=1, device="cuda", method="cuda_gemm"), 1),
        (lambda: fastconv.conv2d(x, w, padding=1, padding_mode="reflect", device="cuda"), 2),
        (lambda: fastconv.conv_transpose2d(x, w, stride=2, device="cuda"), 1),
        (lambda: fastconv.max_pool2d(x, 2, device="cuda"), 1),
        (lambda: ndimage.correlate(cuda.to_device(x[0, 0]), np.ones((3, 3), np.float32)), 1),
        (lambda: signal.convolve(cuda.to_device(x[0, 0]), np.ones((3, 3), np.float32)), 1),
    ]
    for i, (call, want) in enumerate(calls):
        before = _run.launches
        call()
        assert _run.launches - before == want, i


def test_property_conv_and_transpose_match_the_cpu():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=12, deadline=None)
    @given(
        n=st.integers(3, 9),
        k=st.integers(1, 3),
        s=st.integers(1, 3),
        d=st.integers(1, 2),
        p=st.integers(0, 2),
        g=st.sampled_from([1, 2]),
        seed=st.integers(0, 2**16),
    )
    def check(n, k, s, d, p, g, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((2, 2, n, n + 1)).astype(np.float32)
        dx = cuda.to_device(x)
        w = rng.standard_normal((4, 2 // g, k, k)).astype(np.float32)
        if (k - 1) * d + 1 <= n + 2 * p:
            want = fastconv.conv2d(x, w, stride=s, padding=p, dilation=d, groups=g)
            for m in ("cuda_direct", "cuda_gemm"):
                _close(fastconv.conv2d(dx, w, stride=s, padding=p, dilation=d, groups=g, method=m), want)
        wt = rng.standard_normal((2, 4 // g, k, k)).astype(np.float32)
        op = s - 1 if s > 1 else 0
        if (n - 1) * s - 2 * p + (k - 1) * d + op + 1 >= 1:
            _close(fastconv.conv_transpose2d(dx, wt, stride=s, padding=p, output_padding=op, dilation=d, groups=g),
                   fastconv.conv_transpose2d(x, wt, stride=s, padding=p, output_padding=op, dilation=d, groups=g))  # fmt: skip

    check()
