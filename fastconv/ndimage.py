"""``scipy.ndimage``-style filters on NumPy arrays: correlate, convolve and
their 1-D forms, with every boundary mode, ``cval``, ``origin`` and
``output=``, the same results and result dtypes as scipy -- computed by the
dispatcher's direct, separable or FFT method, in parallel, without the GIL.

Each function only validates (``_spec``), plans (``dispatch``) and runs
(``_execute``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np

from ._calls import FULL, MISS
from ._dask import is_dask
from ._device import is_gpu_array
from ._execute import cast_filtered, filter_executor, run_filter
from ._ops import Op, operation
from ._spec import (
    as_array,
    axis_filter_args,
    check_gpu_filter_method,
    correlation_weights,
    filter_spec,
    weight_fields,
)

__all__ = ["convolve", "convolve1d", "correlate", "correlate1d"]

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
    method: str = "auto",
) -> np.ndarray:
    return _filter(False, input, weights, output, mode, cval, origin, method)


def convolve(
    input: Any,
    weights: Any,
    output: Any = None,
    mode: str = "reflect",
    cval: float = 0.0,
    origin: Any = 0,
    *,
    method: str = "auto",
) -> np.ndarray:
    return _filter(True, input, weights, output, mode, cval, origin, method)


def _filter(convolve: bool, input, weights, output, mode, cval, origin, method):
    """correlate / convolve: the dask path or validate -> plan -> run."""
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
    flat = moved.reshape(-1, moved.shape[-1]) if moved.ndim > 1 else moved.reshape(1, -1)
    out_arr = output if isinstance(output, np.ndarray) else None
    if out_arr is not None and out_arr.shape != x.shape:
        raise ValueError(f"output must have the input's shape {x.shape}, got {out_arr.shape}")
    return filter_spec(
        flat, w.reshape(1, -1), None if out_arr is not None else output, mode, cval, (0, origin), "auto",
        convolve=convolve,
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
    """Whether correlation weights with new values keep ``spec`` (its
    footprint count and separability are read from the values): see
    ``filter_executor``."""
    return lambda w: weight_fields(w, spec.ndim, spec.is_complex) == (spec.taps, spec.rank1)


def _prepare(convolve: bool, one_d: bool):
    """The repeated-call executor of a real NumPy ndimage call (complex
    data, more than three axes and non-NumPy arrays take the full path)."""

    def prepare(a: dict):
        x, weights, output = a["input"], a["weights"], a["output"]
        if type(x) is not np.ndarray or type(weights) is not np.ndarray or is_gpu_array(output):
            return FULL
        if one_d:
            spec, _, w, _ = _axis_spec(x, weights, a["axis"], output, a["mode"], a["cval"], a["origin"], convolve)
            axis = int(a["axis"]) % x.ndim
        else:
            spec, _, w, _ = filter_spec(x, weights, output, a["mode"], a["cval"], a["origin"], a["method"],
                                         convolve=convolve)  # fmt: skip
        if spec.is_complex or spec.ndim > 3:
            return FULL
        if one_d:  # (np.moveaxis costs more than a small filter: its permutations once)
            order = [i for i in range(x.ndim) if i != axis] + [axis]
            to_last, back = tuple(order), tuple(int(i) for i in np.argsort(order))
            moved_shape = tuple(x.shape[i] for i in order)
            if axis == x.ndim - 1:
                to_last = back = None
            rows = (-1 if x.ndim > 1 else 1, x.shape[axis])
        execute = filter_executor(spec, w, _same_spec(spec), moved_shape if one_d else None)
        if execute is None:
            return None

        def executor(input, weights, *rest):
            output = rest[1] if one_d else rest[0]
            if isinstance(output, np.ndarray) and not output.flags.writeable:
                return MISS  # (the full path says why)
            if one_d:  # (the weights' values are what the executor compares: no reshape)
                flat = (input if to_last is None else input.transpose(to_last)).reshape(rows)
            else:
                flat = input
            y = execute(flat, correlation_weights(weights, convolve))
            if y is MISS:
                return MISS
            if not one_d:
                return cast_filtered(spec, y, output if isinstance(output, np.ndarray) else None)
            result = cast_filtered(spec, y, None)  # (in the moved axes' shape)
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
