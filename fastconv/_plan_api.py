"""``fastconv.explain`` and ``fastconv.available_methods``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ._ops import op_of
from .dispatch import Plan, select


def built(func: Callable, args: tuple, kwargs: dict) -> tuple:
    """What ``func``'s operation descriptor (:mod:`fastconv._ops`) makes of a
    call: (spec, ...) -- for the convolutions (spec, kernel-ready operands, out)."""
    op = op_of(func)
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    return op.spec(**bound.arguments)


def _spec_of(func: Callable, args: tuple, kwargs: dict):
    return built(func, args, kwargs)[0]


def explain(func: Callable, *args: Any, **kwargs: Any) -> Plan:
    """The plan ``func(*args, **kwargs)`` would run, without running it.

    The repr shows the chosen method, every candidate with its estimated time
    and workspace, and why the choice was made.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> x = np.zeros((8, 64, 56, 56), np.float32)
    >>> w = np.zeros((64, 64, 3, 3), np.float32)
    >>> plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    >>> plan.method in fastconv.available_methods(fastconv.conv2d, x, w, padding=1)
    True
    >>> round(plan.flops / 1e9, 2)
    1.85
    """
    return select(_spec_of(func, args, kwargs))


def available_methods(func: Callable, *args: Any, **kwargs: Any) -> list[str]:
    """Names accepted by ``method=`` for this call (``"auto"`` first): the
    methods that support its parameters within the current ``workspace_limit``.

    Examples
    --------
    >>> import numpy as np, fastconv
    >>> fastconv.available_methods(fastconv.conv1d, np.ones((1, 1, 9)), np.ones((1, 1, 3)))
    ['auto', 'blocked', 'depthwise', 'direct', 'fft', 'im2col', 'numpy', 'small', 'winograd_f2', 'winograd_f4']
    >>> x, w = np.ones((1, 8, 16, 16), np.float32), np.ones((8, 8, 3, 3), np.float32)
    >>> fastconv.available_methods(fastconv.conv2d, x, w, padding=1)
    ['auto', 'blocked', 'direct', 'fft', 'im2col', 'numpy', 'small', 'winograd_f2', 'winograd_f4']
    >>> fastconv.available_methods(fastconv.conv2d, x, w, padding=1, stride=2)
    ['auto', 'blocked', 'direct', 'fft', 'im2col', 'numpy', 'small']
    """
    from .dispatch.selector import feasible_methods

    return ["auto", *feasible_methods(_spec_of(func, args, kwargs))]
