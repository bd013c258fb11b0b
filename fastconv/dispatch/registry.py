"""The method registry the dispatcher reads.  A new algorithm is one kernel
module plus one :func:`register` call here; no public function changes."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

CONV_OPS = ("conv1d", "conv2d", "conv3d")


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered kernel.

    ``supports(spec)`` returns ``None`` when the method can compute ``spec``,
    else the reason it cannot; ``cost(spec, constants)`` estimates seconds from
    the cost-model constants (``cost_model.json``); ``workspace(spec)`` is the
    temporary memory in bytes; ``runner`` ("module:function") is imported on
    first use so that ``import fastconv`` never imports numba.
    """

    name: str
    ops: tuple[str, ...]
    runner: str | Callable[..., None]
    supports: Callable[[Any], str | None]
    cost: Callable[[Any, dict], float]
    workspace: Callable[[Any], int]
    description: str

    def load(self) -> Callable[..., None]:
        if callable(self.runner):
            return self.runner
        module, _, func = self.runner.partition(":")
        return getattr(importlib.import_module(module), func)


_REGISTRY: dict[str, dict[str, Method]] = {}


def register(method: Method) -> Method:
    for op in method.ops:
        table = _REGISTRY.setdefault(op, {})
        if method.name in table or method.name == "auto":
            raise ValueError(f"method {method.name!r} is already registered for {op}")
        table[method.name] = method
    return method


def unregister(name: str, ops: tuple[str, ...]) -> None:
    for op in ops:
        _REGISTRY.get(op, {}).pop(name, None)


def methods_for(op: str) -> dict[str, Method]:
    return dict(_REGISTRY.get(op, {}))


# --- registrations ----------------------------------------------------------------


def _direct_supports(spec) -> str | None:
    return None


def _direct_cost(spec, constants) -> float:
    c = constants["direct"]
    # FMA rate for the vectorised row passes, plus a fixed cost per pass (one
    # pass = 4 taps x 4 channels over one output row), which dominates narrow rows
    rate = c["flops_per_s"] if spec.stride[-1] == 1 else c["flops_per_s_strided"]
    passes = spec.macs / (16 * max(1, spec.out_spatial[-1]))
    return c["overhead_s"] + spec.flops / rate + passes * c["row_pass_s"]


register(
    Method(
        name="direct",
        ops=CONV_OPS,
        runner="fastconv.kernels.direct:conv_direct",
        supports=_direct_supports,
        cost=_direct_cost,
        workspace=lambda spec: 0,
        description="direct sum of shifted rows, 4x4 register-blocked, no workspace",
    )
)
