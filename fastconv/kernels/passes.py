"""Two 1-D passes of a separable filter -- along the last two axes, in
either order -- in one sweep over the image (``fastconv.ndimage``'s
gaussian, uniform, sobel and prewitt filters and the Gaussian derivatives'
terms).  Run one after the other, the passes read and write the whole image
twice and pad it twice (a padded copy, an intermediate image: 2048x2048
float64 is 32 MiB each); here each output row is made while the rows it
needs are in cache, and only the input is read and only the output written.

The boundary modes are index tables: ``rows[p]`` (``cols[p]``) is the input
row (column) at padded position ``p`` of the pass along that axis, -1 for
the constant ``cval`` -- every mode, origin and pad wider than the axis
alike.  The second pass pads the first one's result, as scipy's passes do,
and every intermediate value is rounded to the data's dtype (scipy writes
each pass in the output dtype).  Every tap is multiplied, zero or not
(scipy's correlate1d: a NaN under a zero weight spreads).

- vertical first: output row ``r`` is the vertical pass of rows
  ``rows[r .. r + KV - 1]`` into one padded row buffer, its ends filled by
  ``cols``, then the horizontal pass from that buffer into the output.
- horizontal first: the horizontal pass of padded row ``p`` is kept in slot
  ``p % KV`` of a ring of ``KV`` rows (made once per thread, not once per
  output row), and output row ``r`` is the vertical pass over the ring.

Rows are split into one contiguous range per thread (the rows one output
needs are the next one's too).  Releases the GIL."""

from __future__ import annotations

import numpy as np
from numba import prange

from .._config import numba_jit, serial_copy
from .direct import _inline
from .filter import _U, _stream1, _stream4, _stream8


@_inline
def _sweep(y, yb, x, offs, ws, nt, n):
    """y[yb + i] = sum over taps t < nt of ws[t] * x[offs[t] + i], i < n
    (eight, then four, then one tap per pass over y)."""
    t = 0
    while t + 8 <= nt:
        _stream8(y, yb, x, 0, offs, ws, t, n, t == 0)
        t += 8
    while t + 4 <= nt:
        _stream4(y, yb, x, 0, offs, ws, t, n, t == 0)
        t += 4
    while t < nt:
        _stream1(y, yb, x, 0, offs, ws, t, n, t == 0)
        t += 1


@_inline
def _pad_ends(hp, lo, cols, W, cval):
    """Fill the padded row ``hp`` outside ``[lo, lo + W)`` from its inside by ``cols``."""
    for j in range(lo):
        s = cols[j]
        hp[j] = hp[lo + s] if s >= 0 else cval
    for j in range(lo + W, len(cols)):
        s = cols[j]
        hp[j] = hp[lo + s] if s >= 0 else cval


@numba_jit(parallel=True)
def two_pass_kernel(x, out, rows, wv, cols, wh, lo, cval, vertical_first, nparts):
    """out[n] = the correlation of x[n] with ``wv`` along axis 1 and ``wh``
    along axis 2, in that order (``vertical_first``) or the other; x and out
    (N, H, W) C-contiguous of one float dtype, not overlapping; ``rows``
    (H + KV - 1) and ``cols`` (W + KH - 1) the padded positions' input
    indices, ``lo`` the horizontal pass's left pad (``cols[lo + c] == c``)."""
    N, H, W = out.shape
    KV, KH = len(wv), len(wh)
    items = N * H
    per = (items + nparts - 1) // nparts
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for part in prange(nparts):
        start = part * per
        stop = min(items, start + per)
        if start >= stop:
            continue
        hp = np.empty(W + KH - 1, out.dtype)
        hoffs = np.arange(KH)
        offs = np.empty(KV, np.int64)
        ws = np.empty(KV, out.dtype)
        ring = np.empty(0 if vertical_first else KV * W, out.dtype)
        for it in range(start, stop):
            n = it // H
            r = it - n * H
            plane = n * H * W
            if vertical_first:
                cnt = 0
                outside = False
                cterm = 0.0
                for t in range(KV):
                    s = rows[r + t]
                    if s >= 0:
                        offs[cnt] = plane + s * W
                        ws[cnt] = wv[t]
                        cnt += 1
                    else:
                        outside = True
                        cterm += wv[t] * cval
                _sweep(hp, lo, xf, offs, ws, cnt, W)
                if outside:
                    if cnt == 0:
                        for c in range(W):
                            hp[lo + c] = cterm
                    else:
                        for c in range(W):
                            hp[lo + c] += cterm
                _pad_ends(hp, lo, cols, W, cval)
                _sweep(of, it * W, hp, hoffs, wh, KH, W)
            else:
                first = r if (it == start or r == 0) else r + KV - 1
                for p in range(first, r + KV):  # (the padded rows not in the ring yet)
                    slot = (p % KV) * W
                    s = rows[p]
                    if s < 0:
                        for c in range(W):
                            ring[slot + c] = cval
                        continue
                    src, dst = _U(plane + s * W), _U(lo)
                    for c in range(_U(W)):  # (unsigned indices: no wraparound test, a vector copy)
                        hp[dst + c] = xf[src + c]
                    _pad_ends(hp, lo, cols, W, cval)
                    _sweep(ring, slot, hp, hoffs, wh, KH, W)
                for t in range(KV):
                    offs[t] = ((r + t) % KV) * W
                _sweep(of, it * W, ring, offs, wv, KV, W)


#: the same kernel without a parallel region (small images, several Python
#: threads under Numba's workqueue layer): see ``serial_copy``
two_pass_kernel_serial = serial_copy(two_pass_kernel, "two_pass_kernel_serial")


#: scipy.ndimage's boundary modes and the rule :func:`boundary_index` applies for each
#: (0: symmetric, 1: reflect without repeating the edge, 2: edge, 3: wrap, 4: the constant)
MODE_NAMES = ("reflect", "grid-mirror", "mirror", "nearest", "wrap", "grid-wrap", "constant", "grid-constant")
MODE_RULES = (0, 0, 1, 2, 3, 3, 4, 4)
MODE_RULE = dict(zip(MODE_NAMES, MODE_RULES))


def boundary_index(n, lo, hi, rule):
    """The input index of each of the ``lo + n + hi`` padded positions of an
    axis of length ``n`` (n >= 1) under boundary ``rule`` (:data:`MODE_RULE`;
    -1: the constant), pads wider than the axis included -- NumPy's pad of an
    index array (symmetric, reflect, edge, wrap, constant) as formulas.  Plain
    NumPy, and compiled as it stands for Numba-compiled callers
    (:mod:`.injit`)."""
    p = np.arange(-lo, n + hi)
    if rule == 4:
        return np.where((p >= 0) & (p < n), p, -1)
    if rule == 2:
        return np.minimum(np.maximum(p, 0), n - 1)
    if rule == 3:
        return p % n
    if rule == 0:
        m = p % (2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if n == 1:
        return np.zeros(len(p), np.int64)
    m = p % (2 * n - 2)
    return np.where(m < n, m, 2 * n - 2 - m)
