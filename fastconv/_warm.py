"""Cold start: no call waits for the compiler.

A call whose kernel is compiled neither in this process nor in the disk
cache runs its operation's tier-0 NumPy path (:mod:`fastconv.kernels.tier0`,
method ``"numpy"``) and asks a background process to compile the kernel
into the shared disk cache; a later call loads the kernel from there
(milliseconds) and runs it.  How it knows: the call runs the kernel inside
:func:`no_compile`, where Numba's ``numba:compile`` event -- fired only
after Numba found no compiled version in memory or on disk -- raises
:class:`NotCompiled` before any compilation starts.

The build runs in a separate process (``python -m fastconv._warmup``, at a
lower priority): a compilation in this one would hold the GIL and Numba's
compiler lock, stalling the caller's other threads and every other kernel.
It runs the same kernel on random operands of the same shapes, dtypes and
settings, so that it compiles exactly the versions the call needs.  One
build at a time; while a plan's own build is pending, its calls go straight
to tier 0.

Calls from ``@njit`` code use the same build process for the kernels they
reach by address (``fastconv._numba_ext._need_build``, :func:`in_background`).

Only ``method="auto"`` calls are served this way (a method forced by name
compiles and runs), on the CPU, while the setting ``background_compile`` is
on (default; ``FASTCONV_BACKGROUND_COMPILE=0`` turns it off).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import pickle
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

__all__ = ["NotCompiled", "kernel_state", "last_tier", "no_compile", "shutdown", "wait"]


class NotCompiled(Exception):
    """Raised inside :func:`no_compile` where Numba would start compiling."""


_local = threading.local()
_install_lock = threading.Lock()
_installed = False


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        from numba.core import event

        class _Guard(event.Listener):
            def on_start(self, ev) -> None:
                if getattr(_local, "guard", 0):
                    func = getattr(ev.data.get("dispatcher"), "py_func", None)
                    raise NotCompiled(getattr(func, "__qualname__", "a kernel"))

            def on_end(self, ev) -> None:
                pass

        event.register("numba:compile", _Guard())
        _installed = True


@contextlib.contextmanager
def no_compile():
    """Within the block, a call that would make Numba compile raises
    :class:`NotCompiled` instead (on this thread; loading from the disk
    cache is allowed)."""
    if not _installed:
        _install()
    _local.guard = getattr(_local, "guard", 0) + 1
    try:
        yield
    finally:
        _local.guard -= 1


def last_tier() -> str | None:
    """What the calling thread's last tiered call ran: ``"kernel"`` (the
    compiled kernel) or ``"numpy"`` (tier 0 while the kernel compiles)."""
    return getattr(_local, "tier", None)


# --- the jobs ----------------------------------------------------------------------


def _shapes(ops) -> dict[str, Any]:
    """The operands' fields, arrays replaced by (shape, dtype)."""
    if isinstance(ops, np.ndarray):
        return {"": (ops.shape, ops.dtype.str)}
    return {name: (v.shape, v.dtype.str) if isinstance(v, np.ndarray) else v for name, v in ops._asdict().items()}


def _operands(kind, fields: dict[str, Any]):
    """Random operands rebuilt from :func:`_shapes` (finite, C-contiguous)."""
    rng = np.random.default_rng(0)

    def make(v):
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], str):
            return rng.standard_normal(v[0]).astype(np.dtype(v[1]))
        return v

    if kind is None:
        return make(fields[""])
    return kind(**{k: make(v) for k, v in fields.items()})


@dataclasses.dataclass(frozen=True)
class Job:
    """Plan ``spec`` (its method, and variant, forced by name) and run it
    once on random operands: what a cold call needs compiled (run by
    :func:`fastconv._warmup.run_job` in the build process)."""

    spec: Any
    ops_type: Any
    ops: dict[str, Any]
    out_shape: tuple[int, ...] | None
    num_threads: int
    workspace_limit: int

    def operands(self):
        return _operands(self.ops_type, self.ops)

    @property
    def family(self) -> str:
        """Jobs of one family share kernels (built in one process)."""
        if "pool" in self.spec.op:
            return "pool"
        return self.spec.method.split(":")[0].split("_f")[0]  # (winograd_f2 and _f4 run one kernel)


def job_for(spec, ops, out_shape, cfg) -> Job:
    ops_type = None if isinstance(ops, np.ndarray) else type(ops)
    shape = None if out_shape is None else tuple(out_shape)
    return Job(spec, ops_type, _shapes(ops), shape, cfg.num_threads, cfg.workspace_limit)


_children: set = set()
_stopping = threading.Event()


def _child_env() -> dict[str, str]:
    """The environment of a build: no tiers there, nothing learned from its
    calls (they compile and run tiny shapes), and this fastconv first on the
    path (it may have been imported from a folder the child would not see)."""
    import site

    env = dict(os.environ, FASTCONV_BACKGROUND_COMPILE="0", FASTCONV_LEARN="0")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in [*site.getsitepackages(), site.getusersitepackages()]:  # (those every child sees)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return env


def build(jobs: list[Job], timeout: float | None = None) -> tuple[bool, str]:
    """Run ``jobs`` in a child process (compiling into the disk cache);
    (success, the child's error output)."""
    env = _child_env()
    if _stopping.is_set():
        return False, "stopped"
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "fastconv._warmup"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        return False, str(exc)
    _children.add(child)
    if _stopping.is_set():  # (shutdown() ran while it started)
        child.kill()
    try:
        _, err = child.communicate(pickle.dumps(jobs), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        child.kill()
        child.communicate()
        return False, str(exc)
    finally:
        _children.discard(child)
    return child.returncode == 0, err.decode(errors="replace")[-2000:]


def shutdown() -> None:
    """Stop the background build now (it is otherwise left to finish when
    this process exits, so that the next process finds the kernel cached)."""
    _stopping.set()
    try:
        with _builder._lock:
            _builder._queue.clear()
        for child in list(_children):
            child.kill()
        wait(30)
    finally:
        _stopping.clear()


class _Builder:
    """One background build at a time (a thread waiting on a child process)."""

    #: builds of one plan that may fail before its calls compile in-process
    MAX_FAILURES = 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: collections.OrderedDict[Any, Job] = collections.OrderedDict()
        self._running: Any = None
        self._thread: threading.Thread | None = None
        self.failures: collections.Counter = collections.Counter()
        self.errors: collections.deque[str] = collections.deque(maxlen=16)  # the last builds' error output

    def pending(self, key) -> bool:
        with self._lock:
            return key == self._running or key in self._queue

    def request(self, key, job: Job) -> bool:
        """Queue a build; False when this plan's builds keep failing."""
        with self._lock:
            if self.failures[key] >= self.MAX_FAILURES:
                return False
            if key != self._running and key not in self._queue:
                self._queue[key] = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="fastconv-compile", daemon=True)
                self._thread.start()
        return True

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                key, job = self._queue.popitem(last=False)
                self._running = key
            ok, err = build([job])
            with self._lock:
                self._running = None
                if ok:
                    # what else waits may be compiled now (shared kernels): its
                    # next call tries the cache and asks again only if needed
                    self._queue.clear()
                else:
                    self.failures[key] += 1
                    self.errors.append(err)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            thread = self._thread
            if thread is None:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            thread.join(left)


_builder = _Builder()
_ready: set = set()


_threads: set[threading.Thread] = set()


def in_background(name: str, work) -> None:
    """Run ``work()`` on a daemon thread that :func:`wait` waits for (the
    builds of compiled calls: ``fastconv._numba_ext``)."""

    def run() -> None:
        try:
            work()
        finally:
            _threads.discard(thread)

    thread = threading.Thread(target=run, name=name, daemon=True)
    _threads.add(thread)
    thread.start()


def stopping() -> bool:
    """Whether :func:`shutdown` is stopping the background builds."""
    return _stopping.is_set()


def note_failure(err: str) -> None:
    """Keep a failed background build's error output (``explain`` shows the last ones)."""
    _builder.errors.append(err)


def wait(timeout: float | None = None) -> bool:
    """Wait until no background build runs (True) or ``timeout`` seconds pass."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for thread in list(_threads):
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return _builder.wait(None if deadline is None else max(0.0, deadline - time.monotonic())) and not _threads


def is_ready(key) -> bool:
    """Whether the kernel behind ``key`` has run in this process (later calls
    of it need no compilation)."""
    return key in _ready


def kernel_state(key, forced: bool = False) -> str:
    """For ``explain``: whether the kernel behind ``key`` (what :func:`run`
    was given) has run in this process, is being compiled, or is not known yet."""
    from ._config import get_config

    if key in _ready:
        return "compiled (ran in this process)"
    if _builder.pending(key):
        return "compiling in the background; calls run tier 0 (NumPy) meanwhile"
    if forced or not get_config().background_compile:
        return "compiled on first use (background compilation off or method forced)"
    return "not run yet here: loaded from the disk cache, or tier 0 (NumPy) runs while it compiles in the background"


def run(key, spec, kernel, fallback, ops, out_shape) -> Any:
    """``kernel()`` if it needs no compilation, else ``fallback()`` (tier 0)
    and a background build of what ``kernel`` needs.  ``key`` names the
    plan (readiness is only a shortcut: the kernel always runs inside
    :func:`no_compile`)."""
    if key in _ready:  # (no_compile() inlined: this is every warm call's path)
        local = _local
        local.guard = getattr(local, "guard", 0) + 1
        try:
            result = kernel()
        except NotCompiled:  # (another signature than the one built)
            _ready.discard(key)
        else:
            local.tier = "kernel"
            return result
        finally:
            local.guard -= 1
    if not _builder.pending(key):  # (another plan's build may run: this kernel may be cached already)
        try:
            with no_compile():
                result = kernel()
        except NotCompiled:
            from ._config import get_config

            if not _builder.request(key, job_for(spec, ops, out_shape, get_config())):
                result = kernel()  # the builds failed: compile here, as without tiers
                _local.tier = "kernel"
                return result
        else:
            if len(_ready) > 8192:  # (plans come and go: keep the shortcut bounded)
                _ready.clear()
            _ready.add(key)
            _local.tier = "kernel"
            return result
    _local.tier = "numpy"
    return fallback()


#: first compilation of each method's kernels, seconds per dtype (2-core Zen 4,
#: ``bench/compile_times.py``): how :func:`build_parallel` balances its children
COMPILE_SECONDS = {"winograd": 30.0, "depthwise": 40.0, "direct": 11.0, "blocked": 9.0, "im2col": 5.0, "fft": 2.0}


def build_parallel(jobs: list[Job], processes: int) -> list[tuple[bool, str]]:
    """Run ``jobs`` in ``processes`` child processes at once: the jobs of one
    method family and dtype go to the same child (they share kernels: two
    children would compile them twice), and the families are spread by
    their compile time (:data:`COMPILE_SECONDS`)."""
    from concurrent.futures import ThreadPoolExecutor

    groups: dict = {}
    for job in jobs:
        family = job.family
        groups.setdefault((family, job.spec.dtype.str, getattr(job.spec, "transposed", False)), []).append(job)
    bins: list[tuple[float, list[Job]]] = [(0.0, []) for _ in range(max(1, min(processes, len(groups))))]
    for (family, _, _), group in sorted(groups.items(), key=lambda kv: -COMPILE_SECONDS.get(kv[0][0], 5.0)):
        i = min(range(len(bins)), key=lambda b: bins[b][0])
        bins[i] = (bins[i][0] + COMPILE_SECONDS.get(family, 5.0), bins[i][1] + group)
    with ThreadPoolExecutor(len(bins)) as pool:
        return list(pool.map(build, [b for _, b in bins if b]))
