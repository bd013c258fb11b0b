"""The one entry path of every public function.

Each public operation of ``fastconv``, ``fastconv.signal`` and
``fastconv.ndimage`` is an :class:`Op` descriptor -- how its arguments become
a spec (every shape rule and error message, in :mod:`fastconv._spec`), how a
validated call runs (CPU kernels, or the GPU for GPU arrays and
``device="cuda"``), and how a dask array is tiled -- made into a function by
:func:`operation` from a signature template.  The generated function passes
its arguments by name to :func:`enter`, the same for every operation:

1. a dask input goes to the op's dask executor, after ``method=`` and
   ``device=`` are checked (the executor plans every chunk: spec -> plan ->
   kernel, never the public function);
2. everything else to the op's ``run``, which validates (the spec) and then
   routes by the spec's device.

``fastconv.explain`` and ``fastconv.available_methods`` read the descriptor's
``spec``, so they answer for every public operation without importing Numba.

Repeated calls take a shorter road.  An op with a ``prepare`` hook gets a
call cache: the generated function builds a cheap key from its arguments
(array types, shapes and dtypes; every other argument with its type, tuples
with their elements' types; the settings in force) and, on a hit, hands
the arguments straight to the executor that ``prepare`` built on the first
such call: validation and planning done once, the kernel's launch
parameters computed once.  What the key does not hold -- the arrays'
layout and contents, ``out``'s writeability -- the executor handles on
every call, or declines (returns :data:`MISS`, e.g. weights whose values
changed where the plan depends on them) and the full path runs instead.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from ._calls import FULL, MISS, new_cache
from ._config import _current
from ._dask import is_dask

#: the largest number of executors kept per operation (a program that
#: sees ever new shapes must not grow the cache without bound)
MAX_CALLS = 512


@dataclasses.dataclass(frozen=True)
class Op:
    """A public operation.

    ``spec(**arguments)`` validates a call and returns ``(spec, ...)`` (what
    ``explain`` plans); ``run(arguments)`` computes it; ``dask(arguments)``
    returns the lazy result for a dask input (None: not supported);
    ``method_op(arguments)`` is the registry's name for the operation
    ``method=`` chooses among (None: the function has no ``method=``)."""

    name: str
    spec: Callable[..., tuple]
    run: Callable[[dict], Any]
    dask: Callable[[dict], Any] | None = None
    #: the argument whose array type routes the call (dask or not)
    routed_by: str = "input"
    method_op: Callable[[dict], str] | None = None
    #: ``prepare(arguments)`` validates a call like ``run`` and returns an
    #: executor for the calls with the same key -- ``executor(*arguments)``,
    #: positionally in the signature's order, returns the result or
    #: :data:`MISS` -- or None while none can be made yet (the kernel still
    #: compiling: tier 0 runs).  None: no call cache
    prepare: Callable[[dict], Callable[..., Any] | None] | None = None
    #: the parameters that always take arrays, and those that may (None, or
    #: a dtype): keyed by type, shape and dtype
    arrays: tuple[str, ...] = ()
    maybe_arrays: tuple[str, ...] = ()


def enter(op: Op, args: dict, key: tuple | None = None, calls: dict | None = None) -> Any:
    """Run ``op`` on its arguments (by name): the entry path of every public
    function.  ``key`` (None: not cacheable) is the call's key in ``calls``,
    the op's call cache, where the executor ``prepare`` makes is kept."""
    if op.dask is not None and is_dask(args[op.routed_by]):
        check_names(op, args)
        return op.dask(args)
    if key is not None and calls is not None:
        executor = op.prepare(args)
        if executor is FULL:
            executor = functools.partial(_full, op, tuple(args))
        if executor is not None:
            if len(calls) >= MAX_CALLS:
                calls.clear()
            calls[key] = executor
            result = executor(*args.values())
            if result is not MISS:
                return result
    return op.run(args)


def _full(op: Op, names: tuple[str, ...], *values: Any) -> Any:
    return op.run(dict(zip(names, values)))


def array_key(value: Any) -> Any:
    """An optional array argument's part of a call key (None, an array's
    type, shape and dtype, or another value with its type)."""
    if value is None:
        return None
    if isinstance(value, (type, np.dtype)):  # (numpy's scalar types and dtypes have a ``shape`` too)
        return (type(value), value)
    shape = getattr(value, "shape", None)
    if shape is not None:
        return (type(value), shape, value.dtype)
    return (type(value), value)


def _types(value: tuple) -> tuple:
    return tuple(map(type, value))


def check_names(op: Op, args: dict) -> None:
    """``method=`` and ``device=`` checked before a call leaves the in-memory
    path (dask, GPU), where no spec names them: a misspelt name raises here,
    listing the valid ones."""
    if "device" in args:
        from ._device import check_device

        check_device(args["device"], args[op.routed_by])
    if op.method_op is None or "method" not in args:
        return
    method = args["method"]
    from .dispatch import valid_methods

    valid = valid_methods(op.method_op(args))
    if not isinstance(method, str) or method.partition(":")[0] not in valid:
        raise ValueError(f"method must be one of {valid} for {op.name}, got {method!r}")


def operation(op: Op):
    """Make the public function of ``op`` from a template: its signature,
    name and docstring; the template's body is never run -- the generated
    function hands its arguments, by name, to :func:`enter`."""

    def make(template: Callable) -> Callable:
        sig = inspect.signature(template)
        namespace: dict[str, Any] = {"_enter": enter, "_op": op}
        params = []
        for i, p in enumerate(sig.parameters.values()):
            if p.default is not p.empty:
                namespace[f"_d{i}"] = p.default
            params.append(p.replace(annotation=p.empty, default=p.empty if p.default is p.empty else _Name(f"_d{i}")))
        bare = sig.replace(parameters=params, return_annotation=sig.empty)
        names = ", ".join(f"{name!r}: {name}" for name in sig.parameters)
        if op.prepare is None:
            body = f"    return _enter(_op, {{{names}}})\n"
        else:
            calls = new_cache()
            # (the settings' context variable itself: None for the process defaults)
            namespace.update(_calls=calls, _config=_current.get, _MISS=MISS, _ak=array_key, _types=_types,
                             _kw=_keywords)  # fmt: skip
            extra = [p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD]
            body = _cached_body(op, list(sig.parameters), names, extra)
        exec(f"def {template.__name__}{bare}:\n{body}", namespace)
        func = namespace[template.__name__]
        func.__doc__ = template.__doc__
        func.__module__ = template.__module__
        func.__qualname__ = template.__qualname__
        func.__signature__ = sig  # (annotations kept for help() and IDEs)
        func.__fastconv_op__ = op
        return func

    return make


def _keywords(kwargs: dict) -> tuple:
    """A ``**kwargs`` argument's part of a call key: its items with their types."""
    return tuple(sorted((k, v, type(v)) for k, v in kwargs.items()))


def _cached_body(op: Op, params: list[str], names: str, var_keyword: list[str] = ()) -> str:
    """The generated function's body with a call cache: the key (an
    AttributeError or TypeError -- an array-like that is not an array, a
    list where a tuple would do -- means: no key, the full path)."""
    parts = ["_config()"]
    for p in params:
        if p in op.arrays:
            parts.append(f"type({p}), {p}.shape, {p}.dtype")
        elif p in op.maybe_arrays:
            parts.append(f"_ak({p})")
        elif p in var_keyword:
            parts.append(f"_kw({p})")
        else:
            parts.append(f"{p}, type({p}) if type({p}) is not tuple else _types({p})")
    key = ", ".join(parts)
    return (
        f"    try:\n"
        f"        _k = ({key})\n"
        f"        _e = _calls.get(_k)\n"
        f"    except (AttributeError, TypeError):\n"
        f"        return _enter(_op, {{{names}}})\n"
        f"    if _e is not None:\n"
        f"        _r = _e({', '.join(params)})\n"
        f"        if _r is not _MISS:\n"
        f"            return _r\n"
        f"    return _enter(_op, {{{names}}}, _k, _calls)\n"
    )


class _Name:
    """A default shown by name in the generated source (its value lives in
    the function's namespace)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def op_of(func: Callable) -> Op:
    op = getattr(func, "__fastconv_op__", None)
    if op is None:
        raise TypeError(f"func must be a fastconv operation such as fastconv.conv2d, got {func!r}")
    return op
