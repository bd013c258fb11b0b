"""scipy.ndimage's convolution-based filters (gaussian, uniform, sobel,
prewitt, laplace and the Gaussian derivatives), lowered onto fastconv's own
1-D correlation: each is a sequence of :func:`fastconv.ndimage.correlate1d`
passes along axes, in scipy's order and with scipy's intermediate dtype (a
pass writes the result dtype, so integer data is truncated after every pass
as scipy's), so NumPy, dask and GPU arrays all go where ``correlate1d``
sends them.  A pass of float data along a leading axis is a
:func:`fastconv.ndimage.correlate` with the weights laid along that axis
(the same sums, without moving the axis last); laplace's terms of float
data with one mode are one correlation with the cross of second differences.

The weights are scipy's: a sampled Gaussian normalised to sum 1, its
derivatives of order ``n`` as the Gaussian times the Hermite-like
polynomial ``q_n`` with ``q_0 = 1`` and ``q_{k+1}(x) = q_k'(x) - x q_k(x) /
sigma^2``; a box of ``size`` ones over ``size``; the central differences
``[-1, 0, 1]``, ``[1, -2, 1]`` and the smoothing ``[1, 2, 1]``,
``[1, 1, 1]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._dask import is_dask
from ._device import is_gpu_array
from ._execute import in_dtype, scratch
from ._spec import FOOTPRINT_EPS, gaussian_args, output_dtype

#: an axis whose sigma is at most this is not filtered (scipy's rule)
_SIGMA_EPS = 1e-15


# --- arguments ---------------------------------------------------------------------------


def _input(input: Any):
    if is_dask(input) or is_gpu_array(input):
        return input
    from ._spec import as_array

    return as_array(input, "input")


# --- weights -----------------------------------------------------------------------------


def gaussian_weights(sigma: Any, order: Any, truncate: Any, radius: Any) -> np.ndarray:
    """The correlation weights of ``gaussian_filter1d`` (float64, 2r + 1 taps)."""
    sd, order, radius = gaussian_args(sigma, order, truncate, radius)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # (sigma 0: scipy's NaN weights too)
        s2 = sd * sd
        phi = np.exp(-0.5 / s2 * x**2)
        phi /= phi.sum()
        if order == 0:
            return phi[::-1].copy()
        # q as polynomial coefficients: q <- q' - x q / sigma^2, ``order`` times
        q = np.zeros(order + 1)
        q[0] = 1.0
        for _ in range(order):
            q = np.append(q[1:] * np.arange(1, len(q)), 0.0) - np.concatenate(([0.0], q[:-1])) / s2
        weights = np.polynomial.polynomial.polyval(x, q) * phi
    return weights[::-1].copy()  # (a convolution kernel: reversed for correlate1d)


# --- the passes ----------------------------------------------------------------------------


def run_passes(x: Any, passes: list, output: Any, cval: Any, lib, ready: bool = False):
    """Correlate ``x`` along each pass's (axis, weights, mode, origin), in
    order, every pass written in the result dtype; the last into ``output``
    (an array, a dtype or None).  ``lib``: the module whose ``correlate`` and
    ``correlate1d`` run the passes (fastconv.ndimage); ``ready``: the passes
    are :func:`ready_passes`' already (a repeated call's)."""
    dtype = output_dtype(output, x.shape, x.dtype)
    if not passes:
        return unfiltered(x, output, dtype)
    if not ready:
        passes = ready_passes(x, passes, output)
    y = x
    last = len(passes) - 1
    between = last > 0 and _kept_between(x, dtype)
    for i, (axis, w, mode, origin, how, w_nd, origins) in enumerate(passes):
        if i < last:  # (a large intermediate: one of two buffers kept per thread, written in place)
            target = scratch(x.shape, dtype, f"pass{i % 2}") if between else dtype
        else:
            target = output if output is not None else dtype
        if runs_nd(how, y):
            y = lib.correlate(y, w_nd, target, mode, cval, origins)
        else:
            y = lib.correlate1d(y, w, axis, target, mode, cval, origin)
    return y


#: intermediates of at least this many bytes go into buffers kept per
#: thread: a fresh array of a few MB pays its page faults on every call
#: (see fastconv._execute.scratch).  2-core Zen 4, kept / fresh: 512x512
#: float64 Sobel 0.59-0.75 / 2.5-3.4 ms, Gaussian 2.4 / 4.0-4.8 ms; 2048x2048
#: 0.75-0.87x; 512x512 float32 (1 MiB) 1.2-1.7x -- below the threshold
_KEEP_BETWEEN = 2 << 20


def _own_float(x: Any, dtype: np.dtype) -> bool:
    """Float32/64 NumPy data whose passes write its own dtype: what the
    in-place passes, laplace's one correlation and the kept intermediates
    need (the executors then compute in that dtype and can write in place)."""
    return type(x) is np.ndarray and x.dtype == dtype and dtype.kind == "f" and dtype.itemsize >= 4


def _kept_between(x: Any, dtype: np.dtype) -> bool:
    """Whether a multi-pass filter's intermediates go into kept buffers."""
    return _own_float(x, dtype) and x.nbytes >= _KEEP_BETWEEN


#: how a pass runs (:func:`ready_passes`): correlate1d; a correlation with
#: the weights laid along the axis; that, when the data it reads is finite
_1D, _ND, _ND_IF_FINITE = "1d", "nd", "nd if finite"


def runs_nd(how: str, y: Any) -> bool:
    """Whether a pass of :func:`ready_passes` runs as a correlation on ``y``."""
    return how == _ND or (how == _ND_IF_FINITE and bool(np.isfinite(y).all()))


def ready_passes(x: Any, passes: list, output: Any) -> list:
    """The passes (axis, weights, mode, origin) with their weights for the
    data's precision (:func:`for_dtype`) and how each runs, decided once:
    (axis, weights, mode, origin, how, the weights laid along the axis, the
    origins per axis).  A pass along a leading axis of float32/64 NumPy data
    written in its own dtype (at most three dimensions, finite weights) is a
    correlation with the weights laid along that axis -- its taps read in
    place, where correlate1d would move the axis last, a copy of the data;
    with a zero weight only on finite data (correlate leaves zeros out of
    its footprint; correlate1d, as scipy's, multiplies them, so a NaN under
    one spreads).  (Several passes as one separable correlation measured
    slower: 0.48 vs 0.40 ms float32, 3.7 vs 1.0-1.4 ms float64 for a
    512x512 Gaussian, 2-core Zen 4 -- a padded copy and an intermediate more.)"""
    dtype = output_dtype(output, x.shape, x.dtype)
    ready = []
    for axis, w, mode, origin in for_dtype(passes, x):
        how = _how(x, axis, w, dtype)
        shape, origins = [1] * x.ndim, [0] * x.ndim
        shape[axis], origins[axis] = len(w), origin
        ready.append((axis, w, mode, origin, how, w.reshape(shape), tuple(origins)))
    return ready


def _how(x: Any, axis: int, w: np.ndarray, dtype: np.dtype) -> str:
    if not _own_float(x, dtype) or x.ndim > 3 or axis == x.ndim - 1 or not np.all(np.isfinite(w)):
        return _1D
    return _ND if np.all(np.abs(w) > FOOTPRINT_EPS) else _ND_IF_FINITE


def for_dtype(passes: list, x: Any) -> list:
    """The passes with their smoothing weights as :func:`single_weights` for
    single-precision data."""
    if np.dtype(getattr(x, "dtype", np.float64)) in (np.float32, np.complex64, np.float16):
        return [(a, single_weights(w), m, o) for a, w, m, o in passes]
    return passes


def single_weights(w: np.ndarray) -> np.ndarray:
    """Smoothing weights (summing to 1) as float32 values that still sum to 1
    -- their largest one takes the rounding of the others -- so that float32
    data, filtered in float32, keeps its mean (a 100x100 ramp's sum was off
    by 1.8 after a Gaussian; scipy's double sums keep it within 0.07).
    Other weights are returned as given."""
    if w.size == 0 or not np.isfinite(w).all() or abs(float(w.sum()) - 1.0) > 1e-12:
        return w
    single = w.astype(np.float32).astype(np.float64)
    peak = int(np.argmax(np.abs(single)))
    single[peak] = float(np.float32(single[peak] + (1.0 - single.sum())))
    return single


def box_passes(passes: list[tuple[int, int, str, int]]) -> list[tuple[int, np.ndarray, str, int]]:
    """``uniform_filter``'s passes (axis, size, mode, origin) with their weights, 1/size."""
    return [(a, np.full(n, 1.0 / n), m, o) for a, n, m, o in passes]


def uniform_passes(x: Any, passes: list[tuple[int, int, str, int]], output: Any, cval: Any, lib):
    """``uniform_filter``'s passes (axis, size, mode, origin): float data as
    :func:`run_passes` with weights 1/size; integer and bool results as
    scipy computes them -- each window's sum in float64 divided by the size,
    then truncated toward zero into the result dtype."""
    dtype = output_dtype(output, x.shape, x.dtype)
    if dtype.kind in "fc" or not passes:
        return run_passes(x, box_passes(passes), output, cval, lib)
    y = x
    for axis, size, mode, origin in passes:
        sums = lib.correlate1d(y, np.ones(size), axis, np.float64, mode, cval, origin)
        y = in_dtype(sums / size, dtype)
    if isinstance(output, np.ndarray):
        output[...] = y
        return output
    return y


def laplace_weights(x: Any, axes: tuple[int, ...], modes: list, output: Any) -> np.ndarray | None:
    """The cross of second differences as one correlation's weights when
    laplace's terms can be one pass (float data written in its own dtype,
    at most three dimensions, one mode), else None."""
    if not axes or not _own_float(x, output_dtype(output, x.shape, x.dtype)) or x.ndim > 3 or len(set(modes)) != 1:
        return None
    shape = [3 if a in axes else 1 for a in range(x.ndim)]
    weights = np.zeros(shape)
    centre = tuple(1 if a in axes else 0 for a in range(x.ndim))
    weights[centre] = -2.0 * len(axes)
    for a in axes:
        for side in (0, 2):
            index = list(centre)
            index[a] = side
            weights[tuple(index)] = 1.0
    return weights


def unfiltered(x: Any, output: Any, dtype: np.dtype):
    """A filter of no pass (every sigma 0, no axis): the input, copied into
    ``output`` or as a new array of the result dtype (scipy's ``output[...] = input``)."""
    if isinstance(output, np.ndarray):
        output[...] = x
        return output
    return x.astype(dtype, copy=True)


def sum_of(terms: Callable[[int, Any], Any], axes: tuple[int, ...], x: Any, output: Any, square: bool):
    """scipy's generic_laplace (``square`` False: the sum of ``terms(i,
    dtype)`` over the axes) and generic_gradient_magnitude (``square`` True:
    the root of the sum of squares), each term in the result dtype."""
    dtype = output_dtype(output, x.shape, x.dtype)
    if not axes:
        return unfiltered(x, output, dtype)
    device = _numba_device(x)
    total = None
    for i in range(len(axes)):
        t = terms(i, dtype)
        if device:  # (numba's device arrays do no arithmetic: the sum on the host)
            t = t.copy_to_host()
        own = type(t) is np.ndarray  # (a new array of the result dtype: worked on in place)
        if square:
            t = np.multiply(t, t, out=t) if own else _cast(t * t, dtype)
        if total is None:
            total = t
        elif own and type(total) is np.ndarray:
            np.add(total, t, out=total)
        else:
            total = _cast(total + t, dtype)
    if square:  # (scipy: np.sqrt with casting="unsafe" -- an integer result truncated)
        if type(total) is np.ndarray and dtype.kind in "fc":
            np.sqrt(total, out=total)
        else:
            total = _cast(np.sqrt(total), dtype)
    if device:
        from numba import cuda

        total = cuda.to_device(np.ascontiguousarray(total))
    if isinstance(output, np.ndarray):
        output[...] = total
        return output
    return total


def _numba_device(x: Any) -> bool:
    return is_gpu_array(x) and type(x).__module__.startswith("numba")


def _cast(a: Any, dtype: np.dtype) -> Any:
    """``a`` in ``dtype`` (NumPy, dask and CuPy arrays; torch tensors)."""
    if hasattr(a, "astype"):
        return a.astype(dtype, copy=False)
    import torch

    return a.to(getattr(torch, dtype.name))
