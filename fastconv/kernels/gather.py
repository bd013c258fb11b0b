"""The tiny form of the ``direct`` filter method on the repeated-call path:
the boundary padding and the correlation in one serial loop, for filters
so small (at most :data:`TINY_MACS` multiply-adds: a 16x16 image with a 3x3
footprint, a 32-sample signal with 17 taps) that padding the input first
(a NumPy gather) and launching the direct kernel cost more than the
arithmetic.  ``index[o, t]`` is the flat position in the input of output
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
    """out.flat[o] = sum over t of ws[t] * x.flat[index[o, t]] (``cval``, a
    scalar of the data's dtype, where the index is -1); x and out
    C-contiguous."""
    xf = x.reshape(-1)
    of = out.reshape(-1)
    n, taps = index.shape
    zero = np.zeros(1, of.dtype)[0]
    for o in range(n):
        acc = zero
        for t in range(taps):
            j = index[o, t]
            acc += ws[t] * (xf[j] if j >= 0 else cval)
        of[o] = acc


def tap_index(positions: np.ndarray, out_shape: tuple[int, ...], padded: tuple[int, ...],
              offsets: np.ndarray) -> np.ndarray:  # fmt: skip
    """The (outputs, taps) table of :func:`gathered_correlate`: ``positions``
    maps each flat position of the (lifted, 3-axis) padded input to the
    input's flat position (-1: outside, the constant); ``offsets`` are the
    taps' flat offsets in the padded input."""
    d, h, w = np.indices(out_shape).reshape(3, -1)
    base = (d * padded[1] + h) * padded[2] + w
    return positions.reshape(-1)[base[:, None] + offsets[None, :]].astype(np.int32)
