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
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from ._dask import is_dask


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


def enter(op: Op, args: dict) -> Any:
    """Run ``op`` on its arguments (by name): the entry path of every public function."""
    if op.dask is not None and is_dask(args[op.routed_by]):
        check_names(op, args)
        return op.dask(args)
    return op.run(args)


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
        exec(f"def {template.__name__}{bare}:\n    return _enter(_op, {{{names}}})\n", namespace)
        func = namespace[template.__name__]
        func.__doc__ = template.__doc__
        func.__module__ = template.__module__
        func.__qualname__ = template.__qualname__
        func.__signature__ = sig  # (annotations kept for help() and IDEs)
        func.__fastconv_op__ = op
        return func

    return make


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
