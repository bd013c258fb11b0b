"""Pooling windows, axis by axis: pure Python/NumPy, no numba.

Every pooling op (max, avg, adaptive, any ceil_mode/padding/dilation) is
described per spatial axis by the same table, which the one separable kernel
in :mod:`fastconv.kernels.pool` reads:

- ``lo[o]``, ``hi[o]``: the taps of output ``o`` that lie inside the input
  are ``lo, lo + step, ... < hi`` (padding is never read);
- ``step``: the dilation (1 for avg and adaptive pooling);
- ``size[o]``: the avg-pool divisor factor of this axis (torch's
  ``count_include_pad`` rule: the window clipped to the *padded* input, or
  the taps inside the input);
- ``regular``: ``(stride, taps, offset, o0, o1)`` -- outputs ``o0 <= o < o1``
  read exactly ``o*stride + offset + k*step`` for ``k < taps`` (all inside),
  which the kernel runs as vectorised streams; the others use ``lo``/``hi``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ._method import POOL_OPS, Method, always, no_workspace


@dataclasses.dataclass(frozen=True)
class AxisWindows:
    lo: np.ndarray
    hi: np.ndarray
    step: int
    size: np.ndarray
    regular: tuple[int, int, int, int, int]


def regular_tables(length: int, out: int, k: int, s: int, p: int, d: int, count_include_pad: bool):
    """A pooling axis's window table as (lo, hi, step, size, regular) (the
    fields of :class:`AxisWindows`): plain NumPy that Numba compiles as it
    stands (``fastconv.kernels.injit``: pooling in compiled code)."""
    o = np.arange(out, dtype=np.int64)
    start = o * s - p
    span = d * (k - 1) + 1
    # first tap inside the input (taps sit on the dilation grid)
    skip = np.where(start < 0, (-start + d - 1) // d, 0)
    lo = start + skip * d
    hi = np.minimum(start + span, length)
    if count_include_pad:  # torch: the window clipped to the padded input
        size = np.minimum(start + k, length + p) - start
    else:
        size = np.minimum(start + k, length) - np.maximum(start, 0)
    inside = np.flatnonzero((start >= 0) & (start + span <= length))  # (outputs whose whole window is inside:
    if inside.size == 0:  # a contiguous run [o0, o1))
        return lo, hi, d, size, (s, k, -p, 0, 0)
    return lo, hi, d, size, (s, k, -p, int(inside[0]), int(inside[-1]) + 1)


def adaptive_tables(length: int, out: int):
    """torch's adaptive windows, [floor(o*L/O), ceil((o+1)*L/O)), as
    :func:`regular_tables`'s five fields."""
    o = np.arange(out, dtype=np.int64)
    lo = (o * length) // out
    hi = -((-(o + 1) * length) // out)
    size = hi - lo
    if length % out == 0:  # equal, adjacent windows: all regular
        k = length // out
        return lo, hi, 1, size, (k, k, 0, 0, out)
    return lo, hi, 1, size, (1, 1, 0, 0, 0)


def regular_axis(length: int, out: int, k: int, s: int, p: int, d: int, count_include_pad: bool) -> AxisWindows:
    return AxisWindows(*regular_tables(length, out, k, s, p, d, count_include_pad))


def adaptive_axis(length: int, out: int) -> AxisWindows:
    return AxisWindows(*adaptive_tables(length, out))


@functools.lru_cache(maxsize=256)
def windows(spec) -> tuple[AxisWindows, AxisWindows, AxisWindows]:
    """Window tables of the three (lifted) spatial axes of ``spec``."""
    ins = spec.lifted("in_spatial")
    outs = spec.lifted("out_spatial")
    if spec.adaptive:
        return tuple(adaptive_axis(i, o) for i, o in zip(ins, outs))
    ks, ss, ps, ds = (spec.lifted(n) for n in ("kernel", "stride", "padding", "dilation"))
    return tuple(
        regular_axis(i, o, k, s, p, d, spec.count_include_pad) for i, o, k, s, p, d in zip(ins, outs, ks, ss, ps, ds)
    )


def is_global(spec) -> bool:
    """One output per plane whose window is the whole plane (global pooling)."""
    if any(o != 1 for o in spec.out_spatial):
        return False
    if spec.adaptive:
        return True
    return all(
        p == 0 and d == 1 and k == i for i, k, p, d in zip(spec.in_spatial, spec.kernel, spec.padding, spec.dilation)
    )


# --- the method -----------------------------------------------------------------------


def _describe(spec) -> str:
    if is_global(spec):
        return "global"
    return "windows"


METHODS = (
    Method("direct", POOL_OPS, "fastconv.kernels.pool:pool_direct", always, no_workspace,
           "window tables per axis; vectorised row passes (max with NaN and index rules, sums for avg); " "a global pool as one reduction per plane",
           variant=_describe, prepare="fastconv.kernels.pool:prepare_pool"),
)  # fmt: skip
