"""Settings, environment variables and the Numba options, in one place.

Nothing here imports numba: ``import fastconv`` must stay light.  Kernel
modules call :func:`numba_jit` when they are imported (lazily, on first use).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
from typing import Any

import numpy as np

__all__ = ["Config", "get_config", "set_config"]

#: The only fastmath flags fastconv ever uses.  ``nnan``/``ninf`` are excluded on
#: purpose: they let LLVM assume finite values, which breaks NaN/Inf locality.
SAFE_FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

_DEFAULT_WORKSPACE = 64 * 1024 * 1024


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"environment variable {name} must be a boolean (0/1/true/false), got {raw!r}")


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"environment variable {name} must be a positive integer, got {raw!r}")
    return value


def _default_cache_dir() -> str:
    env = os.environ.get("FASTCONV_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastconv")


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class Config:
    """fastconv's settings (see :func:`set_config`)."""

    autotune: bool
    cache_dir: str
    num_threads: int
    workspace_limit: int
    background_compile: bool = True


def _initial_config() -> Config:
    return Config(
        autotune=_env_bool("FASTCONV_AUTOTUNE", False),
        cache_dir=_default_cache_dir(),
        num_threads=_env_int("FASTCONV_NUM_THREADS") or _cpu_count(),
        workspace_limit=_DEFAULT_WORKSPACE,
        background_compile=_env_bool("FASTCONV_BACKGROUND_COMPILE", True),
    )


_lock = threading.Lock()
_config: Config | None = None


def get_config() -> Config:
    """Return the current settings as a frozen :class:`Config`.

    Examples
    --------
    >>> import fastconv
    >>> cfg = fastconv.get_config()
    >>> cfg.num_threads >= 1
    True
    """
    global _config
    if _config is None:
        with _lock:
            if _config is None:
                _config = _initial_config()
    return _config


def _validated(**changes: Any) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(Config)}
    for key in changes:
        if key not in fields:
            raise TypeError(f"set_config() got an unknown setting {key!r}; valid settings: {sorted(fields)}")
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if key in ("autotune", "background_compile"):
            if not isinstance(value, bool):
                raise TypeError(f"{key} must be a bool, got {type(value).__name__}")
        elif key == "cache_dir":
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"cache_dir must be a path (str or os.PathLike), got {type(value).__name__}")
            value = os.fspath(value)
        elif key in ("num_threads", "workspace_limit"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{key} must be a positive int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{key} must be a positive int, got {value}")
        out[key] = value
    return out


class _ConfigContext(contextlib.AbstractContextManager):
    """Returned by :func:`set_config`: the change is already applied; ``with``
    restores the previous settings on exit."""

    def __init__(self, previous: Config) -> None:
        self._previous = previous

    def __exit__(self, *exc: object) -> None:
        global _config
        with _lock:
            _config = self._previous

    def __repr__(self) -> str:
        return f"<fastconv settings {get_config()!r}>"


def set_config(
    *,
    autotune: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_threads: int | None = None,
    workspace_limit: int | None = None,
    background_compile: bool | None = None,
) -> _ConfigContext:
    """Change fastconv's settings; usable as a context manager.

    Parameters
    ----------
    autotune : bool, optional
        Measure candidate kernels on the first sight of a shape and cache the
        winner (default from ``FASTCONV_AUTOTUNE``, else off).
    cache_dir : path, optional
        Where the tuning cache lives (default ``FASTCONV_CACHE_DIR`` or
        ``~/.cache/fastconv``).
    num_threads : int, optional
        Threads used by the parallel kernels (default ``FASTCONV_NUM_THREADS``
        or the cores available to this process).
    workspace_limit : int, optional
        Largest temporary buffer, in bytes, a kernel may allocate.
    background_compile : bool, optional
        A ``method="auto"`` call whose kernel is not compiled yet runs the
        NumPy path (tier 0) at once while a background process compiles the
        kernel into the disk cache; later calls run the kernel (default from
        ``FASTCONV_BACKGROUND_COMPILE``, else on).  Off: the first call
        compiles before it returns.

    Examples
    --------
    >>> import fastconv
    >>> with fastconv.set_config(num_threads=1):
    ...     fastconv.get_config().num_threads
    1
    """
    global _config
    changes = _validated(
        autotune=autotune,
        cache_dir=cache_dir,
        num_threads=num_threads,
        workspace_limit=workspace_limit,
        background_compile=background_compile,
    )
    previous = get_config()
    with _lock:
        _config = dataclasses.replace(previous, **changes)
    return _ConfigContext(previous)


#: set in a forked child of a process whose parallel kernels ran on GNU
#: OpenMP (Numba's ``omp`` layer): that runtime cannot run a parallel region
#: there (Numba terminates the child), so kernels run their serial builds
_serial_only = False


def _after_fork_in_child() -> None:
    global _serial_only
    numba = sys.modules.get("numba")
    if numba is None or _serial_only:
        return
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region ran before the fork: the child may start one
        return
    if layer == "omp":
        _serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ParallelKernel:
    """A parallel ``numba_jit`` kernel: calls its Numba dispatcher, or in a
    forked child where parallel regions cannot run (see ``_serial_only``)
    a serial build of the same function (:func:`serial_copy`, compiled on
    first need).  Attributes are the dispatcher's."""

    def __init__(self, dispatcher) -> None:
        self.dispatcher = dispatcher
        self._serial = None

    def __call__(self, *args):
        if _serial_only:
            if self._serial is None:
                self._serial = serial_copy(self.dispatcher, self.dispatcher.py_func.__name__ + "_serial")
            return self._serial(*args)
        return self.dispatcher(*args)

    def __getattr__(self, name: str):
        return getattr(self.dispatcher, name)


def numba_jit(*, parallel: bool = False, **extra: Any):
    """The one decorator every CPU kernel uses: lazy (no signatures, so nothing
    compiles at import), cached on disk (:class:`fastconv._cache.KernelCache`:
    keyed by every kernel source, in a writable directory, safe for
    concurrent writers), GIL released, safe fastmath only.
    A parallel kernel is a :class:`ParallelKernel`.  The threading layer is
    Numba's own choice (``tbb``, then ``omp``, then ``workqueue``) unless the
    user sets one: measured here, a parallel region costs ~2 us to launch
    under ``omp`` and 120-200 us under ``workqueue``; with fastconv and torch
    calls alternating in one process, ``workqueue`` slowed fastconv
    1.5-1.9x and torch's slowest calls to 6-14x its median (``omp``:
    1.05-1.1x, and 3-4x)."""
    import numba

    from ._cache import KernelCache

    options = dict(
        nopython=True,
        nogil=True,
        cache=False,  # (fastconv's own disk cache, set below)
        fastmath=set(SAFE_FASTMATH),
        error_model="numpy",
        boundscheck=False,
        parallel=parallel,
    )
    options.update(extra)
    jit = numba.jit(**options)

    def cached(func):
        dispatcher = jit(func)
        dispatcher._cache = KernelCache(dispatcher.py_func)  # (what Numba's cache=True sets, keyed by all sources)
        return ParallelKernel(dispatcher) if parallel else dispatcher

    return cached


def serial_copy(kernel, name: str):
    """``kernel`` (a parallel ``numba_jit`` function) compiled again without a
    parallel region, under another name: Numba's on-disk cache is keyed by
    the function's qualified name, not by its options, so the serial build
    must be a distinct function or it may load the parallel machine code
    (measured: two threads in it abort the process under the workqueue
    layer).  Serial builds serve small problems, concurrent Python threads
    under the ``workqueue`` layer, and forked children of a process that
    ran ``omp`` regions (:class:`ParallelKernel`)."""
    import types

    func = kernel.py_func
    copy = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__, func.__closure__)
    copy.__qualname__ = name
    return numba_jit()(copy)


def serial_below(threshold: float) -> float:
    """The size below which a kernel runs its serial build: ``threshold``
    (measured where a parallel launch cost 0.14-0.2 ms, Numba's ``workqueue``
    layer), or an eighth of it where launches cost microseconds (``omp``,
    ``tbb``, and before any parallel region ran: Numba's first choice).
    Measured under ``omp``, 2 threads, serial -> parallel: `blocked` 6 MFLOP
    0.128 -> 0.121 ms, 14.5 MFLOP 0.23 -> 0.18; weight packing 576 KB 0.065
    -> 0.044; Winograd F(4x4) weight transform 590 KB 0.13 -> 0.08."""
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = None
    return threshold if layer == "workqueue" else threshold / 8


_parallel_lock = threading.Lock()


@contextlib.contextmanager
def numba_threads(num_threads: int):
    """Run a parallel kernel with ``num_threads`` threads, safely from any thread.

    Numba's ``workqueue`` threading layer aborts the process when two threads
    enter parallel regions at once; when that layer is (or may be) in use the
    call is serialised.  ``tbb`` and ``omp`` are thread-safe and run freely.
    """
    import numba

    n = max(1, min(int(num_threads), numba.config.NUMBA_NUM_THREADS))
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        layer = None
    guard = _parallel_lock if layer in (None, "workqueue") else contextlib.nullcontext()
    with guard:
        previous = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            yield
        finally:
            numba.set_num_threads(previous)


_controller = None


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit BLAS to ``n`` threads for the duration (no-op without threadpoolctl).

    The controller is built once (building it scans the loaded libraries, about
    a millisecond), after loading scipy's BLAS — the one numba's ``np.dot``
    calls — so that both numpy's and scipy's OpenBLAS are limited.  Without the
    latter, OpenBLAS called from Numba's threads warns "Detect OpenMP Loop and
    this application may hang" and nests its own threads."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            import scipy.linalg.cython_blas  # noqa: F401

            _controller = ThreadpoolController()
    if not _controller:
        yield
        return
    with _controller.limit(limits=n, user_api="blas"):
        yield


_scratch_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A kernel's work buffer, kept between calls (per calling thread).

    A fresh multi-megabyte buffer per call is not free: its pages fault in on
    first touch and are unmapped on release, and in a process whose threads
    fault at once they queue on the address-space lock (measured: a
    two-thread Winograd call no faster than one thread until its buffers were
    reused).  Contents are undefined.  What a thread keeps stays within
    ``workspace_limit`` in total: the least recently used buffers are let go
    first (an array a running kernel holds lives on until it returns).
    :func:`release_scratch` lets them all go."""
    dtype = np.dtype(dtype)
    need = 1
    for v in shape:
        need *= int(v)
    cache = getattr(_scratch_local, "buffers", None)
    if cache is None:
        cache = _scratch_local.buffers = {}
    key = (name, dtype.str)
    buf = cache.pop(key, None)  # re-inserted last: the most recently used
    if buf is None or buf.size < need:
        buf = np.empty(max(need, 1), dtype)
    cache[key] = buf
    limit = get_config().workspace_limit
    total = sum(b.nbytes for b in cache.values())
    for old in list(cache):
        if total <= limit or old == key:
            break
        total -= cache.pop(old).nbytes
    return buf[:need].reshape(shape)


def kept_scratch_bytes() -> int:
    """Bytes of work buffers the calling thread keeps."""
    return sum(b.nbytes for b in getattr(_scratch_local, "buffers", {}).values())


def release_scratch() -> None:
    """Free the calling thread's kept work buffers."""
    _scratch_local.buffers = {}
