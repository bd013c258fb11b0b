"""Image filters and signal convolutions (:mod:`fastconv.kernels.filter`):
direct, separable, FFT and overlap-add, their guards, workspace and cost
features.  No Numba here."""

from __future__ import annotations

import math

from scipy.fft import next_fast_len

from ._method import FILTER_OPS, SIGNAL_OPS, Method, no_workspace, prod, settings


def oa_block(n: int, k: int, threads: int = 1) -> int:
    """Overlap-add block length along an axis: about eight kernel lengths (the
    transforms stay small and cached), or -- when that leaves fewer blocks
    than threads -- one block per thread, so the batched transform runs in
    parallel (a single long FFT does not); a fast length <= 2 blocks."""
    threads = max(1, threads)
    block = max(k, 8 * k if 8 * k * threads <= n else -(-n // threads))
    while next_fast_len(block + k - 1, real=True) > 2 * block:
        block += 1
    return block


def _outputs(spec) -> float:
    return float(prod(spec.out_shape))


def _padded(spec) -> int:
    return prod(spec.padded)


def direct_features(spec) -> dict[str, float]:
    """Direct: a fixed cost, one multiply-add per footprint tap and output, and
    the streams (output rows x taps: short rows are overhead-bound)."""
    outputs = _outputs(spec) * spec.dtype.itemsize / 4  # float64: half the SIMD lanes
    width = max(1, spec.out_shape[-1])
    return {"overhead_s": 1.0, "s_per_tap": spec.taps * outputs, "s_per_stream": spec.taps * outputs / width}


def separable_features(spec) -> dict[str, float]:
    """Separable: a fixed cost, the 1-D taps per output summed over the passes,
    and the intermediate arrays written."""
    scale = spec.dtype.itemsize / 4
    outputs = _outputs(spec) * scale
    padded = scale * _padded(spec)
    return {"overhead_s": 1.0, "s_per_tap": sum(spec.kernel) * outputs, "s_per_element": padded * len(spec.kernel)}


def fft_features(spec) -> dict[str, float]:
    """FFT: a fixed cost and n log n of the transform size (forward, product, inverse)."""
    n = 1.0
    for v in spec.padded:
        n *= next_fast_len(v, real=True)
    return {"overhead_s": 1.0, "s_per_nlogn": n * math.log2(max(n, 2.0)) * spec.dtype.itemsize / 4}


def supports_3d(spec) -> str | None:
    return None if spec.ndim <= 3 else "more than 3 axes: the NumPy fallback runs"


def _separable_supports(spec) -> str | None:
    reason = supports_3d(spec)
    if reason is None and not spec.rank1:
        reason = "weights are not an outer product of 1-D kernels"
    return reason


def _signal_full(spec) -> list[int]:
    return [n + k - 1 for n, k in zip(spec.shape, spec.kernel)]


def _fft_parallel(rows: float) -> float:
    """How much slower than the fitted rate a transform over ``rows`` lines
    runs: the constants are fitted on multi-axis transforms that pocketfft
    spreads over all the threads, but it hands threads whole groups of
    vector-width lines, so a transform of a few lines (one long 1-D FFT, a
    few overlap-add blocks) runs on one thread (measured: 2 lines, workers=2,
    no faster than workers=1; scipy.fft calls on Python threads do not
    overlap either)."""
    threads = settings()[1]
    return threads / max(1, min(threads, int(rows) // 4))


def signal_fft_features(spec) -> dict[str, float]:
    """FFT: a fixed cost and n log n of the full convolution's fast length."""
    full = _signal_full(spec)
    n = 1.0
    for v in full:
        n *= next_fast_len(v, real=True)
    lines = n / next_fast_len(full[-1], real=True)  # the lines of the first (real) pass
    nlogn = n * math.log2(max(n, 2.0)) * spec.dtype.itemsize / 4
    slower = _fft_parallel(lines)
    if lines == 1 and spec.dtype.itemsize == 8:
        # float64: the two forward transforms overlap on two threads (numpy.fft
        # releases the GIL): 2 transforms' time for 3, instead of 3
        slower = max(1.0, 2 * settings()[1] / 3)
    return {"overhead_s": 1.0, "s_per_nlogn": slower * nlogn}


def signal_oa_features(spec) -> dict[str, float]:
    """Overlap-add: a fixed cost and n log n summed over the blocks' transforms."""
    shape, kernel = spec.shape, spec.kernel
    if max(k / n for n, k in zip(shape, kernel)) > max(n / k for n, k in zip(shape, kernel)):
        shape, kernel = kernel, shape
    ratios = [n / k for n, k in zip(shape, kernel)]
    axis = ratios.index(max(ratios))
    n, k = shape[axis], kernel[axis]
    block = oa_block(n, k, settings()[1])
    size = float(next_fast_len(block + k - 1, real=True))
    for a, v in enumerate(_signal_full(spec)):
        if a != axis:
            size *= next_fast_len(v, real=True)
    blocks = -(-n // block)
    lines = blocks * size / next_fast_len(block + k - 1, real=True)
    return {
        "overhead_s": 1.0,
        "s_per_nlogn": _fft_parallel(lines) * blocks * size * math.log2(max(size, 2.0)) * spec.dtype.itemsize / 4,
        # the blocks are padded into one batch and added back: copies a single FFT does not make
        "s_per_elem": blocks * size,
    }


def _oa_supports(spec) -> str | None:
    if spec.mode != "constant" or spec.cval != 0:
        # (its blocks are cut from the signal itself: a boundary other than
        # zeros, convolve2d's wrap/symm/fillvalue, is not in them)
        return "overlap-add convolves the signal with a zero boundary only"
    ratios = [max(n / k, k / n) for n, k in zip(spec.shape, spec.kernel)]
    if max(ratios) < 4:
        return "overlap-add needs a signal several times longer than the kernel on some axis"
    return supports_3d(spec)


#: worst float32 error measured (bench/precision.py, fraction of the output's scale)
_FLOAT32_ERROR = {"filter_fft": 4.9e-7, "signal_fft": 4.4e-7, "signal_oa": 6.6e-7}


def _fft_workspace(spec) -> int:
    """The padded input's transform, the kernel's and their product (complex)."""
    return 3 * _padded(spec) * spec.dtype.itemsize * 2


METHODS = (
    Method("direct", FILTER_OPS + SIGNAL_OPS, "fastconv.kernels.filter:filter_direct", supports_3d, no_workspace,
           "one vectorised stream per tap over (row, column chunk) work items (ndimage: scipy's footprint kept)",
           features=direct_features, cost_key="filter_direct", float32_error=1.4e-6,
           prepare="fastconv.kernels.filter:prepare_filter_direct"),
    *(Method(name, ops, f"fastconv.kernels.filter:{runner}", supports, workspace, what, features=features,
             cost_key=key, finite_only=True, float32_error=_FLOAT32_ERROR.get(runner))
    for name, ops, runner, supports, workspace, features, key, what in (
        ("separable", FILTER_OPS, "filter_separable", _separable_supports,
         lambda spec: _padded(spec) * spec.dtype.itemsize, separable_features, "filter_separable",
         "outer-product weights as one 1-D pass per axis"),
        ("fft", FILTER_OPS, "filter_fft", supports_3d, _fft_workspace, fft_features, "filter_fft",
         "real FFTs of fast lengths over the padded input (large kernels)"),
        ("fft", SIGNAL_OPS, "signal_fft", supports_3d, _fft_workspace, signal_fft_features, "signal_fft",
         "real FFTs of the full convolution's fast lengths"),
        ("oa", SIGNAL_OPS, "signal_oa", _oa_supports, lambda spec: 4 * _padded(spec) * spec.dtype.itemsize * 2,
         signal_oa_features, "signal_oa", "overlap-add: blocks of the long signal, one batched FFT (long-by-short)"),
    )),
)  # fmt: skip
