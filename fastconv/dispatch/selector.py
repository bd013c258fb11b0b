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

from .. import _calls, _warm
from .._config import get_config
from ..kernels import NonFiniteInput
from ..plans._method import load
from .registry import TIER0, methods_for
from .tuning import machine


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str
    estimated_s: float | None
    workspace_bytes: int
    rejected: str | None  # None when feasible
    measured_s: float | None = None
    #: the method's code path that runs (None: it has one)
    variant: str | None = None
    #: the plans of the parts it runs as (a method with ``children``)
    children: tuple = ()
    #: the factor learned from this machine's calls that the estimate
    #: includes (:mod:`.corrections`; 1.0: none)
    factor: float = 1.0

    def row(self, chosen: bool) -> str:
        mark = "*" if chosen else " "
        est = "-" if self.estimated_s is None else f"{self.estimated_s * 1e3:.3f} ms"
        meas = "" if self.measured_s is None else f"  measured {self.measured_s * 1e3:.3f} ms"
        if self.factor != 1.0:
            meas += f"  (x{self.factor:.2f} learned)"
        why = "" if self.rejected is None else f"  rejected: {self.rejected}"
        var = "" if self.variant is None or self.rejected is not None else f"  ({self.variant})"
        return (
            f" {mark} {self.name:<12} estimated {est:>12}{meas}  workspace {_bytes(self.workspace_bytes):>9}{var}{why}"
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """The dispatcher's decision for one call: what runs, and why."""

    op: str
    spec: Any
    method: str
    reason: str
    candidates: tuple[Candidate, ...]
    num_threads: int
    #: the plan cache's key (the call shape and settings; None: not cached)
    key: tuple | None = dataclasses.field(default=None, compare=False)
    #: while this plan tries a method on its call shape, the method measured
    #: fastest there: it stands in (not tier 0) while the tried kernel compiles
    incumbent: str | None = dataclasses.field(default=None, compare=False)
    #: this plan runs a close method again on its call shape (to
    #: ``corrections.REMATCH_CALLS`` timings before it is judged)
    rematch: bool = dataclasses.field(default=False, compare=False)

    @property
    def flops(self) -> int:
        return self.spec.flops

    @functools.cached_property
    def chosen(self) -> Candidate:
        return next(c for c in self.candidates if c.name == self.method)

    @property
    def workspace_bytes(self) -> int:
        return self.chosen.workspace_bytes

    @property
    def variant(self) -> str | None:
        """The chosen method's code path (None: it has one)."""
        return self.chosen.variant

    @property
    def expected_error(self) -> float | None:
        """The chosen method's worst measured error (fraction of the output's
        largest magnitude) in this dtype: float32's, scaled by the epsilon
        ratio for float64; None where it was not measured."""
        error = methods_for(self.op)[self.method].float32_error
        if error is None or not hasattr(self.spec, "dtype"):
            return None
        return error * (np.finfo(self.spec.dtype).eps / np.finfo(np.float32).eps)

    @property
    def chosen_key(self) -> str | None:
        """The chosen method's cost-model entry (None: it has none)."""
        return methods_for(self.op)[self.method].cost_key

    def learner(self):
        """``learn(seconds)``: feeds one run's kernel time to the corrections
        (:mod:`.corrections`: every call up to ``WINDOW``, then one in
        ``SAMPLE_EVERY``), or None where nothing is learned (the ``learn``
        setting off, no estimate, a call too short to time usefully)."""
        from . import corrections

        c, key, cfg = self.chosen, self.chosen_key, get_config()
        if not cfg.learn or key is None or c.estimated_s is None or getattr(self.spec, "device", "cpu") != "cpu":
            return None
        raw = c.estimated_s / c.factor
        if raw < corrections.MIN_SECONDS:
            return None
        # (with autotune the tuner's measurements pick: no shape timings, no trials)
        cache_dir, shape, method = cfg.cache_dir, None if cfg.autotune else self.key, self.method
        window, every = corrections.WINDOW, corrections.SAMPLE_EVERY
        calls = 0

        def learn(seconds: float) -> None:
            nonlocal calls
            calls += 1  # (a lost update between threads only shifts the sample)
            if calls == 1 or (calls > window and calls % every):
                # (an executor's first call pays what the next ones do not -- its
                # result's and scratch's first pages, a core waking up: not the method's time)
                return
            replan = corrections.observe(key, raw, seconds, cache_dir)
            runs = 0 if shape is None else corrections.record(shape, method, seconds)
            if replan:
                clear_plan_cache()
            elif runs >= corrections.SHAPE_CALLS and self._beaten(
                corrections.measured(shape), corrections.calls(shape)
            ):
                drop_plan(shape)

        return learn

    def _beaten(self, measured: dict[str, float], calls: dict[str, int] | None = None) -> bool:
        """Whether, with the times ``measured`` on this call shape (``calls``
        timings each) standing in for their methods' estimates, another
        method would be picked (:func:`_with_measured`'s rules): one not run
        here that the constants estimate near this one (it is tried), one
        run here faster by :data:`~.corrections.SHAPE_MARGIN`, or a close
        one measured on few calls (run again)."""
        from .corrections import REMATCH_CALLS, REMATCH_WITHIN, SHAPE_MARGIN, TRY_WITHIN

        calls = calls or {}
        mine = measured.get(self.method)
        if mine is None or getattr(self.spec, "method", "auto") != "auto":
            return False
        if self.rematch and calls.get(self.method, 0) < REMATCH_CALLS:
            return False  # (run again: judged once it has its calls)
        settled = calls.get(self.method, 0) >= REMATCH_CALLS
        methods = methods_for(self.op)
        for c in self.candidates:
            if c.name == self.method or c.rejected is not None or methods[c.name].fallback:
                continue
            other = measured.get(c.name)
            if other is not None and other * SHAPE_MARGIN < mine:
                return True
            if other is not None and settled and calls.get(c.name, 0) < REMATCH_CALLS and other < mine * REMATCH_WITHIN:
                return True
            if other is None and _worth_a_try(c, self.chosen, TRY_WITHIN):
                return True
        return False

    @property
    def children(self) -> tuple:
        """The plans of the parts the chosen method runs as (None: a part with
        nothing to compute)."""
        return self.chosen.children

    @functools.cached_property
    def _call(self):
        """The runner with what the plan decided for it (variant, child plans)."""
        method = methods_for(self.op)[self.method]
        runner = method.load()
        if method.variants is not None:
            return functools.partial(runner, variant=self.variant)
        if method.children is not None:
            return functools.partial(runner, children=self.children)
        return runner

    def run(self, ops, out):
        """Run the chosen kernel on ``ops`` into ``out``; returns what the
        runner returns (pooling: the values and indices)."""
        call = self._call
        try:
            if self._tiered():
                return _warm.run(
                    id(self),
                    self.job_spec(),
                    lambda: call(self.spec, ops, out, self.num_threads),
                    lambda: self._stand_in(ops, out),
                    ops,
                    None if out is None else out.shape,
                )
            return call(self.spec, ops, out, self.num_threads)
        except NonFiniteInput:
            # the kernel found NaN/Inf in the input it reads (a method that
            # checks as it goes): the plan for non-finite input runs instead
            return _non_finite_plan(self.spec, ops).run(ops, out)

    @functools.cached_property
    def _stand_in(self):
        """``run(ops, out)`` while this plan's kernel compiles in the
        background: tier 0, or the incumbent's plan (a tried method must not
        make a shape's calls slower than what it replaces)."""
        if self.incumbent is None:
            return lambda ops, out: _runner(self.op, TIER0)(self.spec, ops, out, self.num_threads)
        return dataclasses.replace(self, method=self.incumbent, incumbent=None).run

    def prepared(self):
        """``run(ops, out)``: this plan's kernel with what the plan and the
        spec decide bound once (the method's ``prepare``), for repeated
        calls -- it returns what the runner returns and raises
        ``NonFiniteInput`` as the runner does; None while the kernel is not
        ready (a call would run tier 0)."""
        if self._tiered() and not _warm.is_ready(id(self)):
            return None
        method = methods_for(self.op)[self.method]
        spec, num_threads = self.spec, self.num_threads
        if method.prepare is not None:
            extra = {}
            if method.variants is not None:
                extra["variant"] = self.variant
            elif method.children is not None:
                extra["children"] = self.children
            return load(method.prepare)(spec, num_threads, **extra)
        call = self._call
        return lambda ops, out: call(spec, ops, out, num_threads)

    def finite_guard(self):
        """(input_too, weights_too) -- :func:`all_finite`'s arguments -- the
        caller must check for NaN/Inf before the kernel runs (as
        :func:`select` does), or None: nothing to check."""
        method = methods_for(self.op)[self.method]
        if not method.finite_only:
            return None
        return (not method.checks_input, not method.checks_weights)

    def job_spec(self):
        """The spec that makes a fresh process plan and run exactly this
        plan's kernel (method and variant forced by name)."""
        name = (
            self.method
            if self.variant is None or methods_for(self.op)[self.method].variants is None
            else (f"{self.method}:{self.variant}")
        )
        return dataclasses.replace(self.spec, method=name)

    @functools.cached_property
    def _has_tier0(self) -> bool:
        """Whether tier 0 may stand in for this plan's kernel while it compiles."""
        return (
            getattr(self.spec, "method", "auto") == "auto"
            and self.method != TIER0
            and any(c.name == TIER0 and c.rejected is None for c in self.candidates)
        )

    def _tiered(self) -> bool:
        return self._has_tier0 and get_config().background_compile

    @property
    def kernel_state(self) -> str:
        """Whether the chosen kernel is compiled, compiling, or not known yet."""
        return _warm.kernel_state(id(self), forced=not self._has_tier0)

    def __repr__(self) -> str:
        s = self.spec
        if hasattr(s, "describe"):
            lines = [f"<fastconv plan for {self.op}: method={self.method!r}", *s.describe()]
            lines[-1] += f", threads {self.num_threads}"
            return "\n".join(lines + self._tail()) + ">"
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
        return "\n".join(lines + self._tail()) + ">"

    def _tail(self) -> list[str]:
        lines = [f"  why: {self.reason}"]
        if self.variant is not None:
            lines.append(f"  variant: {self.variant}")
        error = self.expected_error
        if error is not None:
            lines.append(
                f"  expected error: <= {error:.0e} of the output's scale ({self.spec.dtype}; measured on realistic "
                "data, bench/precision.py)"
            )
        lines += [
            f"  kernel: {self.kernel_state}",
            f"  constants: {constants_source(self.chosen_key)}",
            "  candidates:",
        ]
        lines += [c.row(c.name == self.method) for c in self.candidates]
        for i, child in enumerate(self.children):
            if child is not None:
                lines.append(f"  part {i}: {child.method}" + ("" if child.variant is None else f" ({child.variant})"))
        return lines


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


def constants_for(model: dict, cpu: str, current=None) -> dict:
    """The constants the dispatcher uses on ``cpu``: the reference machine's
    (``model``'s top level, fitted on ``model["_reference_cpu"]``), with each
    method fitted on ``cpu`` itself (``model["_machines"][cpu]``) in its
    place.  Methods differ in speed by microarchitecture, not by a common
    factor (measured: the 3x3x3 video suite layer is ``winograd_f4``'s on
    Zen 4 and ``blocked``'s on an Intel AVX-512 core), so a fit made on one
    CPU must not overwrite another's.  With ``current`` (cost key -> the
    digest of its sources now), a CPU's own fit made on other sources is
    left out: the reference fit, which a test keeps current, stands in."""
    merged = {k: v for k, v in model.items() if k != "_machines"}
    own = model.get("_machines", {}).get(cpu, {})
    digests = own.get("_digests", {})
    for name, constants in own.items():
        if name.startswith("_") or (current is not None and digests.get(name) != current(name)):
            continue
        merged[name] = constants
    return merged


@functools.cache
def _stored_model() -> dict:
    """``cost_model.json`` as stored: the reference fit and ``_machines``."""
    with open(COST_MODEL, encoding="utf-8") as fh:
        return json.load(fh)


def cost_model_source() -> str:
    """Which constants the dispatcher uses here (for ``fastconv info``)."""
    from . import calibration, corrections

    cfg = get_config()
    model = _stored_model()
    cpu = machine()
    reference = model.get("_reference_cpu", "unknown")
    when = calibration.calibrated_at(cfg.cache_dir)
    factors, stale = calibration.stored_factors(cfg.cache_dir, shipped_constants())
    if factors:
        text = f"calibrated on this machine {when} ({len(factors)} methods; fastconv calibrate)"
    elif cpu in model.get("_machines", {}) or cpu == reference:
        text = f"shipped, fitted on this CPU ({cpu})"
    else:
        text = f"shipped, fitted on {reference} (none for this CPU, {cpu}: run fastconv calibrate)"
    if stale:
        text += f"; ignored: {', '.join(sorted(stale))} (calibrated on other kernel sources or shipped constants)"
    if cfg.learn:
        learned = corrections.learned(cfg.cache_dir)
        if learned:
            parts = [f"{k} x{f:.2f} ({n} calls)" for k, bands in sorted(learned.items()) for f, n in bands.values()]
            text += "; learned from calls: " + ", ".join(parts)
    return text


def constants_source(key: str | None) -> str:
    """Where the constants of cost key ``key`` come from here (for ``explain``)."""
    if key is None:
        return "none (this method makes no estimate)"
    from . import calibration

    cfg = get_config()
    factors, stale = calibration.stored_factors(cfg.cache_dir, shipped_constants())
    model = _stored_model()
    cpu = machine()
    if key in factors:
        f = factors[key]
        return (f"calibrated on this machine {calibration.calibrated_at(cfg.cache_dir)} (shipped x{f['overhead']:.2f} "
                f"fixed, x{f['compute']:.2f} compute)")  # fmt: skip
    note = f"; {stale[key]}" if key in stale else ""
    own = model.get("_machines", {}).get(cpu, {})
    if key in own:
        if own.get("_digests", {}).get(key) == calibration.digest(key):
            return f"shipped, fitted on this CPU ({cpu}){note}"
        note += f"; the fit for {cpu} was made on other kernel sources (ignored)"
    reference = model.get("_reference_cpu", "unknown")
    if model.get("_digests", {}).get(key) != calibration.digest(key):
        note += "; fitted on other kernel sources (refit: bench/fit_cost_model.py)"
    here = "this CPU" if cpu == reference else f"{reference}; this CPU is {cpu}: fastconv calibrate fits it"
    return f"shipped, fitted on {here}{note}"


@functools.cache
def shipped_constants() -> dict:
    """The shipped constants that apply on this CPU (see :func:`constants_for`)."""
    from .calibration import digest

    return constants_for(_stored_model(), machine(), digest)


@functools.cache
def _cost_constants(cache_dir: str) -> dict:
    from .calibration import scaled, stored_factors

    constants = dict(shipped_constants())
    for key, fit in stored_factors(cache_dir, shipped_constants())[0].items():
        if key in constants:
            constants[key] = scaled(constants[key], fit)
    return constants


def cost_constants(cache_dir: str | None = None) -> dict:
    """The constants the dispatcher plans with: shipped, with this machine's
    calibration (``fastconv calibrate``) applied where it holds."""
    return _cost_constants(get_config().cache_dir if cache_dir is None else cache_dir)


def reload_constants() -> None:
    """Read the calibration again (after ``fastconv calibrate``) and re-plan."""
    _cost_constants.cache_clear()
    clear_plan_cache()


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
    if ops is not None and method.finite_only and not all_finite(ops, **unchecked):
        # guard: this method would spread NaN/Inf beyond the windows that hold
        # them; the API promises locality whatever the method, so another runs
        # (a method that checks its input -- or its weights -- itself raises
        # NonFiniteInput, and Plan.run turns to the same plan)
        plan = _cached_plan((*key, "non-finite"), spec, cfg, ops, finite=False)
    return plan


def _plan_key(spec, cfg) -> tuple:
    return (
        spec.key(),
        getattr(spec, "method", "auto"),
        cfg.num_threads,
        cfg.workspace_limit,
        cfg.autotune,
        cfg.cache_dir,
        cfg.precision,
        cfg.learn,
    )


def _non_finite_plan(spec, ops) -> Plan:
    """The plan for ``spec`` when its operands hold NaN or Inf."""
    cfg = get_config()
    return _cached_plan((*_plan_key(spec, cfg), "non-finite"), spec, cfg, ops, finite=False)


def all_finite(ops, input_too: bool = True, weights_too: bool = True) -> bool:
    """Whether the input (unless not ``input_too``) and the weights (unless
    not ``weights_too``) hold no NaN or Inf."""
    return bool((not input_too or np.isfinite(ops.x).all()) and (not weights_too or np.isfinite(ops.w).all()))


def _cached_plan(key, spec, cfg, ops, finite: bool) -> Plan:
    plan = _plans.get(key)
    if plan is None:
        plan = _select(spec, cfg, finite)
        if cfg.learn and not cfg.autotune and getattr(spec, "method", "auto") == "auto":
            plan = _with_measured(plan, key)
        plan = dataclasses.replace(plan, key=key)
        methods = methods_for(spec.op)
        feasible = [c for c in plan.candidates if c.rejected is None and not methods[c.name].fallback]
        # (GPU plans are not measured here: the CPU tuner times host kernels)
        if (
            getattr(spec, "method", "auto") == "auto"
            and cfg.autotune
            and len(feasible) > 1
            and getattr(spec, "device", "cpu") == "cpu"
        ):
            plan = _tuned(plan, spec, cfg, ops)
        with _plans_lock:
            _plans[key] = plan
            while len(_plans) > _MAX_PLANS:
                _plans.popitem(last=False)
    return plan


def _tuned(plan: Plan, spec, cfg, ops) -> Plan:
    from . import tuning

    methods = methods_for(spec.op)
    names = [c.name for c in plan.candidates if c.rejected is None and not methods[c.name].fallback]
    tkey = tuning.cache_key(spec, cfg.num_threads, cfg.workspace_limit, cfg.precision)
    entry = tuning.lookup(tkey, cfg.cache_dir)
    if entry is not None and entry["method"] in names:
        times, reason = entry.get("times", {}), "measured earlier (tuning cache)"
    else:
        filters = getattr(spec, "scratch_shape", None) is not None
        if ops is None or filters or not all_finite(ops):
            # (a method that checks its input would stop at NaN/Inf: the
            # candidates are timed on finite operands of the same shapes; a
            # filter's plan is selected on the unpadded input, which the NaN
            # guard reads, while its kernels read the padded one)
            from .._spec import synthetic_operands

            ops = synthetic_operands(spec)
        from .._spec import synthetic_output

        scratch = synthetic_output(spec)
        plans = {c.name: dataclasses.replace(plan, method=c.name) for c in plan.candidates if c.name in names}
        times = tuning.measure(names, lambda name: plans[name]._call(spec, ops, scratch, cfg.num_threads))
        entry = {"method": min(times, key=times.get), "times": times}
        tuning.store(tkey, entry, cfg.cache_dir)
        reason = "measured now (autotune), fastest of the feasible methods"
    candidates = tuple(dataclasses.replace(c, measured_s=times.get(c.name)) for c in plan.candidates)
    return dataclasses.replace(plan, method=entry["method"], reason=reason, candidates=candidates)


def _with_measured(plan: Plan, key: tuple) -> Plan:
    """``plan`` with the times its call shape's repeated calls measured in
    this process (:func:`.corrections.measured`) standing in for their
    methods' estimates: the fastest measured method stays picked unless the
    constants estimate one not run there within :data:`.corrections.TRY_WITHIN`
    of it (that one is tried), or a close one measured on fewer calls runs
    again (:data:`.corrections.REMATCH_CALLS`)."""
    from . import corrections

    seen = corrections.measured(key)
    if not seen:
        return plan
    methods = methods_for(plan.op)
    candidates = tuple(
        dataclasses.replace(c, measured_s=seen[c.name]) if c.rejected is None and c.name in seen else c
        for c in plan.candidates
    )
    feasible = [c for c in candidates if c.rejected is None and not methods[c.name].fallback]
    if not feasible:  # pragma: no cover - direct supports everything
        return plan

    def time(c: Candidate) -> tuple[bool, float]:
        t = c.measured_s if c.measured_s is not None else c.estimated_s
        return (t is None, t or 0.0)

    best = min((c for c in feasible if c.measured_s is not None), key=lambda c: c.measured_s, default=None)
    if best is None:  # pragma: no cover - a measured method was rejected since (settings are in the key)
        return plan
    tries = [c for c in feasible if c.measured_s is None and _worth_a_try(c, best, corrections.TRY_WITHIN)]
    chosen = min(tries, key=time) if tries else best
    ran = ", ".join(f"{c.name} {c.measured_s * 1e3:.3f} ms" for c in feasible if c.measured_s is not None)
    incumbent, rematch = None, False
    if chosen.measured_s is not None:
        reason = f"fastest measured on this call shape in this process ({ran})"
        calls = corrections.calls(key)
        close = [c for c in feasible if c is not chosen and c.measured_s is not None
                 and calls.get(c.name, 0) < corrections.REMATCH_CALLS
                 and c.measured_s < chosen.measured_s * corrections.REMATCH_WITHIN]  # fmt: skip
        if close and calls.get(chosen.name, 0) >= corrections.REMATCH_CALLS:
            incumbent, rematch, chosen = chosen.name, True, min(close, key=lambda c: c.measured_s)
            reason = (f"run again on this call shape: within {corrections.REMATCH_WITHIN}x of the fastest "
                      f"({incumbent}) on fewer calls ({ran})")  # fmt: skip
    else:
        reason = (f"not run on this call shape yet ({ran}), estimated within {corrections.TRY_WITHIN}x of the "
                  "fastest one run: tried")  # fmt: skip
        incumbent = best.name
    return dataclasses.replace(
        plan, method=chosen.name, reason=reason, candidates=candidates, incumbent=incumbent, rematch=rematch
    )


def _worth_a_try(c: Candidate, best: Candidate, within: float) -> bool:
    """Whether ``c``, not run on a call shape, is tried there against
    ``best``, the fastest method run there: the constants' own estimate of
    ``c`` (without the learned factors, which mix shapes) within ``within``
    of ``best``'s -- not every method below a measured time, which on a CPU
    slower than the constants' is every method."""
    if c.estimated_s is None or best.estimated_s is None:
        return False
    return c.estimated_s / c.factor < best.estimated_s / best.factor * within


def drop_plan(key: tuple) -> None:
    """Forget the plan cached under ``key`` (and the repeated calls'
    executors, which hold plans): its next call plans again."""
    with _plans_lock:
        _plans.pop(key, None)
    _calls.clear()


def clear_plan_cache() -> None:
    """Forget the plans made in this process (and the repeated calls'
    executors, which hold plans)."""
    with _plans_lock:
        _plans.clear()
    _calls.clear()


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


_NON_FINITE = "input has NaN/Inf, which this method would spread beyond their windows"


def _select(spec, cfg, finite: bool = True) -> Plan:
    methods = methods_for(spec.op)
    wanted = getattr(spec, "method", "auto")
    forced_name, _, forced_variant = wanted.partition(":")
    if wanted != "auto" and forced_name not in methods:
        raise ValueError(f"method must be one of {valid_methods(spec.op)} for {spec.op}, got {wanted!r}")
    if forced_variant and methods[forced_name].variants is None:
        raise ValueError(f"method {forced_name!r} has no variants, got {wanted!r}")
    constants = cost_constants(cfg.cache_dir)
    if cfg.learn:
        from . import corrections
    # a method that takes over (bias_only: a convolution without input
    # channels) is the plan wherever it applies and no candidate elsewhere
    takeover = next((n for n, m in sorted(methods.items()) if m.takes_over and m.check(spec) is None), None)
    stepped_aside = None if takeover is None else f"{takeover} takes this call: {methods[takeover].description}"
    candidates = []
    for name, m in sorted(methods.items()):
        if m.takes_over and name != takeover and name != forced_name:
            continue
        variant = forced_variant if name == forced_name and forced_variant else None
        if takeover is not None and name != takeover:
            rejected, ws = stepped_aside, 0
        else:
            rejected = m.check(spec, variant)
            ws = m.workspace_of(spec, variant) if rejected is None or m.variants is None else 0
        if rejected is None and ws > cfg.workspace_limit:
            rejected = f"workspace {_bytes(ws)} exceeds workspace_limit {_bytes(cfg.workspace_limit)}"
        if rejected is None and not finite and m.finite_only:
            rejected = _NON_FINITE
        if rejected is None and not m.precise and cfg.precision == "high" and spec.dtype.itemsize == 4:
            rejected = f"precision='high': float32 error up to {m.float32_error:.0e} of the output's scale"
        est, children = None, ()
        if rejected is None:
            if m.variant is not None and variant is None:
                variant = m.variant(spec)
            if m.children is not None:
                children = tuple(
                    None if c is None else _select(dataclasses.replace(c, method="auto"), cfg, finite)
                    for c in m.children(spec)
                )
            child_s = sum(c.chosen.estimated_s or 0.0 for c in children if c is not None)
            est = m.cost(spec, constants, child_s, variant)
        factor = 1.0
        if est is not None and cfg.learn and m.cost_key is not None and getattr(spec, "device", "cpu") == "cpu":
            factor = corrections.factor(m.cost_key, est, cfg.cache_dir)
            est *= factor
        candidates.append(Candidate(name, est, ws, rejected, variant=variant, children=children, factor=factor))
    forced = next((c for c in candidates if c.name == forced_name), None)
    if forced is not None and forced.rejected not in (None, _NON_FINITE, stepped_aside):
        raise ValueError(f"method={wanted!r} cannot compute this {spec.op}: {forced.rejected}")
    if forced is not None and forced.rejected is None:
        chosen, reason = forced, "forced by method="
    else:
        feasible = [c for c in candidates if c.rejected is None and not methods[c.name].fallback]
        if not feasible:  # pragma: no cover - direct supports everything
            raise ValueError(f"no registered method can compute this {spec.op}")
        chosen = min(feasible, key=lambda c: (c.estimated_s is None, c.estimated_s or 0.0))
        if len(feasible) == 1:
            reason = "only feasible candidate"
        else:
            reason = "lowest estimated time (cost model)"
        if forced is not None:
            reason = f"method={wanted!r} replaced: {forced.rejected}; {reason}"
    return Plan(
        op=spec.op,
        spec=spec,
        method=chosen.name,
        reason=reason,
        candidates=tuple(candidates),
        num_threads=cfg.num_threads,
    )


def features(name: str, spec) -> dict[str, float]:
    """The cost features the method with cost key ``name`` reports for
    ``spec`` (its children planned as the dispatcher would): what
    ``bench/fit_cost_model.py`` fits the constants of ``name`` on."""
    from .registry import all_methods

    m = next(m for m in all_methods() if m.cost_key == name)
    if m.children is not None:
        plans = [
            None if c is None else _select(dataclasses.replace(c, method="auto"), get_config())
            for c in m.children(spec)
        ]
        return m.features(spec, sum(p.chosen.estimated_s or 0.0 for p in plans if p is not None))
    return m.features(spec)


def cost_keys() -> dict[str, object]:
    """Cost-model entry -> the method whose features it weighs (methods with
    a ``base_cost`` share another's constants: fitted after it)."""
    from .registry import all_methods

    return {m.cost_key: m for m in all_methods() if m.cost_key is not None and m.features is not None}
