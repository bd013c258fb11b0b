"""The cost model's constants on this machine, and whether they still hold.

Three sources, in order of trust, per cost key (a method's entry in
``cost_model.json``):

1. ``fastconv calibrate``'s fit, kept in ``<cache_dir>/calibration.json``
   under this CPU and fastconv version: two factors per method -- one for
   its fixed cost (``overhead_s``), one for everything it computes -- fitted
   on ~1/2 minute of timed calls, applied to the shipped constants;
2. the constants shipped for this CPU (``_machines[<cpu>]``), else the
   reference CPU's (the file's top level);
3. times ``select`` learns from the calls a program makes
   (:mod:`.corrections`), a bounded factor on top of either.

Every fit records the digest of the sources its method's time comes from
(:func:`digest`: the plan module that declares its features and the kernel
modules its runner imports); a fit whose digest no longer matches was made
on other kernels.  Calibrated and per-CPU constants are then ignored (the
reference fit stands in, and ``explain`` says so); the reference fit itself
is checked by a test, so a kernel cannot change without a refit.
No Numba here: the digests and the stored constants are read when planning.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import time

import numpy as np

FILE = "calibration.json"
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the packages whose modules can make a method's time (its plan module,
#: kernels and their helpers); ``_config`` and the rest are not followed
_FOLLOWED = ("fastconv.kernels", "fastconv.plans", "fastconv.cuda")
#: bounds of a calibrated factor: a method's throughput 8x off its shipped
#: constants is a broken measurement, not a different CPU; fixed costs are
#: small and poorly determined by layer-sized calls (the shipped ones were
#: fitted with the thread pools of their day), so they may shrink further
FACTOR_BOUNDS = (0.125, 8.0)
OVERHEAD_BOUNDS = (1 / 64, 8.0)


def _module_file(module: str) -> str | None:
    parts = module.split(".")[1:]
    for path in (os.path.join(_PACKAGE, *parts) + ".py", os.path.join(_PACKAGE, *parts, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


#: a relative import statement: its dots, the module after them, the names
_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.+)([\w.]*)[ \t]+import[ \t]+\(?[ \t]*([\w, \t]*)", re.MULTILINE)


@functools.cache
def _imports(module: str) -> tuple[str, ...]:
    """The followed modules ``module`` imports (relative imports, resolved;
    read with a pattern, not parsed: a kernel module is thousands of lines)."""
    path = _module_file(module)
    if path is None:
        return ()
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    for dots, name, names in _IMPORT.findall(text):
        base = package.split(".")
        base = base[: len(base) - (len(dots) - 1)]
        target = ".".join(base + ([name] if name else []))
        listed = [f"{target}.{n.strip()}" for n in names.split(",") if n.strip()]
        candidates = [target] if name or not listed else listed
        for mod in candidates:
            if mod.startswith(_FOLLOWED) and _module_file(mod) is not None:
                found.append(mod)
    return tuple(sorted(set(found)))


def _closure(roots: list[str]) -> list[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or _module_file(module) is None:
            continue
        seen.add(module)
        todo.extend(_imports(module))
    return sorted(seen)


@functools.cache
def _declared_in() -> dict[str, tuple[str, ...]]:
    """Cost key -> the modules its time comes from: the plan module that
    declares the method, and the modules of its runner and ``prepare``."""
    import importlib

    from .registry import ALGORITHMS

    roots: dict[str, set[str]] = {}
    for algorithm in ALGORITHMS:
        module = f"fastconv.plans.{algorithm}"
        for m in importlib.import_module(module).METHODS:
            if m.cost_key is None:
                continue
            mods = roots.setdefault(m.cost_key, set())
            mods.add(module)
            for ref in (m.runner, m.prepare):
                if isinstance(ref, str):
                    mods.add(ref.partition(":")[0])
    return {key: tuple(_closure(sorted(mods))) for key, mods in roots.items()}


@functools.cache
def digest(cost_key: str) -> str:
    """A short hash of the sources that make the time of the methods with
    ``cost_key`` ("" for a key no plan module declares): a fit made on other
    sources was made on other kernels."""
    modules = _declared_in().get(cost_key)
    if not modules:
        return ""
    h = hashlib.sha256()
    for module in modules:
        with open(_module_file(module), "rb") as fh:
            h.update(module.encode() + b"\0" + fh.read() + b"\0")
    return h.hexdigest()[:16]


def machine_key() -> str:
    """This CPU, as calibrations are stored by: the model name and LLVM's name."""
    from .tuning import cpu_id, machine

    return f"{cpu_id()} [{machine()}]"


# --- stored calibrations ---------------------------------------------------------------


def _path(cache_dir: str) -> str:
    return os.path.join(cache_dir, FILE)


def read(cache_dir: str) -> dict:
    """The calibration file (empty when missing or unreadable)."""
    from .tuning import read_json

    return read_json(_path(cache_dir), "calibration")


def entry_key() -> str:
    """What calibrations and learned corrections are stored under: this CPU
    and this fastconv version."""
    from .._version import __version__

    return f"{machine_key()} | fastconv {__version__}"


def constants_digest(constants: dict[str, float]) -> str:
    """A short hash of one method's shipped constants (what factors scale)."""
    return hashlib.sha256(json.dumps(constants, sort_keys=True).encode()).hexdigest()[:16]


def stored_factors(cache_dir: str, shipped: dict | None = None) -> tuple[dict[str, dict], dict[str, str]]:
    """``(factors, notes)``: per cost key, the calibrated factors that apply
    here (this CPU, this version, the method's sources unchanged and, given
    ``shipped``, the shipped constants they scale too), and why each stored
    one that does not is ignored."""
    entry = read(cache_dir).get(entry_key())
    if not isinstance(entry, dict):
        return {}, {}
    factors, notes = {}, {}
    for key, fit in entry.get("methods", {}).items():
        if fit.get("digest") != digest(key):
            notes[key] = "calibrated on other kernel sources (ignored; run fastconv calibrate again)"
            continue
        if shipped is not None and fit.get("shipped") != constants_digest(shipped.get(key, {})):
            notes[key] = "calibrated against other shipped constants (ignored; run fastconv calibrate again)"
            continue
        factors[key] = fit
    return factors, notes


def calibrated_at(cache_dir: str) -> str | None:
    entry = read(cache_dir).get(entry_key())
    return entry.get("when") if isinstance(entry, dict) else None


def scaled(constants: dict[str, float], fit: dict) -> dict[str, float]:
    """A method's constants with a calibration's factors applied."""
    over, rest = fit.get("overhead", 1.0), fit.get("compute", 1.0)
    return {k: v * (over if k == "overhead_s" else rest) for k, v in constants.items()}


def write(cache_dir: str, methods: dict[str, dict], threads: int) -> str:
    """Store this machine's fit (merged with other machines', atomically)."""
    from .tuning import update_json

    entry = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "threads": threads, "methods": methods}
    update_json(_path(cache_dir), entry_key(), entry, "calibration")
    return _path(cache_dir)


# --- measuring and fitting ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """One method timed on one call: its features split as the fit needs."""

    key: str
    label: str
    seconds: float
    #: the shipped estimate's parts: fixed cost, the rest of the method's
    #: own terms, and a share from another method's constants (``base_cost``)
    overhead: float
    compute: float
    base: float
    features: dict[str, float]


def fit_factors(rows: list[Timing]) -> dict[str, dict]:
    """Per cost key, the two factors (fixed cost, compute) that bring the
    shipped estimates closest to the timings, in relative error (non-negative
    least squares, bounded by :data:`FACTOR_BOUNDS`); one common factor when
    the timings cannot tell the two apart; none (1, 1) when the fit's median
    error is no smaller than the shipped constants'."""
    from scipy.optimize import nnls

    lo, hi = FACTOR_BOUNDS
    fits = {}
    for key in sorted({r.key for r in rows}):
        data = [r for r in rows if r.key == key and r.overhead + r.compute > 0]
        if len(data) < 2:
            continue
        t = np.array([r.seconds for r in data])
        a = np.array([[r.overhead, r.compute] for r in data]) / t[:, None]
        b = 1 - np.array([r.base for r in data]) / t
        before = np.abs(a.sum(axis=1) - b)
        if np.linalg.matrix_rank(a, tol=1e-3) < 2 or len(data) < 4:
            scale, _ = nnls(a.sum(axis=1, keepdims=True), b)
            coef = np.array([scale[0], scale[0]])
        else:
            coef, _ = nnls(a, b)
            if coef[1] == 0:  # (the compute factor is never 0: one common factor)
                scale, _ = nnls(a.sum(axis=1, keepdims=True), b)
                coef = np.array([scale[0], scale[0]])
        coef = np.clip(coef, [OVERHEAD_BOUNDS[0], lo], [OVERHEAD_BOUNDS[1], hi])
        after = np.abs(a @ coef - b)
        if np.median(after) >= np.median(before):  # (the shipped constants fit this machine as well)
            coef, after = np.ones(2), before
        fits[key] = {
            "overhead": float(coef[0]),
            "compute": float(coef[1]),
            "calls": len(data),
            "median_error_before": float(np.median(before)),
            "median_error_after": float(np.median(after)),
            "digest": digest(key),
        }
    return fits


def fit_constants(rows: list[Timing]) -> dict[str, dict[str, float]]:
    """Per cost key, every constant fitted afresh (non-negative least squares
    on relative error, another method's share subtracted): the reference fit
    ``bench/fit_cost_model.py`` ships, which needs many more calls than
    :func:`fit_factors`."""
    from scipy.optimize import nnls

    fitted = {}
    for key in sorted({r.key for r in rows}):
        data = [r for r in rows if r.key == key]
        names = list(dict.fromkeys(k for r in data for k in r.features))
        t = np.array([r.seconds for r in data])
        a = np.array([[r.features.get(k, 0.0) for k in names] for r in data])
        b = np.array([r.base for r in data])
        coef, _ = nnls(a / t[:, None], 1 - b / t)
        fitted[key] = {k: float(c) for k, c in zip(names, coef)}
        err = np.abs((a @ coef + b) / t - 1)
        fitted[key]["_median_error"] = float(np.median(err))
    return fitted
