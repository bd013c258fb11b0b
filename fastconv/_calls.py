"""The repeated-call caches of the public functions (see :mod:`fastconv._ops`):
here, below the dispatcher, so that clearing the plan cache clears them too
without the dispatcher importing the entry path."""

from __future__ import annotations

#: an executor's answer when it cannot serve a call: the full path runs
MISS = object()
#: ``prepare``'s answer for a call the full path always serves (a GPU
#: array, a device="cuda" call): its key then leads straight there
FULL = object()
#: one dict per generated function: call key -> executor
caches: list[dict] = []


def new_cache() -> dict:
    cache: dict = {}
    caches.append(cache)
    return cache


def clear() -> None:
    """Forget every function's executors (they hold plans)."""
    for cache in caches:
        cache.clear()
