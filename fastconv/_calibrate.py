"""``fastconv calibrate``: the calls it times and the timing itself (the
fits and their storage: :mod:`fastconv.dispatch.calibration`)."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .dispatch.calibration import Timing, constants_digest, fit_factors, write


def calls(quick: bool = False) -> list[tuple[str, Callable, tuple, dict]]:
    """The calls calibration times: (label, public function, arrays, keywords).
    Layers of 2-256 channels, 1-D to 3-D, strided, dilated, grouped and
    depthwise, transposed, image filters and signals -- each method's fixed
    cost and throughput seen on shapes where it is a candidate that matters."""
    from . import ndimage as ndi
    from . import nn
    from . import signal as sig

    def a(*shape, dtype=np.float32):
        return np.zeros(shape, dtype)

    out = []
    conv2d = [
        ((1, 8, 32, 32), (8, 8, 3, 3), dict(padding=1)),
        ((4, 16, 16, 16), (16, 16, 3, 3), dict(padding=1)),
        ((1, 16, 64, 64), (16, 16, 3, 3), dict(padding=1)),
        ((8, 32, 32, 32), (32, 32, 3, 3), dict(padding=1)),
        ((2, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
        ((2, 128, 28, 28), (128, 128, 3, 3), dict(padding=1)),
        ((2, 256, 14, 14), (256, 256, 3, 3), dict(padding=1)),
        ((4, 512, 7, 7), (512, 512, 3, 3), dict(padding=1)),
        ((1, 3, 256, 256), (16, 3, 3, 3), dict(padding=1)),
        ((2, 3, 112, 112), (32, 3, 7, 7), dict(stride=2, padding=3)),
        ((2, 64, 56, 56), (128, 64, 1, 1), {}),
        ((2, 256, 28, 28), (128, 256, 1, 1), dict(stride=2)),
        ((2, 64, 56, 56), (64, 64, 3, 3), dict(stride=2, padding=1)),
        ((2, 32, 56, 56), (32, 32, 5, 5), dict(padding=2)),
        ((2, 128, 28, 28), (128, 128, 3, 3), dict(padding=2, dilation=2)),
        ((2, 128, 28, 28), (128, 4, 3, 3), dict(padding=1, groups=32)),
        ((2, 32, 112, 112), (32, 1, 3, 3), dict(padding=1, groups=32)),
        ((2, 144, 28, 28), (144, 1, 5, 5), dict(padding=2, groups=144)),
    ]
    conv1d = [
        ((2, 64, 4096), (64, 64, 3), dict(padding=1)),
        ((2, 32, 8000), (32, 32, 9), dict(padding=4)),
        ((4, 16, 1024), (16, 16, 5), dict(padding=2)),
        ((2, 128, 2048), (128, 1, 7), dict(padding=3, groups=128)),
        ((1, 4, 65536), (4, 4, 65), {}),
    ]
    conv3d = [
        ((1, 16, 16, 32, 32), (16, 16, 3, 3, 3), dict(padding=1)),
        ((1, 32, 8, 28, 28), (32, 32, 1, 3, 3), dict(padding=(0, 1, 1))),
    ]
    transpose2d = [
        ((2, 128, 14, 14), (128, 64, 4, 4), dict(stride=2, padding=1)),
        ((2, 64, 28, 28), (64, 32, 3, 3), dict(stride=2, padding=1, output_padding=1)),
        ((2, 128, 28, 28), (128, 64, 2, 2), dict(stride=2)),
        ((4, 16, 16, 16), (16, 16, 3, 3), dict(padding=1)),
        ((1, 32, 56, 56), (32, 32, 4, 4), dict(stride=2, padding=1)),
        ((2, 256, 14, 14), (256, 128, 3, 3), dict(stride=2, padding=1, output_padding=1)),
        ((1, 64, 56, 56), (64, 32, 2, 2), dict(stride=2)),
        ((2, 32, 28, 28), (32, 32, 3, 3), dict(padding=1)),
        ((1, 512, 7, 7), (512, 256, 4, 4), dict(stride=2, padding=1)),
    ]
    if quick:
        conv2d, conv1d, conv3d, transpose2d = conv2d[1:8:2], conv1d[:2], conv3d[:1], transpose2d[:2]
    for func, cases in ((nn.conv2d, conv2d), (nn.conv1d, conv1d), (nn.conv3d, conv3d),
                        (nn.conv_transpose2d, transpose2d)):  # fmt: skip
        for xs, ws, kw in cases:
            out.append((f"{func.__name__} {xs} {ws}", func, (a(*xs), a(*ws)), kw))
    rng = np.random.default_rng(0)
    images = [((256, 256), 3), ((512, 512), 5), ((1024, 1024), 3), ((512, 512), 15), ((64, 64, 64), 3),
              ((200_000,), 31), ((2048,), 9)]  # fmt: skip
    if quick:
        images = images[1:3] + images[5:6]
    for shape, k in images:
        for dtype in (np.float32, np.float64):
            w = rng.standard_normal((k,) * len(shape))
            out.append((f"correlate {shape} {k} {np.dtype(dtype).name}", ndi.correlate, (a(*shape, dtype=dtype), w),
                        dict(mode="reflect")))  # fmt: skip
            if len(shape) == 2:
                g = np.exp(-(np.linspace(-2, 2, k) ** 2))
                out.append((f"correlate {shape} {k}x{k} separable", ndi.correlate, (a(*shape, dtype=dtype),
                            np.outer(g, g)), dict(mode="reflect")))  # fmt: skip
    signals = [((100_000,), (255,)), ((1_000_000,), (31,)), ((1_000_000,), (255,)), ((100_000,), (20_000,)),
               ((200_000,), (20_000,)), ((512, 512), (15, 15)), ((1024, 1024), (63, 63))]  # fmt: skip
    if quick:
        signals = signals[1:4]
    for sa, sb in signals:
        for dtype in (np.float32, np.float64):  # (the FFTs' speed differs by more than the lanes)
            out.append((f"convolve {sa} {sb} {np.dtype(dtype).name}", sig.convolve,
                        (a(*sa, dtype=dtype), a(*sb, dtype=dtype)), {}))  # fmt: skip
    return out


def _parts(plan, name: str, constants: dict) -> tuple[float, float, float, dict]:
    from .dispatch.registry import methods_for
    from .plans._method import linear_cost

    m = methods_for(plan.op)[name]
    cand = next(c for c in plan.candidates if c.name == name)
    child_s = sum(c.chosen.estimated_s or 0.0 for c in cand.children if c is not None)
    feats = m.feature_values(plan.spec, child_s, cand.variant)
    own = constants.get(m.cost_key, {})
    overhead = feats.get("overhead_s", 0.0) * own.get("overhead_s", 0.0)
    compute = linear_cost(feats, own) - overhead
    base = 0.0 if m.base_cost is None else m.base_cost(plan.spec, constants)
    return overhead, compute, base, feats


def measure(
    cases,
    threads: int,
    constants: dict,
    progress: Callable[[str], None] | None = None,
    budget_s: float = 0.25,
    within: float = 8.0,
    passes: int = 1,
) -> list[Timing]:
    """Time every feasible method that ``auto`` may pick on each call,
    interleaved (medians), in ``passes`` passes over the calls, keeping each
    one's fastest (this machine's slow spells last seconds: a second pass
    measures a call outside the spell that slowed it); a method estimated
    at more than ``within`` times the best estimate, or above 0.2 s, is
    skipped (it is nowhere near a choice).  ``progress`` is called once per
    call and pass."""
    from . import _bench
    from ._plan_api import explain
    from ._spec import synthetic_operands, synthetic_output
    from .dispatch.registry import methods_for

    best_of: dict[tuple[int, str], Timing] = {}
    for i, (label, func, arrays, kw) in enumerate(list(cases) * passes):
        if progress is not None:
            progress(label)
        plan = explain(func, *arrays, **kw)
        methods = methods_for(plan.op)
        feasible = [c for c in plan.candidates if c.rejected is None and not methods[c.name].fallback
                    and c.estimated_s is not None and methods[c.name].cost_key is not None]  # fmt: skip
        if len(feasible) < 2:
            continue
        best = min(c.estimated_s for c in feasible)
        chosen = [c for c in feasible if c.estimated_s <= within * best and c.estimated_s < 0.2]
        spec = plan.spec
        ops = synthetic_operands(spec)
        scratch = synthetic_output(spec)
        runs = {}
        for c in chosen:
            call = dataclasses.replace(plan, method=c.name)._call
            runs[c.name] = functools.partial(call, spec, ops, scratch, threads)
        times = _bench.interleaved_medians(runs, repeats=3, budget_s=budget_s, settle_s=0.002, warm_s=0.002)
        for name, seconds in times.items():
            slot = (i % len(cases), name)
            if slot not in best_of or seconds < best_of[slot].seconds:
                overhead, compute, base, feats = _parts(plan, name, constants)
                best_of[slot] = Timing(methods[name].cost_key, label, seconds, overhead, compute, base, feats)
    return list(best_of.values())


#: passes over the calls (each timing the fastest of its passes)
PASSES = 2


def calibrate(cache_dir: str, threads: int, quick: bool = False, progress=None) -> dict[str, Any]:
    """Time the calibration calls, fit the factors, store them; returns a
    summary (the fits, the calls timed, seconds spent)."""
    from ._config import set_config
    from .dispatch.selector import shipped_constants

    start = time.perf_counter()
    cases = calls(quick)
    # planned from the shipped constants alone: an empty cache directory
    # while measuring (no earlier calibration, nothing learned)
    with (
        tempfile.TemporaryDirectory() as empty,
        set_config(num_threads=threads, autotune=False, learn=False, cache_dir=empty),
    ):
        rows = measure(cases, threads, shipped_constants(), progress, passes=PASSES)
    fits = fit_factors(rows)
    shipped = shipped_constants()
    for key, fit in fits.items():
        fit["shipped"] = constants_digest(shipped.get(key, {}))
    path = write(cache_dir, fits, threads)
    return {"fits": fits, "calls": len(cases), "timings": len(rows), "seconds": time.perf_counter() - start,
            "path": path}  # fmt: skip
