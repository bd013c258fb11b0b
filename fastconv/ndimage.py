"""``scipy.ndimage``-style filters on NumPy arrays: correlate, convolve and
their 1-D forms, with every boundary mode, ``cval``, ``origin`` and
``output=``, the same results and result dtypes as scipy -- computed by the
dispatcher's direct, separable or FFT method, in parallel, without the GIL --
and the convolution-based filters built on them (gaussian, uniform, sobel,
prewitt, laplace, gaussian_laplace, gaussian_gradient_magnitude:
:mod:`fastconv._filters`).

Each function only validates (``_spec``), plans (``dispatch``) and runs
(``_execute``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from typing import Any

import numpy as np

from . import _filters
from ._calls import FULL, MISS
from ._dask import is_dask
from ._device import is_gpu_array
from ._execute import cast_filtered, filter_executor, run_filter
from ._ops import Op, operation
from ._spec import (
    OutputDtypeError,
    OutputShapeError,
    as_array,
    axis_filter_args,
    check_axes,
    check_axis,
    check_gpu_filter_method,
    expand_axes,
    filter_spec,
    output_dtype,
    per_axis,
    uniform_size,
    weight_fields,
)

#: this module: the filters' passes call its correlate and correlate1d
_LIB = sys.modules[__name__]

__all__ = [
    "convolve",
    "convolve1d",
    "correlate",
    "correlate1d",
    "gaussian_filter",
    "gaussian_filter1d",
    "gaussian_gradient_magnitude",
    "gaussian_laplace",
    "laplace",
    "prewitt",
    "sobel",
    "uniform_filter",
    "uniform_filter1d",
]

_COMMON = """
    Same arguments, defaults, output and result dtype as
    ``scipy.ndimage.{name}``: the output has the input's shape; its dtype is
    the input's (or ``output``'s), integer results are truncated toward zero
    as scipy does.  Weights of magnitude at most 2.2e-16 are left out of the
    footprint, as scipy does (a NaN under a zero weight does not spread).

    Parameters
    ----------
    input : array_like
        Real or complex, any number of dimensions.
{weights}    output : numpy.ndarray or dtype, optional
        The array to write into (input's shape), or the result's dtype.
    mode : {{"reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror", "grid-wrap"}}
        How the input is extended beyond its edges (scipy's names; for
        filters the ``grid-*`` modes equal their plain counterparts).
    cval : float
        The value beyond the edges with ``mode="constant"``.
    origin : int or sequence of ints
        Shift of the window; ``-(k // 2) <= origin <= (k - 1) // 2``.
{method}
    Returns
    -------
    numpy.ndarray
        The filtered array (``output`` itself when one was given).

    Examples
    --------
{example}
    """

_ND_WEIGHTS = """    weights : array_like
        The kernel, with as many dimensions as ``input``.
"""
_1D_WEIGHTS = """    weights : array_like
        1-D kernel.
    axis : int
        The axis of ``input`` to filter along.
"""
_METHOD = """    method : str
        ``"auto"`` (the dispatcher: guards, cost model, optional measurement),
        ``"direct"``, ``"separable"`` (outer-product weights) or ``"fft"``;
        ``fastconv.available_methods`` lists the valid ones for a call.
"""

_EXAMPLES = {
    "correlate": """    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> a = np.array([[1, 2, 0, 0], [5, 3, 0, 4], [0, 0, 0, 7], [9, 3, 0, 0]], dtype=float)
    >>> ndimage.correlate(a, np.ones((3, 3)) / 9, mode="constant").round(2)
    array([[1.22, 1.22, 1.  , 0.44],
           [1.22, 1.22, 1.78, 1.22],
           [2.22, 2.22, 1.89, 1.22],
           [1.33, 1.33, 1.11, 0.78]])""",
    "convolve": """    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> ndimage.convolve(np.arange(6.0), np.array([1.0, 10.0, 100.0]), mode="constant")
    array([  1.,  12., 123., 234., 345., 450.])
    >>> ndimage.convolve(np.arange(6), np.array([0.5, 0.5]), mode="nearest")
    array([0, 1, 2, 3, 4, 5])""",
    "correlate1d": """    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> ndimage.correlate1d(np.arange(12.0).reshape(3, 4), [1, 2], axis=0)
    array([[ 0.,  3.,  6.,  9.],
           [ 8., 11., 14., 17.],
           [20., 23., 26., 29.]])""",
    "convolve1d": """    >>> import numpy as np
    >>> from fastconv import ndimage
    >>> ndimage.convolve1d(np.array([2, 8, 0, 4, 1, 9, 9, 0]), [1, 3], mode="wrap")
    array([14, 24,  4, 13, 12, 36, 27,  2])""",
}


def _doc(name: str, one_d: bool, summary: str) -> str:
    return (
        summary
        + "\n"
        + _COMMON.format(
            name=name,
            weights=_1D_WEIGHTS if one_d else _ND_WEIGHTS,
            method="" if one_d else _METHOD,
            example=_EXAMPLES[name],
        )
    )


def correlate(
    input: Any,
    weights: Any,
    output: Any = None,
    mode: str = "reflect",
    cval: float = 0.0,
    origin: Any = 0,
    *,
    axes: Any = None,
    method: str = "auto",
) -> np.ndarray:
    return _filter(False, input, weights, output, mode, cval, origin, method, axes)


def convolve(
    input: Any,
    weights: Any,
    output: Any = None,
    mode: str = "reflect",
    cval: float = 0.0,
    origin: Any = 0,
    *,
    axes: Any = None,
    method: str = "auto",
) -> np.ndarray:
    return _filter(True, input, weights, output, mode, cval, origin, method, axes)


def _filter(convolve: bool, input, weights, output, mode, cval, origin, method, axes=None):
    """correlate / convolve: the dask path or validate -> plan -> run."""
    if axes is not None:
        weights, origin = expand_axes(input, weights, origin, axes)
    if is_dask(input):
        from ._dask import ndimage_filter

        return ndimage_filter(convolve, input, weights, output, mode, cval, origin, method)
    if is_gpu_array(input) or is_gpu_array(weights):
        check_gpu_filter_method(method)
        from .cuda._run import run_filter as gpu_filter
        from .cuda._run import to_host_small

        spec, _, w, _ = filter_spec(input, to_host_small(weights), output, mode, cval, origin, method,
                                    convolve=convolve, new_array="GPU")  # fmt: skip
        return gpu_filter(spec, input, w, like=input if is_gpu_array(input) else weights)
    spec, x, w, out = filter_spec(input, weights, output, mode, cval, origin, method, convolve=convolve)
    return run_filter(spec, x, w, out)


def _axis_spec(input, weights, axis, output, mode, cval, origin, convolve):
    """The spec a 1-D filter along ``axis`` runs: (rows, samples) with the
    axis moved last; with the flattened input and weights."""
    x = as_array(input, "input")
    w = as_array(weights, "weights")
    axis, origin = axis_filter_args(x.ndim, w, axis, origin)
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(int(np.prod(moved.shape[:-1])), moved.shape[-1])  # (no -1: an axis may be empty)
    out_arr = output if isinstance(output, np.ndarray) else None
    if out_arr is not None and out_arr.shape != x.shape:
        raise OutputShapeError(f"output must have the input's shape {x.shape}, got {out_arr.shape}")
    if out_arr is not None and out_arr.dtype.kind != "c" and "c" in (x.dtype.kind, w.dtype.kind):
        raise OutputDtypeError(f"output must be complex for complex input or weights, got {out_arr.dtype}")
    return filter_spec(
        flat, w.reshape(1, -1), None if out_arr is not None else output, mode, cval, (0, origin), "auto",
        convolve=convolve, every_tap=True,
    )  # fmt: skip


def _along_axis(input: Any, weights: Any, axis: Any, output: Any, mode: str, cval: float, origin: Any, convolve):
    """A 1-D filter along ``axis``: the axis moved last and the others merged,
    so the kernels see (rows, samples) whatever the number of dimensions."""
    x = input if is_dask(input) else as_array(input, "input")
    if is_gpu_array(weights):
        from .cuda._run import to_host_small

        weights = to_host_small(weights)
    w = as_array(weights, "weights")
    axis, origin = axis_filter_args(x.ndim, w, axis, origin)
    if is_dask(input) or is_gpu_array(input):
        shape = [1] * x.ndim
        shape[axis] = len(w)
        origins = [0] * x.ndim
        origins[axis] = origin
        return _filter(convolve, input, w.reshape(shape), output, mode, cval, origins, "auto")
    moved = np.moveaxis(x, axis, -1)
    out_arr = output if isinstance(output, np.ndarray) else None
    spec, xs, ws, _ = _axis_spec(x, w, axis, output, mode, cval, origin, convolve)
    result = run_filter(spec, xs, ws, None)
    result = np.moveaxis(result.reshape(moved.shape), -1, axis)
    if out_arr is None:
        return result
    out_arr[...] = result
    return out_arr


def correlate1d(
    input: Any, weights: Any, axis: int = -1, output: Any = None, mode: str = "reflect", cval: float = 0.0,
    origin: int = 0,
) -> np.ndarray:  # fmt: skip
    return _along_axis(input, weights, axis, output, mode, cval, origin, convolve=False)


def convolve1d(
    input: Any, weights: Any, axis: int = -1, output: Any = None, mode: str = "reflect", cval: float = 0.0,
    origin: int = 0,
) -> np.ndarray:  # fmt: skip
    return _along_axis(input, weights, axis, output, mode, cval, origin, convolve=True)


correlate.__doc__ = _doc("correlate", False, "Multidimensional correlation, as ``scipy.ndimage.correlate``.")
convolve.__doc__ = _doc("convolve", False, "Multidimensional convolution, as ``scipy.ndimage.convolve``.")
correlate1d.__doc__ = _doc("correlate1d", True, "1-D correlation along an axis, as ``scipy.ndimage.correlate1d``.")
convolve1d.__doc__ = _doc("convolve1d", True, "1-D convolution along an axis, as ``scipy.ndimage.convolve1d``.")


def _same_spec(spec):
    """Whether correlation weights with new values keep ``spec``'s plan
    valid: their separability (the separable method needs it; the footprint's
    count only changes the estimate, and every method reads the taps from the
    values): see ``filter_executor``."""
    return lambda w: weight_fields(w, spec.ndim, spec.is_complex)[1] == spec.rank1


def _prepare(convolve: bool, one_d: bool):
    """The repeated-call executor of a real NumPy ndimage call (complex
    data, more than three axes and non-NumPy arrays take the full path)."""

    def prepare(a: dict):
        x, weights, output = a["input"], a["weights"], a["output"]
        if type(x) is not np.ndarray or type(weights) is not np.ndarray or is_gpu_array(output):
            return FULL
        if x.dtype.kind == "c" or weights.dtype.kind == "c" or x.size == 0:
            return FULL  # (complex: four real passes; and validated once per call, warnings included)
        if one_d:
            spec = _axis_spec(x, weights, a["axis"], output, a["mode"], a["cval"], a["origin"], convolve)[0]
            axis = int(a["axis"]) % x.ndim
        else:
            spec = filter_spec(x, weights, output, a["mode"], a["cval"], a["origin"], a["method"], convolve=convolve,
                               axes=a["axes"])[0]  # fmt: skip
        if spec.is_complex or spec.ndim > 3:
            return FULL
        if one_d:  # (np.moveaxis costs more than a small filter: its permutations once)
            order = [i for i in range(x.ndim) if i != axis] + [axis]
            to_last, back = tuple(order), tuple(int(i) for i in np.argsort(order))
            moved_shape = tuple(x.shape[i] for i in order)
            if axis == x.ndim - 1:
                to_last = back = None
            rows = (-1 if x.ndim > 1 else 1, x.shape[axis])
        # (1-D weights: every tap multiplied and a row is always separable -- no field reads their values)
        execute = filter_executor(spec, None if one_d else _same_spec(spec), moved_shape if one_d else None,
                                  flip=convolve)  # fmt: skip
        if execute is None:
            return None
        cast = spec.out_dtype != spec.dtype
        dtype = spec.dtype
        direct = not cast and (not one_d or to_last is None)  # (an output array the result can be written into)

        def executor(input, weights, *rest):
            output = rest[1] if one_d else rest[0]
            into = None
            if isinstance(output, np.ndarray):
                if not output.flags.writeable:
                    return MISS  # (the full path says why)
                if direct and output.dtype == dtype and output.flags.c_contiguous:
                    into = output  # (written in place: no result array, no copy)
            if one_d:  # (the weights' values are what the executor compares: no reshape)
                flat = (input if to_last is None else input.transpose(to_last)).reshape(rows)
            else:
                flat = input
            y = execute(flat, weights, into)
            if y is MISS:
                return MISS
            if y is output:
                return output
            if not one_d:
                if cast or isinstance(output, np.ndarray):
                    return cast_filtered(spec, y, output if isinstance(output, np.ndarray) else None)
                return y
            result = cast_filtered(spec, y, None) if cast else y  # (in the moved axes' shape)
            if back is not None:
                result = result.transpose(back)
            if isinstance(output, np.ndarray):
                output[...] = result
                return output
            return result

        return executor

    return prepare


def _op(name: str, func, spec, prepare) -> Op:
    """The descriptor of ``func``, whose body validates, routes GPU arrays and
    computes; a dask input goes through the same body (which tiles it) after
    the names are checked."""

    def run(a: dict):
        return func(**a)

    method_op = (lambda a: "ndimage") if "method" in inspect.signature(func).parameters else None
    return Op(f"ndimage.{name}", spec, run, run, method_op=method_op, prepare=prepare, arrays=("input", "weights"),
              maybe_arrays=("output",))  # fmt: skip


correlate = operation(
    _op("correlate", correlate, functools.partial(filter_spec, convolve=False), _prepare(False, False))
)(correlate)
convolve = operation(_op("convolve", convolve, functools.partial(filter_spec, convolve=True), _prepare(True, False)))(
    convolve
)
correlate1d = operation(
    _op("correlate1d", correlate1d, functools.partial(_axis_spec, convolve=False), _prepare(False, True))
)(correlate1d)
convolve1d = operation(
    _op("convolve1d", convolve1d, functools.partial(_axis_spec, convolve=True), _prepare(True, True))
)(convolve1d)


# --- the convolution-based filters (fastconv._filters: passes of correlate1d) ---------------

_FILTER_COMMON = """
    Same arguments, defaults, output and result dtype as
    ``scipy.ndimage.{name}`` (scipy >= 1.11 with ``axes``), computed as
    scipy does -- one 1-D correlation per axis, each written in the result
    dtype (integer data truncated after every pass) -- by fastconv's
    correlation, on NumPy, dask and GPU arrays alike.  A pass of float data
    along a leading axis reads its taps in place (no transposed copy).
{params}
    Returns
    -------
    array
        The filtered array, shaped as the input (``output`` itself when an
        array was given).

    Examples
    --------
{example}
    """

_P_INPUT = """
    Parameters
    ----------
    input : array_like
        Real, complex or integer data; NumPy, dask or GPU array.
"""
_P_OUTPUT = """    output : numpy.ndarray or dtype, optional
        The array to write into (the input's shape), or the result's dtype.
"""
_P_MODE = """    mode : str or sequence of str
        scipy's boundary modes (``"reflect"``, ``"constant"``, ``"nearest"``,
        ``"mirror"``, ``"wrap"``, ``"grid-*"``); one, or one per filtered axis.
    cval : float
        The value beyond the edges with ``mode="constant"``.
"""
_P_MODE1 = """    mode : str
        scipy's boundary mode.
    cval : float
        The value beyond the edges with ``mode="constant"``.
"""
_P_AXES = """    axes : int or sequence of ints, optional
        The axes filtered (default all); per-axis arguments follow them.
"""
_P_SIGMA = """    sigma : float or sequence of floats
        The Gaussian's standard deviation, one or one per filtered axis.
"""
_P_TRUNC = """    truncate : float
        The kernel's radius in standard deviations (``int(truncate * sigma + 0.5)``).
    radius : int, optional
        The kernel's radius, overriding ``truncate``.
"""


def _filter_doc(name: str, summary: str, params: str, example: str) -> str:
    return summary + "\n" + _FILTER_COMMON.format(name=name, params=params, example=example)


# Each filter: ``_<name>_passes(**arguments)`` -> (input, passes, output, cval) --
# what it runs (``terms`` filters: their first term) and what ``explain``
# plans (the first pass) -- and the function that runs them.


def _gaussian_filter1d_passes(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0,
                              *, radius=None):  # fmt: skip
    x = _filters._input(input)
    axis = check_axis(axis, x.ndim)
    return x, [(axis, _filters.gaussian_weights(sigma, order, truncate, radius), mode, 0)], output, cval


def gaussian_filter1d(
    input: Any, sigma: Any, axis: int = -1, order: int = 0, output: Any = None, mode: str = "reflect",
    cval: float = 0.0, truncate: float = 4.0, *, radius: Any = None,
) -> Any:  # fmt: skip
    x, passes, output, cval = _gaussian_filter1d_passes(input, sigma, axis, order, output, mode, cval, truncate,
                                                        radius=radius)  # fmt: skip
    return _filters.run_passes(x, passes, output, cval, _LIB)


def _gaussian_filter_passes(input, sigma, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0, *,
                            radius=None, axes=None):  # fmt: skip
    x = _filters._input(input)
    axes = check_axes(axes, x.ndim)
    n = len(axes)
    per = [per_axis(v, n, name) for v, name in ((sigma, "sigma"), (order, "order"), (mode, "mode"),
                                                             (radius, "radius"))]  # fmt: skip
    passes = [(axis, _filters.gaussian_weights(s, o, truncate, r), m, 0)
              for axis, s, o, m, r in zip(axes, *per) if s > _filters._SIGMA_EPS]  # fmt: skip
    return x, passes, output, cval


def gaussian_filter(
    input: Any, sigma: Any, order: Any = 0, output: Any = None, mode: Any = "reflect", cval: float = 0.0,
    truncate: float = 4.0, *, radius: Any = None, axes: Any = None,
) -> Any:  # fmt: skip
    x, passes, output, cval = _gaussian_filter_passes(input, sigma, order, output, mode, cval, truncate,
                                                      radius=radius, axes=axes)  # fmt: skip
    return _filters.run_passes(x, passes, output, cval, _LIB)


def _uniform_filter1d_boxes(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    x = _filters._input(input)
    axis = check_axis(axis, x.ndim)
    size, origin = uniform_size(size, origin)
    return x, [(axis, size, mode, origin)], output, cval


def uniform_filter1d(
    input: Any, size: int, axis: int = -1, output: Any = None, mode: str = "reflect", cval: float = 0.0,
    origin: int = 0,
) -> Any:  # fmt: skip
    return _filters.uniform_passes(*_uniform_filter1d_boxes(input, size, axis, output, mode, cval, origin), _LIB)


def _uniform_filter_boxes(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    x = _filters._input(input)
    axes = check_axes(axes, x.ndim)
    n = len(axes)
    sizes, modes, origins = (per_axis(v, n, name) for v, name in ((size, "size"), (mode, "mode"),
                                                                           (origin, "origin")))  # fmt: skip
    boxes = []
    for axis, s, m, o in zip(axes, sizes, modes, origins):
        if s > 1:  # (as scipy: a size of 0 or 1 leaves the axis alone, unchecked)
            size, origin = uniform_size(s, o)
            boxes.append((axis, size, m, origin))
    return x, boxes, output, cval


def uniform_filter(
    input: Any, size: Any = 3, output: Any = None, mode: Any = "reflect", cval: float = 0.0, origin: Any = 0,
    *, axes: Any = None,
) -> Any:  # fmt: skip
    return _filters.uniform_passes(*_uniform_filter_boxes(input, size, output, mode, cval, origin, axes=axes), _LIB)


def _difference_passes(input, axis, output, mode, cval, smooth):
    """sobel / prewitt: the central difference along ``axis``, then the
    smoothing along every other axis (modes: one per axis of the input)."""
    x = _filters._input(input)
    axis = check_axis(axis, x.ndim)
    modes = per_axis(mode, x.ndim, "mode")
    passes = [(axis, np.array([-1.0, 0.0, 1.0]), modes[axis], 0)]
    passes += [(a, np.array(smooth), modes[a], 0) for a in range(x.ndim) if a != axis]
    return x, passes, output, cval


def _sobel_passes(input, axis=-1, output=None, mode="reflect", cval=0.0):
    return _difference_passes(input, axis, output, mode, cval, [1.0, 2.0, 1.0])


def _prewitt_passes(input, axis=-1, output=None, mode="reflect", cval=0.0):
    return _difference_passes(input, axis, output, mode, cval, [1.0, 1.0, 1.0])


def sobel(input: Any, axis: int = -1, output: Any = None, mode: Any = "reflect", cval: float = 0.0) -> Any:
    return _filters.run_passes(*_sobel_passes(input, axis, output, mode, cval), _LIB)


def prewitt(input: Any, axis: int = -1, output: Any = None, mode: Any = "reflect", cval: float = 0.0) -> Any:
    return _filters.run_passes(*_prewitt_passes(input, axis, output, mode, cval), _LIB)


_SECOND = np.array([1.0, -2.0, 1.0])


def _laplace_terms(input, output=None, mode="reflect", cval=0.0, *, axes=None):
    """(input, axes, modes, the cross of second differences as one
    correlation's weights or None, output, cval)."""
    x = _filters._input(input)
    axes = check_axes(axes, x.ndim)
    modes = per_axis(mode, len(axes), "mode")
    return x, axes, modes, _filters.laplace_weights(x, axes, modes, output), output, cval


def _laplace_passes(input, output=None, mode="reflect", cval=0.0, *, axes=None):
    x, axes, modes, cross, output, cval = _laplace_terms(input, output, mode, cval, axes=axes)
    if cross is not None:
        return x, [(None, cross, modes[0], 0)], output, cval
    return x, [(axes[0], _SECOND, modes[0], 0)] if axes else [], output, cval


def _laplace_recipe(input, output=None, mode="reflect", cval=0.0, *, axes=None):
    """``run(x, output)`` for laplace's arguments (validated once)."""
    _, axes, modes, cross, _, cval = _laplace_terms(input, output, mode, cval, axes=axes)

    def run(x, output):
        if cross is not None:  # (float data, one mode: the terms' sum is one correlation)
            return correlate(x, cross, output if output is not None else x.dtype, modes[0], cval)

        def term(i, dtype):
            return _filters.run_passes(x, [(axes[i], _SECOND, modes[i], 0)], dtype, cval, _LIB)

        return _filters.sum_of(term, axes, x, output, square=False)

    return run


def laplace(input: Any, output: Any = None, mode: Any = "reflect", cval: float = 0.0, *, axes: Any = None) -> Any:
    x = _filters._input(input)
    return _laplace_recipe(x, output, mode, cval, axes=axes)(x, output)


def _gaussian_terms(input, sigma, output, mode, cval, axes, kwargs, derivative: int):
    """gaussian_laplace (second derivatives) and gaussian_gradient_magnitude
    (first): (input, axes, term(i, dtype) -- one gaussian_filter over every
    axis, filtered axis ``i`` differentiated -- and its passes(i))."""
    unknown = set(kwargs) - {"truncate", "radius"}
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)} (truncate and radius are accepted)")
    x = _filters._input(input)
    axes = check_axes(axes, x.ndim)
    modes = per_axis(mode, len(axes), "mode")
    if derivative == 2:  # (as scipy: one sigma per filtered axis, 0 on the others when some are left out)
        sigmas = per_axis(sigma, len(axes), "sigma")
        if len(axes) < x.ndim:
            sigmas, given = [0.0] * x.ndim, sigmas
            for s, a in zip(given, axes):
                sigmas[a] = s
    else:  # (as scipy: sigma as gaussian_filter reads it, over every axis)
        sigmas = sigma

    def passes(i, dtype):
        order = [0] * x.ndim
        order[axes[i]] = derivative
        return _gaussian_filter_passes(x, sigmas, order, dtype, modes[i], cval, **kwargs)

    def term(i, dtype):
        return _filters.run_passes(*passes(i, dtype), _LIB)

    return x, axes, term, passes


def _gaussian_term_passes(derivative: int):
    """The first term's passes of gaussian_laplace (``derivative`` 2) or
    gaussian_gradient_magnitude (1): what ``explain`` plans."""

    def passes_of(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None, kwargs=None):
        x, axes, _, passes = _gaussian_terms(input, sigma, output, mode, cval, axes, kwargs or {}, derivative)
        return passes(0, output_dtype(output, x.shape, x.dtype)) if axes else (x, [], output, cval)

    return passes_of


def _gaussian_terms_recipe(derivative: int, square: bool):
    """``recipe(**arguments)`` -> ``run(x, output)`` of gaussian_laplace /
    gaussian_gradient_magnitude: every term's passes planned once."""

    def recipe(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None, kwargs=None):
        x, axes, _, passes = _gaussian_terms(input, sigma, output, mode, cval, axes, kwargs or {}, derivative)
        dtype = output_dtype(output, x.shape, x.dtype)
        planned = [_filters.prepare_passes(x, passes(i, dtype)[1], dtype, cval, _LIB) for i in range(len(axes))]

        def run(x, output):
            def term(i, target):
                return planned[i](x, target)

            return _filters.sum_of(term, axes, x, output, square=square)

        return run

    return recipe


def gaussian_laplace(
    input: Any, sigma: Any, output: Any = None, mode: Any = "reflect", cval: float = 0.0, *, axes: Any = None,
    **kwargs: Any,
) -> Any:  # fmt: skip
    x, axes, term, _ = _gaussian_terms(input, sigma, output, mode, cval, axes, kwargs, 2)
    return _filters.sum_of(term, axes, x, output, square=False)


def gaussian_gradient_magnitude(
    input: Any, sigma: Any, output: Any = None, mode: Any = "reflect", cval: float = 0.0, *, axes: Any = None,
    **kwargs: Any,
) -> Any:  # fmt: skip
    x, axes, term, _ = _gaussian_terms(input, sigma, output, mode, cval, axes, kwargs, 1)
    return _filters.sum_of(term, axes, x, output, square=True)


def _first_pass_spec(plan_passes, boxes: bool = False):
    """An Op's ``spec``: the spec of the filter's first correlation pass, as
    it runs (``explain`` shows that pass's plan; a filter of no pass plans
    the identity correlation of its input)."""

    def spec(**arguments):
        x, passes, output, cval = plan_passes(**arguments)
        if boxes:
            passes = _filters.box_passes(passes)
        x = as_array(x, "input")
        dtype = output_dtype(output, x.shape, x.dtype)
        if not passes:
            return filter_spec(x, np.ones([1] * x.ndim), dtype, "reflect", 0.0, 0, "auto", convolve=False)
        axis, w, mode, origin = passes[0]
        if axis is None:  # (a whole correlation: laplace's cross)
            return filter_spec(x, w, dtype, mode, cval, 0, "auto", convolve=False)
        _, w, mode, origin, how, w_nd, origins = _filters.ready_passes(x, passes[:1], dtype)[0]
        if _filters.runs_nd(how, x):
            built = filter_spec(x, w_nd, dtype, mode, cval, origins, "auto", convolve=False)
        else:
            built = _axis_spec(x, w, axis, dtype, mode, cval, origin, False)
        note = _filters.sweep_note(x, passes, dtype, cval)
        return (dataclasses.replace(built[0], note=note), *built[1:]) if note else built

    return spec


def _filter_op(name: str, func, plan_passes, boxes: bool = False, recipe=None) -> Op:
    """The descriptor of a convolution-based filter: its body runs the passes
    (NumPy, dask and GPU arrays alike: each pass routes itself).  A repeated
    call on a NumPy input runs the passes planned on the first such call
    (``recipe(**arguments)`` -> ``run(input, output)``; by default the
    passes of ``plan_passes``): the arguments validated and the weights made
    once, each pass through its own call cache."""

    def run(a: dict):
        return func(**{k: v for k, v in a.items() if k != "kwargs"}, **a.get("kwargs", {}))

    if recipe is None:

        def recipe(**a):
            x, passes, output, cval = plan_passes(**a)
            if boxes and output_dtype(output, x.shape, x.dtype).kind not in "fc":
                return lambda x, output: _filters.uniform_passes(x, passes, output, cval, _LIB)
            return _filters.prepare_passes(x, _filters.box_passes(passes) if boxes else passes, output, cval, _LIB)

    out_index = list(inspect.signature(func).parameters).index("output")

    def prepare(a: dict):
        if type(a["input"]) is not np.ndarray or is_gpu_array(a["output"]):
            return FULL
        run = recipe(**a)

        def executor(*values):
            return run(values[0], values[out_index])

        return executor

    return Op(f"ndimage.{name}", _first_pass_spec(plan_passes, boxes), run, run, prepare=prepare,
              arrays=("input",), maybe_arrays=("output",))  # fmt: skip


gaussian_filter1d = operation(_filter_op("gaussian_filter1d", gaussian_filter1d, _gaussian_filter1d_passes))(
    gaussian_filter1d
)
gaussian_filter = operation(_filter_op("gaussian_filter", gaussian_filter, _gaussian_filter_passes))(gaussian_filter)
uniform_filter1d = operation(_filter_op("uniform_filter1d", uniform_filter1d, _uniform_filter1d_boxes, True))(
    uniform_filter1d
)
uniform_filter = operation(_filter_op("uniform_filter", uniform_filter, _uniform_filter_boxes, True))(uniform_filter)
sobel = operation(_filter_op("sobel", sobel, _sobel_passes))(sobel)
prewitt = operation(_filter_op("prewitt", prewitt, _prewitt_passes))(prewitt)
laplace = operation(_filter_op("laplace", laplace, _laplace_passes, recipe=_laplace_recipe))(laplace)
gaussian_laplace = operation(
    _filter_op("gaussian_laplace", gaussian_laplace, _gaussian_term_passes(2),
               recipe=_gaussian_terms_recipe(2, square=False))
)(gaussian_laplace)  # fmt: skip
gaussian_gradient_magnitude = operation(
    _filter_op("gaussian_gradient_magnitude", gaussian_gradient_magnitude,
               _gaussian_term_passes(1), recipe=_gaussian_terms_recipe(1, square=True))
)(gaussian_gradient_magnitude)  # fmt: skip


_IMPORT = "    >>> import numpy as np\n    >>> from fastconv import ndimage\n"
_RAMP = "    >>> a = np.arange(20.0).reshape(4, 5)\n"
_SQUARE = "    >>> b = np.array([[0, 0, 0, 0], [0, 5, 5, 0], [0, 5, 5, 0], [0, 0, 0, 0]])\n"
gaussian_filter1d.__doc__ = _filter_doc(
    "gaussian_filter1d", "1-D Gaussian filter (or its derivatives) along an axis, as ``scipy.ndimage.gaussian_filter1d``.",
    _P_INPUT + _P_SIGMA + "    axis : int\n        The axis filtered.\n    order : int\n        0: smoothing; n > 0: the"
    " n-th derivative of the Gaussian.\n" + _P_OUTPUT + _P_MODE1 + _P_TRUNC,
    _IMPORT + "    >>> ndimage.gaussian_filter1d(np.array([1.0, 2, 3, 4, 5]), 1).round(3)\n"
    "    array([1.427, 2.068, 3.   , 3.932, 4.573])",
)  # fmt: skip
gaussian_filter.__doc__ = _filter_doc(
    "gaussian_filter", "Multidimensional Gaussian filter, as ``scipy.ndimage.gaussian_filter``.",
    _P_INPUT + _P_SIGMA + "    order : int or sequence of ints\n        The derivative order per filtered axis (0:"
    " smoothing).\n" + _P_OUTPUT + _P_MODE + _P_TRUNC + _P_AXES,
    _IMPORT + _RAMP + "    >>> ndimage.gaussian_filter(a, 1).round(2)\n"
    "    array([[ 2.56,  3.2 ,  4.13,  5.07,  5.71],\n"
    "           [ 5.74,  6.38,  7.32,  8.25,  8.89],\n"
    "           [10.11, 10.75, 11.68, 12.62, 13.26],\n"
    "           [13.29, 13.93, 14.87, 15.8 , 16.44]])",
)  # fmt: skip
uniform_filter1d.__doc__ = _filter_doc(
    "uniform_filter1d", "1-D moving average along an axis, as ``scipy.ndimage.uniform_filter1d`` (a NaN or inf"
    " stays within its windows, where scipy's running sum carries it to the end of the line).",
    _P_INPUT + "    size : int\n        The window length.\n    axis : int\n        The axis filtered.\n" + _P_OUTPUT
    + _P_MODE1 + "    origin : int\n        Shift of the window.\n",
    _IMPORT + "    >>> ndimage.uniform_filter1d(np.array([2, 8, 0, 4, 1, 9, 9, 0]), 3)\n    array([4, 3, 4, 1, 4, 6, 6, 3])",
)  # fmt: skip
uniform_filter.__doc__ = _filter_doc(
    "uniform_filter", "Multidimensional moving average, as ``scipy.ndimage.uniform_filter`` (NaN and inf as in"
    " ``uniform_filter1d``).",
    _P_INPUT + "    size : int or sequence of ints\n        The window length per filtered axis.\n" + _P_OUTPUT
    + _P_MODE + "    origin : int or sequence of ints\n        Shift of the window per filtered axis.\n" + _P_AXES,
    _IMPORT + "    >>> ndimage.uniform_filter(np.array([2, 8, 0, 4, 1, 9, 9, 0]), 3)\n    array([4, 3, 4, 1, 4, 6, 6, 3])",
)  # fmt: skip
_EDGE_PARAMS = _P_INPUT + "    axis : int\n        The axis differentiated.\n" + _P_OUTPUT + _P_MODE
sobel.__doc__ = _filter_doc(
    "sobel", "Sobel derivative along an axis, as ``scipy.ndimage.sobel``.", _EDGE_PARAMS,
    _IMPORT + _SQUARE + "    >>> ndimage.sobel(b, axis=0)\n    array([[  5,  15,  15,   5],\n           [  5,  15,  15,"
    "   5],\n           [ -5, -15, -15,  -5],\n           [ -5, -15, -15,  -5]])",
)  # fmt: skip
prewitt.__doc__ = _filter_doc(
    "prewitt", "Prewitt derivative along an axis, as ``scipy.ndimage.prewitt``.", _EDGE_PARAMS,
    _IMPORT + _SQUARE + "    >>> ndimage.prewitt(b, axis=1)\n    array([[  5,   5,  -5,  -5],\n           [ 10,  10,"
    " -10, -10],\n           [ 10,  10, -10, -10],\n           [  5,   5,  -5,  -5]])",
)  # fmt: skip
laplace.__doc__ = _filter_doc(
    "laplace", "Laplace filter (sum of second differences), as ``scipy.ndimage.laplace``.",
    _P_INPUT + _P_OUTPUT + _P_MODE + _P_AXES,
    _IMPORT + _SQUARE + "    >>> ndimage.laplace(b)\n    array([[  0,   5,   5,   0],\n           [  5, -10, -10,   5],"
    "\n           [  5, -10, -10,   5],\n           [  0,   5,   5,   0]])",
)  # fmt: skip
gaussian_laplace.__doc__ = _filter_doc(
    "gaussian_laplace", "Laplacian of Gaussian, as ``scipy.ndimage.gaussian_laplace``.",
    _P_INPUT + _P_SIGMA + _P_OUTPUT + _P_MODE + _P_AXES + "    **kwargs\n        ``truncate``, ``radius`` (as"
    " gaussian_filter).\n",
    _IMPORT + _RAMP + "    >>> ndimage.gaussian_laplace(a, 1).round(2)[0]\n"
    "    array([4.05, 3.65, 3.38, 3.1 , 2.7 ])",
)  # fmt: skip
gaussian_gradient_magnitude.__doc__ = _filter_doc(
    "gaussian_gradient_magnitude", "Gradient magnitude with Gaussian derivatives, as"
    " ``scipy.ndimage.gaussian_gradient_magnitude``.",
    _P_INPUT + _P_SIGMA + _P_OUTPUT + _P_MODE + _P_AXES + "    **kwargs\n        ``truncate``, ``radius`` (as"
    " gaussian_filter).\n",
    _IMPORT + _RAMP + "    >>> ndimage.gaussian_gradient_magnitude(a, 1).round(2)[1]\n"
    "    array([4.19, 4.26, 4.28, 4.26, 4.19])",
)  # fmt: skip
