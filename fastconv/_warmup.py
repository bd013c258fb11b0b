"""Compiling ahead of use: ``fastconv warmup`` (every kernel of a list of
operations and dtypes, in parallel processes), the jobs ``fastconv bench``
precompiles, and the build process itself (``python -m fastconv._warmup``):
it plans each job's spec -- method and variant forced by name -- and runs
the plan once, compiling what a cold call needs into the disk cache.

Above the public functions and the dispatcher (it calls both); the
tiering that starts builds is :mod:`fastconv._warm`, below the dispatcher."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import pickle
import subprocess
import sys
import time

import numpy as np

from ._warm import Job, _child_env, job_for


def run_job(job) -> None:
    """Plan ``job.spec`` and run it once on random operands (tiers off); or
    a job that runs itself (``_numba_ext.Builds``)."""
    if not isinstance(job, Job):
        job.run()
        return
    from ._config import set_config
    from ._execute import warm_tiny
    from ._filters import warm_sweeps
    from .dispatch import select

    ops = job.operands()
    with set_config(num_threads=job.num_threads, workspace_limit=job.workspace_limit, background_compile=False):
        out = None if job.out_shape is None else np.empty(job.out_shape, job.spec.dtype)
        select(job.spec).run(ops, out)
        warm_tiny(job.spec)  # (the repeated call's tiny form of a small filter)
        warm_sweeps(job.spec)  # (the filters' sweeps)


def call_jobs(func, args: tuple, kwargs: dict, methods=None) -> list:
    """Jobs compiling what ``func(*args, **kwargs)`` (a convolution or
    transposed convolution) runs with ``method="auto"``, or with each of
    ``methods``."""
    from ._config import get_config
    from ._plan_api import built
    from .dispatch import select

    spec, ops, _ = built(func, args, kwargs)
    plans = [select(spec, ops)] if methods is None else [select(dataclasses.replace(spec, method=m)) for m in methods]
    shape = (spec.n, spec.c_out, *spec.lifted("out_spatial"))
    return [job_for(plan.job_spec(), ops, shape, get_config()) for plan in plans]


# --- fastconv warmup -------------------------------------------------------------------

#: the operations ``fastconv warmup --ops`` knows, each compiled by one job per dtype: the Python
#: functions' kernels (the default), and ``njit``, what calls from @njit code run (~3.5 min per
#: dtype on a 2-core Zen 3: opt-in)
WARMUP_DEFAULT = ("conv1d", "conv2d", "conv3d", "conv_transpose", "pool", "ndimage", "signal")
WARMUP_OPS = (*WARMUP_DEFAULT, "njit")
WARMUP_DTYPES = ("float32", "float64")


def _warmup_calls(op: str, dtype: str):
    """(function, args, kwargs) calls that, with every method each allows,
    compile what ``op`` runs in ``dtype``: small and large problems (serial
    and parallel builds), strides, dilations, groups, depthwise, 1x1."""
    import fastconv

    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)

    def a(*shape):
        return rng.standard_normal(shape).astype(dt)

    calls = []
    if op.startswith("conv") and op[4:5].isdigit():
        nd = int(op[4])
        f = getattr(fastconv, op)
        for n, c, o, g, size, k, kw in (
            (1, 4, 4, 1, 9, 3, dict(padding=1)),
            (2, 8, 16, 1, 12, 3, dict(padding=1, stride=2)),
            (2, 8, 8, 1, 10, 1, {}),
            (2, 8, 8, 8, 12, 3, dict(padding=1, groups=8)),
            (1, 8, 8, 2, 12, 3, dict(padding=2, dilation=2, groups=2)),
            (2, 32, 32, 1, {1: 512, 2: 40, 3: 12}[nd], 3, dict(padding=1)),
            (2, 32, 32, 32, {1: 512, 2: 56, 3: 16}[nd], 3, dict(padding=1, groups=32)),
            (1, 3, 16, 1, {1: 1024, 2: 64, 3: 16}[nd], 7, dict(padding=3, stride=2)),
        ):
            calls.append((f, (a(n, c, *(size,) * nd), a(o, c // g, *(k,) * nd), a(o)), kw))
    elif op == "conv_transpose":
        for nd in (1, 2, 3):
            f = getattr(fastconv, f"conv_transpose{nd}d")
            for n, c, o, size, k, kw in (
                (1, 4, 4, 6, 3, {}),
                (2, 16, 8, {1: 256, 2: 28, 3: 8}[nd], 4, dict(stride=2, padding=1)),
                (1, 8, 8, 7, 3, dict(stride=2, padding=1, output_padding=1)),
            ):
                calls.append((f, (a(n, c, *(size,) * nd), a(c, o, *(k,) * nd), a(o)), kw))
    elif op == "pool":
        for nd in (1, 2, 3):
            x, big = a(1, 2, *(9,) * nd), a(2, 32, *({1: 4096, 2: 64, 3: 16}[nd],) * nd)
            for kind in ("max", "avg"):
                f = getattr(fastconv, f"{kind}_pool{nd}d")
                calls += [(f, (x, 3, 2, 1), {}), (f, (big, 3, 2, 1), {}), (f, (big, 2), {})]
                adaptive = getattr(fastconv, f"adaptive_{kind}_pool{nd}d")
                calls += [(adaptive, (x, 4), {}), (adaptive, (big, 1), {}), (adaptive, (x, 1), {})]
            calls += [(getattr(fastconv, f"max_pool{nd}d"), (big, 3, 2, 1), dict(return_indices=True))]
    elif op == "ndimage":
        from fastconv import ndimage

        for x in (a(5, 6), a(256, 256), a(4, 5, 6), a(300)):
            calls.append((ndimage.correlate, (x, a(*(3,) * x.ndim)), {}))
            calls.append((ndimage.correlate, (x, np.ones((3,) * x.ndim, dt)), {}))
            calls.append((ndimage.correlate1d, (x, a(5)), {}))
            if x.ndim > 1:  # (the filters' sweeps, serial and parallel builds)
                calls += [(ndimage.gaussian_filter, (x, 1.0), {}), (ndimage.sobel, (x,), {})]
    elif op == "signal":
        from fastconv import signal

        for x, k in ((a(50), a(7)), (a(100_000), a(31)), (a(40, 40), a(5, 5)), (a(8, 9, 10), a(3, 3, 3))):
            calls.append((signal.convolve, (x, k), {}))
            calls.append((signal.fftconvolve, (x, k), {}))
            calls.append((signal.oaconvolve, (x, k), {}))
    else:
        raise ValueError(f"op must be one of {WARMUP_OPS}, got {op!r}")
    return calls


def _warm_njit(dtype: str) -> None:
    """Compile what fastconv's calls from @njit code run on ``dtype`` arrays:
    the kernels they call by address (``kernels.injit.BUILDS``), and the
    compiled helpers their code is made of (typed by small jitted calls of
    each family: a user's first jitted call then compiles only its own
    function)."""
    import importlib.util

    import numba

    import fastconv
    from fastconv import ndimage, signal

    from ._numba_ext import Builds
    from .kernels.injit import BUILDS, FFT_FULL

    fft = importlib.util.find_spec("rocket_fft") is not None  # (the FFT build needs it: the njit extra)
    Builds([(b, dtype) for b in range(len(BUILDS)) if b != FFT_FULL or fft]).run()
    dt = np.dtype(dtype)
    x3, x4, x5 = (np.ones((1, 2) + (6,) * n, dt) for n in (1, 2, 3))
    w3, w4, w5 = (np.ones((2, 2) + (3,) * n, dt) for n in (1, 2, 3))
    b = np.ones(2, dt)

    def conv(x3, x4, x5, w3, w4, w5, b):
        return (fastconv.conv1d(x3, w3, b, padding=1), fastconv.conv2d(x4, w4, b, stride=2, padding=(1, 0)),
                fastconv.conv3d(x5, w5, None, padding=(1, 1, 1), groups=1))  # fmt: skip

    def transposed(x3, x4, x5, w3, w4, w5, b):
        return (fastconv.conv_transpose1d(x3, w3, b, stride=2), fastconv.conv_transpose2d(x4, w4, b, 2, 1),
                fastconv.conv_transpose3d(x5, w5, None))  # fmt: skip

    def pool(x3, x4, x5, w3, w4, w5, b):
        return (fastconv.max_pool2d(x4, 2), fastconv.avg_pool2d(x4, 3, 2, 1), fastconv.max_pool1d(x3, 2),
                fastconv.avg_pool3d(x5, 2), fastconv.adaptive_avg_pool2d(x4, 1),
                fastconv.adaptive_max_pool2d(x4, (2, 3)))  # fmt: skip

    def filters(x3, x4, x5, w3, w4, w5, b):
        image = x4[0, 0]
        return (ndimage.correlate(image, w4[0, 0]), ndimage.convolve(image, w4[0, 0], mode="constant"),
                ndimage.correlate1d(image, b), ndimage.gaussian_filter(image, 1.0),
                ndimage.uniform_filter(image, 3), ndimage.sobel(image), ndimage.laplace(image),
                signal.convolve(image, w4[0, 0]), signal.correlate2d(image, w4[0, 0], "same"))  # fmt: skip

    for family in (conv, transposed, pool, filters):
        numba.njit(family)(x3, x4, x5, w3, w4, w5, b)


def warmup_job(op: str, dtype: str) -> int:
    """Compile what ``op`` needs in ``dtype`` (every method of every call of
    :func:`_warmup_calls`); the number of kernels compiled."""
    from numba.core import event

    import fastconv

    compiled = []

    class _Count(event.Listener):
        def on_start(self, ev) -> None:
            pass

        def on_end(self, ev) -> None:
            compiled.append(1)

    event.register("numba:compile", _Count())
    if op == "njit":
        _warm_njit(dtype)
        return len(compiled)
    for f, args, kwargs in _warmup_calls(op, dtype):
        methods = [None]
        if "method" in inspect.signature(f).parameters:
            methods = fastconv.available_methods(f, *args, **kwargs)[1:]
        for method in methods:
            f(*args, **kwargs) if method is None else f(*args, method=method, **kwargs)
    return len(compiled)


def warmup(ops=WARMUP_DEFAULT, dtypes=WARMUP_DTYPES, jobs: int | None = None, progress=None) -> list[tuple]:
    """Run one child process per (op, dtype), ``jobs`` at a time; returns
    (op, dtype, ok, seconds, kernels compiled or the error) per job."""
    from concurrent.futures import ThreadPoolExecutor

    from ._config import get_config

    pairs = [(op, dt) for op in ops for dt in dtypes]
    jobs = jobs or get_config().num_threads

    def one(pair):
        t = time.perf_counter()
        env = _child_env()
        res = subprocess.run(
            [sys.executable, "-m", "fastconv._warmup", "--warmup", *pair], capture_output=True, env=env, text=True
        )
        took = time.perf_counter() - t
        ok = res.returncode == 0
        what = res.stdout.strip().split()[-1] if ok and res.stdout.strip() else res.stderr[-1500:]
        return (*pair, ok, took, int(what) if ok and what.isdigit() else what)

    results = []
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for r in pool.map(one, pairs):
            results.append(r)
            if progress is not None:
                progress(r)
    return results


def main(argv: list[str] | None = None) -> int:
    """The build process: ``--warmup OP DTYPE``, or run the pickled jobs on
    stdin (compiling into the disk cache)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--warmup"]:
        print(warmup_job(argv[1], argv[2]))
        return 0
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # the user's process comes first
    jobs = pickle.loads(sys.stdin.buffer.read())
    for job in jobs:
        run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
