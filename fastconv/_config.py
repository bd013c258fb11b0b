"""Settings, environment variables and the Numba options, in one place.

Nothing here imports numba: ``import fastconv`` must stay light.  Kernel
modules call :func:`numba_jit` when they are imported (lazily, on first use).
"""

from __future__ import annotations

import contextlib
import contextvars
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


#: the precision levels: "fast" lets the dispatcher use every method (float32
#: Winograd F(4x4) included: up to ~6e-6 of the output's scale, 1.4-14x the
#: error of direct summation); "high" only methods within a small factor of
#: direct summation in float32 (all but Winograd F(4x4)); see bench/precision.py
PRECISIONS = ("fast", "high")


def _env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"environment variable {name} must be one of {list(choices)}, got {raw!r}")
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
    precision: str = "fast"
    learn: bool = True

    def __hash__(self) -> int:
        """The fields' hash, computed once: every repeated call's cache key
        holds the settings (a hash written here is kept by the dataclass)."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self)))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self) -> dict:
        """Pickled without the cached hash (string hashes differ between processes)."""
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}


def _initial_config() -> Config:
    return Config(
        autotune=_env_bool("FASTCONV_AUTOTUNE", False),
        cache_dir=_default_cache_dir(),
        num_threads=_env_int("FASTCONV_NUM_THREADS") or _cpu_count(),
        workspace_limit=_DEFAULT_WORKSPACE,
        background_compile=_env_bool("FASTCONV_BACKGROUND_COMPILE", True),
        precision=_env_choice("FASTCONV_PRECISION", PRECISIONS, "fast"),
        learn=_env_bool("FASTCONV_LEARN", True),
    )


_lock = threading.Lock()
#: the process defaults, read from the environment once
_defaults: Config | None = None
#: the settings of the calling thread / asyncio task (None: the process defaults)
_current: contextvars.ContextVar[Config | None] = contextvars.ContextVar("fastconv_config", default=None)


def _process_defaults() -> Config:
    global _defaults
    if _defaults is None:
        with _lock:
            if _defaults is None:
                _defaults = _initial_config()
    return _defaults


def get_config() -> Config:
    """Return the settings of the calling thread (or asyncio task) as a
    frozen :class:`Config`: those :func:`set_config` made in this context,
    else the process defaults (from the environment).

    Examples
    --------
    >>> import fastconv
    >>> cfg = fastconv.get_config()
    >>> cfg.num_threads >= 1
    True
    """
    cfg = _current.get()
    return _process_defaults() if cfg is None else cfg


def _validated(**changes: Any) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(Config)}
    for key in changes:
        if key not in fields:
            raise TypeError(f"set_config() got an unknown setting {key!r}; valid settings: {sorted(fields)}")
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if value is None:
            continue
        if key in ("autotune", "background_compile", "learn"):
            if not isinstance(value, bool):
                raise TypeError(f"{key} must be a bool, got {type(value).__name__}")
        elif key == "cache_dir":
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"cache_dir must be a path (str or os.PathLike), got {type(value).__name__}")
            value = os.fspath(value)
        elif key == "precision":
            if value not in PRECISIONS:
                raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {value!r}")
        elif key in ("num_threads", "workspace_limit"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{key} must be a positive int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{key} must be a positive int, got {value}")
        out[key] = value
    return out


class _ConfigContext(contextlib.AbstractContextManager):
    """Returned by :func:`set_config`: the change is already applied (to the
    calling thread / task); ``with`` restores the previous settings on exit."""

    def __init__(self, token: contextvars.Token, previous: Config | None) -> None:
        self._token = token
        self._previous = previous

    def __exit__(self, *exc: object) -> None:
        try:
            _current.reset(self._token)
        except ValueError:  # (left in another context than it was entered in)
            _current.set(self._previous)

    def __repr__(self) -> str:
        return f"<fastconv settings {get_config()!r}>"


def set_config(
    *,
    autotune: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    num_threads: int | None = None,
    workspace_limit: int | None = None,
    background_compile: bool | None = None,
    precision: str | None = None,
    learn: bool | None = None,
) -> _ConfigContext:
    """Change fastconv's settings for the calling thread (or asyncio task);
    usable as a context manager, which restores them on exit.

    Settings are context-local, like ``decimal.localcontext`` or
    ``numpy.errstate``: one thread's (or task's) settings never change
    another's calls, and a thread starts with the process defaults, which
    the environment variables ``FASTCONV_AUTOTUNE``, ``FASTCONV_CACHE_DIR``,
    ``FASTCONV_NUM_THREADS``, ``FASTCONV_PRECISION``, ``FASTCONV_LEARN`` and
    ``FASTCONV_BACKGROUND_COMPILE`` set.  A dask
    graph keeps the settings it was built under: its chunks run with them
    on whatever worker thread computes them.

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
    precision : {"fast", "high"}, optional
        ``"high"``: in float32 only methods whose error stays within a small
        factor of direct summation (no Winograd F(4x4)); ``"fast"`` (default
        from ``FASTCONV_PRECISION``, else this): every method, Winograd
        F(4x4) included (measured up to ~6e-6 of the output's scale, 1.4-14x
        direct summation's).  ``explain`` shows the pick's expected error.
    learn : bool, optional
        Let ``auto`` learn from the calls it runs: a repeated call's kernel
        time, against the cost model's estimate, corrects that method's
        estimates on this machine (a bounded factor per method and size,
        the median of its recent calls, kept in ``cache_dir``; default
        from ``FASTCONV_LEARN``, else on).  Off: the constants alone decide.

    Examples
    --------
    >>> import fastconv
    >>> with fastconv.set_config(num_threads=1):
    ...     fastconv.get_config().num_threads
    1
    """
    changes = _validated(
        autotune=autotune,
        cache_dir=cache_dir,
        num_threads=num_threads,
        workspace_limit=workspace_limit,
        background_compile=background_compile,
        precision=precision,
        learn=learn,
    )
    previous = _current.get()
    token = _current.set(dataclasses.replace(get_config(), **changes))
    return _ConfigContext(token, previous)


@contextlib.contextmanager
def using(cfg: Config):
    """Run with the settings ``cfg`` (a :class:`Config` captured elsewhere,
    e.g. where a dask graph was built) in the calling thread."""
    token = _current.set(cfg)
    try:
        yield
    finally:
        _current.reset(token)


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
    return numba_jit()(renamed(kernel.py_func, name))


def renamed(func, name: str):
    """``func`` (a Python function) under another name: Numba's disk cache is
    keyed by the qualified name, not by the options a function compiles with."""
    import types

    copy = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__, func.__closure__)
    copy.__qualname__ = name
    return copy


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
#: Numba's threading layer once its threads are up (it never changes after)
_layer: str | None = None


class numba_threads:
    """Run a parallel kernel with ``num_threads`` threads, safely from any thread
    (a context manager).

    Numba's ``workqueue`` threading layer aborts the process when two threads
    enter parallel regions at once; when that layer is (or may be) in use the
    call is serialised.  ``tbb`` and ``omp`` are thread-safe and run freely.
    Once Numba's threads are up, the thread count is read and set through
    Numba's own native functions, without ``numba.set_num_threads``'s two
    locks per call (measured: 4.8 -> 0.4 us per use, 2-core Zen 4; a small
    call's whole budget is a few microseconds)."""

    __slots__ = ("guard", "n", "previous")

    def __init__(self, num_threads: int) -> None:
        self.n = num_threads

    def __enter__(self) -> None:
        global _layer, _parallel
        if _layer is None:
            import numba
            from numba.np.ufunc import parallel

            parallel._launch_threads()  # (what numba.set_num_threads does first)
            _parallel = parallel
            _layer = numba.threading_layer()
        parallel = _parallel
        n = self.n
        top = parallel.config.NUMBA_NUM_THREADS
        n = 1 if n < 1 else (top if n > top else int(n))
        self.guard = _parallel_lock if _layer == "workqueue" else None
        if self.guard is not None:
            self.guard.acquire()
        self.previous = parallel._get_num_threads()
        if self.previous != n:
            parallel._set_num_threads(n)

    def __exit__(self, *exc) -> None:
        parallel = _parallel
        if parallel._get_num_threads() != self.previous:
            parallel._set_num_threads(self.previous)
        if self.guard is not None:
            self.guard.release()


_parallel = None


_controller = None
_blas_lock = threading.Lock()
#: limits asked for by callers inside blas_threads now (thread count -> callers)
_blas_active: dict[int, int] = {}
#: threadpoolctl's record of the limits before the first of them
_blas_original = None


def _blas_controller():
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            import scipy.linalg.cython_blas  # noqa: F401

            _controller = ThreadpoolController()
    return _controller


_blas_executor = None


def _on_blas_thread(fn):
    """Run ``fn`` on fastconv's one BLAS-limiting thread and return its
    result: threadpoolctl (>= 3.8) lets one thread at a time control
    OpenBLAS's process-wide limit and ignores the others, so every change
    fastconv makes comes from the same thread."""
    global _blas_executor
    if _blas_executor is None:
        with _lock:
            if _blas_executor is None:
                from concurrent.futures import ThreadPoolExecutor

                _blas_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastconv-blas")
    return _blas_executor.submit(fn).result()


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit BLAS to ``n`` threads for the duration (no-op without threadpoolctl).

    The limit is process-wide (BLAS has one), so concurrent callers share
    it: while any caller is inside, BLAS runs with the smallest count asked
    for, and the limit in place before the first is restored when the last
    leaves -- a caller leaving never lifts the limit under another still
    inside (two threads running im2col at once).  The changes are made from
    one thread of fastconv's (:func:`_on_blas_thread`).

    The controller is built once (building it scans the loaded libraries, about
    a millisecond), after loading scipy's BLAS — the one numba's ``np.dot``
    calls — so that both numpy's and scipy's OpenBLAS are limited.  Without the
    latter, OpenBLAS called from Numba's threads warns "Detect OpenMP Loop and
    this application may hang" and nests its own threads."""
    global _blas_original
    controller = _blas_controller()
    if not controller:
        yield
        return
    with _blas_lock:
        least = min(_blas_active, default=None)
        _blas_active[n] = _blas_active.get(n, 0) + 1
        if least is None:
            _blas_original = _on_blas_thread(lambda: controller.limit(limits=n, user_api="blas"))
        elif n < least:
            _on_blas_thread(lambda: controller.limit(limits=n, user_api="blas"))
    try:
        yield
    finally:
        with _blas_lock:
            _blas_active[n] -= 1
            if not _blas_active[n]:
                del _blas_active[n]
            if not _blas_active:
                _on_blas_thread(_blas_original.restore_original_limits)
                _blas_original = None
            elif n < min(_blas_active):
                least = min(_blas_active)
                _on_blas_thread(lambda: controller.limit(limits=least, user_api="blas"))


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
