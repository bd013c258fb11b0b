"""torch.nn.functional-style operations on NumPy arrays.

Each function only validates (``_spec``), plans (``dispatch``) and runs
(``_execute``); the loops live in ``fastconv.kernels``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._execute import run_conv
from ._spec import conv_spec

__all__ = ["conv1d", "conv2d", "conv3d"]

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
    device : None or "cpu"
        Where to compute.
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


def _spec_builder(nd: int):
    """What :func:`fastconv.explain` calls: the public function's arguments -> spec."""
    return functools.partial(conv_spec, nd)


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
) -> np.ndarray:
    spec, ops, out = conv_spec(
        1, input, weight, bias, stride, padding, dilation, groups, padding_mode, method, device, out
    )
    return run_conv(spec, ops, out)


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
) -> np.ndarray:
    spec, ops, out = conv_spec(
        2, input, weight, bias, stride, padding, dilation, groups, padding_mode, method, device, out
    )
    return run_conv(spec, ops, out)


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
) -> np.ndarray:
    spec, ops, out = conv_spec(
        3, input, weight, bias, stride, padding, dilation, groups, padding_mode, method, device, out
    )
    return run_conv(spec, ops, out)


for _nd, _f in ((1, conv1d), (2, conv2d), (3, conv3d)):
    _f.__doc__ = _conv_doc(_nd)
    _f.__fastconv_spec__ = _spec_builder(_nd)
del _nd, _f
