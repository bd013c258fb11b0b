"""What ``auto`` learns from the calls a program makes.

Every repeated call already runs a kernel whose time the cost model
estimated.  With the ``learn`` setting on (the default), a call the model
put above :data:`MIN_SECONDS` is timed, and the ratio measured / estimated
joins the recent ratios of its method in its size band (estimates within a
factor 4 of each other: a method off at small sizes may be right at large
ones).  Once a band holds :data:`MIN_CALLS` ratios its factor is their
median (bounded: see below), and multiplies that method's estimates in
that band: a method slower than the model thinks gives way to the next
one, a faster one takes over.  The median of a window makes it robust:
one slow call (a page fault, another process) does not move it.  A factor
that moves by more than :data:`REPLAN` re-plans (the cached plans are
dropped).  An executor of repeated calls learns from its first
:data:`WINDOW` calls but the first (its first pages, a waking core), then
from one in :data:`SAMPLE_EVERY`.  The ratios
persist in ``<cache_dir>/corrections.json`` (per CPU and fastconv version,
with the method's source digest: learned on other kernels, they are
dropped).

Only the chosen method is timed, so a method the model overrates is never
corrected this way -- ``fastconv calibrate`` times them all.

The same timings are kept per call shape too (:func:`record`, in memory):
band factors mix shapes, and a factor learned on other layers can move one
shape onto a method that is slower on it.  Once a method has
:data:`SHAPE_CALLS` timings on a shape, the dispatcher takes the fastest
of them (another process or a background build only ever adds time: on a
shared 2-core machine a layer's median was caught 2.4x above its steady
time and a slower method's taken) in place of its estimate for that shape (``Plan.learner`` re-plans when
another method's estimate or measured time is below it), so ``auto`` tries
each method it rates faster at most once per shape and stays on the fastest
it has run there (a close one measured on few calls runs again:
:data:`REMATCH_CALLS`).

The bounds hold around the machine, not around 1: a CPU slower than the one
the constants were fitted on is off by the same factor for every method (a
2-core Zen 3 against the Zen 4 fit: 2.4-4.9x at 0.1 ms), and factors all
bounded at 2 would hand the choice back to the uncorrected model.  So each
band's factor is the median of its methods' (the machine's, within
:data:`MACHINE_BOUNDS`), and a method's factor is that times its own
relative to it, bounded by :data:`BOUNDS`.  A method not timed in the band
gets 1.0 while one method is timed (that one may be what is off: the others
are tried), then the machine's within :data:`BOUNDS`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import math
import os
import statistics
import threading

from .calibration import digest, entry_key
from .tuning import read_json, update_json

FILE = "corrections.json"
#: calls estimated or measured shorter than this are not learned from (the
#: timer, the Python around the kernel and the cache's state dominate)
MIN_SECONDS = 5e-5
#: ratios kept per method and band; a factor needs this many before it applies
WINDOW = 15
MIN_CALLS = 5
#: after its first WINDOW calls, a repeated call's executor learns from one
#: call in this many: learning one call (the band's medians again) cost
#: 48 us of Python on a 2-core Zen 3, a third of a 4x16x16x16 3x3 layer's
#: 0.17 ms, on every call
SAMPLE_EVERY = 16
#: a learned factor never leaves these bounds around its band's machine factor
#: (a method is not 2x off the others for long: beyond that, calibrate)
BOUNDS = (0.5, 2.0)
#: bounds of a band's machine factor (as ``calibration.FACTOR_BOUNDS``: 8x off is a broken measurement)
MACHINE_BOUNDS = (0.125, 8.0)
#: a factor that moves by more than this re-plans the cached plans
REPLAN = 1.15
#: a method's timings on one call shape stand in for its estimate there
#: once it has this many (the fastest of them: slow calls do not decide)
SHAPE_CALLS = 3
#: a measured method gives way to another measured one only when that one is
#: faster by more than this (two methods within noise do not alternate)
SHAPE_MARGIN = 1.05
#: a method measured on fewer calls than this within REMATCH_WITHIN of the
#: fastest one measured on more is run again to this many (its first calls
#: may have met other work: a noisy moment must not decide a close pick)
REMATCH_CALLS = 6
REMATCH_WITHIN = 1.25
#: a method not run on a shape is tried there when the constants estimate
#: it within this factor of the fastest one run there (not: below its
#: measured time -- on a CPU slower than the constants' that is every
#: method, im2col at 3x included)
TRY_WITHIN = 1.6
#: call shapes whose timings are kept (the least recently timed dropped)
MAX_SHAPES = 4096

_lock = threading.Lock()
_ratios: dict[tuple[str, int], collections.deque] = {}
_factors: dict[tuple[str, int], float] = {}
#: per band, the machine's factor (:func:`_refresh`)
_machine: dict[int, float] = {}
#: the cache directory the ratios were loaded from (None: not yet)
_loaded_from: str | None = None
_dirty = False
#: per plan key (a call shape and its settings): method -> recent seconds
_shapes: collections.OrderedDict[tuple, dict[str, collections.deque]] = collections.OrderedDict()


def _loaded(cache_dir: str) -> None:
    """Memory holds the ratios of ``cache_dir`` (read on first use)."""
    if _loaded_from != cache_dir:
        _load(cache_dir)


def band(estimated_s: float) -> int:
    """The size band of an estimate (factor-4 wide)."""
    return math.floor(math.log(max(estimated_s, 1e-9), 4))


def factor(key: str, estimated_s: float, cache_dir: str) -> float:
    """The learned factor on ``key``'s estimate ``estimated_s``: its own; for
    a method not timed in that band, once two are, the band's machine factor
    within :data:`BOUNDS` (on a much slower CPU a method within 2x of the
    chosen one's corrected estimate is still tried); else 1.0."""
    _loaded(cache_dir)
    b = band(estimated_s)
    found = _factors.get((key, b))
    if found is not None:
        return found
    machine = _machine.get(b)
    return 1.0 if machine is None else _within(machine, BOUNDS)


def learned(cache_dir: str) -> dict[str, dict[int, tuple[float, int]]]:
    """Per cost key: band -> (factor, calls) for the bands with a factor."""
    _loaded(cache_dir)
    out: dict[str, dict[int, tuple[float, int]]] = {}
    with _lock:
        for (key, b), f in _factors.items():
            out.setdefault(key, {})[b] = (f, len(_ratios[key, b]))
    return out


def observe(key: str, estimated_s: float, seconds: float, cache_dir: str) -> bool:
    """Learn from one call of ``key``'s method, estimated (before any
    correction) at ``estimated_s``, that took ``seconds``.  Returns whether
    the factor moved enough to re-plan (the caller's cached plans are then
    stale)."""
    global _dirty
    if estimated_s < MIN_SECONDS or seconds < MIN_SECONDS:
        return False
    _loaded(cache_dir)
    k = (key, band(estimated_s))
    with _lock:
        window = _ratios.setdefault(k, collections.deque(maxlen=WINDOW))
        window.append(math.log(seconds / estimated_s))
        _dirty = True
        if len(window) < MIN_CALLS:
            return False
        old = {kb: f for kb, f in _factors.items() if kb[1] == k[1]}
        machine = _machine.get(k[1], 1.0)
        _refresh(k[1])
        moved = [abs(math.log(_factors[kb] / old.get(kb, 1.0))) for kb in _factors if kb[1] == k[1]]
        moved.append(abs(math.log(_machine.get(k[1], 1.0) / machine)))  # (the methods not timed here)
    return max(moved) > math.log(REPLAN)


def record(shape_key: tuple, method: str, seconds: float) -> int:
    """Keep one call's ``seconds`` of ``method`` on the call shape
    ``shape_key`` (a plan key); returns how many that method has there."""
    with _lock:
        seen = _shapes.get(shape_key)
        if seen is None:
            seen = _shapes[shape_key] = {}
            while len(_shapes) > MAX_SHAPES:
                _shapes.popitem(last=False)
        else:
            _shapes.move_to_end(shape_key)
        window = seen.get(method)
        if window is None:
            window = seen[method] = collections.deque(maxlen=WINDOW)
        window.append(seconds)
        return len(window)


def measured(shape_key: tuple) -> dict[str, float]:
    """Method -> its fastest recent seconds on the call shape ``shape_key``,
    for the methods with :data:`SHAPE_CALLS` timings there."""
    with _lock:
        seen = _shapes.get(shape_key)
        if not seen:
            return {}
        return {m: min(w) for m, w in seen.items() if len(w) >= SHAPE_CALLS}


def calls(shape_key: tuple) -> dict[str, int]:
    """Method -> how many recent timings it has on the call shape ``shape_key``."""
    with _lock:
        return {m: len(w) for m, w in _shapes.get(shape_key, {}).items()}


def _refresh(b: int) -> None:
    """Band ``b``'s factors from its ratios (under ``_lock``): the machine's
    (the median of its methods' median log-ratios, within
    :data:`MACHINE_BOUNDS`) times each method's own relative to it, within
    :data:`BOUNDS`."""
    own = {key: statistics.median(w) for (key, band_), w in _ratios.items() if band_ == b and len(w) >= MIN_CALLS}
    if not own:
        return
    machine = _within(math.exp(statistics.median(own.values())), MACHINE_BOUNDS)
    if len(own) > 1:  # (one method off its estimate may be that method: the others keep 1.0, and are tried)
        _machine[b] = machine
    for key, r in own.items():
        _factors[key, b] = machine * _within(math.exp(r) / machine, BOUNDS)


def _within(x: float, bounds: tuple[float, float]) -> float:
    return min(bounds[1], max(bounds[0], x))


def forget() -> None:
    """Drop every learned ratio and shape timing (memory only; the file is
    rewritten at exit)."""
    global _dirty
    with _lock:
        _shapes.clear()
        _ratios.clear()
        _factors.clear()
        _machine.clear()
        _dirty = True


def _load(cache_dir: str) -> None:
    """The ratios stored for this machine in ``cache_dir`` (those learned on
    the current sources of each method), replacing what memory holds."""
    global _loaded_from, _dirty
    if _dirty and _loaded_from is not None and _loaded_from != cache_dir:
        save()  # (what was learned for the other directory is kept there)
    entry = read_json(os.path.join(cache_dir, FILE), "learned corrections").get(entry_key(), {})
    with _lock:
        _ratios.clear()
        _factors.clear()
        _machine.clear()
        for key, stored in (entry if isinstance(entry, dict) else {}).items():
            if not isinstance(stored, dict) or stored.get("digest") != digest(key):
                continue
            for b, values in stored.get("bands", {}).items():
                _ratios[key, int(b)] = collections.deque((float(v) for v in values[-WINDOW:]), maxlen=WINDOW)
        for b in {b for _, b in _ratios}:
            _refresh(b)
        _loaded_from = cache_dir
        _dirty = False


def save() -> None:
    """Write the ratios back (merged with other machines' entries, atomically);
    an unwritable cache directory is left alone."""
    global _dirty
    cache_dir = _loaded_from
    if cache_dir is None or not _dirty:
        return
    with _lock:
        mine: dict[str, dict] = {}
        for (key, b), window in _ratios.items():
            entry = mine.setdefault(key, {"digest": digest(key), "bands": {}})
            entry["bands"][str(b)] = [round(v, 4) for v in window]
        _dirty = False
    with contextlib.suppress(OSError):
        update_json(os.path.join(cache_dir, FILE), entry_key(), mine, "learned corrections")


atexit.register(save)
