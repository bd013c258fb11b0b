"""The size sweep behind ``fastconv bench --suite sweep``: every family of
public functions from tiny to large inputs against the library a user would
call instead (torch for the NN functions, scipy for signal and ndimage),
float32 and float64, so that where fastconv wins -- and where it does not --
shows at a glance: a table of time ratios and a PNG of ratio against size.

Each point is one call shape timed with :func:`fastconv._bench.interleaved_medians`
(fastconv and the reference round-robin, the same thread count for both);
a short call is timed as a loop of back-to-back calls, so the per-call
overhead of a repeated call is part of what is measured."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

#: family -> (reference library, reference function name, size unit)
FAMILIES = {
    "conv2d": ("torch", "conv2d", "MFLOP"),
    "conv1d": ("torch", "conv1d", "MFLOP"),
    "conv_transpose2d": ("torch", "conv_transpose2d", "MFLOP"),
    "max_pool2d": ("torch", "max_pool2d", "elements"),
    "avg_pool2d": ("torch", "avg_pool2d", "elements"),
    "ndimage.convolve": ("scipy", "ndimage.convolve", "pixels"),
    "ndimage.convolve1d": ("scipy", "ndimage.convolve1d", "pixels"),
    "signal.convolve": ("scipy", "signal.convolve", "samples"),
    "signal.fftconvolve": ("scipy", "signal.fftconvolve", "samples"),
    "signal.convolve2d": ("scipy", "signal.convolve2d", "pixels"),
}


@dataclasses.dataclass(frozen=True)
class Point:
    """One call shape of the sweep: ``arrays(rng, dtype)`` makes the
    operands; the call is ``f(*arrays, **kw)`` for both libraries."""

    family: str
    label: str
    size: float  # the x-axis value (the family's unit)
    arrays: Callable[[np.random.Generator, Any], tuple]
    kw: dict
    quick: bool = False


def _normal(*shape):
    return lambda rng, dt: rng.standard_normal(shape).astype(dt)


def _pair(x, w):
    return lambda rng, dt: (rng.standard_normal(x).astype(dt), rng.standard_normal(w).astype(dt))


def _points() -> list[Point]:
    pts: list[Point] = []
    # conv2d 3x3 "same": batch 1 to 64, 1 to 64 channels, 8 to 56 pixels
    for n, c, hw, q in ((1, 1, 8, True), (1, 3, 32, False), (4, 16, 16, True), (1, 16, 64, False),
                        (8, 32, 32, True), (64, 16, 32, False), (8, 64, 56, True)):  # fmt: skip
        mflop = 2 * n * c * c * 9 * hw * hw / 1e6
        pts.append(Point("conv2d", f"{n}x{c}x{hw}x{hw}", mflop, _pair((n, c, hw, hw), (c, c, 3, 3)), {"padding": 1}, q))
    # conv1d, 5 taps
    for n, c, length, q in ((1, 1, 16, True), (1, 4, 256, False), (8, 16, 256, True), (16, 32, 1024, False),
                            (64, 32, 4096, True)):  # fmt: skip
        mflop = 2 * n * c * c * 5 * length / 1e6
        pts.append(Point("conv1d", f"{n}x{c}x{length}", mflop, _pair((n, c, length), (c, c, 5)), {"padding": 2}, q))
    # conv_transpose2d 4x4 / 2 (decoder upsampling)
    for n, c, hw, q in ((1, 1, 8, True), (4, 16, 16, True), (8, 32, 32, False), (8, 64, 28, True)):
        mflop = 2 * n * c * c * 16 * hw * hw / 1e6
        pts.append(Point("conv_transpose2d", f"{n}x{c}x{hw}x{hw}", mflop, _pair((n, c, hw, hw), (c, c, 4, 4)),
                         {"stride": 2, "padding": 1}, q))  # fmt: skip
    # pooling 2x2 / 2 and 3x3 / 2
    for kind in ("max_pool2d", "avg_pool2d"):
        for n, c, hw, q in ((1, 1, 8, True), (1, 16, 32, False), (8, 32, 56, True), (64, 64, 56, True)):
            pts.append(Point(kind, f"{n}x{c}x{hw}x{hw}", n * c * hw * hw, _normal(n, c, hw, hw),
                             {"kernel_size": 2}, q))  # fmt: skip
        pts.append(Point(kind, "8x64x112x112 3x3/2", 8 * 64 * 112 * 112, _normal(8, 64, 112, 112),
                         {"kernel_size": 3, "stride": 2, "padding": 1}))  # fmt: skip
    # ndimage: 3x3 and 5 taps along an axis, 8x8 to 4096x4096
    for side, q in ((8, True), (16, False), (32, True), (64, False), (128, True), (256, False), (512, True),
                    (1024, False), (2048, True), (4096, False)):  # fmt: skip
        pts.append(Point("ndimage.convolve", f"{side}^2 3x3", side * side, _pair((side, side), (3, 3)), {}, q))
        pts.append(Point("ndimage.convolve1d", f"{side}^2 5 taps", side * side, _pair((side, side), (5,)), {}, q))
    # signal: 1-D with 17 taps, 16 to 10^7 samples
    for length, q in ((16, True), (64, False), (256, True), (1024, False), (4096, True), (16384, False),
                      (65536, True), (262_144, False), (1_000_000, True), (10_000_000, False)):  # fmt: skip
        if length <= 1_000_000:
            pts.append(Point("signal.convolve", f"{length} x 17", length, _pair((length,), (17,)), {}, q))
        pts.append(Point("signal.fftconvolve", f"{length} x 17", length, _pair((length,), (17,)), {}, q))
    for side, q in ((8, True), (16, False), (32, True), (64, False), (128, True), (256, False), (512, True)):
        pts.append(Point("signal.convolve2d", f"{side}^2 3x3 symm", side * side, _pair((side, side), (3, 3)),
                         {"boundary": "symm", "mode": "same"}, q))  # fmt: skip
    return pts


POINTS = _points()


@dataclasses.dataclass
class SweepResult:
    family: str
    label: str
    size: float
    dtype: str
    reference: str
    fastconv_us: float
    reference_us: float
    ratio: float  # fastconv time / reference time (below 1: fastconv faster)
    method: str
    max_rel_err: float


def _resolve(path: str, root) -> Callable:
    f = root
    for part in path.split("."):
        f = getattr(f, part)
    return f


def _reference(family: str, threads: int):
    """The reference function of ``family`` (None: its library is missing)."""
    lib, name, _ = FAMILIES[family]
    if lib == "torch":
        try:
            import torch
        except ImportError:
            return None
        torch.set_num_threads(threads)
        tf = getattr(torch.nn.functional, name)

        def call(*arrays, **kw):
            return tf(*(torch.from_numpy(a) for a in arrays), **kw)

        return call
    import scipy.ndimage
    import scipy.signal

    return _resolve(name, scipy)


def count(quick: bool, only: str | None = None) -> int:
    return len(select_points(quick, only)) * 2


def select_points(quick: bool, only: str | None = None) -> list[Point]:
    return [p for p in POINTS if (p.quick or not quick) and (only is None or only in f"{p.family} {p.label}")]


def run(quick: bool, threads: int, budget_s: float = 0.6, repeats: int = 7, only: str | None = None,
        progress: Callable[[str], None] | None = None) -> list[SweepResult]:  # fmt: skip
    """Time every point (float32 and float64) against its reference."""
    import fastconv

    from ._bench import interleaved_medians

    rng = np.random.default_rng(0)
    results = []
    for p in select_points(quick, only):
        ref = _reference(p.family, threads)
        f = _resolve(p.family, fastconv)
        for dtype in (np.float32, np.float64):
            arrays = p.arrays(rng, dtype)
            if not isinstance(arrays, tuple):
                arrays = (arrays,)
            got = f(*arrays, **p.kw)
            if ref is None:
                if progress:
                    progress(f"{p.family} {p.label}")
                continue
            want = np.asarray(ref(*arrays, **p.kw))
            scale = float(np.abs(want).max()) or 1.0
            err = float(np.abs(np.asarray(got, dtype=np.float64) - want).max()) / scale if want.size else 0.0
            times = interleaved_medians(
                {"fastconv": _bound(f, arrays, p.kw), "ref": _bound(ref, arrays, p.kw)},
                repeats, budget_s, settle_s=0.02, warm_s=0.01,
            )  # fmt: skip
            results.append(SweepResult(
                p.family, p.label, p.size, np.dtype(dtype).name, FAMILIES[p.family][0], times["fastconv"] * 1e6,
                times["ref"] * 1e6, times["fastconv"] / times["ref"], _method(f, arrays, p.kw), err,
            ))  # fmt: skip
            if progress:
                progress(f"{p.family} {p.label}")
    return results


def _bound(f, arrays: tuple, kw: dict) -> Callable[[], Any]:
    return lambda: f(*arrays, **kw)


def _method(f, arrays, kw) -> str:
    """The method ``auto`` picks for the call (``explain``'s answer)."""
    import fastconv

    try:
        plan = fastconv.explain(f, *arrays, **kw)
    except (TypeError, ValueError):
        return "-"
    return getattr(plan, "method", "-")


def table(results: list[SweepResult]) -> str:
    lines = [
        f"{'family':<20} {'size':<20} {'dtype':<8} {'fastconv us':>12} {'ref us':>10} {'ref':<6} {'ratio':>6}  auto picks",
        "-" * 100,
    ]
    for r in results:
        flag = "  <-- slower" if r.ratio > 1.0 else ""
        lines.append(
            f"{r.family:<20} {r.label:<20} {r.dtype:<8} {r.fastconv_us:12.1f} {r.reference_us:10.1f} "
            f"{r.reference:<6} {r.ratio:6.2f}  {r.method}{flag}"
        )
    above = [r for r in results if r.ratio > 1.0]
    lines.append(
        f"{len(results)} points; {len(above)} above 1.0 (fastconv slower); worst "
        + (f"{max(r.ratio for r in results):.2f}" if results else "-")
        + "; ratio = fastconv time / reference time, below 1 means fastconv is faster"
    )
    return "\n".join(lines)


def plot(results: list[SweepResult], env: dict, path: str) -> None:
    """A PNG: ratio (fastconv / reference time, log) against size (log), one
    panel per family, one line per dtype; below the line at 1, fastconv wins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(r.family for r in results))
    cols = 4
    rows = -(-len(families) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, fam in zip(axes.flat, families):
        for dtype, style in (("float32", "o-"), ("float64", "s--")):
            pts = sorted((r.size, r.ratio) for r in results if r.family == fam and r.dtype == dtype)
            if pts:
                ax.plot(*zip(*pts), style, label=dtype, ms=4)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{fam} vs {FAMILIES[fam][0]}", fontsize=9)
        ax.set_xlabel(FAMILIES[fam][2], fontsize=8)
        ax.set_ylabel("fastconv time / reference time", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(families) :]:
        ax.axis("off")
    from ._bench import save_figure

    save_figure(fig, env, "size sweep (below 1: fastconv faster)", path, top=0.96, dpi=100)
