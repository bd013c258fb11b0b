"""The method registry the dispatcher reads: the :class:`Method` records of
every algorithm's plan module (:mod:`fastconv.plans`), loaded on first use.

A new algorithm is one plan module (its ``METHODS``) named in
:data:`ALGORITHMS`, plus one kernel module its runners name; no public
function changes."""

from __future__ import annotations

import importlib
import threading

from ..plans._method import TIER0, Method

__all__ = ["ALGORITHMS", "TIER0", "Method", "methods_for", "register", "unregister"]

#: the plan modules, each declaring ``METHODS``
ALGORITHMS = (
    "direct",
    "small",
    "depthwise",
    "im2col",
    "blocked",
    "fft",
    "winograd",
    "transpose",
    "transpose_blocked",
    "pool",
    "filter",
    "cuda",
    "tier0",
)

_REGISTRY: dict[str, dict[str, Method]] = {}
_loaded = False
_lock = threading.Lock()


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        for name in ALGORITHMS:
            for method in importlib.import_module(f"fastconv.plans.{name}").METHODS:
                _add(method)
        _loaded = True


def _add(method: Method) -> None:
    for op in method.ops:
        table = _REGISTRY.setdefault(op, {})
        if method.name in table or method.name == "auto" or ":" in method.name:
            raise ValueError(f"method {method.name!r} is already registered for {op} (or is not a valid name)")
        table[method.name] = method


def register(method: Method) -> Method:
    """Add a method (e.g. a user's own kernel, or a mock in a test)."""
    _load()
    _add(method)
    return method


def unregister(name: str, ops: tuple[str, ...]) -> None:
    for op in ops:
        _REGISTRY.get(op, {}).pop(name, None)


def methods_for(op: str) -> dict[str, Method]:
    if not _loaded:
        _load()
    return dict(_REGISTRY.get(op, {}))


def all_methods() -> list[Method]:
    """Every registered method, once each."""
    _load()
    seen: dict[int, Method] = {}
    for table in _REGISTRY.values():
        for m in table.values():
            seen.setdefault(id(m), m)
    return list(seen.values())
