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

import functools
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _warm
from ._config import get_config, numba_threads
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


def run_passes(x: Any, passes: list, output: Any, cval: Any, lib):
    """Correlate ``x`` along each pass's (axis, weights, mode, origin), in
    order, every pass written in the result dtype; the last into ``output``
    (an array, a dtype or None).  ``lib``: the module whose ``correlate`` and
    ``correlate1d`` run the passes (fastconv.ndimage).  Passes of float data
    along the last two axes run as one sweep, and one along any axis as a
    sweep of its own (:class:`_Sweep`), else by ``correlate``/``correlate1d``."""
    dtype = output_dtype(output, x.shape, x.dtype)
    if not passes:
        return unfiltered(x, output, dtype)
    passes = ready_passes(x, passes, output)
    return _run_steps(x, _steps(x, passes, dtype, cval), output, dtype, cval, lib)


def prepare_passes(x: Any, passes: list, output: Any, cval: Any, lib):
    """``run(x, output)``: :func:`run_passes` of ``passes`` for inputs of
    ``x``'s type, shape and dtype, ``output``'s dtype and this ``cval``, with
    the weights, the steps and the sweeps' index tables made once (a
    repeated call's: the call cache keys all of those)."""
    dtype = output_dtype(output, x.shape, x.dtype)
    if not passes:
        return lambda x, output: unfiltered(x, output, dtype)
    steps = _steps(x, ready_passes(x, passes, output), dtype, cval)
    return lambda x, output: _run_steps(x, steps, output, dtype, cval, lib)


def _run_steps(x: Any, steps: list, output: Any, dtype: np.dtype, cval: Any, lib):
    if len(steps) == 1:
        return steps[0](x, output if output is not None else dtype, cval, lib)
    y = x
    between = _kept_between(x, dtype)
    last = len(steps) - 1
    for i, step in enumerate(steps):
        if i < last:  # (a large intermediate: one of two buffers kept per thread, written in place)
            target = scratch(x.shape, dtype, f"pass{i % 2}") if between else dtype
        else:
            target = output if output is not None else dtype
        y = step(y, target, cval, lib)
    return y


def _steps(x: Any, passes: list, dtype: np.dtype, cval: Any) -> list:
    """``step(y, target, cval, lib)`` for each pass (of :func:`ready_passes`),
    or for two passes that run as one sweep."""
    threads = get_config().num_threads
    steps, i = [], 0
    swept = _sweeps_fit(x, dtype, cval)
    while i < len(passes):
        group = _sweep_group(x, passes, i, threads) if swept else 0
        steps.append(_Sweep(x, passes[i : i + group], cval, threads) if group else _one_pass(passes[i]))
        i += max(group, 1)
    return steps


def sweep_note(x: Any, passes: list, output: Any, cval: Any) -> str:
    """What ``explain`` says when the filter's first passes run as a sweep
    (its plan is then the first pass's by correlate: what runs while the
    sweep's kernel compiles), else ""."""
    dtype = output_dtype(output, x.shape, x.dtype)
    if not passes or not _sweeps_fit(x, dtype, cval):
        return ""
    group = _sweep_group(x, ready_passes(x, passes, output), 0, get_config().num_threads)
    if not group:
        return ""
    what = "the passes along the last two axes" if group == 2 else f"the pass along axis {passes[0][0]}"
    return (
        f"runs as: {what} in one sweep (kernels/passes.py: no padded copy, no intermediate image);"
        " the plan below is the first pass's by correlate, what runs while the sweep compiles"
    )


def _one_pass(p: tuple):
    """The step of a pass by ``correlate`` (the weights laid along the axis) or ``correlate1d``."""
    axis, w, mode, origin, how, w_nd, origins = p

    def step(y, target, cval, lib):
        if runs_nd(how, y):
            return lib.correlate(y, w_nd, target, mode, cval, origins)
        return lib.correlate1d(y, w, axis, target, mode, cval, origin)

    return step


# --- passes in one sweep ------------------------------------------------------------------------


def _sweeps_fit(x: Any, dtype: np.dtype, cval: Any) -> bool:
    """Whether the passes may run as sweeps (:mod:`fastconv.kernels.passes`):
    float32/64 NumPy data of at least two dimensions written in its own
    dtype, and a real ``cval`` (else the passes run one by one and say what
    is wrong).  (Read-only data, another signature of the kernel, runs the
    passes one by one: see :meth:`_Sweep._tiered`.)"""
    if not _own_float(x, dtype) or x.ndim < 2 or 0 in x.shape:
        return False
    return not isinstance(cval, (bool, np.bool_)) and isinstance(cval, (int, float, np.integer, np.floating))


def _sweep_group(x: np.ndarray, passes: list, i: int, threads: int) -> int:
    """How many passes from pass ``i`` run as one sweep: 2, it and the next
    (the two along the last two axes, in either order); 1, it alone; 0,
    none -- it runs by ``correlate``/``correlate1d`` (a mode or origin they
    must reject, or too few rows to share among the threads: correlate's
    kernel splits long rows)."""
    from ._spec import NDIMAGE_PAD

    def valid(p) -> bool:
        _, w, mode, origin = p[:4]
        return isinstance(mode, str) and mode in NDIMAGE_PAD and 0 <= len(w) // 2 + origin < len(w)

    if not valid(passes[i]):
        return 0
    last, axis = x.ndim - 1, passes[i][0]
    rows = x.size // x.shape[-1] if axis == last else int(np.prod(x.shape[: axis + 1]))
    if rows < 16 * threads and x.size * len(passes[i][1]) >= _serial_threshold():
        return 0
    if i + 1 < len(passes) and {axis, passes[i + 1][0]} == {last - 1, last} and valid(passes[i + 1]):
        return 2
    return 1


_ONE = {np.dtype(np.float32): np.ones(1, np.float32), np.dtype(np.float64): np.ones(1, np.float64)}


def _padded_index(n: int, taps: int, origin: int, mode: str) -> np.ndarray:
    from .kernels.passes import MODE_RULE, boundary_index

    lo = taps // 2 + origin
    return boundary_index(n, lo, taps - 1 - lo, MODE_RULE[mode])


def _writable_into(target: Any, y: np.ndarray) -> bool:
    """Whether the sweep can write ``target`` itself."""
    return (
        type(target) is np.ndarray
        and target.dtype == y.dtype
        and target.shape == y.shape
        and target.flags.c_contiguous
        and target.flags.writeable
        and not np.may_share_memory(target, y)
    )


class _Sweep:
    """A step of one or two passes (of :func:`ready_passes`) in one sweep of
    :func:`fastconv.kernels.passes.two_pass_kernel`, made for one input
    shape and dtype: two along the last two axes, or one along any axis
    (the kernel's other pass the identity; a pass along axis ``a`` is the
    vertical pass of the data seen as (axes before ``a``, axis ``a``, axes
    after)).  While the kernel is not compiled (a background build compiles
    it), the passes run one by one."""

    def __init__(self, x: np.ndarray, group: list, cval: Any, threads: int) -> None:
        dtype, shape, last = x.dtype, x.shape, x.ndim - 1
        one = _ONE[dtype]
        if len(group) == 2:
            vertical_first = group[0][0] == last - 1
            pv, ph = (group[0], group[1]) if vertical_first else (group[1], group[0])
            view = (-1, shape[-2], shape[-1])
        elif group[0][0] == last:
            vertical_first, pv, ph = True, None, group[0]
            view = (-1, shape[-2], shape[-1])
        else:
            vertical_first, pv, ph = True, group[0], None
            axis = group[0][0]
            view = (-1, shape[axis], int(np.prod(shape[axis + 1 :])))
        H, W = view[1], view[2]
        if pv is None:
            rows, wv = _padded_index(H, 1, 0, "reflect"), one
        else:
            rows, wv = _padded_index(H, len(pv[1]), pv[3], pv[2]), pv[1].astype(dtype)
        if ph is None:
            cols, wh, lo = _padded_index(W, 1, 0, "reflect"), one, 0
        else:
            cols, wh = _padded_index(W, len(ph[1]), ph[3], ph[2]), ph[1].astype(dtype)
            lo = len(ph[1]) // 2 + ph[3]
        items = x.size // W
        parallel = threads > 1 and items > 1 and x.size * (len(wv) + len(wh)) >= _serial_threshold()
        from .kernels import passes as k

        self.group, self.view, self.shape, self.dtype = group, view, shape, dtype
        self.args = (rows, wv, cols, wh, lo, dtype.type(cval), vertical_first, min(threads, items))
        self.kernel = k.two_pass_kernel if parallel else k.two_pass_kernel_serial
        self.threads = threads if parallel else 0
        self.key = ("sweep", dtype.str, parallel)

    def __call__(self, y: np.ndarray, target: Any, cval: Any, lib) -> np.ndarray:
        out = target if _writable_into(target, y) else np.empty(self.shape, self.dtype)
        if _warm.is_ready(self.key) and y.flags.writeable:  # (every repeated call's path)
            self._run(y, out)
        else:
            self._tiered(y, out, cval, lib)
        if out is not target and isinstance(target, np.ndarray):
            target[...] = out
            return target
        return out

    def _run(self, y: np.ndarray, out: np.ndarray) -> np.ndarray:
        source = y.reshape(self.view) if y.flags.c_contiguous else np.ascontiguousarray(y).reshape(self.view)
        if self.threads:
            with numba_threads(self.threads):
                self.kernel(source, out.reshape(self.view), *self.args)
        else:
            self.kernel(source, out.reshape(self.view), *self.args)
        return out

    def _tiered(self, y: np.ndarray, out: np.ndarray, cval: Any, lib) -> None:
        """The first calls: the kernel if it needs no compilation (else the
        passes one by one, and a background build), or -- read-only data,
        another signature of the kernel -- the passes one by one."""

        def one_by_one():
            z = y
            for n, (axis, w, mode, origin, *_) in enumerate(self.group):
                last = n == len(self.group) - 1
                z = lib.correlate1d(z, w, axis, out if last else self.dtype, mode, cval, origin)
            return z

        if not y.flags.writeable:
            one_by_one()
        elif get_config().background_compile:
            spec, ops, out_shape = _sweep_job(self.dtype.str)
            _warm.run(self.key, spec, lambda: self._run(y, out), one_by_one, ops, out_shape)
        else:
            self._run(y, out)


def _serial_threshold() -> float:
    """The direct filter kernel's serial threshold (kernels.filter._SERIAL_BELOW,
    through ``serial_below``); an eighth of it while Numba is not imported
    (no parallel region ran: what ``serial_below`` says then, and ``explain``
    imports no Numba)."""
    if "numba" not in sys.modules:
        return 400_000 / 8
    from ._config import serial_below

    return serial_below(400_000)


@functools.lru_cache(maxsize=4)
def _sweep_job(dtype: str):
    """(spec, operands, output shape) of a build job that compiles the
    sweep's kernels for ``dtype`` (a small filter's; the build process
    runs :func:`warm_sweeps` on every ndimage job)."""
    from ._execute import _padder
    from ._spec import FilterOperands, filter_spec, kernel_ready
    from .dispatch import select

    spec, x, w, _ = filter_spec(np.zeros((16, 16), dtype), np.ones((3, 1)), None, "reflect", 0.0, 0, "auto",
                                convolve=False)  # fmt: skip
    ops = FilterOperands(x=_padder(spec)(x), w=kernel_ready(w, spec.dtype).reshape(spec.lifted("kernel")))
    return select(spec).job_spec(), ops, spec.lifted("out_shape")


def warm_sweeps(spec) -> None:
    """Compile the sweep's kernels (serial and parallel) for an ndimage
    job's dtype (the background build's job)."""
    if getattr(spec, "op", None) != "ndimage" or spec.is_complex:
        return
    from .kernels import passes as k

    x = np.zeros((1, 4, 5), spec.dtype)
    index = np.arange(5, dtype=np.int64)
    w = np.ones(1, spec.dtype)
    for kernel in (k.two_pass_kernel, k.two_pass_kernel_serial):
        kernel(x, np.empty_like(x), index[:4], w, index, w, 0, spec.dtype.type(0), True, 1)


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
    if _own_float(x, dtype):
        return _sum_in_place(terms, len(axes), x, output, dtype, square)
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


def _sum_in_place(terms: Callable[[int, Any], Any], n: int, x: np.ndarray, output: Any, dtype: np.dtype,
                  square: bool) -> np.ndarray:  # fmt: skip
    """:func:`sum_of` for float data written in its own dtype: the first
    term written into ``output`` itself (when it is an array of that dtype
    not sharing the input's memory), the others into a buffer kept per
    thread when large (:data:`_KEEP_BETWEEN`), squares and sums in place:
    one new array a call, the result."""
    own = type(output) is np.ndarray and output.dtype == dtype and not np.may_share_memory(output, x)
    total = terms(0, output if own else dtype)
    if square:
        np.multiply(total, total, out=total)
    kept = x.nbytes >= _KEEP_BETWEEN
    for i in range(1, n):
        t = terms(i, scratch(x.shape, dtype, "term") if kept else dtype)
        if square:
            np.multiply(t, t, out=t)
        np.add(total, t, out=total)
    if square:
        np.sqrt(total, out=total)
    if isinstance(output, np.ndarray) and total is not output:
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
