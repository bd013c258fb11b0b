"""Depthwise convolution (one input channel per output channel: groups == C_in;
3x3 "same" planes also for groups of a few channels).

Each output row is computed in vectorised passes straight from the input
rows: for a 3-wide kernel, three input rows x three taps per pass (9 loads,
1 store per output, no tile, no accumulator); more rows take more passes;
other widths, at unit stride and no dilation, three rows x four taps per
pass (a 5x5 kernel in 4 passes, 7x7 in 6), else one pass per tap.  Columns
where a tap would read padding are done by a scalar loop at the two ends of
the row -- except for those other widths when the kernel has more than one
row, whose input rows are first copied with their padding columns (short
rows: the scalar ends cost more than the rest).  Measured on the
8x32x112x112 3x3 layer, 2 threads: 1.2 ms, against 3.5 ms for the general
direct kernel (its tile and accumulator traffic dominate when each output
channel has a single input channel) and 3.6 ms for torch.

3x3 "same" kernels at unit stride run whole planes instead (:func:`_plane3`:
one flat pass over the interior rows, then the first and last rows and
columns), and so do groups of up to PLANE_CHANNELS input channels (one flat
pass per input plane): on 56-pixel rows the per-row passes spent most of
their time on each row's set-up, vector remainder and scalar ends.  A
3-D kernel 3x3 in the plane runs the same way, one flat pass per depth tap
(the 3x3x3 layer 2x64x16x28x28: 1.36 ms, against 2.23 for the direct
kernel and 3.86 for per-row passes).
"""

from __future__ import annotations

import numpy as np
from numba import prange, types

from .._config import numba_jit, numba_threads, serial_copy
from ..plans.depthwise import PLANE_CHANNELS, pads_rows, whole_planes, workspace  # noqa: F401
from ._link import Linkage, arrays, bias, ints, unit
from .direct import _inline

_U = np.uint64
# Constants passed to the helpers as plain int64/bool, not as Numba literals:
# a literal argument (or a counter's literal first value, seen by type
# inference before the loop unifies it) compiles the helper once more for
# that one value (measured: 5 builds of _rows_taps for one layer).
_I0 = np.int64(0)
_I3 = np.int64(3)
_YES = np.bool_(True)


@_inline
def _rows3(y, yb, x, r0, r1, r2, w, k0, n, sx, init, bv):
    """y[yb + i] (= bv or +=) sum over rows r0..r2 (taps 0, 1, 2 at offsets
    0, d, 2d folded into the bases) of w[k0 + 3*row + tap] * x[base + i*sx]."""
    if n <= 0:
        return
    o = _U(yb)
    w00, w01, w02 = w[k0], w[k0 + 1], w[k0 + 2]
    w10, w11, w12 = w[k0 + 3], w[k0 + 4], w[k0 + 5]
    w20, w21, w22 = w[k0 + 6], w[k0 + 7], w[k0 + 8]
    a0, a1, a2 = _U(r0[0]), _U(r0[1]), _U(r0[2])
    b0, b1, b2 = _U(r1[0]), _U(r1[1]), _U(r1[2])
    c0, c1, c2 = _U(r2[0]), _U(r2[1]), _U(r2[2])
    # the init/add choice stays outside the loops (a branch inside blocks
    # vectorisation); with unit stride and dilation the three taps of a row
    # are constant offsets from one base, which keeps LLVM's runtime alias
    # checks at 3 (with 9 separate bases it exceeds its limit of 8 and the
    # loop stays scalar: 2x slower, measured)
    if sx == 1 and a1 == a0 + 1 and a2 == a0 + 2 and b1 == b0 + 1 and b2 == b0 + 2 and c1 == c0 + 1 and c2 == c0 + 2:
        one = _U(1)
        two = _U(2)
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + (w00 * x[a0 + i] + w01 * x[a0 + i + one] + w02 * x[a0 + i + two]) + (
                w10 * x[b0 + i] + w11 * x[b0 + i + one] + w12 * x[b0 + i + two]
            ) + (w20 * x[c0 + i] + w21 * x[c0 + i + one] + w22 * x[c0 + i + two])  # fmt: skip
    elif sx == 1:
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + (w00 * x[a0 + i] + w01 * x[a1 + i] + w02 * x[a2 + i]) + (
                w10 * x[b0 + i] + w11 * x[b1 + i] + w12 * x[b2 + i]
            ) + (w20 * x[c0 + i] + w21 * x[c1 + i] + w22 * x[c2 + i])  # fmt: skip
    else:
        st = _U(sx)
        for i in range(_U(n)):
            k = i * st
            y[o + i] = (bv if init else y[o + i]) + (w00 * x[a0 + k] + w01 * x[a1 + k] + w02 * x[a2 + k]) + (
                w10 * x[b0 + k] + w11 * x[b1 + k] + w12 * x[b2 + k]
            ) + (w20 * x[c0 + k] + w21 * x[c1 + k] + w22 * x[c2 + k])  # fmt: skip


@_inline
def _tap(y, yb, x, xb, wv, n, sx):
    """y[yb + i] += wv * x[xb + i*sx]."""
    if n <= 0:
        return
    o = _U(yb)
    s = _U(xb)
    st = _U(sx)
    for i in range(_U(n)):
        y[o + i] += wv * x[s + i * st]


@_inline
def _taps4(y, o, x, s, w, k, m, n, init, bv):
    """y[o + i] (= bv or +=) sum over j < m (m <= 4) of w[k + j] * x[s + j + i]:
    up to four unit-stride, undilated taps of one input row in one pass
    (constant offsets from one base, so LLVM vectorises it)."""
    w0 = w[k]
    w1 = w[k + 1] if m > 1 else w0 * 0
    w2 = w[k + 2] if m > 2 else w0 * 0
    w3 = w[k + 3] if m > 3 else w0 * 0
    one = _U(1)
    two = _U(2)
    three = _U(3)
    if m == 4:
        for i in range(_U(n)):
            y[o + i] = (
                (bv if init else y[o + i])
                + (w0 * x[s + i] + w1 * x[s + i + one])
                + (w2 * x[s + i + two] + w3 * x[s + i + three])
            )
    elif m == 3:
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + (w0 * x[s + i] + w1 * x[s + i + one]) + w2 * x[s + i + two]
    elif m == 2:
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + w0 * x[s + i] + w1 * x[s + i + one]
    else:
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + w0 * x[s + i]


@_inline
def _rows3_taps4(y, o, x, s0, s1, s2, w, k0, k1, k2, m, n, init, bv):
    """y[o + i] (= bv or +=) sum over rows r < 3 and taps j < m (m <= 4) of
    w[kr + j] * x[sr + j + i]: three input rows' unit-stride, undilated
    taps in one pass (three bases, constant offsets: LLVM's runtime alias
    checks stay at three and it vectorises)."""
    one = _U(1)
    two = _U(2)
    three = _U(3)
    if m == 4:
        a0, a1, a2, a3 = w[k0], w[k0 + 1], w[k0 + 2], w[k0 + 3]
        b0, b1, b2, b3 = w[k1], w[k1 + 1], w[k1 + 2], w[k1 + 3]
        c0, c1, c2, c3 = w[k2], w[k2 + 1], w[k2 + 2], w[k2 + 3]
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + (
                (a0 * x[s0 + i] + a1 * x[s0 + i + one] + a2 * x[s0 + i + two] + a3 * x[s0 + i + three])
                + (b0 * x[s1 + i] + b1 * x[s1 + i + one] + b2 * x[s1 + i + two] + b3 * x[s1 + i + three])
                + (c0 * x[s2 + i] + c1 * x[s2 + i + one] + c2 * x[s2 + i + two] + c3 * x[s2 + i + three])
            )
    elif m == 3:
        a0, a1, a2 = w[k0], w[k0 + 1], w[k0 + 2]
        b0, b1, b2 = w[k1], w[k1 + 1], w[k1 + 2]
        c0, c1, c2 = w[k2], w[k2 + 1], w[k2 + 2]
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + (
                (a0 * x[s0 + i] + a1 * x[s0 + i + one] + a2 * x[s0 + i + two])
                + (b0 * x[s1 + i] + b1 * x[s1 + i + one] + b2 * x[s1 + i + two])
                + (c0 * x[s2 + i] + c1 * x[s2 + i + one] + c2 * x[s2 + i + two])
            )
    elif m == 2:
        a0, a1 = w[k0], w[k0 + 1]
        b0, b1 = w[k1], w[k1 + 1]
        c0, c1 = w[k2], w[k2 + 1]
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + (
                (a0 * x[s0 + i] + a1 * x[s0 + i + one])
                + (b0 * x[s1 + i] + b1 * x[s1 + i + one])
                + (c0 * x[s2 + i] + c1 * x[s2 + i + one])
            )
    else:
        a0, b0, c0 = w[k0], w[k1], w[k2]
        for i in range(_U(n)):
            y[o + i] = (bv if init else y[o + i]) + a0 * x[s0 + i] + b0 * x[s1 + i] + c0 * x[s2 + i]


@_inline
def _rows_taps(y, yb, x, w, rows, roww, nr, K, n, init, bv):
    """y[yb + i] (= bv or +=) sum over the ``nr`` input rows r (first tap's x index
    ``rows[r, 0]``, weight index ``roww[r]``) and taps k < K of
    w[roww[r] + k] * x[rows[r, 0] + k + i]: unit stride, no dilation; three
    rows x four taps per pass (a 5x5 kernel in 4 passes, 7x7 in 6; one pass
    per tap stored the output row 25 and 49 times)."""
    if n <= 0:
        return
    o = _U(yb)
    if nr == 0:
        if init:
            for i in range(_U(n)):
                y[o + i] = bv
        return
    r = _I0
    while nr - r >= 3:
        for j in range(0, K, 4):
            _rows3_taps4(y, o, x, _U(rows[r, 0] + j), _U(rows[r + 1, 0] + j), _U(rows[r + 2, 0] + j),
                         w, roww[r] + j, roww[r + 1] + j, roww[r + 2] + j, min(4, K - j), n,
                         init and r == 0 and j == 0, bv)  # fmt: skip
        r += 3
    while r < nr:
        _row_taps(y, yb, x, rows[r, 0], w, roww[r], K, n, init and r == 0, bv)
        r += 1


#: :func:`_rows_taps` compiled on its own, for :func:`_plane3` (a few calls
#: per plane; the per-row paths of :func:`_items` inline it)
_rows_taps_fn = serial_copy(_rows_taps, "_rows_taps_fn")  # (a renamed copy, compiled as a function)


@_inline
def _row_taps(y, yb, x, xb, w, k0, K, n, init, bv):
    """y[yb + i] (= bv or +=) sum over k < K of w[k0 + k] * x[xb + k + i]: a
    row's unit-stride, undilated taps four per pass (one pass per tap stored
    the output row K times: a 7-tap 1-D layer ran 2.5 ms where one copy of
    its data takes 0.65)."""
    if n <= 0:
        return
    o = _U(yb)
    for j in range(0, K, 4):
        _taps4(y, o, x, _U(xb + j), w, k0 + j, min(4, K - j), n, init and j == 0, bv)


@numba_jit(parallel=True)
def depthwise_kernel(x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, cog, padded, plane, items_at):
    """out[n, co] = b[co] + sum_{kd,kh,kw} w[co, 0, kd, kh, kw] * x[n, co // cog, ...];
    x (N, C, D, H, W), w (C*cog, 1, KD, KH, KW), out (N, C*cog, OD, OH, OW), C-contiguous.
    ``plane``: a 3x3 "same" kernel (:func:`whole_planes`), run by :func:`_plane3`,
    which also takes groups of a few input channels (w (C_out, C/groups, KD, 3, 3)).
    Work items (image, output channel, output depth) run in parallel, in
    pieces: one call of :func:`_plane_items` or :func:`_row_items` (at
    address ``items_at``) each."""
    N = x.shape[0]
    C_out = w.shape[0]
    KW = w.shape[4]
    W = x.shape[4]
    OD, OW = out.shape[2], out.shape[4]
    # interior columns: every kw tap inside the row
    lo = 0
    hi = OW
    for kw in range(KW):
        off = kw * dw - pw
        l_ = 0 if off >= 0 else (-off + sw - 1) // sw
        h_ = (W - 1 - off) // sw + 1 if W - 1 - off >= 0 else 0
        lo = max(lo, l_)
        hi = min(hi, h_)
    hi = max(hi, lo)
    items = N * C_out * OD
    parts = min(items, _PARTS)
    for part in prange(parts):
        _call_items(items_at, (x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, cog, padded, plane,
                               part * items // parts, (part + 1) * items // parts, lo, hi))  # fmt: skip


#: calls of :func:`_items` per kernel launch (enough pieces for any thread count)
_PARTS = 128

# Compile time (2-core Zen 4, float32, first call): 40 s before, most of it
# typing every copy that Numba's inliner made of the row helpers inside one
# function, and LLVM optimising that function again in each of the parallel
# kernel's four modules.  Now the parallel kernel calls a unit by address
# (:mod:`._link`), one per path (:func:`_plane_items`, :func:`_row_items`:
# a first call compiles its own); the per-plane helpers (:func:`_plane3`,
# :func:`_edge_column`, :func:`_rows_taps_fn`) are functions of their own;
# the per-row helpers stay inlined (called as functions, one call per row,
# the 5x5 layer 8x240x28x28 ran 1.7x slower and the stride-2 one 1.2x: 12.5
# against 7.4 ms, 6.3 against 5.2).  :func:`_items` is a function the unit
# calls, not inlined into it: LLVM then optimises its code a second time
# inside the unit, as it did inside the parallel kernel -- compiled once
# as the unit itself, the 5x5 layer ran 1.23x the old time, 1 thread; as
# now 0.91x (and 0.97, 0.97, 1.03 on the 3x3 layers 32 @112, stride 2 96
# @112, 144 @56).  14-20 s.  Work buffers are allocated per piece of items
# (per item they cost 14%).

#: x, w, bias, out, strides, dilations, paddings, cog, padded, plane, first, last, lo, hi
ITEMS = Linkage(
    "depthwise items",
    lambda dt: (
        types.none,
        (*arrays(dt, 5, 5), bias(dt), *arrays(dt, 5), *ints(10), types.boolean, types.boolean, *ints(4)),
    ),
)
_call_items = ITEMS.call


@unit
def _plane_items(x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, cog, padded, plane, first, last, lo, hi):
    """:func:`_items` of whole planes (``plane`` ignored)."""
    _items(x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, cog, padded, True, first, last, lo, hi)


@unit
def _row_items(x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, cog, padded, plane, first, last, lo, hi):
    """:func:`_items` row by row (``plane`` ignored)."""
    _items(x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, cog, padded, False, first, last, lo, hi)


@numba_jit()
def _items(x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, cog, padded, plane, first, last, lo, hi):
    """Work items ``first`` to ``last - 1`` of :func:`depthwise_kernel`: output
    planes (n, co, od); output columns [lo, hi) have every kw tap inside the row."""
    C, D, H, W = x.shape[1:]
    C_out, cig, KD, KH, KW = w.shape
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    wf = w.reshape(-1)
    K = KD * KH * KW
    # padded (see pads_rows): the item's input rows copied with their
    # padding columns, so whole output rows run in vectorised passes
    wb_ = OW + KW - 1 if padded else 1  # a padded row: input column j at j + pw
    # (the items' work buffers, allocated once: per item they cost 15%)
    rows = np.empty((KD * KH, 3), np.int64)  # x bases of taps kw = 0, 1, 2 per valid row
    roww = np.empty(KD * KH, np.int64)  # weight index of its kw = 0 tap
    px = np.empty(cig * KD, np.int64)
    pk = np.empty(cig * KD, np.int64)
    wsel = np.empty(KD * KH * 3, w.dtype)
    rowx = np.empty(KD * KH, np.int64)  # x index of each valid input row's first element
    xrow = np.empty(KD * H * wb_ if padded else 1, x.dtype)
    for item in range(first, last):
        od = item % OD
        t = item // OD
        co = t % C_out
        n = t // C_out
        xc = (n * C + co // cog * cig) * D
        wb = co * cig * K
        bv = b[co]
        if plane:
            # the input planes this output plane reads: per input channel of
            # the group, its depth taps inside the volume
            np_ = _I0
            for c in range(cig):
                for kd in range(KD):
                    idd = od * sd + kd * dd - pd
                    if 0 <= idd < D:
                        px[np_] = ((xc + c * D) + idd) * H * W
                        pk[np_] = wb + (c * KD + kd) * 9
                        np_ += 1
            _plane3(of, ((n * C_out + co) * OD + od) * OH * OW, xf, px, pk, np_, wf, H, W, bv, rows, roww)
            continue
        if padded:
            for kd in range(KD):
                idd = od * sd + kd * dd - pd
                if idd < 0 or idd >= D:
                    continue
                for ih in range(H):
                    dst = (kd * H + ih) * wb_
                    src = ((xc + idd) * H + ih) * W
                    for j in range(min(pw, wb_)):
                        xrow[dst + j] = 0
                    for j in range(max(0, min(W, wb_ - pw))):
                        xrow[dst + pw + j] = xf[src + j]
                    for j in range(max(0, pw + W), wb_):
                        xrow[dst + j] = 0
        for oh in range(OH):
            ob = ((n * C_out + co) * OD + od) * OH * OW + oh * OW
            nr = _I0
            for kd in range(KD):
                idd = od * sd + kd * dd - pd
                if idd < 0 or idd >= D:
                    continue
                for kh in range(KH):
                    ih = oh * sh + kh * dh - ph
                    if ih < 0 or ih >= H:
                        continue
                    rowx[nr] = ((xc + idd) * H + ih) * W
                    roww[nr] = wb + (kd * KH + kh) * KW
                    base = rowx[nr] - pw + lo * sw
                    if padded:
                        rows[nr, 0] = (kd * H + ih) * wb_
                    elif KW == 3:
                        rows[nr, 0] = base
                        rows[nr, 1] = base + dw
                        rows[nr, 2] = base + 2 * dw
                        for kw in range(3):
                            wsel[nr * 3 + kw] = wf[wb + (kd * KH + kh) * KW + kw]
                    else:
                        rows[nr, 0] = base
                        rows[nr, 1] = (kd * KH + kh) * KW
                    nr += 1
            n_in = hi - lo
            if KW == 3 and nr >= 3:
                done = _I0
                while nr - done >= 3:
                    _rows3(of, ob + lo, xf, rows[done], rows[done + 1], rows[done + 2], wsel, done * 3,
                           n_in, sw, done == 0, bv)  # fmt: skip
                    done += 3
                while done < nr:
                    for kw in range(3):
                        _tap(of, ob + lo, xf, rows[done, kw], wsel[done * 3 + kw], n_in, sw)
                    done += 1
            elif padded:
                _rows_taps(of, ob, xrow, wf, rows, roww, nr, KW, OW, _YES, bv)
                continue
            elif sw == 1 and dw == 1:
                _rows_taps(of, ob + lo, xf, wf, rows, roww, nr, KW, n_in, _YES, bv)
            else:
                for i in range(lo, hi):
                    of[ob + i] = bv
                for r in range(nr):
                    for kw in range(KW):
                        if KW == 3:
                            _tap(of, ob + lo, xf, rows[r, kw], wsel[r * 3 + kw], n_in, sw)
                        else:
                            _tap(of, ob + lo, xf, rows[r, 0] + kw * dw, wf[wb + rows[r, 1] + kw], n_in, sw)
            # the ends of the row, where some taps read padding: scalar, over
            # the rows found above (re-deriving them per column cost 2 ms here)
            for i in range(lo):
                of[ob + i] = _edge(xf, wf, bv, i, rowx, roww, nr, KW, W, sw, dw, pw)
            for i in range(max(hi, lo), OW):
                of[ob + i] = _edge(xf, wf, bv, i, rowx, roww, nr, KW, W, sw, dw, pw)


@numba_jit()
def _plane3(of, ob, xf, px, pk, np_, wf, H, W, bv, rows, roww):
    """A whole H x W output plane of a 3x3 kernel at unit stride, padding 1,
    no dilation, summed over ``np_`` input planes (flat offsets ``px[p]``,
    their 3x3 weights at ``pk[p]``: a group's input channels and depth taps;
    the output plane at ``ob``): per input plane, rows 1..H-2 as one flat
    pass over the plane (an output row's first and last columns then read
    the neighbouring rows' ends: redone below) and the first and last rows
    as passes of two input rows; then every row's first and last columns
    with only the taps inside the image (:func:`_edge_column`).  Measured on
    144 @56 (short rows): per-row passes spent most of the time on each
    row's set-up, vector remainder and scalar ends."""
    if np_ == 0:  # every depth tap in the padding
        for i in range(H * W):
            of[ob + i] = bv
        return
    for p in range(np_):
        xc = px[p]
        wc = pk[p]
        if H >= 3:
            p0 = W + 1  # output (1, 1): its kw = 0 taps start at input (0, 0)
            for r in range(3):
                rows[r, 0] = xc + p0 - W - 1 + r * W
                roww[r] = wc + 3 * r
            _rows_taps_fn(of, ob + p0, xf, wf, rows, roww, _I3, _I3, (H - 2) * W - 2, p == 0, bv)
        for oh in range(0, H, max(1, H - 1)):  # the first and last rows
            nr = _I0
            for kh in range(3):
                ih = oh + kh - 1
                if 0 <= ih < H:
                    rows[nr, 0] = xc + ih * W
                    roww[nr] = wc + 3 * kh
                    nr += 1
            _rows_taps_fn(of, ob + oh * W + 1, xf, wf, rows, roww, nr, _I3, W - 2, p == 0, bv)
    # every row's first and last columns, after all the passes that wrapped
    for p in range(np_):
        if W >= 2:
            _edge_column(of, ob, xf, px[p], wf, pk[p], H, W, _I0, p == 0, bv)
            _edge_column(of, ob, xf, px[p], wf, pk[p], H, W, W - 1, p == 0, bv)
        else:
            for oh in range(H):
                acc = bv if p == 0 else of[ob + oh]
                for kh in range(3):
                    if 0 <= oh + kh - 1 < H:
                        acc += wf[pk[p] + 3 * kh + 1] * xf[px[p] + oh + kh - 1]
                of[ob + oh] = acc


@numba_jit()
def _edge_column(of, ob, xf, xc, wf, wc, H, W, col, init, bv):
    """Column ``col`` (0 or W-1, W >= 2) of an H x W output plane (= or +=)
    its 3x3 taps inside the image: two input columns, the rows above and
    below where they exist; weights held in registers, no per-tap checks
    (per-tap checks cost more than the whole plane's flat pass on 28 @28)."""
    j = 0 if col == 0 else W - 2  # first input column read, at tap kw = k
    k = 1 if col == 0 else 0
    a0, b0 = wf[wc + k], wf[wc + k + 1]
    a1, b1 = wf[wc + 3 + k], wf[wc + 4 + k]
    a2, b2 = wf[wc + 6 + k], wf[wc + 7 + k]
    w_ = _U(W)
    one = _U(1)
    y = _U(ob + col)
    s = _U(xc + j)
    for oh in range(H):
        acc = bv if init else of[y]
        if oh > 0:
            acc += a0 * xf[s - w_] + b0 * xf[s - w_ + one]
        acc += a1 * xf[s] + b1 * xf[s + one]
        if oh < H - 1:
            acc += a2 * xf[s + w_] + b2 * xf[s + w_ + one]
        of[y] = acc
        y += w_
        s += w_


@_inline
def _edge(xf, wf, bv, i, rowx, roww, nr, KW, W, sw, dw, pw):
    """Output column i of a row next to the padding: taps checked one by one."""
    acc = bv
    for r in range(nr):
        for kw in range(KW):
            iw = i * sw + kw * dw - pw
            if 0 <= iw < W:
                acc += wf[roww[r] + kw] * xf[rowx[r] + iw]
    return acc


def conv_depthwise(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Run the depthwise method for ``spec`` into the C-contiguous 5-D ``out``."""
    prepare_depthwise(spec, num_threads)(ops, out)


def prepare_depthwise(spec, num_threads: int):
    """The depthwise runner for ``spec`` with its launch parameters fixed (a
    repeated call's: see ``Method.prepare``)."""
    sd, sh, sw = spec.lifted("stride")
    dd, dh, dw = spec.lifted("dilation")
    pd, ph, pw = spec.kernel_pad_lo
    fixed = (sd, sh, sw, dd, dh, dw, pd, ph, pw, spec.c_out // spec.groups, pads_rows(spec), whole_planes(spec))
    zeros = np.zeros(spec.c_out, dtype=spec.dtype)  # (no bias: shared by the calls, never written)
    empty = spec.n * spec.c_out == 0 or 0 in spec.out_spatial
    items = _plane_items if whole_planes(spec) else _row_items

    def run(ops, out: np.ndarray) -> None:
        if empty:
            return
        b = ops.b if ops.b is not None else zeros
        with numba_threads(num_threads):
            depthwise_kernel(ops.x, ops.w, b, out, *fixed, ITEMS.address(items, ops.x.dtype))

    return run
