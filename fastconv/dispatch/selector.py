"""Selection in three steps: guard rules (``supports``, workspace limit), the
operation-count cost model (constants in ``cost_model.json``), and the plan
cache.  :class:`Plan` explains the choice."""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import threading
from typing import Any

import numpy as np

from .. import _warm
from .._config import get_config
from .._spec import ConvSpec
from ..kernels import NonFiniteInput
from .registry import TIER0, methods_for


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str
    estimated_s: float | None
    workspace_bytes: int
    rejected: str | None  # None when feasible
    measured_s: float | None = None

    def row(self, chosen: bool) -> str:
        mark = "*" if chosen else " "
        est = "-" if self.estimated_s is None else f"{self.estimated_s * 1e3:.3f} ms"
        meas = "" if self.measured_s is None else f"  measured {self.measured_s * 1e3:.3f} ms"
        why = "" if self.rejected is None else f"  rejected: {self.rejected}"
        return f" {mark} {self.name:<12} estimated {est:>12}{meas}  workspace {_bytes(self.workspace_bytes):>9}{why}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """The dispatcher's decision for one call: what runs, and why."""

    op: str
    spec: Any
    method: str
    reason: str
    candidates: tuple[Candidate, ...]
    num_threads: int

    @property
    def flops(self) -> int:
        return self.spec.flops

    @property
    def workspace_bytes(self) -> int:
        return next(c.workspace_bytes for c in self.candidates if c.name == self.method)

    def run(self, ops, out: np.ndarray) -> None:
        if isinstance(self.spec, ConvSpec) and self.spec.c_in == 0 and isinstance(out, np.ndarray):
            # no input channels: the sum is empty, every output is its bias
            # (one rule for every CPU method, forward or transposed)
            out[...] = 0 if ops.b is None else ops.b.reshape((-1,) + (1,) * (out.ndim - 2))
            return
        runner = _runner(self.op, self.method)
        try:
            if self._tiered(out):
                _warm.run(
                    id(self),
                    self.spec,
                    self.method,
                    lambda: runner(self.spec, ops, out, self.num_threads),
                    lambda: _runner(self.op, TIER0)(self.spec, ops, out, self.num_threads),
                    ops,
                    out.shape,
                )
            else:
                runner(self.spec, ops, out, self.num_threads)
        except NonFiniteInput:
            # the kernel found NaN/Inf in the input it reads (a method that
            # checks as it goes): the plan for non-finite input runs instead
            _non_finite_plan(self.spec, ops).run(ops, out)

    @functools.cached_property
    def _has_tier0(self) -> bool:
        """Whether tier 0 may stand in for this plan's kernel while it compiles."""
        return (
            getattr(self.spec, "method", "auto") == "auto"
            and self.method != TIER0
            and any(c.name == TIER0 and c.rejected is None for c in self.candidates)
        )

    def _tiered(self, out) -> bool:
        return self._has_tier0 and isinstance(out, np.ndarray) and get_config().background_compile

    @property
    def kernel_state(self) -> str:
        """Whether the chosen kernel is compiled, compiling, or not known yet."""
        return _warm.kernel_state(id(self), forced=not self._has_tier0)

    def __repr__(self) -> str:
        s = self.spec
        if hasattr(s, "describe"):
            lines = [f"<fastconv plan for {self.op}: method={self.method!r}", *s.describe()]
            lines[-1] += f", threads {self.num_threads}"
            lines += [f"  why: {self.reason}", f"  kernel: {self.kernel_state}", "  candidates:"]
            lines += [c.row(c.name == self.method) for c in self.candidates]
            return "\n".join(lines) + ">"
        lines = [
            f"<fastconv plan for {self.op}: method={self.method!r}",
            f"  input ({s.n}, {s.c_in}, {', '.join(map(str, s.in_spatial))}) {s.dtype}, "
            f"weight {_weight_shape(s)}, "
            f"stride {s.stride}, padding {s.pad_lo}/{s.pad_hi} ({s.padding_mode}), "
            f"dilation {s.dilation}, groups {s.groups}",
            f"  output {s.out_shape}, {s.flops / 1e9:.3f} GFLOP, threads {self.num_threads}",
        ]
        if getattr(s, "device", "cpu") == "cuda":
            lines.append(f"  on the GPU; host<->GPU copies of NumPy operands: {_bytes(s.transfer_bytes)}")
        lines += [f"  why: {self.reason}", f"  kernel: {self.kernel_state}", "  candidates:"]
        lines += [c.row(c.name == self.method) for c in self.candidates]
        return "\n".join(lines) + ">"


def _weight_shape(s) -> tuple[int, ...]:
    if getattr(s, "transposed", False):
        return (s.c_in, s.c_out // s.groups, *s.kernel)
    return (s.c_out, s.c_in // s.groups, *s.kernel)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


COST_MODEL = os.path.join(os.path.dirname(__file__), "cost_model.json")


def machine() -> str:
    """The CPU the cost model's constants are looked up by: LLVM's name for
    the host's microarchitecture (what Numba compiles the kernels for), e.g.
    ``znver4``; "unknown" when llvmlite cannot tell.  (Not
    :func:`.tuning.cpu_id`, the model-name string that keys measured plans:
    under KVM it can be as generic as "Intel(R) Xeon(R) Processor".)"""
    try:
        import llvmlite.binding as llvm

        return str(llvm.get_host_cpu_name()) or "unknown"
    except Exception:  # pragma: no cover - exotic hosts
        return "unknown"


def constants_for(model: dict, cpu: str) -> dict:
    """The constants the dispatcher uses on ``cpu``: the reference machine's
    (``model``'s top level, fitted on ``model["_reference_cpu"]``), with each
    method fitted on ``cpu`` itself (``model["_machines"][cpu]``) in its
    place.  Methods differ in speed by microarchitecture, not by a common
    factor (measured: the 3x3x3 video suite layer is ``winograd_f4``'s on
    Zen 4 and ``blocked``'s on an Intel AVX-512 core), so a fit made on one
    CPU must not overwrite another's."""
    merged = {k: v for k, v in model.items() if k != "_machines"}
    merged.update(model.get("_machines", {}).get(cpu, {}))
    return merged


@functools.cache
def _stored_model() -> dict:
    """``cost_model.json`` as stored: the reference fit and ``_machines``."""
    with open(COST_MODEL, encoding="utf-8") as fh:
        return json.load(fh)


def cost_model_source() -> str:
    """Which machine's fit the dispatcher uses here (for ``fastconv info``)."""
    model = _stored_model()
    cpu = machine()
    reference = model.get("_reference_cpu", "unknown")
    if cpu in model.get("_machines", {}) or cpu == reference:
        return f"fitted on this CPU ({cpu})"
    return f"fitted on {reference} (none for this CPU, {cpu}; autotune measures instead)"


@functools.cache
def cost_constants() -> dict:
    return constants_for(_stored_model(), machine())


def _runner(op: str, name: str):
    return methods_for(op)[name].load()


_plans: collections.OrderedDict[tuple, Plan] = collections.OrderedDict()
_plans_lock = threading.Lock()
#: plans kept in memory (least recently made dropped first): a program that
#: sees ever new shapes must not grow without bound
_MAX_PLANS = 4096


def select(spec, ops=None) -> Plan:
    """The plan for ``spec`` under the current settings (cached in memory).

    With ``autotune`` on and several feasible methods, the candidates are
    timed once per shape (on ``ops`` when given, else on random operands of the
    right shapes) and the fastest is remembered in the tuning cache."""
    cfg = get_config()
    key = _plan_key(spec, cfg)
    plan = _cached_plan(key, spec, cfg, ops, finite=True)
    method = methods_for(spec.op)[plan.method]
    unchecked = dict(input_too=not method.checks_input, weights_too=not method.checks_weights)
    if ops is not None and method.finite_only and not _all_finite(ops, **unchecked):
        # guard: this method would spread NaN/Inf beyond the windows that hold
        # them; the API promises locality whatever the method, so another runs
        # (a method that checks its input -- or its weights -- itself raises
        # NonFiniteInput, and Plan.run turns to the same plan)
        plan = _cached_plan((*key, "non-finite"), spec, cfg, ops, finite=False)
    return plan


def _plan_key(spec, cfg) -> tuple:
    return (spec.key(), spec.method, cfg.num_threads, cfg.workspace_limit, cfg.autotune, cfg.cache_dir)


def _non_finite_plan(spec, ops) -> Plan:
    """The plan for ``spec`` when its operands hold NaN or Inf."""
    cfg = get_config()
    return _cached_plan((*_plan_key(spec, cfg), "non-finite"), spec, cfg, ops, finite=False)


def _all_finite(ops, input_too: bool = True, weights_too: bool = True) -> bool:
    """Whether the input (unless not ``input_too``) and the weights (unless
    not ``weights_too``) hold no NaN or Inf."""
    return bool((not input_too or np.isfinite(ops.x).all()) and (not weights_too or np.isfinite(ops.w).all()))


def _cached_plan(key, spec, cfg, ops, finite: bool) -> Plan:
    plan = _plans.get(key)
    if plan is None:
        plan = _select(spec, cfg, finite)
        feasible = [c for c in plan.candidates if c.rejected is None]
        # (GPU plans are not measured here: the CPU tuner times host kernels)
        if spec.method == "auto" and cfg.autotune and len(feasible) > 1 and getattr(spec, "device", "cpu") == "cpu":
            plan = _tuned(plan, spec, cfg, ops)
        with _plans_lock:
            _plans[key] = plan
            while len(_plans) > _MAX_PLANS:
                _plans.popitem(last=False)
    return plan


def _tuned(plan: Plan, spec, cfg, ops) -> Plan:
    from . import tuning

    names = [c.name for c in plan.candidates if c.rejected is None]
    tkey = tuning.cache_key(spec, cfg.num_threads, cfg.workspace_limit)
    entry = tuning.lookup(tkey, cfg.cache_dir)
    if entry is not None and entry["method"] in names:
        times, reason = entry.get("times", {}), "measured earlier (tuning cache)"
    else:
        if ops is None or not _all_finite(ops):
            # (a method that checks its input would stop at NaN/Inf: the
            # candidates are timed on finite operands of the same shapes)
            from .._spec import synthetic_operands

            ops = synthetic_operands(spec)
        shape = getattr(spec, "scratch_shape", None) or (spec.n, spec.c_out, *spec.lifted("out_spatial"))
        scratch = np.empty(shape, dtype=spec.dtype)
        times = tuning.measure(names, lambda name: _runner(spec.op, name)(spec, ops, scratch, cfg.num_threads))
        entry = {"method": min(times, key=times.get), "times": times}
        tuning.store(tkey, entry, cfg.cache_dir)
        reason = "measured now (autotune), fastest of the feasible methods"
    candidates = tuple(dataclasses.replace(c, measured_s=times.get(c.name)) for c in plan.candidates)
    return dataclasses.replace(plan, method=entry["method"], reason=reason, candidates=candidates)


def clear_plan_cache() -> None:
    with _plans_lock:
        _plans.clear()


def feasible_methods(spec, fallbacks: bool = True) -> list[str]:
    """Methods that pass the guards for ``spec`` (support, workspace limit),
    without cost estimates or measurement: what ``method=`` may name (with
    ``fallbacks=False``, only those ``auto`` may pick: not tier 0)."""
    spec = dataclasses.replace(spec, method="auto")
    methods = methods_for(spec.op)
    return [
        c.name
        for c in _select(spec, get_config()).candidates
        if c.rejected is None and (fallbacks or not methods[c.name].fallback)
    ]


def valid_methods(op: str) -> list[str]:
    return ["auto", *sorted(methods_for(op))]


def _select(spec, cfg, finite: bool = True) -> Plan:
    methods = methods_for(spec.op)
    if spec.method != "auto" and spec.method not in methods:
        raise ValueError(f"method must be one of {valid_methods(spec.op)} for {spec.op}, got {spec.method!r}")
    constants = cost_constants()
    candidates = []
    non_finite = "input has NaN/Inf, which this method would spread beyond their windows"
    for name, m in sorted(methods.items()):
        rejected = m.supports(spec)
        ws = int(m.workspace(spec))
        if rejected is None and ws > cfg.workspace_limit:
            rejected = f"workspace {_bytes(ws)} exceeds workspace_limit {_bytes(cfg.workspace_limit)}"
        if rejected is None and not finite and m.finite_only:
            rejected = non_finite
        est = m.cost(spec, constants) if rejected is None else None
        candidates.append(Candidate(name, est, ws, rejected))
    forced = next((c for c in candidates if c.name == spec.method), None)
    if forced is not None and forced.rejected not in (None, non_finite):
        raise ValueError(f"method={spec.method!r} cannot compute this {spec.op}: {forced.rejected}")
    if forced is not None and forced.rejected is None:
        chosen, reason = forced, "forced by method="
    else:
        feasible = [c for c in candidates if c.rejected is None and not methods[c.name].fallback]
        if not feasible:  # pragma: no cover - direct supports everything
            raise ValueError(f"no registered method can compute this {spec.op}")
        chosen = min(feasible, key=lambda c: c.estimated_s)
        reason = "only feasible candidate" if len(feasible) == 1 else "lowest estimated time (cost model)"
        if forced is not None:
            reason = f"method={spec.method!r} replaced: {forced.rejected}; {reason}"
    return Plan(
        op=spec.op,
        spec=spec,
        method=chosen.name,
        reason=reason,
        candidates=tuple(candidates),
        num_threads=cfg.num_threads,
    )
