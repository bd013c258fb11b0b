"""Benchmark suites and the timing method behind ``fastconv bench``.

Method: every library runs in this process with the same thread count;
runs are interleaved (fastconv, reference, fastconv, ...) so drift on a shared
machine hits both alike; the figure is the median, and comparisons are ratios
of medians.  Every timed case is also checked against the reference output.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._config import blas_threads
from .dispatch.tuning import cpu_id

# name, input shape, weight shape, keyword arguments.  Realistic layers.
CONV2D = [
    ("resnet 3x3 64 @56", (8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
    ("resnet 3x3 128 @28", (8, 128, 28, 28), (128, 128, 3, 3), dict(padding=1)),
    ("resnet 3x3 256 @14", (8, 256, 14, 14), (256, 256, 3, 3), dict(padding=1)),
    ("resnet 3x3 512 @7", (8, 512, 7, 7), (512, 512, 3, 3), dict(padding=1)),
    ("resnet stem 7x7/2", (8, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3)),
    ("resnet 1x1 expand 64->256 @56", (8, 64, 56, 56), (256, 64, 1, 1), dict()),
    ("resnet 1x1/2 256->512 @56", (8, 256, 56, 56), (512, 256, 1, 1), dict(stride=2)),
    ("resnet 3x3/2 128 @56", (8, 128, 56, 56), (128, 128, 3, 3), dict(stride=2, padding=1)),
    ("mobilenet depthwise 32 @112", (8, 32, 112, 112), (32, 1, 3, 3), dict(padding=1, groups=32)),
    ("mobilenet depthwise 144 @56", (8, 144, 56, 56), (144, 1, 3, 3), dict(padding=1, groups=144)),
    ("mobilenet depthwise/2 96 @112", (8, 96, 112, 112), (96, 1, 3, 3), dict(stride=2, padding=1, groups=96)),
    ("deeplab dilated 3x3 d2 256 @28", (4, 256, 28, 28), (256, 256, 3, 3), dict(padding=2, dilation=2)),
    ("resnext grouped 32x4 @28", (8, 128, 28, 28), (128, 4, 3, 3), dict(padding=1, groups=32)),
    ("vgg 3x3 64 @224 batch 1", (1, 64, 224, 224), (64, 64, 3, 3), dict(padding=1)),
    ("unet 3x3 32 @256 batch 1", (1, 32, 256, 256), (32, 32, 3, 3), dict(padding=1)),
    ("cifar 3x3 32 @32 batch 32", (32, 32, 32, 32), (32, 32, 3, 3), dict(padding=1)),
    ("cifar 3x3 64 @16 batch 32", (32, 64, 16, 16), (64, 64, 3, 3), dict(padding=1)),
]
CONV1D = [
    ("audio 1d 64 k3 @4096", (8, 64, 4096), (64, 64, 3), dict(padding=1)),
    ("audio 1d 32 k9 @16000", (4, 32, 16000), (32, 32, 9), dict(padding=4)),
    ("tcn 1d dilated 64 k3 d4", (8, 64, 2048), (64, 64, 3), dict(padding=4, dilation=4)),
    ("1d depthwise 128 k7", (8, 128, 2048), (128, 1, 7), dict(padding=3, groups=128)),
    ("1d strided 32->64 k4/2", (8, 32, 8192), (64, 32, 4), dict(stride=2, padding=1)),
]
CONV3D = [
    ("video 3x3x3 32 @16x56x56", (2, 32, 16, 56, 56), (32, 32, 3, 3, 3), dict(padding=1)),
    ("medical 3x3x3 16 @64^3", (1, 16, 64, 64, 64), (16, 16, 3, 3, 3), dict(padding=1)),
    ("3d 1x3x3 64 @8x28x28", (4, 64, 8, 28, 28), (64, 64, 1, 3, 3), dict(padding=(0, 1, 1))),
    ("3d depthwise 64 @16x28x28", (2, 64, 16, 28, 28), (64, 1, 3, 3, 3), dict(padding=1, groups=64)),
]
# decoder-style upconvolutions; weight is (C_in, C_out, k, k)
CONV_TRANSPOSE2D = [
    ("unet up 4x4/2 256->128 @14", (8, 256, 14, 14), (256, 128, 4, 4), dict(stride=2, padding=1)),
    ("unet up 4x4/2 128->64 @28", (8, 128, 28, 28), (128, 64, 4, 4), dict(stride=2, padding=1)),
    ("dcgan up 4x4/2 64->32 @56", (8, 64, 56, 56), (64, 32, 4, 4), dict(stride=2, padding=1)),
    ("fcn up 3x3/2 op1 256->128 @14", (8, 256, 14, 14), (256, 128, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("fcn up 3x3/2 op1 128->64 @28", (8, 128, 28, 28), (128, 64, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ("unet up 2x2/2 512->256 @14", (8, 512, 14, 14), (512, 256, 2, 2), dict(stride=2)),
    ("unet up 2x2/2 128->64 @56", (8, 128, 56, 56), (128, 64, 2, 2), dict(stride=2)),
    ("gan up 4x4/2 32->32 @112 batch 1", (1, 32, 112, 112), (32, 32, 4, 4), dict(stride=2, padding=1)),
]
# pooling: name, input shape, function, keyword arguments (memory-bound: GB/s)
POOL2D = [
    ("max 3x3/2 64 @112", (8, 64, 112, 112), "max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("max 3x3/1 64 @56 batch 32", (32, 64, 56, 56), "max_pool2d", dict(kernel_size=3, stride=1, padding=1)),
    ("max 2x2/2 128 @28 batch 32", (32, 128, 28, 28), "max_pool2d", dict(kernel_size=2)),
    ("max 2x2/2 512 @14 batch 16", (16, 512, 14, 14), "max_pool2d", dict(kernel_size=2)),
    ("max 3x3/2 ceil 32 @57", (16, 32, 57, 57), "max_pool2d", dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("avg 3x3/1 256 @56", (8, 256, 56, 56), "avg_pool2d", dict(kernel_size=3, stride=1, padding=1)),
    ("avg 2x2/2 128 @28 batch 32", (32, 128, 28, 28), "avg_pool2d", dict(kernel_size=2)),
    ("avg 3x3/2 32 @112", (8, 32, 112, 112), "avg_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("avg 2x2/2 512 @14 batch 16", (16, 512, 14, 14), "avg_pool2d", dict(kernel_size=2)),
    ("global avg 512 @7 batch 32", (32, 512, 7, 7), "adaptive_avg_pool2d", dict(output_size=1)),
    ("global max 512 @14 batch 16", (16, 512, 14, 14), "adaptive_max_pool2d", dict(output_size=1)),
]
# image filters against scipy.ndimage: name, input shape, dtype, weights kind and size, mode
NDIMAGE = [
    ("2-D 1024^2 3x3 reflect f64", (1024, 1024), "float64", ("random", 3), "reflect"),
    ("2-D 1024^2 3x3 nearest f32", (1024, 1024), "float32", ("random", 3), "nearest"),
    ("2-D 1024^2 5x5 mirror f32", (1024, 1024), "float32", ("random", 5), "mirror"),
    ("2-D 1024^2 7x7 wrap f64", (1024, 1024), "float64", ("random", 7), "wrap"),
    ("2-D 1024^2 9x9 gaussian constant", (1024, 1024), "float32", ("gaussian", 9), "constant"),
    ("2-D 1024^2 15x15 grid-constant f32", (1024, 1024), "float32", ("random", 15), "grid-constant"),
    ("2-D 1024^2 15x15 box grid-mirror", (1024, 1024), "float64", ("box", 15), "grid-mirror"),
    ("2-D 2048^2 7x7 grid-wrap f32", (2048, 2048), "float32", ("random", 7), "grid-wrap"),
    ("3-D 128^3 3x3x3 reflect f32", (128, 128, 128), "float32", ("random", 3), "reflect"),
    ("3-D 96^3 5x5x5 constant f64", (96, 96, 96), "float64", ("random", 5), "constant"),
]
# scipy.ndimage's convolution-based filters: name, input shape, dtype, filter, its arguments, mode
FILTERS = [
    ("gaussian_filter 1024^2 sigma 2 f32", (1024, 1024), "float32", "gaussian_filter", (2.0,), "reflect"),
    ("gaussian_filter 1024^2 sigma 2 f64", (1024, 1024), "float64", "gaussian_filter", (2.0,), "reflect"),
    ("gaussian_filter 256^3 sigma 1 f32", (256, 256, 256), "float32", "gaussian_filter", (1.0,), "nearest"),
    ("uniform_filter 1024^2 size 5 f32", (1024, 1024), "float32", "uniform_filter", (5,), "reflect"),
    ("uniform_filter1d 1024^2 axis 0 f64", (1024, 1024), "float64", "uniform_filter1d", (9, 0), "wrap"),
    ("sobel 1024^2 f32", (1024, 1024), "float32", "sobel", (), "reflect"),
    ("prewitt 1024^2 axis 0 f64", (1024, 1024), "float64", "prewitt", (0,), "mirror"),
    ("laplace 1024^2 f32", (1024, 1024), "float32", "laplace", (), "reflect"),
    ("gaussian_laplace 1024^2 sigma 2 f32", (1024, 1024), "float32", "gaussian_laplace", (2.0,), "reflect"),
    ("gaussian_gradient_magnitude 1024^2 f64", (1024, 1024), "float64", "gaussian_gradient_magnitude", (2.0,),
     "reflect"),
    ("gaussian_filter 64^2 sigma 1 f32", (64, 64), "float32", "gaussian_filter", (1.0,), "reflect"),
    ("sobel 32^2 f64", (32, 32), "float64", "sobel", (), "reflect"),
]  # fmt: skip
# scipy.signal.convolve (method="auto") cases: name, in1 shape, in2 shape, mode, dtype
_SIGNAL_SHAPES = [
    ("1-D 1M x 31", (1_000_000,), (31,), "full"),
    ("1-D 1M x 255", (1_000_000,), (255,), "full"),
    ("1-D 200k x 20k", (200_000,), (20_000,), "full"),
    ("1-D 100 x 10", (100,), (10,), "full"),
    ("2-D 1024^2 x 3x3 same", (1024, 1024), (3, 3), "same"),
    ("2-D 1024^2 x 15x15 same", (1024, 1024), (15, 15), "same"),
    ("2-D 1024^2 x 63x63 same", (1024, 1024), (63, 63), "same"),
    ("2-D 2048^2 x 5x5 valid", (2048, 2048), (5, 5), "valid"),
    ("3-D 128^3 x 5^3 same", (128, 128, 128), (5, 5, 5), "same"),
]
SIGNAL = [(name, sa, sb, mode, "float64") for name, sa, sb, mode in _SIGNAL_SHAPES] + [
    (f"{name} f32", sa, sb, mode, "float32") for name, sa, sb, mode in _SIGNAL_SHAPES
]
QUICK = {
    "conv2d": [0, 4, 6, 8, 12, 15],
    "conv1d": [0, 3],
    "conv3d": [2],
    "conv_transpose2d": [0, 3, 6],
    "pool2d": [0, 2, 5, 6, 9],
    "ndimage": [0, 4, 5, 8],
    "signal": [0, 2, 3, 5, 9, 11],
    "filters": [0, 5, 9, 10],
}
SUITES = {
    "conv2d": CONV2D,
    "conv1d": CONV1D,
    "conv3d": CONV3D,
    "conv_transpose2d": CONV_TRANSPOSE2D,
    "pool2d": POOL2D,
    "ndimage": NDIMAGE,
    "signal": SIGNAL,
    "filters": FILTERS,
}
#: the suites of convolution layers (name, input shape, weight shape, keyword
#: arguments), planned by the dispatcher; the others time one kernel (pooling)
#: or scipy's functions
CONV_SUITES = ("conv2d", "conv1d", "conv3d", "conv_transpose2d")
#: command-line names of the suites (issue 7's vocabulary) -> suites
SUITE_GROUPS = {
    "conv": ["conv2d", "conv1d", "conv3d"],
    "transpose": ["conv_transpose2d"],
    "pool": ["pool2d"],
    **{name: [name] for name in SUITES},
    "sweep": ["sweep"],
    "all": [*SUITES, "sweep"],
}


@dataclasses.dataclass
class Result:
    suite: str
    case: str
    input: tuple
    weight: tuple
    params: dict
    method: str
    gflop: float
    fastconv_ms: float
    gflops: float
    reference: dict  # library -> {"ms": .., "ratio": ..}
    max_rel_err: float | None
    #: memory-bound ops (pooling): bytes read + written per second
    gbps: float | None = None
    #: ``--methods``: median ms of every explicit method (timed with the rest)
    methods: dict | None = None
    #: ``--memory``: peak memory of one call, MiB over the process before it (library -> MiB)
    peak_mib: dict | None = None


def interleaved_medians(
    funcs: dict[str, Callable[[], Any]], repeats: int, budget_s: float, settle_s: float = 0.12, warm_s: float = 0.03
) -> dict[str, float]:
    """Median seconds of each function, run round-robin.

    Each turn starts with a pause, then calls the function untimed for at
    least ``warm_s`` (and at least once): the thread pools of the library
    that ran before keep spinning after their last call (OpenBLAS for ~0.1 s,
    OpenMP briefly) and would otherwise be charged to the next one (measured:
    torch 2.5x slower when timed right after a BLAS GEMM); and after the
    pause this machine's cores run slow for ~15 ms (measured: a
    single-threaded numpy reduction 2.2x slower on its first call, back to
    steady speed by the tenth; one untimed call left the timed one in that
    ramp: fastconv conv1d 1.3x, torch 1.2x slower than back to back).
    A call shorter than a millisecond is timed as a loop of calls (the count
    fixed on the first turn from the fastest of three calls, as ``timeit``
    does): one short call after the pause would measure the timer and a
    thread pool waking up (torch's OpenMP: 4 ms for a 0.1 ms call), not the
    steady state that back-to-back calls see."""
    times: dict[str, list[float]] = {k: [] for k in funcs}
    loops: dict[str, int] = {}
    start = time.perf_counter()
    for i in range(repeats):
        for name, f in funcs.items():
            if len(funcs) > 1:
                time.sleep(settle_s)
            t0 = time.perf_counter()
            f()
            while time.perf_counter() - t0 < warm_s:
                f()
            if name not in loops:
                once = []
                for _ in range(3):  # the fastest of three: one slow wake-up must not decide
                    t0 = time.perf_counter()
                    f()
                    once.append(time.perf_counter() - t0)
                loops[name] = 1 if min(once) >= 1e-3 else min(10_000, int(2e-3 / max(min(once), 1e-7)) + 1)
            n = loops[name]
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            times[name].append((time.perf_counter() - t0) / n)
        if i >= 2 and time.perf_counter() - start > budget_s:
            break
    return {k: float(np.median(v)) for k, v in times.items()}


def _torch(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def gemm_rate(threads: int) -> float:
    """float32 GFLOP/s of numpy matmul on 2048x2048 with ``threads`` BLAS threads."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    with blas_threads(threads):
        t = interleaved_medians({"gemm": lambda: a @ a}, 7, 5.0)["gemm"]
    return 2 * 2048**3 / t / 1e9


def case_count(suite: str, quick: bool = False, only: str | None = None) -> int:
    """How many cases :func:`run_suite` runs with these options."""
    cases = SUITES[suite]
    if quick:
        cases = [cases[i] for i in QUICK[suite]]
    return sum(1 for c in cases if not only or only in c[0])


def copy_rate() -> float:
    """GB/s (read + write) of a 256 MiB numpy copy: the memory-bound ceiling."""
    a = np.ones(2**26, np.float32)
    b = np.empty_like(a)
    t = interleaved_medians({"copy": lambda: np.copyto(b, a)}, 5, 3.0)["copy"]
    return 2 * a.nbytes / t / 1e9


def _timed_result(funcs: dict[str, Callable[[], Any]], repeats: int, budget_s: float, *, flops: float = 0.0,
                  moved: float | None = None, **fields: Any) -> Result:  # fmt: skip
    """Time ``funcs`` ("fastconv" and its references) interleaved and return
    the case's Result: time, GFLOP/s (``flops``) or GB/s (``moved`` bytes),
    the ratio to each reference, and the relative error against the first."""
    err = None
    references = [k for k in funcs if k != "fastconv"]
    if references:
        ours, theirs = np.asarray(funcs["fastconv"]()), np.asarray(funcs[references[0]]())
        err = float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))
    med = interleaved_medians(funcs, repeats, budget_s)
    t = med["fastconv"]
    return Result(
        gflop=flops / 1e9,
        fastconv_ms=t * 1e3,
        gflops=flops / t / 1e9,
        reference={k: {"ms": med[k] * 1e3, "ratio": t / med[k]} for k in references},
        max_rel_err=err,
        gbps=None if moved is None else moved / t / 1e9,
        **fields,
    )


def _torch_call(torch, tf, *args, **kw):
    """A torch call without autograd bookkeeping, for timing."""

    def run():
        with torch.no_grad():
            return tf(*args, **kw)

    return run


def run_suite(
    suite: str,
    *,
    quick: bool = False,
    threads: int = 2,
    compare: tuple[str, ...] = ("torch",),
    repeats: int = 15,
    budget_s: float = 6.0,
    progress: Callable[[str], None] | None = None,
    only: str | None = None,
    methods: bool = False,
    memory: bool = False,
) -> list[Result]:
    """Time one suite.  The convolution suites (:data:`CONV_SUITES`) can also
    time every explicit method next to ``auto`` (``methods``: is the
    dispatcher's pick the fastest?) and measure each library's peak memory
    for one call (``memory``, in child processes: :func:`peak_memory`); the
    other suites ignore both."""
    import fastconv

    cases = SUITES[suite]
    if quick:
        cases = [cases[i] for i in QUICK[suite]]
    if only:
        cases = [c for c in cases if only in c[0]]
    torch = _torch(threads) if "torch" in compare else None
    if suite == "pool2d":
        return _run_pool_suite(cases, threads, torch, repeats, budget_s, progress)
    if suite == "ndimage":
        return _run_ndimage_suite(cases, threads, "scipy" in compare, repeats, budget_s, progress)
    if suite == "signal":
        return _run_signal_suite(cases, threads, "scipy" in compare, repeats, budget_s, progress)
    if suite == "filters":
        return _run_filters_suite(cases, threads, "scipy" in compare, repeats, budget_s, progress)
    f = getattr(fastconv, suite)
    results = []
    with fastconv.set_config(num_threads=threads), blas_threads(threads):
        _precompile(f, cases, methods, threads)
        rng = np.random.default_rng(0)
        for name, xs, ws, kw in cases:
            if progress:
                progress(name)
            x = rng.standard_normal(xs).astype(np.float32)
            w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
            plan = fastconv.explain(f, x, w, **kw)
            funcs = {"fastconv": lambda f=f, x=x, w=w, kw=kw: f(x, w, **kw)}
            if torch is not None:
                tf = getattr(torch.nn.functional, suite)
                funcs["torch"] = _torch_call(torch, tf, torch.from_numpy(x), torch.from_numpy(w), **kw)
            explicit = _explicit(f, x, w, kw) if methods else []
            for m in explicit:
                funcs[f"method:{m}"] = lambda f=f, x=x, w=w, kw=kw, m=m: f(x, w, method=m, **kw)
            res = _timed_result(funcs, repeats, budget_s, flops=plan.flops, suite=suite, case=name, input=tuple(xs),
                                weight=tuple(ws), params=dict(kw), method=plan.method)  # fmt: skip
            if explicit:
                res.methods = {m: res.reference.pop(f"method:{m}")["ms"] for m in explicit}
            if memory:
                libs = ["fastconv"] + (["torch"] if torch is not None else [])
                res.peak_mib = {lib: peak_memory(lib, suite, xs, ws, kw, threads) / 2**20 for lib in libs}
            results.append(res)
    return results


def _explicit(f, x, w, kw) -> list[str]:
    """The methods ``--methods`` times: every one ``auto`` may pick (not
    tier 0, which only stands in while a kernel compiles)."""
    from ._plan_api import _spec_of
    from .dispatch.selector import feasible_methods

    return feasible_methods(_spec_of(f, (x, w), kw), fallbacks=False)


def _precompile(f, cases, methods: bool, processes: int) -> None:
    """Compile the kernels the cases will run, ``processes`` child processes
    at a time (into the disk cache the timed calls then load from): the
    first calls would otherwise compile them one after another."""
    from . import _warm, _warmup

    rng = np.random.default_rng(0)
    jobs = []
    for _, xs, ws, kw in cases:
        x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
        jobs += _warmup.call_jobs(f, (x, w), kw, _explicit(f, x, w, kw) if methods else None)
    _warm.build_parallel(jobs, processes)


def peak_memory(library: str, op: str, xs, ws, kw: dict, threads: int) -> int:
    """Bytes one ``op`` call of ``library`` ("fastconv" or "torch") adds to
    the peak resident memory of a fresh process (output included), after a
    warm-up call of the same shape and with fastconv's kept work buffers
    released first, so that they count.  Large allocations go straight to
    the OS (``MALLOC_MMAP_THRESHOLD_``): memory freed by the warm-up is not
    silently reused, and the peak is Linux's VmHWM, reset before the call."""
    import subprocess

    code = _PEAK_CODE.format(lib=library, op=op, xs=tuple(xs), ws=tuple(ws), kw=dict(kw), threads=threads)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.split()[-1])


_PEAK_CODE = """
import gc
import numpy as np
def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key))
rng = np.random.default_rng(0)
x = rng.standard_normal({xs}).astype(np.float32)
w = rng.standard_normal({ws}).astype(np.float32)
if "{lib}" == "torch":
    import torch
    torch.set_num_threads({threads})
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    def call():
        with torch.no_grad():
            return getattr(torch.nn.functional, "{op}")(tx, tw, **{kw})
else:
    import fastconv
    from fastconv._config import release_scratch
    fastconv.set_config(num_threads={threads})
    def call():
        return getattr(fastconv, "{op}")(x, w, **{kw})
call()
if "{lib}" == "fastconv":
    release_scratch()
gc.collect()
base = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
y = call()
print(status("VmHWM:") - base)
"""


def _run_pool_suite(cases, threads, torch, repeats, budget_s, progress) -> list[Result]:
    import fastconv

    results = []
    rng = np.random.default_rng(0)
    with fastconv.set_config(num_threads=threads):
        for name, xs, fname, kw in cases:
            if progress:
                progress(name)
            x = rng.standard_normal(xs).astype(np.float32)
            f = getattr(fastconv, fname)
            funcs = {"fastconv": lambda f=f, x=x, kw=kw: f(x, **kw)}
            if torch is not None:
                funcs["torch"] = _torch_call(torch, getattr(torch.nn.functional, fname), torch.from_numpy(x), **kw)
            ours = f(x, **kw)
            results.append(
                _timed_result(
                    funcs,
                    repeats,
                    budget_s,
                    moved=x.nbytes + ours.nbytes,
                    suite="pool2d",
                    case=name,
                    input=tuple(xs),
                    weight=(),
                    params={"function": fname, **kw},
                    method="global" if ours.shape[-2:] == (1, 1) and "output_size" in kw else "separable",
                )
            )
    return results


def filter_weights(kind: str, k: int, ndim: int) -> np.ndarray:
    """Weights of an ndimage bench case: random, Gaussian (separable) or box."""
    if kind == "random":
        return np.random.default_rng(1).standard_normal((k,) * ndim)
    g = np.exp(-0.5 * (np.arange(k) - k // 2) ** 2 / (k / 4) ** 2) if kind == "gaussian" else np.ones(k)
    out = g
    for _ in range(ndim - 1):
        out = np.multiply.outer(out, g)
    return out / out.sum()


def _run_ndimage_suite(cases, threads, with_scipy, repeats, budget_s, progress) -> list[Result]:
    """fastconv.ndimage.correlate against scipy.ndimage.correlate (scipy is single-threaded)."""
    import fastconv
    from fastconv import ndimage as fn

    results = []
    rng = np.random.default_rng(0)
    with fastconv.set_config(num_threads=threads):
        for name, shape, dtype, (kind, k), mode in cases:
            if progress:
                progress(name)
            x = rng.standard_normal(shape).astype(dtype)
            w = filter_weights(kind, k, len(shape))
            plan = fastconv.explain(fn.correlate, x, w, mode=mode)
            funcs = {"fastconv": lambda x=x, w=w, mode=mode: fn.correlate(x, w, mode=mode)}
            if with_scipy:
                from scipy import ndimage as sn

                funcs["scipy"] = lambda x=x, w=w, mode=mode: sn.correlate(x, w, mode=mode)
            results.append(
                _timed_result(
                    funcs,
                    repeats,
                    budget_s,
                    flops=plan.flops,
                    suite="ndimage",
                    case=name,
                    input=tuple(shape),
                    weight=tuple(w.shape),
                    params={"mode": mode, "dtype": dtype, "weights": kind},
                    method=plan.method,
                )
            )
    return results


def _run_filters_suite(cases, threads, with_scipy, repeats, budget_s, progress) -> list[Result]:
    """fastconv.ndimage's convolution-based filters against scipy.ndimage's
    (single-threaded); the method shown is that of the filter's first pass."""
    import fastconv
    from fastconv import ndimage as fn

    results = []
    rng = np.random.default_rng(0)
    with fastconv.set_config(num_threads=threads):
        for name, shape, dtype, filt, args, mode in cases:
            if progress:
                progress(name)
            x = rng.standard_normal(shape).astype(dtype)
            plan = fastconv.explain(getattr(fn, filt), x, *args, mode=mode)
            funcs = {"fastconv": lambda x=x, f=getattr(fn, filt), a=args, m=mode: f(x, *a, mode=m)}
            if with_scipy:
                from scipy import ndimage as sn

                funcs["scipy"] = lambda x=x, f=getattr(sn, filt), a=args, m=mode: f(x, *a, mode=m)
            results.append(
                _timed_result(funcs, repeats, budget_s, flops=plan.flops, suite="filters", case=name,
                              input=tuple(shape), weight=(), params={"filter": filt, "args": list(args), "mode": mode,
                                                                     "dtype": dtype},
                              method="sweep" if getattr(plan.spec, "note", "") else plan.method)
            )  # fmt: skip
    return results


def _run_signal_suite(cases, threads, with_scipy, repeats, budget_s, progress) -> list[Result]:
    """fastconv.signal.convolve against scipy.signal.convolve (both method="auto"), float64 and float32."""
    import fastconv
    from fastconv import signal as fs

    results = []
    rng = np.random.default_rng(0)
    with fastconv.set_config(num_threads=threads):
        for name, sa, sb, mode, dtype in cases:
            if progress:
                progress(name)
            a = rng.standard_normal(sa).astype(dtype)
            b = rng.standard_normal(sb).astype(dtype)
            method = fs.choose_conv_method(a, b, mode)
            funcs = {"fastconv": lambda a=a, b=b, mode=mode: fs.convolve(a, b, mode)}
            if with_scipy:
                from scipy import signal as ss

                funcs["scipy"] = lambda a=a, b=b, mode=mode: ss.convolve(a, b, mode)
            results.append(
                _timed_result(
                    funcs,
                    repeats,
                    budget_s,
                    flops=2.0 * a.size * b.size,
                    suite="signal",
                    case=name,
                    input=tuple(sa),
                    weight=tuple(sb),
                    params={"mode": mode, "dtype": dtype},
                    method=method,
                )
            )
    return results


def thread_scaling(repeats: int = 7) -> float:
    """Two Python threads each filtering a 2048^2 image with one fastconv
    thread, against the same two calls one after the other: the speed-up
    (about 2 when the GIL is released and the kernels run concurrently)."""
    import threading

    import fastconv
    from fastconv import ndimage as fn

    x = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    w = filter_weights("random", 7, 2)
    with fastconv.set_config(num_threads=1):

        def sequential():
            fn.correlate(x, w)
            fn.correlate(x, w)

        def concurrent():
            ts = [threading.Thread(target=fn.correlate, args=(x, w)) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

        med = interleaved_medians({"sequential": sequential, "concurrent": concurrent}, repeats, 10.0, settle_s=0.05)
    return med["sequential"] / med["concurrent"]


def geomean(values) -> float:
    values = [v for v in values if v > 0]
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def table(results: list[Result], gemm: float | None, copy: float | None = None) -> str:
    """Rows per case with the time and the ratio to each reference; compute-bound
    suites show GFLOP/s and % of the GEMM rate, memory-bound ones (pooling) GB/s
    and % of the copy rate.  With ``--methods``: the fastest explicit method,
    auto's time over its time, and the time of auto's pick forced by name over
    it (the pick's quality, without the noise between two timings of one
    kernel); with ``--memory``: each library's peak MiB."""
    by_bytes = bool(results) and results[0].gbps is not None
    name, peak, label, digits = ("GB/s", copy, "%copy", 3) if by_bytes else ("GFLOP/s", gemm, "%GEMM", 2)
    libs = sorted({k for r in results for k in r.reference})
    with_methods = any(r.methods for r in results)
    mem_libs = sorted({k for r in results for k in (r.peak_mib or {})}, key=lambda k: k != "fastconv")
    width = max([9] + [len(r.method) for r in results])
    head = f"{'case':<34} {'method':<{width}} {'ms':>9} {name:>8}"
    if peak:
        head += f" {label:>6}"
    for lib in libs:
        head += f" {lib + ' ms':>10} {'ratio':>6}"
    if with_methods:
        head += f" {'best explicit':<{width + 9}} {'auto/best':>9} {'pick/best':>9}"
    for lib in mem_libs:
        head += f" {lib + ' MiB':>13}"
    lines = [head, "-" * len(head)]
    for r in results:
        rate = r.gbps if by_bytes else r.gflops
        line = f"{r.case[:34]:<34} {r.method:<{width}} {r.fastconv_ms:9.{digits}f} {rate:8.1f}"
        if peak:
            line += f" {100 * rate / peak:5.0f}%"
        for lib in libs:
            ref = r.reference.get(lib)
            line += f" {ref['ms']:10.{digits}f} {ref['ratio']:6.2f}" if ref else f" {'-':>10} {'-':>6}"
        if with_methods:
            best = min(r.methods, key=r.methods.get) if r.methods else None
            pick = r.methods.get(r.method) if best else None
            line += (
                f" {best:<{width}} {r.methods[best]:8.2f} {r.fastconv_ms / r.methods[best]:9.2f}"
                + (f" {pick / r.methods[best]:9.2f}" if pick else f" {'-':>9}")
                if best
                else f" {'-':<{width + 9}} {'-':>9} {'-':>9}"
            )
        for lib in mem_libs:
            mib = (r.peak_mib or {}).get(lib)
            line += f" {mib:13.1f}" if mib is not None else f" {'-':>13}"
        lines.append(line)
    for lib in libs:
        ratios = [r.reference[lib]["ratio"] for r in results if lib in r.reference]
        lines.append(
            f"geomean time ratio fastconv/{lib}: {geomean(ratios):.2f}  (worst {max(ratios):.2f}, "
            f"best {min(ratios):.2f}; below 1 means fastconv is faster)"
        )
    if with_methods:
        vs_best = [r.fastconv_ms / min(r.methods.values()) for r in results if r.methods]
        near = sum(v <= 1.10 for v in vs_best)
        lines.append(
            f"method='auto' within 10% of the best explicit method on {near}/{len(vs_best)} cases "
            f"({100 * near / len(vs_best):.0f}%), worst auto/best {max(vs_best):.2f}"
        )
        # the same comparison for the method auto picked, forced by name in the
        # same runs: the pick's quality without the run-to-run noise between
        # two timings of one kernel (auto/best includes it, and the dispatch)
        picks = [r.methods[r.method] / min(r.methods.values()) for r in results if r.methods.get(r.method)]
        if picks:
            near = sum(v <= 1.10 for v in picks)
            lines.append(
                f"auto's pick, forced by name, within 10% of the best explicit method on {near}/{len(picks)} "
                f"cases ({100 * near / len(picks):.0f}%), worst pick/best {max(picks):.2f}"
            )
    if "fastconv" in mem_libs and len(mem_libs) > 1:
        for lib in mem_libs[1:]:
            pairs = [(r.peak_mib["fastconv"], r.peak_mib[lib]) for r in results if r.peak_mib and lib in r.peak_mib]
            lines.append(
                f"peak memory fastconv/{lib}: geomean {geomean([a / b for a, b in pairs if b > 0]):.2f}, "
                f"worst {max(a / b for a, b in pairs if b > 0):.2f} (one call over the process before it, output included)"
            )
    return "\n".join(lines)


def environment(threads: int) -> dict:
    import numba

    import fastconv

    env = {
        "fastconv": fastconv.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpu": cpu_id(),
        "threads": threads,
        "date": time.strftime("%Y-%m-%d"),
    }
    torch = _torch(threads)
    if torch is not None:
        env["torch"] = torch.__version__
    return env


def to_json(results: list[Result], env: dict, gemm: float | None, copy: float | None = None, sweep=()) -> str:
    return json.dumps(
        {
            "environment": env,
            "gemm_gflops": gemm,
            "copy_gbps": copy,
            "results": [dataclasses.asdict(r) for r in results],
            "sweep": [dataclasses.asdict(r) for r in sweep],
        },
        indent=2,
    )


def plot(results: list[Result], env: dict, path: str) -> None:
    """A PNG of the speed-up over each reference per case (reference time /
    fastconv time, log scale; above 1: fastconv is faster), one panel per suite."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    suites = list(dict.fromkeys(r.suite for r in results))
    libs = sorted({k for r in results for k in r.reference}) or ["(none)"]
    heights = [max(1, sum(r.suite == s for r in results)) for s in suites]
    fig, axes = plt.subplots(
        len(suites), 1, figsize=(9, 1.2 + 0.32 * sum(heights) + 0.6 * len(suites)),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )  # fmt: skip
    for ax, suite in zip(axes[:, 0], suites):
        rows = [r for r in results if r.suite == suite]
        y = np.arange(len(rows))
        panel_libs = sorted({k for r in rows for k in r.reference}) or ["(none)"]
        bar_h = 0.8 / len(panel_libs)
        for j, lib in enumerate(panel_libs):
            speed = [1 / r.reference[lib]["ratio"] if lib in r.reference else 0 for r in rows]
            colors = ["tab:green" if v >= 1 else "tab:red" for v in speed]
            ax.barh(y + j * bar_h, speed, height=bar_h, color=colors, label=f"vs {lib}")
            for yy, v in zip(y + j * bar_h, speed):
                if v > 0:
                    ax.text(v, yy, f" {v:.2f}x", va="center", fontsize=7)
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_yticks(y + bar_h * (len(panel_libs) - 1) / 2)
        ax.set_yticklabels([f"{r.case} [{r.method}]" for r in rows], fontsize=7)
        ax.invert_yaxis()
        ratios = [r.reference[panel_libs[0]]["ratio"] for r in rows if panel_libs[0] in r.reference]
        gm = f" vs {panel_libs[0]}, geomean speed-up {1 / geomean(ratios):.2f}x" if ratios else ""
        ax.set_title(f"{suite}{gm}", fontsize=9)
    axes[-1, 0].set_xlabel("speed-up of fastconv (reference time / fastconv time; >1: fastconv faster)")
    save_figure(fig, env, f"vs {', '.join(libs)}", path, top=0.98, dpi=110)


def save_figure(fig, env: dict, what: str, path: str, top: float, dpi: int) -> None:
    """Title a benchmark figure with the run's environment, write it, close it."""
    import matplotlib.pyplot as plt

    fig.suptitle(
        f"fastconv {env.get('fastconv')} {what}: {env.get('cpu', '')}, {env.get('threads')} threads, "
        f"{env.get('date', '')}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
