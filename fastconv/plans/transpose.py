"""Stride decomposition of transposed convolution: pure Python, no numba.

Output ``o = s*q + r`` of a transposed convolution (stride s, padding p,
dilation d) receives input ``i = q + (r + p - k*d) / s`` through tap k
exactly when ``(r + p - k*d)`` is a multiple of s.  So each output *phase*
r (one per axis) is an ordinary stride-1 convolution (cross-correlation) of
the input with a sub-kernel: the taps of that phase in reverse order, at
dilation d / gcd(s, d), with a padding (or crop) that lines them up.  For a
4x4 stride-2 layer that is four 2x2 convolutions at the input's resolution,
no multiplication by inserted zeros; a 2x2 stride-2 layer is four 1x1
convolutions (plain GEMMs).
"""

from __future__ import annotations

import dataclasses
import functools
import math

from .._spec import ConvSpec
from ._method import TRANSPOSE_OPS, Method, always, needs_threadpoolctl, no_workspace, prod, settings


@dataclasses.dataclass(frozen=True)
class AxisPhase:
    r: int  # output phase: outputs r, r + s, ...
    taps: tuple[int, ...]  # kernel taps, in the sub-kernel's order (empty: bias only)
    count: int  # outputs in this phase
    dilation: int
    crop: tuple[int, int]  # input elements dropped at (start, end)
    pad: tuple[int, int]  # zero padding of the sub-convolution


def axis_phases(length: int, out: int, k: int, s: int, p: int, d: int) -> list[AxisPhase]:
    phases = []
    for r in range(s):
        count = len(range(r, out, s))
        taps = [kk for kk in range(k) if (r + p - kk * d) % s == 0]
        taps.reverse()  # ascending input offset
        if not taps or count == 0:
            phases.append(AxisPhase(r, (), count, 1, (0, 0), (0, 0)))
            continue
        offsets = [(r + p - kk * d) // s for kk in taps]
        dil = d // math.gcd(s, d) if len(taps) > 1 else 1
        lo = -offsets[0]
        crop_lo = max(0, -lo)
        lo = max(0, lo)
        span = dil * (len(taps) - 1) + 1
        avail = length - crop_lo
        hi = count - 1 + span - avail - lo
        crop_hi = max(0, -hi)
        hi = max(0, hi)
        if avail - crop_hi < 1:  # every tap reads padding: bias only
            phases.append(AxisPhase(r, (), count, 1, (0, 0), (0, 0)))
            continue
        phases.append(AxisPhase(r, tuple(taps), count, dil, (crop_lo, crop_hi), (lo, hi)))
    return phases


@dataclasses.dataclass(frozen=True)
class Phase:
    axes: tuple[AxisPhase, ...]  # one per spatial axis of the spec (nd)
    spec: ConvSpec | None  # the stride-1 convolution, None when bias only


@functools.lru_cache(maxsize=256)
def phases(spec: ConvSpec) -> tuple[Phase, ...]:
    """Every output phase of the transposed convolution ``spec``."""
    per_axis = [
        axis_phases(i, o, k, s, p, d)
        for i, o, k, s, p, d in zip(
            spec.in_spatial, spec.out_spatial, spec.kernel, spec.stride, spec.pad_lo, spec.dilation
        )
    ]
    result = []
    for combo in _product(per_axis):
        if any(a.count == 0 for a in combo):
            continue
        if any(not a.taps for a in combo):
            result.append(Phase(combo, None))
            continue
        sub = ConvSpec(
            op=f"conv{spec.nd}d",
            nd=spec.nd,
            batched=True,
            n=spec.n,
            c_in=spec.c_in,
            c_out=spec.c_out,
            groups=spec.groups,
            in_spatial=tuple(i - a.crop[0] - a.crop[1] for i, a in zip(spec.in_spatial, combo)),
            kernel=tuple(len(a.taps) for a in combo),
            stride=(1,) * spec.nd,
            dilation=tuple(a.dilation for a in combo),
            pad_lo=tuple(a.pad[0] for a in combo),
            pad_hi=tuple(a.pad[1] for a in combo),
            padding_mode="zeros",
            out_spatial=tuple(a.count for a in combo),
            dtype=spec.dtype,
            has_bias=spec.has_bias,
            method="auto",
        )
        result.append(Phase(combo, sub))
    return tuple(result)


def _product(lists):
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for tail in _product(lists[1:]):
            yield (head, *tail)


def largest_phase_bytes(spec: ConvSpec) -> int:
    """The scratch output of the largest phase."""
    best = 0
    for ph in phases(spec):
        n = spec.n * spec.c_out * spec.dtype.itemsize
        for a in ph.axes:
            n *= a.count
        best = max(best, n)
    return best


_L2_COLS = 512 * 1024
_MIN_GEMM_COLS = 1024


def gemm_tiles(spec: ConvSpec, limit: int, threads: int = 1) -> tuple[int, int]:
    """(output channels per GEMM, input rows per GEMM) of the GEMM + col2im
    method: enough channel blocks for every thread, and per-thread columns
    (plus the copied input rows when an image is split) within ``limit``."""
    k = 1
    for v in spec.kernel:
        k *= v
    cog = spec.c_out // spec.groups
    units = max(1, spec.n * spec.groups)
    blocks = max(1, -(-threads // units))
    cblk = max(1, -(-cog // blocks))
    d, h, w = spec.lifted("in_spatial")
    rows = d * h
    item = spec.dtype.itemsize
    per_thread = max(1, limit // max(1, threads))
    row_bytes = (cblk * k + spec.c_in // spec.groups) * w * item
    fit = max(1, per_thread // max(1, row_bytes))
    # cache: columns of a few hundred KB are added back from L2 (measured on the
    # 1x32x112x112 4x4/2 layer: 12.8 MB of columns per GEMM -> 0.5 MB, 1.6x
    # faster), but a GEMM narrower than _MIN_GEMM_COLS loses more than that
    cached = max(-(-_MIN_GEMM_COLS // w), _L2_COLS // max(1, cblk * k * w * item))
    return cblk, max(1, min(rows, fit, cached))


def gemm_buffers(spec: ConvSpec, limit: int, threads: int = 1) -> tuple[int, int, int]:
    """Elements of each thread's buffers in :func:`conv_transpose_gemm`: the
    columns, the copied input rows (1 unless an image is split) and one
    phase-split output plane."""
    k = 1
    for v in spec.kernel:
        k *= v
    cblk, nrows = gemm_tiles(spec, limit, threads)
    d, h, w = spec.lifted("in_spatial")
    xcopy = (spec.c_in // spec.groups) * nrows * w if nrows < d * h else 1
    od, oh, ow = spec.lifted("out_spatial")
    sw = spec.lifted("stride")[2]
    return cblk * k * nrows * w, xcopy, od * oh * sw * -(-ow // sw)


def gemm_workspace(spec: ConvSpec, limit: int, threads: int = 1) -> int:
    """Bytes :func:`conv_transpose_gemm` works in (:func:`gemm_buffers`, per thread)."""
    return sum(gemm_buffers(spec, limit, threads)) * spec.dtype.itemsize * max(1, threads)


# --- the methods ------------------------------------------------------------------------


def direct_features(spec) -> dict[str, float]:
    """Gather form: a fixed cost, the FLOPs, and the streams (one per input
    channel, tap and output row that it feeds; short rows are overhead-bound)."""
    iw = spec.in_spatial[-1]
    return {"overhead_s": 1.0, "s_per_flop": float(spec.flops), "s_per_stream": spec.macs / max(1, iw)}


def subpixel_children(spec) -> tuple:
    """One stride-1 convolution per output phase (None: a phase no tap
    reaches, which holds the bias): planned by the convolution dispatcher."""
    return tuple(ph.spec for ph in phases(spec))


def subpixel_features(spec, child_s: float = 0.0) -> dict[str, float]:
    """Stride decomposition: the phases' estimated time (their plans,
    ``child_s``), plus the copy of every output element into its strided
    place."""
    out = spec.n * spec.c_out
    for v in spec.out_spatial:
        out *= v
    return {"overhead_s": 1.0, "phase_estimate": child_s, "s_per_output": float(out)}


def gemm_features(spec) -> dict[str, float]:
    """GEMM + col2im: a fixed cost, the GEMM FLOPs, the column elements added
    back (col2im), the GEMM calls, and the output elements (col2im sums in a
    phase-split plane, then interleaves it into the output: without this
    term the fit under-estimated the 2x2 stride-2 layers, whose columns are
    no more than their outputs, by up to 40%)."""
    k = prod(spec.kernel)
    d, h, w = spec.lifted("in_spatial")
    rows = d * h
    limit, threads = settings()
    cblk, nrows = gemm_tiles(spec, limit, threads)
    calls = spec.n * spec.groups * -(-(spec.c_out // spec.groups) // cblk) * -(-rows // nrows)
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(spec.flops),
        "s_per_col": float(spec.n * spec.c_out * k * rows * w),
        "s_per_call": float(calls),
        "s_per_output": float(spec.n * spec.c_out * prod(spec.lifted("out_spatial"))),
    }


METHODS = (
    Method("direct", TRANSPOSE_OPS, "fastconv.kernels.transpose:conv_transpose_direct", always, no_workspace,
           "gather form: each output row sums its own taps (no scatter), phase-split row streams",
           features=direct_features, cost_key="transpose_direct"),
    Method("subpixel", TRANSPOSE_OPS, "fastconv.kernels.transpose:conv_transpose_subpixel",
           always, largest_phase_bytes,
           "stride decomposition: one stride-1 convolution per output phase (its own plan), no zero taps",
           features=subpixel_features, cost_key="transpose_subpixel", children=subpixel_children),
    Method("gemm", TRANSPOSE_OPS, "fastconv.kernels.transpose:conv_transpose_gemm",
           needs_threadpoolctl, lambda spec: gemm_workspace(spec, *settings()),
           "one BLAS GEMM (all taps of all output channels) per block of input rows, then col2im",
           features=gemm_features, cost_key="transpose_gemm"),
)  # fmt: skip
