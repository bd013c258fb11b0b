"""What an algorithm's plan module declares: :class:`Method` records (read by
:mod:`fastconv.dispatch`), and the helpers their cost features share.  No
Numba, no kernel: everything here runs when ``fastconv.explain`` plans."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Method:
    """One algorithm for one or more operations.

    ``supports(spec)`` returns ``None`` when the method can compute ``spec``,
    else the reason it cannot; ``workspace(spec)`` is the temporary memory in
    bytes; ``features(spec)`` are the quantities its time grows with, each
    multiplied by the constant of that name in ``cost_model.json`` under
    ``cost_key`` (None: no estimate -- tier 0); ``runner``
    ("module:function") is imported only when the plan runs, so planning
    never imports Numba.
    """

    name: str
    ops: tuple[str, ...]
    runner: str | Callable[..., Any]
    supports: Callable[[Any], str | None]
    workspace: Callable[[Any], int]
    description: str
    features: Callable[..., dict[str, float]] | None = None
    #: the method's entry in cost_model.json (its features' constants)
    cost_key: str | None = None
    #: a share of the time estimated from another method's constants (the
    #: fit subtracts it and fits only this method's own constants)
    base_cost: Callable[[Any, dict], float] | None = None
    #: the sub-problems the method runs as: ``children(spec)`` gives one spec
    #: (or None: nothing to compute) per part; the selector plans each one,
    #: the runner receives those plans (``plan=``) and never selects itself,
    #: and ``features`` receive the children's estimated seconds (``child_s``)
    children: Callable[[Any], tuple] | None = None
    #: which of the method's code paths runs for ``spec`` (a name shown by
    #: ``explain`` and handed to the runner as ``variant=``); None: one path
    variant: Callable[[Any], str] | None = None
    #: the variants that can compute ``spec`` (each forced by
    #: ``method="name:variant"``); with it, ``supports``, ``workspace`` and
    #: ``features`` take the variant as a second argument, and the runner
    #: receives it (``variant=``)
    variants: Callable[[Any], tuple[str, ...]] | None = None
    #: an estimate of seconds in place of ``features`` x constants (a user's
    #: own method, a mock in a test)
    estimate: Callable[[Any, dict], float] | None = None
    #: float32 error, as a fraction of the output's largest magnitude: the
    #: worst ``bench/precision.py`` measured on realistic data (None: not
    #: measured); ``explain`` shows the pick's
    float32_error: float | None = None
    #: within a small factor of direct summation in float32 (what
    #: ``precision="high"`` allows; Winograd F(4x4) is not)
    precise: bool = True
    #: wherever it supports a call it is the plan (the other methods step
    #: aside, a forced one is replaced and ``explain`` says why); elsewhere it
    #: is not a candidate -- ``bias_only``, for a convolution without input
    #: channels, where the other kernels have nothing to sum
    takes_over: bool = False
    #: never chosen by "auto" for input containing NaN/Inf (it would spread them)
    finite_only: bool = False
    #: a ``finite_only`` method whose kernel checks the input as it reads it
    #: and raises ``kernels.NonFiniteInput`` (the dispatcher then runs another
    #: method): only the weights are checked beforehand, saving a pass over
    #: the input (measured: 0.35 ms of a 7 ms 64 @56 layer)
    checks_input: bool = False
    #: likewise for the weights: a method whose kernel probes every weight it
    #: reads (Winograd's weight transform) is not preceded by a check of them
    #: (measured: 0.5 ms, a pass over a 512x512x3x3 weight, of a 5.2 ms layer)
    checks_weights: bool = False
    #: tier 0 (:mod:`fastconv.kernels.tier0`): needs no compilation; never
    #: chosen by the cost model, it runs while the chosen kernel compiles
    #: (:mod:`fastconv._warm`) or when forced by name
    fallback: bool = False
    #: ("module:function") ``prepare(spec, num_threads, **runner_extras)``
    #: returns ``run(ops, out)``: the runner with everything that depends
    #: only on the spec (launch parameters, tables, serial or parallel
    #: build) decided once, for repeated calls; None: the runner is bound as is
    prepare: str | None = None

    def load(self) -> Callable[..., Any]:
        return load(self.runner)

    def check(self, spec, variant: str | None = None) -> str | None:
        """None when the method (``variant``) can compute ``spec``, else why not."""
        return self.supports(spec, variant) if self.variants is not None else self.supports(spec)

    def workspace_of(self, spec, variant: str | None = None) -> int:
        return int(self.workspace(spec, variant) if self.variants is not None else self.workspace(spec))

    def cost(self, spec, constants: dict, child_s: float = 0.0, variant: str | None = None) -> float | None:
        """Estimated seconds (None: this method makes no estimate)."""
        if self.estimate is not None:
            return self.estimate(spec, constants)
        if self.features is None:
            return None
        own = linear_cost(self.feature_values(spec, child_s, variant), constants.get(self.cost_key, {}))
        return own if self.base_cost is None else own + self.base_cost(spec, constants)

    def feature_values(self, spec, child_s: float = 0.0, variant: str | None = None) -> dict[str, float]:
        """The quantities this method's time grows with on ``spec`` (what its
        constants multiply)."""
        if self.children is not None:
            return self.features(spec, child_s)
        if self.variants is not None:
            return self.features(spec, variant)
        return self.features(spec)


def load(runner: str | Callable[..., Any]) -> Callable[..., Any]:
    """The function a ``"module:function"`` string names."""
    if callable(runner):
        return runner
    module, _, func = runner.partition(":")
    return getattr(importlib.import_module(module), func)


def linear_cost(features: dict[str, float], constants: dict[str, float]) -> float:
    """Estimated seconds: sum of feature x constant (a missing constant counts 0)."""
    return sum(v * constants.get(k, 0.0) for k, v in features.items())


def settings() -> tuple[int, int]:
    """(workspace_limit, num_threads) of the calling context."""
    from .._config import get_config

    cfg = get_config()
    return cfg.workspace_limit, cfg.num_threads


def always(spec) -> str | None:
    return None


def no_workspace(spec) -> int:
    return 0


def needs_threadpoolctl(spec) -> str | None:
    """The GEMM methods call BLAS from inside Numba's parallel regions with
    BLAS limited to one thread; without threadpoolctl that limit cannot be set
    and OpenBLAS would nest its own threads (oversubscription, possible hang)."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return "needs threadpoolctl to keep BLAS single-threaded inside Numba's threads (pip install threadpoolctl)"
    return None


def prod(values) -> int:
    n = 1
    for v in values:
        n *= v
    return n


#: the NN ops each family of plan modules registers for
CONV_OPS = ("conv1d", "conv2d", "conv3d")
TRANSPOSE_OPS = ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
POOL_OPS = tuple(f"{kind}_pool{nd}d" for kind in ("max", "avg", "adaptive_max", "adaptive_avg") for nd in (1, 2, 3))
FILTER_OPS = ("ndimage",)
SIGNAL_OPS = ("signal",)
CUDA_CONV_OPS = tuple(f"{op}@cuda" for op in CONV_OPS)
CUDA_TRANSPOSE_OPS = tuple(f"{op}@cuda" for op in TRANSPOSE_OPS)
#: tier 0's name (a method of every CPU operation that needs no compilation)
TIER0 = "numpy"
