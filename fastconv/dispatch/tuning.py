"""Measured selection: time the feasible candidates on first sight of a shape
and remember the winner, in memory and in ``<cache_dir>/tuning.json``.

The file is written atomically (temporary file + ``os.replace``) under an
advisory lock, merged with what other processes wrote meanwhile; a corrupt or
unwritable file is reported with a warning and otherwise ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import threading
import time
import warnings
from typing import Any

_FILE = "tuning.json"
_memory: dict[str, dict] = {}
_lock = threading.Lock()
_warned: set[str] = set()


class TuningCacheWarning(UserWarning):
    """The on-disk tuning cache could not be read or written (fastconv carries on)."""


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, TuningCacheWarning, stacklevel=4)


def cpu_id() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def cache_key(spec, num_threads: int, workspace_limit: int, precision: str = "fast") -> str:
    from .._version import __version__

    return json.dumps(
        [list(map(str, spec.key())), num_threads, workspace_limit, cpu_id(), os.cpu_count(), __version__]
        + ([precision] if precision != "fast" else []),
        separators=(",", ":"),
    )


def _path(cache_dir: str) -> str:
    return os.path.join(cache_dir, _FILE)


def read_json(path: str, what: str = "tuning cache") -> dict:
    """A JSON object fastconv keeps in its cache directory (the tuning cache,
    the calibration, the learned corrections): empty when missing, and with
    one warning when unreadable or malformed."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as exc:
        _warn_once(path + ":read", f"ignoring unreadable {what} {path}: {exc}")
        return {}
    if not isinstance(data, dict):
        _warn_once(path + ":read", f"ignoring malformed {what} {path}")
        return {}
    return data


def update_json(path: str, key: str, value: Any, what: str = "tuning cache") -> None:
    """Set ``key`` to ``value`` in the JSON object at ``path``: under an
    advisory lock, merged with what other processes wrote, replaced
    atomically (a reader never sees half a file).  Raises ``OSError`` when
    the directory cannot be written."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    with _file_lock(path):
        data = read_json(path, what)
        data[key] = value
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastconv-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def _file_lock(path: str):
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path + ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lookup(key: str, cache_dir: str) -> dict | None:
    with _lock:
        hit = _memory.get(key)
    if hit is not None:
        return hit
    entry = read_json(_path(cache_dir)).get(key)
    if isinstance(entry, dict) and isinstance(entry.get("method"), str):
        with _lock:
            _memory[key] = entry
        return entry
    return None


def store(key: str, entry: dict, cache_dir: str) -> None:
    with _lock:
        _memory[key] = entry
    path = _path(cache_dir)
    try:
        update_json(path, key, entry)
    except OSError as exc:
        _warn_once(path + ":write", f"cannot write tuning cache {path} ({exc}); measurements stay in memory")


def clear_memory() -> None:
    with _lock:
        _memory.clear()
    _warned.clear()


def measure(candidates: list[str], run: Any, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` seconds of ``run(name)`` for each candidate, after
    one untimed call (which also compiles)."""
    times = {}
    for name in candidates:
        run(name)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(name)
            best = min(best, time.perf_counter() - t0)
        times[name] = best
    return times
