"""The tiny form of the ``direct`` filter method on the repeated-call path:
the boundary padding and the correlation in one serial loop, for filters
so small (at most :data:`TINY_MACS` multiply-adds: a 16x16 image with a 3x3
footprint, a 32-sample signal with 17 taps) that padding the input first
(a NumPy gather) and launching the direct kernel cost more than the
arithmetic.  ``index[t, o]`` is the flat position in the input of output
``o``'s tap ``t`` with the boundary mode applied (-1: the constant ``cval``),
so one kernel serves every mode and number of axes; the taps are the
direct kernel's (the footprint, in row-major order), accumulated in the
same order.  Releases the GIL; compiles in well under a second per dtype."""

from __future__ import annotations

import numpy as np

from .._config import numba_jit

#: the largest filter (outputs x taps) the tiny form serves: its index table
#: is at most 64 KiB and is made once per weights' values
TINY_MACS = 8192


@numba_jit()
def gathered_correlate(x, index, ws, cval, out):
    """out.flat[o] = sum over t of ws[t] * x.flat[index[t, o]] (``cval``, a
    scalar of the data's dtype, where the index is -1), taps in order;
    x and out C-contiguous.  Taps outermost, a pass over the outputs per tap
    (measured against the output-outermost loop with one accumulator, plain
    Numba, 2-core Zen 4: 8x8 3x3 1.09 vs 1.25 us, 16x16 3x3 2.3-2.7 vs 3.1 us
    a call, dispatch included); the sums are added in the same order."""
    xf = x.reshape(-1)
    of = out.reshape(-1)
    taps, n = index.shape
    if taps == 0:
        of[:] = 0
    for t in range(taps):
        w = ws[t]
        row = index[t]
        if t == 0:
            for o in range(n):
                j = row[o]
                of[o] = w * (xf[j] if j >= 0 else cval)
        else:
            for o in range(n):
                j = row[o]
                of[o] += w * (xf[j] if j >= 0 else cval)


def tap_index(positions: np.ndarray, out_shape: tuple[int, ...], padded: tuple[int, ...],
              offsets: np.ndarray) -> np.ndarray:  # fmt: skip
    """The (taps, outputs) table of :func:`gathered_correlate`: ``positions``
    maps each flat position of the (lifted, 3-axis) padded input to the
    input's flat position (-1: outside, the constant); ``offsets`` are the
    taps' flat offsets in the padded input."""
    d, h, w = np.indices(out_shape).reshape(3, -1)
    base = (d * padded[1] + h) * padded[2] + w
    return np.ascontiguousarray(positions.reshape(-1)[offsets[:, None] + base[None, :]], dtype=np.int32)
