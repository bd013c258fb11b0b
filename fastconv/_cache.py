"""Numba's disk cache as every fastconv kernel uses it (imported with numba,
by :func:`fastconv._config.numba_jit`, never by ``import fastconv``).

Three things Numba's own ``cache=True`` does not give:

- **One key for every kernel.**  Numba keys a cached kernel by its own
  file's contents; a kernel that inlines helpers from other files (the
  micro-kernel, ``direct``'s loops) would load stale machine code after
  those change.  Every index key here also holds :func:`package_digest`, a
  hash of all kernel sources and the Numba version, so an edit or an
  upgrade recompiles instead.
- **A cache directory that can be written.**  ``NUMBA_CACHE_DIR`` (when
  set), else ``__pycache__`` beside the sources, else Numba's user cache
  directory: the first that is writable, with one warning per process when
  a preferred one is not (a read-only install or cache directory).
- **Writes no reader sees half-done.**  Processes compiling into one empty
  cache at once (a cluster's workers, ``fastconv warmup``'s jobs) take a
  lock per function and write a data file before the index entry that
  names it (Numba writes the index first: another process could load an
  entry whose data file still held an older function's code).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import itertools
import os
import warnings

import numba
from numba.core import caching, config

__all__ = ["CacheWarning", "KernelCache", "package_digest"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class CacheWarning(UserWarning):
    """A preferred kernel cache directory could not be written."""


#: kernel modules no compiled code comes from (tier 0 is plain NumPy)
_NOT_COMPILED = ("tier0.py",)


def _sources() -> list[str]:
    """The files whose code can end up in a compiled kernel: the kernels, and
    the plan modules whose constants and helpers they compile in (the
    micro-kernel's shape, work-item sizes, Winograd's layout constants)."""
    files = []
    for sub in ("kernels", "plans"):
        folder = os.path.join(_PACKAGE, sub)
        files += [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".py") and f not in _NOT_COMPILED]
    files += [os.path.join(_PACKAGE, f) for f in ("_config.py", "_cache.py")]
    return sorted(files)


@functools.cache
def package_digest() -> str:
    """A hash of every kernel source file and the Numba version (part of
    every cached kernel's key).  (The CPU and its features, which decide
    the micro-kernel's shape, are in Numba's key already.)"""
    h = hashlib.sha256(numba.__version__.encode())
    for path in _sources():
        h.update(os.path.relpath(path, _PACKAGE).encode())
        with open(path, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:32]


_unwritable: list[str] = []
_warned = False


def _checked(base):
    """``base`` (a Numba cache locator) that records a directory it applies
    to but cannot write, so that the fallback can be reported."""

    class Checked(base):
        @classmethod
        def from_function(cls, py_func, py_file):
            locator = super().from_function(py_func, py_file)
            if (
                locator is None
                and os.path.exists(py_file)
                and (base is not caching.UserProvidedCacheLocator or config.CACHE_DIR)
            ):
                path = base(py_func, py_file).get_cache_path()
                if path not in _unwritable:
                    _unwritable.append(path)
            return locator

    Checked.__name__ = Checked.__qualname__ = f"Checked{base.__name__}"
    return Checked


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = (
        _checked(caching.UserProvidedCacheLocator),
        _checked(caching.InTreeCacheLocator),
        caching.UserWideCacheLocator,
        caching.IPythonCacheLocator,
        caching.ZipCacheLocator,
    )


@contextlib.contextmanager
def _locked(path: str):
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _CacheFile(caching.IndexDataCacheFile):
    def save(self, key, data):
        """Under the function's lock: the data file, then the index entry."""
        with _locked(self._index_path + ".lock"):
            overloads = self._load_index()
            name = overloads.get(key)
            if name is None:
                taken = set(overloads.values())
                name = next(n for n in map(self._data_name, itertools.count(1)) if n not in taken)
            self._save_data(name, data)
            overloads[key] = name
            self._save_index(overloads)


class KernelCache(caching.FunctionCache):
    """The disk cache of one fastconv kernel (see the module docstring)."""

    _impl_class = _Impl

    def __init__(self, py_func) -> None:
        global _warned
        super().__init__(py_func)
        self._cache_file = _CacheFile(
            cache_path=self._cache_path,
            filename_base=self._impl.filename_base,
            source_stamp=self._impl.locator.get_source_stamp(),
        )
        if _unwritable and not _warned:
            _warned = True
            warnings.warn(
                f"fastconv: the kernel cache directory {_unwritable[0]} is not writable; compiled kernels are "
                f"cached in {self._cache_path} instead",
                CacheWarning,
                stacklevel=2,
            )

    def _index_key(self, sig, codegen):
        return (*super()._index_key(sig, codegen), package_digest())


def cache_dir_of(dispatcher) -> str | None:
    """Where ``dispatcher`` (a ``numba_jit`` kernel) is cached."""
    cache = getattr(getattr(dispatcher, "dispatcher", dispatcher), "_cache", None)
    return getattr(cache, "cache_path", None)
