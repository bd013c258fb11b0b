"""torch.nn.functional-style operations on NumPy arrays.

Each function is an operation descriptor (:mod:`fastconv._ops`): it only
validates (``_spec``), plans (``dispatch``) and runs (``_execute``); the
loops live in ``fastconv.kernels``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._calls import FULL
from ._execute import conv_executor, pool_executor, run_conv, run_pool
from ._ops import Op, operation
from ._spec import adaptive_pool_spec, conv_spec, conv_transpose_spec, pool_spec
from .dispatch import select

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
]

_CONV_DOC = """{nd}-D convolution (cross-correlation, as torch) over an ``(N, C, {axes})`` input.

    Same arguments, defaults, output shape and dtype rules as
    ``torch.nn.functional.conv{nd}d``, on NumPy arrays.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, {axes})``, or unbatched ``(C_in, {axes})``.
    weight : array_like
        ``(C_out, C_in / groups, {kaxes})``.
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of {nd} ints
        Positive.
    padding : int, tuple of {nd} ints, ``"valid"`` or ``"same"``
        Implicit padding on both sides; ``"same"`` needs stride 1 and puts an
        odd extra element on the right, as torch.
    groups : int
        Splits input and output channels into ``groups`` independent
        convolutions (``groups == C_in`` is depthwise).
    padding_mode : {{"zeros", "reflect", "replicate", "circular"}}
        What the padding contains (torch's ``nn.Conv{nd}d`` option, here on
        the function).
    method : str
        ``"auto"`` lets the dispatcher choose; any name from
        ``fastconv.available_methods(fastconv.conv{nd}d, ...)`` forces it.
    device : None, "cpu" or "cuda"
        Where to compute: None follows the input (GPU arrays -- CuPy, torch
        CUDA tensors, numba device arrays -- stay on the GPU and the result is
        of the same library); "cuda" copies NumPy inputs to the GPU and the
        result back.
    out : numpy.ndarray, optional
        Preallocated result of exactly the output shape and dtype.

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, {oaxes})`` (unbatched input gives an unbatched result),
        float32 for float32/float16 inputs, float64 otherwise.

    Examples
    --------
{example}
    """

_EXAMPLES = {
    1: """    >>> import numpy as np, fastconv
    >>> x = np.arange(5, dtype=np.float32).reshape(1, 1, 5)
    >>> w = np.array([[[1, 0, -1]]], dtype=np.float32)
    >>> fastconv.conv1d(x, w)
    array([[[-2., -2., -2.]]], dtype=float32)
    >>> fastconv.conv1d(x, w, padding="same").shape
    (1, 1, 5)""",
    2: """    >>> import numpy as np, fastconv
    >>> x = np.ones((2, 3, 8, 8), dtype=np.float32)
    >>> w = np.ones((4, 3, 3, 3), dtype=np.float32)
    >>> y = fastconv.conv2d(x, w, padding=1, stride=2)
    >>> y.shape, float(y[0, 0, 1, 1]), float(y[0, 0, 0, 0])
    ((2, 4, 4, 4), 27.0, 12.0)""",
    3: """    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 2, 4, 4, 4))
    >>> w = np.ones((2, 1, 2, 2, 2))
    >>> y = fastconv.conv3d(x, w, groups=2)
    >>> y.shape, y.dtype, float(y.max())
    ((1, 2, 3, 3, 3), dtype('float64'), 8.0)""",
}


def _conv_doc(nd: int) -> str:
    axes = ("D", "H", "W")[3 - nd :]
    return _CONV_DOC.format(
        nd=nd,
        axes=", ".join(axes),
        kaxes=", ".join("k" + a for a in axes),
        oaxes=", ".join("O" + a for a in axes),
        example=_EXAMPLES[nd],
    )


def _gpu_conv(spec, a: dict, out):
    from .cuda._run import run_conv as gpu_run_conv
    from .dispatch import select

    return gpu_run_conv(select(spec), a["input"], a["weight"], a["bias"], out)


def _gpu_pool(spec, input):
    from .cuda._run import run_pool as gpu_run_pool

    return gpu_run_pool(spec, input)


def _conv_op(nd: int, transposed: bool) -> Op:
    """conv{nd}d or conv_transpose{nd}d: spec (validation, device), then the
    CPU plan or the GPU; a dask input tiled over batch and space."""
    name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    if transposed:

        def spec(input, weight, bias, stride, padding, output_padding, groups, dilation, method, device, out):
            return conv_transpose_spec(
                nd, input, weight, bias, stride, padding, output_padding, groups, dilation, method, device, out
            )

    else:

        def spec(input, weight, bias, stride, padding, dilation, groups, padding_mode, method, device, out):
            return conv_spec(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, method, device,
                             out)  # fmt: skip

    def run(a: dict):
        s, ops, out = spec(**a)
        if s.device == "cuda":
            return _gpu_conv(s, a, out)
        return run_conv(s, ops, out)

    def dask(a: dict):
        from ._dask import nn_conv

        return nn_conv(spec, nd, a, transposed=transposed)

    def prepare(a: dict):
        if not _host_arrays(a, "input", "weight", "bias", "out"):
            return FULL
        s, ops, _ = spec(**a)
        if s.device == "cuda":
            return FULL
        return conv_executor(s, select(s, ops))

    return Op(name, spec, run, dask, method_op=lambda a: name, prepare=prepare, arrays=("input", "weight"),
              maybe_arrays=("bias", "out"))  # fmt: skip


def _host_arrays(a: dict, *names: str) -> bool:
    """Whether the call's array arguments are all NumPy arrays (or None):
    the calls the repeated-call executors serve."""
    return all(a[n] is None or type(a[n]) is np.ndarray for n in names)


@operation(_conv_op(1, False))
def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    device: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray: ...


@operation(_conv_op(2, False))
def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    device: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray: ...


@operation(_conv_op(3, False))
def conv3d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    device: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray: ...


for _nd, _f in ((1, conv1d), (2, conv2d), (3, conv3d)):
    _f.__doc__ = _conv_doc(_nd)
del _nd, _f


# --- transposed convolution --------------------------------------------------------

_TRANSPOSE_DOC = """{nd}-D transposed convolution ("deconvolution", upconvolution) over an ``(N, C_in, {axes})`` input.

    Same arguments, defaults, output shape and dtype rules as
    ``torch.nn.functional.conv_transpose{nd}d``, on NumPy arrays: the adjoint
    (gradient) of ``conv{nd}d`` with the same weight, stride, padding,
    dilation and groups.  Output size per axis:
    ``(in - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1``.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, {axes})``, or unbatched ``(C_in, {axes})``.
    weight : array_like
        ``(C_in, C_out / groups, {kaxes})`` (torch's layout for transposed conv).
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of {nd} ints
        Positive.
    padding : int or tuple of {nd} ints
        ``dilation*(kernel - 1) - padding`` zeros are implied on each side.
    output_padding : int or tuple of {nd} ints
        Extra size on one side of each output axis; smaller than either stride
        or dilation.
    groups : int
        Splits input and output channels into ``groups`` independent parts.
    method : str
        ``"auto"``, ``"direct"`` (gather form) or ``"subpixel"`` (stride
        decomposition into stride-1 convolutions); see
        ``fastconv.available_methods``.
    device : None, "cpu" or "cuda"
        Where to compute: None follows the input (GPU arrays -- CuPy, torch
        CUDA tensors, numba device arrays -- stay on the GPU and the result is
        of the same library); "cuda" copies NumPy inputs to the GPU and the
        result back.
    out : numpy.ndarray, optional
        Preallocated result of exactly the output shape and dtype.

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, {oaxes})`` (unbatched input gives an unbatched result).

    Examples
    --------
{example}
    """

_TRANSPOSE_EXAMPLES = {
    1: """    >>> import numpy as np, fastconv
    >>> x = np.array([[[1.0, 2.0]]], dtype=np.float32)
    >>> w = np.array([[[1.0, 10.0, 100.0]]], dtype=np.float32)
    >>> fastconv.conv_transpose1d(x, w, stride=2)
    array([[[  1.,  10., 102.,  20., 200.]]], dtype=float32)""",
    2: """    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 8, 7, 7), dtype=np.float32)
    >>> w = np.ones((8, 4, 4, 4), dtype=np.float32)
    >>> y = fastconv.conv_transpose2d(x, w, stride=2, padding=1)
    >>> y.shape, float(y[0, 0, 3, 3])
    ((1, 4, 14, 14), 32.0)""",
    3: """    >>> import numpy as np, fastconv
    >>> x = np.ones((1, 2, 3, 3, 3))
    >>> y = fastconv.conv_transpose3d(x, np.ones((2, 1, 2, 2, 2)), stride=2, groups=2)
    >>> y.shape, float(y.max())
    ((1, 2, 6, 6, 6), 1.0)""",
}


def _make_conv_transpose(nd: int):
    def conv_transpose(
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        dilation: Any = 1,
        *,
        method: str = "auto",
        device: Any = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray: ...

    axes = ("D", "H", "W")[3 - nd :]
    conv_transpose.__doc__ = _TRANSPOSE_DOC.format(
        nd=nd,
        axes=", ".join(axes),
        kaxes=", ".join("k" + a for a in axes),
        oaxes=", ".join("O" + a for a in axes),
        example=_TRANSPOSE_EXAMPLES[nd],
    )
    return operation(_conv_op(nd, True))(_named(conv_transpose, f"conv_transpose{nd}d"))


# --- pooling -------------------------------------------------------------------------

_POOL_COMMON = """
    Same arguments, defaults, output shape, rounding rules and NaN handling as
    ``torch.nn.functional.{name}``, on NumPy arrays (float32 stays float32,
    float64 stays float64, other real dtypes are pooled in float64).

    Parameters
    ----------
    input : array_like
        ``(N, C, {axes})``, or unbatched ``(C, {axes})``.
{params}    device : None, "cpu" or "cuda"
        Where to compute: None follows the input (GPU arrays -- CuPy, torch
        CUDA tensors, numba device arrays -- stay on the GPU and the result is
        of the same library); "cuda" copies NumPy inputs to the GPU and the
        result back.

    Returns
    -------
    numpy.ndarray{returns}

    Examples
    --------
{example}
    """

_WINDOW_PARAMS = """    kernel_size : int or tuple of {nd} ints
        Window size.
    stride : int or tuple of {nd} ints, optional
        Defaults to ``kernel_size``.
    padding : int or tuple of {nd} ints
        Implicit padding on both sides, at most half of ``kernel_size``
        (padding is never selected by max, and counted by avg only with
        ``count_include_pad``).
"""

_MAX_PARAMS = (
    _WINDOW_PARAMS
    + """    dilation : int or tuple of {nd} ints
        Spacing between the window's taps.
    ceil_mode : bool
        Round the output size up; the last window must still start inside the
        input or the left padding.
    return_indices : bool
        Also return the flat index (into each input plane/volume) of every
        maximum, as torch (the last NaN when the window holds NaN).
"""
)

_AVG_PARAMS = (
    _WINDOW_PARAMS
    + """    ceil_mode : bool
        Round the output size up (windows may hang over the edge).
    count_include_pad : bool
        Count the zero padding in the divisor.
    divisor_override : int, optional
        Divide every window sum by this instead.
"""
)

_ADAPTIVE_PARAMS = """    output_size : int or tuple of {nd} ints or None
        Output spatial size; ``None`` keeps that input size.
"""

_ADAPTIVE_MAX_PARAMS = (
    _ADAPTIVE_PARAMS
    + """    return_indices : bool
        Also return the flat index (into each input plane/volume) of every maximum.
"""
)

_POOL_EXAMPLES = {
    "max_pool": """    >>> import numpy as np, fastconv
    >>> x = np.arange({n}, dtype=np.float32).reshape({shape})
    >>> y, i = fastconv.max_pool{nd}d(x, 2, return_indices=True)
    >>> y.shape, float(y.max()), int(i.max())
    ({oshape}, {last}.0, {last})""",
    "avg_pool": """    >>> import numpy as np, fastconv
    >>> x = np.ones({shape}, dtype=np.float32)
    >>> y = fastconv.avg_pool{nd}d(x, 3, stride=2, padding=1)
    >>> float(y.max()), round(float(y.min()), 4)
    (1.0, {corner})""",
    "adaptive_avg_pool": """    >>> import numpy as np, fastconv
    >>> x = np.arange({n}, dtype=np.float64).reshape({shape})
    >>> fastconv.adaptive_avg_pool{nd}d(x, 1).reshape(-1)
    array([{mean}])""",
    "adaptive_max_pool": """    >>> import numpy as np, fastconv
    >>> x = np.arange({n}, dtype=np.float32).reshape({shape})
    >>> y = fastconv.adaptive_max_pool{nd}d(x, 1)
    >>> y.shape, float(y.max())
    ({gshape}, {last}.0)""",
}


def _pool_doc(kind: str, nd: int, summary: str) -> str:
    axes = ", ".join(("D", "H", "W")[3 - nd :])
    shape = (1, 1) + (4,) * nd
    n = 4**nd
    params = {
        "max_pool": _MAX_PARAMS,
        "avg_pool": _AVG_PARAMS,
        "adaptive_avg_pool": _ADAPTIVE_PARAMS,
        "adaptive_max_pool": _ADAPTIVE_MAX_PARAMS,
    }[kind].format(nd=nd)
    returns = "\n        ``(N, C, {o})`` (unbatched input gives an unbatched result).".format(
        o=", ".join("O" + a for a in ("D", "H", "W")[3 - nd :])
    )
    if kind in ("max_pool", "adaptive_max_pool"):
        returns += "\n    numpy.ndarray of int64, only with ``return_indices``\n        Flat indices of the maxima."
    example = _POOL_EXAMPLES[kind].format(
        n=n,
        nd=nd,
        shape=shape,
        oshape=(1, 1) + (2,) * nd,
        gshape=(1, 1) + (1,) * nd,
        last=n - 1,
        corner=round((4 / 9) ** 0 * (2 / 3) ** nd, 4),
        mean=f"{(n - 1) / 2}",
    )
    body = _POOL_COMMON.format(name=f"{kind}{nd}d", axes=axes, params=params, returns=returns, example=example)
    return summary + "\n" + body


def _pool_op(name: str, nd: int, spec) -> Op:
    """A pooling op: spec (validation, device), then the CPU plan or the GPU;
    a dask input tiled over batch and space."""

    def run(a: dict):
        s, planes = spec(**a)
        if s.device == "cuda":
            return _gpu_pool(s, a["input"])
        return run_pool(s, planes)

    def dask(a: dict):
        from ._dask import nn_pool

        return nn_pool(nd, a["input"], lambda x: spec(**(a | {"input": x}))[0])

    def prepare(a: dict):
        if type(a["input"]) is not np.ndarray:
            return FULL
        s, _ = spec(**a)
        if s.device == "cuda":
            return FULL
        return pool_executor(s, select(s))

    return Op(name, spec, run, dask, prepare=prepare, arrays=("input",))


def _make_max_pool(nd: int):
    def spec(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, device):
        return pool_spec("max", nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, True,
                         None, device)  # fmt: skip

    def max_pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
        *,
        device: Any = None,
    ): ...

    name = f"max_pool{nd}d"
    func = _named(max_pool, name, _pool_doc("max_pool", nd, f"{nd}-D max pooling."))
    return operation(_pool_op(name, nd, spec))(func)


def _make_avg_pool(nd: int):
    def spec(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, device):
        return pool_spec("avg", nd, input, kernel_size, stride, padding, 1, ceil_mode, False, count_include_pad,
                         divisor_override, device)  # fmt: skip

    def avg_pool(
        input: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        device: Any = None,
    ) -> np.ndarray: ...

    name = f"avg_pool{nd}d"
    func = _named(avg_pool, name, _pool_doc("avg_pool", nd, f"{nd}-D average pooling."))
    return operation(_pool_op(name, nd, spec))(func)


def _make_adaptive_avg_pool(nd: int):
    def spec(input, output_size, device):
        return adaptive_pool_spec("avg", nd, input, output_size, False, device)

    def adaptive_avg_pool(input: Any, output_size: Any, *, device: Any = None) -> np.ndarray: ...

    name = f"adaptive_avg_pool{nd}d"
    doc = _pool_doc("adaptive_avg_pool", nd, f"{nd}-D adaptive average pooling (output_size 1: global average).")
    return operation(_pool_op(name, nd, spec))(_named(adaptive_avg_pool, name, doc))


def _make_adaptive_max_pool(nd: int):
    def spec(input, output_size, return_indices, device):
        return adaptive_pool_spec("max", nd, input, output_size, return_indices, device)

    def adaptive_max_pool(input: Any, output_size: Any, return_indices: bool = False, *, device: Any = None): ...

    name = f"adaptive_max_pool{nd}d"
    doc = _pool_doc("adaptive_max_pool", nd, f"{nd}-D adaptive max pooling (output_size 1: global max).")
    return operation(_pool_op(name, nd, spec))(_named(adaptive_max_pool, name, doc))


def _named(func, name: str, doc: str | None = None):
    func.__name__ = func.__qualname__ = name
    if doc is not None:
        func.__doc__ = doc
    return func


conv_transpose1d, conv_transpose2d, conv_transpose3d = (_make_conv_transpose(nd) for nd in (1, 2, 3))
max_pool1d, max_pool2d, max_pool3d = (_make_max_pool(nd) for nd in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_make_avg_pool(nd) for nd in (1, 2, 3))
adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d = (_make_adaptive_avg_pool(nd) for nd in (1, 2, 3))
adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d = (_make_adaptive_max_pool(nd) for nd in (1, 2, 3))
