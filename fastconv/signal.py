"""``scipy.signal``-style convolution on NumPy arrays: convolve, correlate,
fftconvolve, oaconvolve, convolve2d, correlate2d and choose_conv_method,
with scipy's modes, input swapping, boundaries and result dtypes -- computed
by the dispatcher's direct, FFT or overlap-add method, without the GIL.

Each function only validates (``_spec``), plans (``dispatch``) and runs
(``_execute``).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np

from ._calls import FULL, MISS
from ._dask import is_dask
from ._device import is_gpu_array
from ._execute import cast_filtered, filter_executor, run_filter
from ._ops import Op, operation
from ._spec import (
    check_2d,
    check_gpu_filter_method,
    check_signal_mode,
    fill_value,
    freq_axes,
    signal_arrays,
    signal_spec,
    swap_for_valid,
)

__all__ = [
    "choose_conv_method",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "fftconvolve",
    "oaconvolve",
]

#: integer inputs are convolved in float64 only when every partial sum is
#: exactly representable (below 2**53); otherwise in exact integer arithmetic
_EXACT = 2.0**53


def _elsewhere(in1, in2) -> bool:
    """GPU arrays among the inputs (or a dask ``in1`` inside the dask
    executor): :func:`_route` computes it."""
    return is_dask(in1) or is_gpu_array(in1) or is_gpu_array(in2)


def _route(kind: str, in1, in2, mode, method: str = "auto", **kwargs):
    """``kind`` ("convolve"/"correlate") on a dask ``in1`` (a lazy dask array
    with halos, each chunk planned with ``method``) or on GPU arrays (the
    direct GPU filter, the result on the GPU: a method other than "direct"
    is refused, not dropped)."""
    if is_dask(in1):
        from ._dask import signal_convolve

        return signal_convolve(kind, in1, in2, mode, method=method, **kwargs)
    check_gpu_filter_method(method)
    from .cuda._run import run_signal

    return run_signal(kind, in1, in2, mode, **kwargs)


def _reverse(a: np.ndarray) -> np.ndarray:
    return a[tuple(slice(None, None, -1) for _ in range(a.ndim))]


def _empty_result(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([], dtype=np.result_type(a, b))


def _exact_ints(a: np.ndarray, b: np.ndarray) -> bool:
    """Integer/bool inputs whose convolution float64 computes exactly."""
    if a.dtype.kind not in "biu" or b.dtype.kind not in "biu":
        return True
    ma = float(np.abs(a.astype(np.float64)).max(initial=0))
    mb = float(np.abs(b.astype(np.float64)).max(initial=0))
    return ma * mb * min(a.size, b.size) < _EXACT


def _integer_nd(a: np.ndarray, b: np.ndarray, mode: str, same_start_high: bool = False) -> np.ndarray:
    """Exact integer convolution (wrapping like the result dtype), for inputs
    too large for float64: a sum of shifted products in int64/uint64."""
    rt = np.result_type(a, b)
    acc_t = np.uint64 if rt.kind == "u" else np.int64
    full = tuple(n + k - 1 for n, k in zip(a.shape, b.shape))
    out = np.zeros(full, dtype=acc_t)
    a64 = a.astype(acc_t)
    with np.errstate(over="ignore"):
        for tap in np.ndindex(*b.shape):
            out[tuple(slice(t, t + n) for t, n in zip(tap, a.shape))] += a64 * acc_t(b[tap])
    return _crop(out, a.shape, b.shape, mode, same_start_high).astype(rt)


def _crop(full: np.ndarray, n, k, mode: str, same_start_high: bool = False) -> np.ndarray:
    if mode == "full":
        return full
    if mode == "same":
        start = [kk // 2 if same_start_high else (kk - 1) // 2 for kk in k]
        return full[tuple(slice(s, s + m) for s, m in zip(start, n))]
    return full[tuple(slice(kk - 1, nn) for nn, kk in zip(n, k))]


#: 1-D problems below this many multiply-adds go to numpy.convolve (as scipy
#: does): its C loop beats any planning overhead there
_SMALL = 20_000


def _by_numpy(a, b, mode, method) -> bool:
    """A small 1-D "fill" convolution numpy.convolve computes as scipy does
    (its 'valid' swaps like scipy's; its 'same' centres like scipy's only when
    ``a`` is the longer one).  Safe on unvalidated arguments, so ``convolve``
    asks it before any planning."""
    return (
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.ndim == 1
        and b.ndim == 1
        and 0 < a.size * b.size <= _SMALL
        and a.dtype.kind in "biufc"
        and b.dtype.kind in "biufc"
        and isinstance(method, str)
        and method in ("auto", "direct")
        and isinstance(mode, str)
        and (mode in ("full", "valid") or (mode == "same" and a.size >= b.size))
    )


def _convolve(a, b, mode, method, *, boundary="fill", fillvalue=0.0, as_float=False, same_start_high=False):
    """``mode`` convolution of a with b (already validated and swapped)."""
    if boundary == "fill" and fillvalue == 0 and not as_float and not same_start_high and _by_numpy(a, b, mode, method):
        return np.convolve(a, b, mode)
    if a.dtype.kind in "biu" and b.dtype.kind in "biu" and not _exact_ints(a, b) and boundary == "fill":
        return _integer_nd(a, b, mode, same_start_high)
    spec = signal_spec(
        a, _reverse(b), mode, method, boundary=boundary, fillvalue=fillvalue, same_start_high=same_start_high
    )
    if as_float and spec.out_dtype.kind in "biu":
        import dataclasses

        spec = dataclasses.replace(spec, out_dtype=np.dtype(np.float64))
    out = run_filter(spec, a, _reverse(b), None)
    if method == "fft" and not as_float and not (np.isfinite(a).all() and np.isfinite(b).all()):
        import warnings

        from ._spec import user_stacklevel

        warnings.warn("Use of fft convolution on input with NAN or inf results in NAN or inf output. Consider using "
                      "method='direct' instead.", RuntimeWarning, stacklevel=user_stacklevel())  # fmt: skip
    return out


def _correlate(a: np.ndarray, b: np.ndarray, mode: str, method: str, **kwargs) -> np.ndarray:
    """Correlation as the convolution with ``in2`` reversed and conjugated;
    when 'valid' swaps the inputs, scipy reverses and conjugates the result."""
    swapped = swap_for_valid(mode, a, b)
    if swapped:
        a, b = b, a
    z = _convolve(a, _reverse(np.conj(b) if b.dtype.kind == "c" else b), mode, method, **kwargs)
    if swapped:
        z = _reverse(z)
        z = np.conj(z) if z.dtype.kind == "c" else z
    return z


def convolve(in1: Any, in2: Any, mode: str = "full", method: str = "auto") -> np.ndarray:
    """N-dimensional convolution, as ``scipy.signal.convolve``.

    Same modes (``"full"``, ``"same"``, ``"valid"`` with scipy's input
    swapping), result dtype (``numpy.result_type`` of the inputs; integer
    convolution stays exact) and values.  ``method``: ``"auto"`` (the
    dispatcher: cost model, no FFT for non-finite input), ``"direct"``,
    ``"fft"``, ``"oa"`` (overlap-add, an extension) or ``"numpy"`` (the
    NumPy path that needs no compilation, an extension).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> signal.convolve(np.array([1, 2, 3], np.int8), np.array([100, 100], np.int8))
    array([100,  44, -12,  44], dtype=int8)
    """
    if _by_numpy(in1, in2, mode, method):
        return np.convolve(in1, in2, mode)  # tiny 1-D: no planning on the way
    if _elsewhere(in1, in2):
        return _route("convolve", in1, in2, mode, method)
    a, b = signal_arrays(in1, in2)
    if a.ndim == 0:  # (scipy: scalars multiply, whatever the mode)
        return a * b
    mode = check_signal_mode(mode)
    if a.size == 0 or b.size == 0:
        return _empty_result(a, b)
    if swap_for_valid(mode, a, b):
        a, b = b, a
    return _convolve(a, b, mode, method)


def correlate(in1: Any, in2: Any, mode: str = "full", method: str = "auto") -> np.ndarray:
    """N-dimensional cross-correlation, as ``scipy.signal.correlate``
    (``in2`` is reversed and conjugated; in ``"valid"`` mode with swapped
    inputs the result is reversed and conjugated, as scipy).

    Examples
    --------
    >>> from fastconv import signal
    >>> signal.correlate([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], mode="same")
    array([2. , 3.5, 3. ])
    """
    if _elsewhere(in1, in2):
        return _route("correlate", in1, in2, mode, method)
    a, b = signal_arrays(in1, in2)
    if a.ndim == 0:  # (scipy: scalars multiply, in2 conjugated)
        return a * (np.conj(b) if b.dtype.kind == "c" else b)
    mode = check_signal_mode(mode)
    if a.size == 0 or b.size == 0:
        return _empty_result(a, b)
    return _correlate(a, b, mode, method)


def _fft_family(in1, in2, mode, axes, method):
    if _elsewhere(in1, in2) and axes is None:
        return _route("convolve", in1, in2, mode, method if is_dask(in1) else "auto", as_float=True)
    a, b = signal_arrays(in1, in2)
    if a.ndim == 0:  # (scipy: scalars multiply -- and so do arrays convolved along no axis, below)
        return a * b
    mode = check_signal_mode(mode)
    if a.size == 0 or b.size == 0:
        return np.array([], dtype=np.result_type(a, b, np.float32 if a.dtype == np.float32 else np.float64))
    ax = freq_axes(a.shape, b.shape, axes)
    if all(1 in (a.shape[i], b.shape[i]) for i in ax):
        return a * b  # (scipy: no axis to transform -- the product, broadcast, in its dtype)
    if len(ax) < a.ndim:
        # axes outside ``axes`` are broadcast, not convolved: loop over their index
        rest = [i for i in range(a.ndim) if i not in ax]
        shape = np.broadcast_shapes(tuple(a.shape[i] for i in rest), tuple(b.shape[i] for i in rest))
        outs = []
        a_t = np.moveaxis(a, rest, list(range(len(rest))))
        b_t = np.moveaxis(b, rest, list(range(len(rest))))
        a_b = np.broadcast_to(a_t, shape + a_t.shape[len(rest) :])
        b_b = np.broadcast_to(b_t, shape + b_t.shape[len(rest) :])
        for idx in np.ndindex(*shape):
            outs.append(_fft_family(a_b[idx], b_b[idx], mode, None, method))
        res = np.stack(outs).reshape(shape + outs[0].shape)
        return np.moveaxis(res, list(range(len(rest))), rest)
    if swap_for_valid(mode, a, b):
        a, b = b, a
    return _convolve(a, b, mode, method, as_float=True)


def fftconvolve(in1: Any, in2: Any, mode: str = "full", axes: Any = None) -> np.ndarray:
    """The convolution ``scipy.signal.fftconvolve`` computes (a float result;
    ``axes`` convolves only those axes, the others are broadcast).  scipy
    always transforms; fastconv computes the same convolution by whichever
    of its methods the dispatcher estimates fastest -- one FFT, overlap-add,
    or direct summation for a short kernel (a 16384-sample signal and 17
    taps: 10x less time than the FFT, and exact to rounding) -- within
    ``workspace_limit``.  ``fastconv.explain`` shows the pick.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> np.round(signal.fftconvolve([1, 2, 3], [1, 1]), 12)
    array([1., 3., 5., 3.])
    """
    return _fft_family(in1, in2, mode, axes, "auto")


def oaconvolve(in1: Any, in2: Any, mode: str = "full", axes: Any = None) -> np.ndarray:
    """The convolution ``scipy.signal.oaconvolve`` computes (a float result;
    ``axes`` as in :func:`fftconvolve`), by whichever method the dispatcher
    estimates fastest, as :func:`fftconvolve`: overlap-add for a long signal
    and a short kernel where the FFT methods win.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> x = np.ones(1000)
    >>> round(float(signal.oaconvolve(x, np.ones(10), mode="valid").max()), 9)
    10.0
    """
    return _fft_family(in1, in2, mode, axes, "auto")


def convolve2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill", fillvalue: float = 0) -> np.ndarray:
    """2-D convolution with a boundary condition, as ``scipy.signal.convolve2d``
    (``"fill"`` with ``fillvalue``, ``"wrap"``, ``"symm"``); the FFT and
    overlap-add paths honour the boundary too (it is materialised first).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.convolve2d(np.arange(3.0).reshape(1, 3), np.ones((1, 7)), boundary="wrap")
    array([[6., 7., 8., 6., 7., 8., 6., 7., 8.]])
    """
    if _elsewhere(in1, in2):
        check_2d(len(in1.shape), np.ndim(in2), boundary, fillvalue)
        return _route("convolve", in1, in2, mode, boundary=boundary, fillvalue=fill_value(fillvalue))
    a, b = signal_arrays(in1, in2)
    boundary = check_2d(a.ndim, b.ndim, boundary, fillvalue)
    mode = check_signal_mode(mode)
    if swap_for_valid(mode, a, b):
        a, b = b, a
    return _convolve(a, b, mode, "auto", boundary=boundary, fillvalue=fill_value(fillvalue))


def correlate2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill", fillvalue: float = 0) -> np.ndarray:
    """2-D cross-correlation with a boundary condition, as
    ``scipy.signal.correlate2d``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.correlate2d(np.eye(3), np.array([[1.0, 2.0]]), mode="same")
    array([[1., 0., 0.],
           [2., 1., 0.],
           [0., 2., 1.]])
    """
    if _elsewhere(in1, in2):
        check_2d(len(in1.shape), np.ndim(in2), boundary, fillvalue)
        return _route("correlate", in1, in2, mode, boundary=boundary, fillvalue=fill_value(fillvalue),
                      same_start_high=True)  # fmt: skip
    a, b = signal_arrays(in1, in2)
    boundary = check_2d(a.ndim, b.ndim, boundary, fillvalue)
    mode = check_signal_mode(mode)
    return _correlate(a, b, mode, "auto", boundary=boundary, fillvalue=fill_value(fillvalue), same_start_high=True)


def choose_conv_method(in1: Any, in2: Any, mode: str = "full", measure: bool = False):
    """The method ``convolve(in1, in2, mode)`` would use: ``"direct"``,
    ``"fft"`` or ``"oa"`` (overlap-add, which scipy never returns), from the
    dispatcher's guards (non-finite or large-integer input: direct) and its
    fitted cost model; with ``measure=True``, the fastest of the feasible
    methods timed on these inputs, returned with the times ``{method: s}``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import signal
    >>> signal.choose_conv_method(np.ones(50), np.ones(5))
    'direct'
    >>> signal.choose_conv_method(np.ones(10), np.ones(3), measure=True)[0] in ("direct", "fft", "oa")
    True
    """
    from .dispatch import select
    from .dispatch.selector import feasible_methods

    a, b = signal_arrays(in1, in2)
    mode = check_signal_mode(mode)
    if not isinstance(measure, (bool, np.bool_)):
        raise TypeError(f"measure must be a bool, got {type(measure).__name__}")
    if a.size == 0 or b.size == 0 or not _exact_ints(a, b):
        return ("direct", {}) if measure else "direct"
    if swap_for_valid(mode, a, b):
        a, b = b, a
    spec = signal_spec(a, _reverse(b), mode, "auto")
    finite = all(np.isfinite(v).all() for v in (a, b) if v.dtype.kind in "fc")
    if not measure:
        return select(spec).method if finite else "direct"
    names = feasible_methods(spec, fallbacks=False) if finite else ["direct"]
    times = {}
    for name in names:
        _convolve(a, b, mode, name)
        t0 = time.perf_counter()
        _convolve(a, b, mode, name)
        times[name] = time.perf_counter() - t0
    return min(times, key=times.get), times


def _plan_spec(in1, in2, mode="full", method="auto", *, kind="convolve", boundary="fill", fillvalue=0.0,
               same_start_high=False, as_float=False, axes=None):  # fmt: skip
    """What ``fastconv.explain`` plans for a signal function: the spec of the
    correlation it runs (in2 reversed for a convolution; correlations
    conjugate it; 'valid' swaps as scipy)."""
    a, b = signal_arrays(in1, in2)
    mode = check_signal_mode(mode)
    if kind == "correlate":
        if swap_for_valid(mode, a, b):
            a, b = b, a
        b = _reverse(np.conj(b) if b.dtype.kind == "c" else b)
    elif swap_for_valid(mode, a, b):
        a, b = b, a
    if axes is not None and len(freq_axes(a.shape, b.shape, axes)) < a.ndim:
        raise ValueError("explain plans a convolution over every axis; with axes=, explain one slice")
    spec = signal_spec(a, _reverse(b), mode, method, boundary=boundary, fillvalue=fillvalue,
                       same_start_high=same_start_high)  # fmt: skip
    if as_float and spec.out_dtype.kind in "biu":
        import dataclasses

        spec = dataclasses.replace(spec, out_dtype=np.dtype(np.float64))
    return (spec,)


def _prepare(name: str, kind: str, same_start_high: bool = False):
    """The repeated-call executor of a real floating-point NumPy call of
    ``name`` (integer, bool and complex data, empty arrays, ``axes=``, the
    small 1-D calls numpy.convolve answers and non-NumPy arrays take the
    full path)."""

    def prepare(a: dict):
        in1, in2 = a["in1"], a["in2"]
        if type(in1) is not np.ndarray or type(in2) is not np.ndarray or a.get("axes") is not None:
            return FULL
        x, b = signal_arrays(in1, in2)
        mode = check_signal_mode(a["mode"])
        if x.dtype.kind != "f" or b.dtype.kind != "f" or x.size == 0 or b.size == 0 or x.ndim == 0:
            return FULL
        boundary, fillvalue = "fill", 0.0
        if "boundary" in a:
            boundary, fillvalue = check_2d(x.ndim, b.ndim, a["boundary"], a["fillvalue"]), fill_value(a["fillvalue"])
        method = a.get("method", "auto")
        if name in ("convolve", "correlate") and (_by_numpy(x, b, mode, method) or method == "fft"):
            return FULL  # (method="fft": the full path warns of a NaN result as scipy's)
        swapped = swap_for_valid(mode, x, b)
        if swapped:
            x, b = b, x
        w = b if kind == "correlate" else _reverse(b)
        spec = signal_spec(x, w, mode, method, boundary=boundary, fillvalue=fillvalue, same_start_high=same_start_high)
        execute = filter_executor(spec, flip=kind != "correlate")
        if execute is None:
            return None
        cast = spec.out_dtype != spec.dtype
        back = kind == "correlate" and swapped  # (as _correlate: real data)

        def executor(in1, in2, *rest):
            y = execute(in2, in1) if swapped else execute(in1, in2)
            if y is MISS:
                return MISS
            if cast:
                y = cast_filtered(spec, y, None)
            return _reverse(y) if back else y

        return executor

    return prepare


def _op(name: str, func, spec, kind: str, **route) -> Op:
    """The descriptor of ``func``: its body validates and computes (GPU
    arrays routed there, after validation of the names); a dask ``in1``
    goes to the dask executor with the method the body would use."""

    def dask(a: dict):
        method = a.get("method", "auto")
        extra = dict(route)
        if "boundary" in a:
            check_2d(len(a["in1"].shape), np.ndim(a["in2"]), a["boundary"], a["fillvalue"])
            extra.update(boundary=a["boundary"], fillvalue=float(a["fillvalue"]))
        if a.get("axes") is not None:
            raise ValueError(f"axes= is not supported for a dask in1 ({name})")
        return _route(kind, a["in1"], a["in2"], a["mode"], method, **extra)

    return Op(f"signal.{name}", spec, lambda a: func(**a), dask, routed_by="in1",
              method_op=(lambda a: "signal") if "method" in inspect.signature(func).parameters else None,
              prepare=_prepare(name, kind, route.get("same_start_high", False)), arrays=("in1", "in2"))  # fmt: skip


convolve = operation(_op("convolve", convolve, _plan_spec, "convolve"))(convolve)
correlate = operation(
    _op("correlate", correlate, lambda in1, in2, mode, method: _plan_spec(in1, in2, mode, method, kind="correlate"),
        "correlate")
)(correlate)  # fmt: skip
fftconvolve = operation(
    _op("fftconvolve", fftconvolve,
        lambda in1, in2, mode, axes: _plan_spec(in1, in2, mode, "auto", as_float=True, axes=axes), "convolve",
        as_float=True)
)(fftconvolve)  # fmt: skip
oaconvolve = operation(
    _op("oaconvolve", oaconvolve,
        lambda in1, in2, mode, axes: _plan_spec(in1, in2, mode, "auto", as_float=True, axes=axes),
        "convolve", as_float=True)
)(oaconvolve)  # fmt: skip
convolve2d = operation(
    _op("convolve2d", convolve2d, lambda in1, in2, mode, boundary, fillvalue: _plan_spec(
        in1, in2, mode, boundary=check_2d(np.ndim(in1), np.ndim(in2), boundary, fillvalue),
        fillvalue=fill_value(fillvalue)), "convolve")
)(convolve2d)  # fmt: skip
correlate2d = operation(
    _op("correlate2d", correlate2d, lambda in1, in2, mode, boundary, fillvalue: _plan_spec(
        in1, in2, mode, kind="correlate", boundary=check_2d(np.ndim(in1), np.ndim(in2), boundary, fillvalue),
        fillvalue=fill_value(fillvalue), same_start_high=True), "correlate", same_start_high=True)
)(correlate2d)  # fmt: skip
choose_conv_method = operation(
    Op("signal.choose_conv_method", lambda in1, in2, mode, measure: _plan_spec(in1, in2, mode),
       lambda a, f=choose_conv_method: f(**a))
)(choose_conv_method)  # fmt: skip
