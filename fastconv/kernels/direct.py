"""Direct convolution: every output is a sum of shifted input rows.

One kernel module serves conv1d/2d/3d (everything is lifted to three spatial
axes).  Work items, run in parallel: (batch n, group g, block of up to 4
output channels, output depth od, chunk of output rows).  Taps (ci, kd, kh,
kw) are applied four at a time: one pass adds 4 shifted input streams to one
accumulator stream (4 FMAs per accumulator load/store).

Two loop shapes, chosen per call:

* **fused rows** (stride 1 along H and W, OW <= W): the accumulator of a row
  chunk has the input's row pitch W, so a tap is a *single* long stream
  ``acc[q] += w * x[base + q]`` across all rows of the chunk.  The few columns
  where a tap would read the left/right padding (it reads the neighbouring row
  instead) are saved before and restored after the pass, then given their
  valid taps one by one.  Long streams are what LLVM vectorises well: with
  per-row passes a 56-wide row never reaches the 64-element unrolled vector
  loop and runs scalar (measured 11 vs 40+ GFLOP/s on the 64x56x56 3x3 layer);
* **row by row** (any stride): each output row is accumulated over the taps,
  each tap limited to the columns whose input lies inside the image.

Zero padding is never materialised (taps skip it), so NaN/Inf reach only the
outputs whose window covers them.  Numba wraps negative indices, so inner
loops run over slices with ``range(n)`` (a loop over ``a[base + i]`` with a
signed base stays scalar).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._config import numba_jit, numba_threads

_BLOCK = 8  # output channels per work item (x streams reused from L1 across them)
_TAPS = 8  # taps per accumulator pass in the fused kernel
_CHUNK_ELEMS = 2048  # accumulator elements per channel and chunk: 4 input streams + 1 accumulator stay in L1


@numba_jit()
def _tap_range(off, sw, W, OW):
    """Output columns ``[lo, hi)`` whose input column ``ow*sw + off`` is in ``[0, W)``."""
    if off >= 0:
        lo = 0
    else:
        lo = (-off + sw - 1) // sw
    lim = W - 1 - off
    if lim < 0:
        return lo, lo
    hi = lim // sw + 1
    if hi > OW:
        hi = OW
    if hi < lo:
        hi = lo
    return lo, hi


@numba_jit()
def _axpy(y, yb, xf, xb, wv, lo, hi, sw):
    """y[yb + i] += wv * xf[xb + i*sw] for i in [lo, hi)."""
    n = hi - lo
    if n <= 0:
        return
    ys = y[yb + lo : yb + hi]
    if sw == 1:
        xs = xf[xb + lo : xb + hi]
        for i in range(n):
            ys[i] += wv * xs[i]
    else:
        xt = xf[xb + lo * sw : xb + (hi - 1) * sw + 1 : sw]
        for i in range(n):
            ys[i] += wv * xt[i]


@numba_jit()
def _pass4(y, yb, xf, b0, b1, b2, b3, w0, w1, w2, w3, lo, hi, sw):
    """y[yb + i] += sum_k wk * xf[bk + i*sw] for i in [lo, hi): four taps, one stream."""
    n = hi - lo
    if n <= 0:
        return
    ys = y[yb + lo : yb + hi]
    if sw == 1:
        p0 = xf[b0 + lo : b0 + hi]
        p1 = xf[b1 + lo : b1 + hi]
        p2 = xf[b2 + lo : b2 + hi]
        p3 = xf[b3 + lo : b3 + hi]
        for i in range(n):
            ys[i] += w0 * p0[i] + w1 * p1[i] + w2 * p2[i] + w3 * p3[i]
    else:
        e = (n - 1) * sw + 1
        q0 = xf[b0 + lo * sw : b0 + lo * sw + e : sw]
        q1 = xf[b1 + lo * sw : b1 + lo * sw + e : sw]
        q2 = xf[b2 + lo * sw : b2 + lo * sw + e : sw]
        q3 = xf[b3 + lo * sw : b3 + lo * sw + e : sw]
        for i in range(n):
            ys[i] += w0 * q0[i] + w1 * q1[i] + w2 * q2[i] + w3 * q3[i]


@numba_jit()
def _flush_rows(of, ob, plane, nco, xf, wp, tb, tw, tlo, thi, nt, OW, sw):
    """Row-by-row: apply ``nt`` (<= 4) taps to ``nco`` output rows ``ob + j*plane``."""
    lo = 0
    hi = OW
    for i in range(nt):
        lo = max(lo, tlo[i])
        hi = min(hi, thi[i])
    if nt == 4 and lo < hi:
        for j in range(nco):
            _pass4(of, ob + j * plane, xf, tb[0], tb[1], tb[2], tb[3],
                   wp[tw[0] + j], wp[tw[1] + j], wp[tw[2] + j], wp[tw[3] + j], lo, hi, sw)  # fmt: skip
        for i in range(nt):
            if tlo[i] < lo or thi[i] > hi:
                for j in range(nco):
                    wv = wp[tw[i] + j]
                    _axpy(of, ob + j * plane, xf, tb[i], wv, tlo[i], lo, sw)
                    _axpy(of, ob + j * plane, xf, tb[i], wv, hi, thi[i], sw)
    else:
        for i in range(nt):
            for j in range(nco):
                _axpy(of, ob + j * plane, xf, tb[i], wp[tw[i] + j], tlo[i], thi[i], sw)


@numba_jit()
def _pass8(y, yb, xs, tb, tw, j, wp, n):
    """Eight taps, one stream: y[yb + q] += sum_k wp[tw[k] + j] * xs[tb[k] + q]."""
    w0 = wp[tw[0] + j]
    w1 = wp[tw[1] + j]
    w2 = wp[tw[2] + j]
    w3 = wp[tw[3] + j]
    w4 = wp[tw[4] + j]
    w5 = wp[tw[5] + j]
    w6 = wp[tw[6] + j]
    w7 = wp[tw[7] + j]
    ys = y[yb : yb + n]
    p0 = xs[tb[0] : tb[0] + n]
    p1 = xs[tb[1] : tb[1] + n]
    p2 = xs[tb[2] : tb[2] + n]
    p3 = xs[tb[3] : tb[3] + n]
    p4 = xs[tb[4] : tb[4] + n]
    p5 = xs[tb[5] : tb[5] + n]
    p6 = xs[tb[6] : tb[6] + n]
    p7 = xs[tb[7] : tb[7] + n]
    for i in range(n):
        ys[i] += (w0 * p0[i] + w1 * p1[i] + w2 * p2[i] + w3 * p3[i]) + (
            w4 * p4[i] + w5 * p5[i] + w6 * p6[i] + w7 * p7[i]
        )


@numba_jit()
def _stream_taps(acc, a, xs, tb, tw, nt, j, wp, n):
    """acc[a + q] += sum_k wp[tw[k] + j] * xs[tb[k] + q] for q in [0, n), 1..8 taps."""
    if nt == 8:
        _pass8(acc, a, xs, tb, tw, j, wp, n)
        return
    if nt > 4:
        _pass4(acc, a, xs, tb[0], tb[1], tb[2], tb[3],
               wp[tw[0] + j], wp[tw[1] + j], wp[tw[2] + j], wp[tw[3] + j], 0, n, 1)  # fmt: skip
        _stream_taps(acc, a, xs, tb[4:], tw[4:], nt - 4, j, wp, n)
        return
    if nt == 4:
        _pass4(acc, a, xs, tb[0], tb[1], tb[2], tb[3],
               wp[tw[0] + j], wp[tw[1] + j], wp[tw[2] + j], wp[tw[3] + j], 0, n, 1)  # fmt: skip
        return
    ys = acc[a : a + n]
    if nt == 3:
        w0 = wp[tw[0] + j]
        w1 = wp[tw[1] + j]
        w2 = wp[tw[2] + j]
        p0 = xs[tb[0] : tb[0] + n]
        p1 = xs[tb[1] : tb[1] + n]
        p2 = xs[tb[2] : tb[2] + n]
        for i in range(n):
            ys[i] += w0 * p0[i] + w1 * p1[i] + w2 * p2[i]
    elif nt == 2:
        w0 = wp[tw[0] + j]
        w1 = wp[tw[1] + j]
        p0 = xs[tb[0] : tb[0] + n]
        p1 = xs[tb[1] : tb[1] + n]
        for i in range(n):
            ys[i] += w0 * p0[i] + w1 * p1[i]
    else:
        _axpy(acc, a, xs, tb[0], wp[tw[0] + j], 0, n, 1)


def pack_weights(w: np.ndarray, groups: int) -> np.ndarray:
    """(C_out, C_in/g, KD, KH, KW) -> flat (groups, blocks, taps, _BLOCK): the
    channels of a block adjacent per tap, zero-filled past the group's end."""
    c_out = w.shape[0]
    cog = c_out // groups
    taps = int(np.prod(w.shape[1:]))
    nblk = (cog + _BLOCK - 1) // _BLOCK
    packed = np.zeros((groups, nblk * _BLOCK, taps), dtype=w.dtype)
    packed[:, :cog, :] = w.reshape(groups, cog, taps)
    packed = packed.reshape(groups, nblk, _BLOCK, taps).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(packed).reshape(-1)


@numba_jit(parallel=True)
def conv_direct_rows(x, w, wp, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, groups, row_chunks):
    """Row-by-row direct convolution (any stride).  x (N, C_in, D, H, W),
    w (C_out, C_in/groups, KD, KH, KW), wp = pack_weights(w), b (C_out,),
    out (N, C_out, OD, OH, OW), all C-contiguous; zero padding (pd, ph, pw)."""
    N, C_in, D, H, W = x.shape
    C_out, Cig, KD, KH, KW = w.shape
    OD = out.shape[2]
    OH = out.shape[3]
    OW = out.shape[4]
    Cog = C_out // groups
    nblk = (Cog + _BLOCK - 1) // _BLOCK
    T = Cig * KD * KH * KW
    rows = OD * OH
    plane = rows * OW
    rpc = (rows + row_chunks - 1) // row_chunks
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for item in prange(N * groups * nblk * row_chunks):
        chunk = item % row_chunks
        t = item // row_chunks
        blk = t % nblk
        t = t // nblk
        g = t % groups
        n = t // groups
        co0 = g * Cog + blk * _BLOCK
        nco = min(_BLOCK, (g + 1) * Cog - co0)
        wblk = (g * nblk + blk) * T * _BLOCK
        tb = np.empty(4, np.int64)
        tw = np.empty(4, np.int64)
        tlo = np.empty(4, np.int64)
        thi = np.empty(4, np.int64)
        klo = np.empty(KW, np.int64)
        khi = np.empty(KW, np.int64)
        for kw in range(KW):
            klo[kw], khi[kw] = _tap_range(kw * dw - pw, sw, W, OW)
        for r in range(chunk * rpc, min(rows, (chunk + 1) * rpc)):
            od = r // OH
            oh = r - od * OH
            ob = (n * C_out + co0) * plane + r * OW
            for j in range(nco):
                of[ob + j * plane : ob + j * plane + OW] = b[co0 + j]
            nt = 0
            for ci in range(Cig):
                xc = (n * C_in + g * Cig + ci) * D
                for kd in range(KD):
                    idd = od * sd + kd * dd - pd
                    if idd < 0 or idd >= D:
                        continue
                    for kh in range(KH):
                        ih = oh * sh + kh * dh - ph
                        if ih < 0 or ih >= H:
                            continue
                        rowbase = ((xc + idd) * H + ih) * W - pw
                        tap0 = ((ci * KD + kd) * KH + kh) * KW
                        for kw in range(KW):
                            if klo[kw] >= khi[kw]:
                                continue
                            tb[nt] = rowbase + kw * dw
                            tw[nt] = wblk + (tap0 + kw) * _BLOCK
                            tlo[nt] = klo[kw]
                            thi[nt] = khi[kw]
                            nt += 1
                            if nt == 4:
                                _flush_rows(of, ob, plane, nco, xf, wp, tb, tw, tlo, thi, nt, OW, sw)
                                nt = 0
            if nt > 0:
                _flush_rows(of, ob, plane, nco, xf, wp, tb, tw, tlo, thi, nt, OW, sw)


@numba_jit(parallel=True)
def conv_direct_fused(x, w, wp, b, out, sd, dd, dh, dw, pd, ph, pw, groups, chunk_rows, nparts):
    """Fused-rows direct convolution for stride 1 along H and W (stride ``sd``
    along D is free).  Arguments as :func:`conv_direct_rows`.

    Per work item, the input rows of up to four input channels are staged in a
    small tile with the zero padding around them (pitch Wp = padded width), and
    the accumulator has the same pitch: every tap is then one stream
    ``acc[q] += w * tile[base + q]`` over all rows of the chunk; the columns a
    stream computes past OW are never copied out.
    """
    C_out, Cig, KD, KH, KW = w.shape
    OD = out.shape[2]
    OH = out.shape[3]
    OW = out.shape[4]
    Wp = OW + (KW - 1) * dw  # padded width
    Cog = C_out // groups
    nblk = (Cog + _BLOCK - 1) // _BLOCK
    nchunk = (OH + chunk_rows - 1) // chunk_rows
    items = x.shape[0] * groups * nblk * OD * nchunk
    per_part = (items + nparts - 1) // nparts
    rmax = min(OH, chunk_rows)
    for part in prange(nparts):
        # scratch once per part, not per item: per-item allocation and first
        # touch cost ~2 us an item (measured on the depthwise layer)
        acc = np.empty(_BLOCK * rmax * Wp, x.dtype)
        tile = np.empty(min(4, Cig) * (rmax + (KH - 1) * dh) * Wp, x.dtype)
        tb = np.empty(_TAPS, np.int64)
        tw = np.empty(_TAPS, np.int64)
        for item in range(part * per_part, min(items, (part + 1) * per_part)):
            chunk = item % nchunk
            t = item // nchunk
            od = t % OD
            t = t // OD
            blk = t % nblk
            t = t // nblk
            g = t % groups
            n = t // groups
            co0 = g * Cog + blk * _BLOCK
            nco = min(_BLOCK, (g + 1) * Cog - co0)
            oh0 = chunk * chunk_rows
            R = min(OH, oh0 + chunk_rows) - oh0
            _fused_item(x, w, wp, b, out, acc, tile, tb, tw, n, g, blk, nblk, co0, nco, od, oh0, R, Wp,
                        sd, dd, dh, dw, pd, ph, pw)  # fmt: skip


@numba_jit()
def _fused_item(x, w, wp, b, out, acc, tile, tb, tw, n, g, blk, nblk, co0, nco, od, oh0, R, Wp, sd, dd, dh, dw, pd, ph, pw):
    """One work item of :func:`conv_direct_fused`: output channels co0..co0+nco-1,
    depth od, rows oh0..oh0+R-1 of image n."""
    C_in, D, H, W = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    Cig, KD, KH, KW = w.shape[1], w.shape[2], w.shape[3], w.shape[4]
    OW = out.shape[4]
    groups_cig = g * Cig
    wblk = (g * nblk + blk) * (Cig * KD * KH * KW) * _BLOCK
    Rin = R + (KH - 1) * dh  # tile rows: input rows oh0 - ph ... oh0 - ph + Rin - 1
    L = R * Wp  # accumulator pitch Wp
    Ls = (R - 1) * Wp + OW  # stream length: the last row's junk columns skipped
    tile_sz = Rin * Wp
    for j in range(nco):
        acc[j * L : (j + 1) * L] = b[co0 + j]
    for ci0 in range(0, Cig, 4):
        nci = min(4, Cig - ci0)
        for kd in range(KD):
            idd = od * sd + kd * dd - pd
            if idd < 0 or idd >= D:
                continue
            # stage the rows of nci channels with their zero padding
            for c in range(nci):
                xrows = x[n, groups_cig + ci0 + c, idd]
                for rr in range(Rin):
                    ih = oh0 - ph + rr
                    tr = c * tile_sz + rr * Wp
                    if ih < 0 or ih >= H:
                        tile[tr : tr + Wp] = 0
                    else:
                        tile[tr : tr + pw] = 0
                        tile[tr + pw : tr + pw + W] = xrows[ih]
                        tile[tr + pw + W : tr + Wp] = 0
            # every (c, kh, kw) tap streams over the same range: any _TAPS share a pass
            nt = 0
            for kh in range(KH):
                for kw in range(KW):
                    for c in range(nci):
                        tb[nt] = c * tile_sz + kh * dh * Wp + kw * dw
                        tw[nt] = wblk + ((((ci0 + c) * KD + kd) * KH + kh) * KW + kw) * _BLOCK
                        nt += 1
                        if nt == _TAPS:
                            for j in range(nco):
                                _stream_taps(acc, j * L, tile, tb, tw, nt, j, wp, Ls)
                            nt = 0
            if nt > 0:
                for j in range(nco):
                    _stream_taps(acc, j * L, tile, tb, tw, nt, j, wp, Ls)
    for j in range(nco):
        orows = out[n, co0 + j, od]
        for r in range(R):
            orows[oh0 + r] = acc[j * L + r * Wp : j * L + r * Wp + OW]


def conv_direct(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Run the direct method for ``spec`` into the C-contiguous 5-D ``out``."""
    x, w = ops.x, ops.w
    b = ops.b if ops.b is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    if out.size == 0:
        return
    if w.shape[1] == 0:  # no input channels: the sum is empty
        out[...] = b.reshape((-1, 1, 1, 1))
        return
    sd, sh, sw = spec.lifted("stride")
    dd, dh, dw = spec.lifted("dilation")
    pd, ph, pw = spec.kernel_pad_lo
    cog = spec.c_out // spec.groups
    items = spec.n * spec.groups * ((cog + _BLOCK - 1) // _BLOCK)
    wp = pack_weights(w, spec.groups)
    W = x.shape[-1]
    OD, OH, OW = out.shape[2:]
    with numba_threads(num_threads):
        if sh == 1 and sw == 1:
            Wp = OW + (spec.kernel[-1] - 1) * dw
            chunk_rows = max(1, min(OH, _CHUNK_ELEMS // Wp))
            # enough items for every thread to stay busy
            while chunk_rows > 1 and items * OD * -(-OH // chunk_rows) < 4 * num_threads:
                chunk_rows = (chunk_rows + 1) // 2
            nitems = items * OD * -(-OH // chunk_rows)
            nparts = min(nitems, 8 * num_threads)
            conv_direct_fused(x, w, wp, b, out, sd, dd, dh, dw, pd, ph, pw, spec.groups, chunk_rows, nparts)
        else:
            rows = OD * OH
            row_chunks = max(1, min(rows, -(-4 * num_threads // items)))
            conv_direct_rows(x, w, wp, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, spec.groups, row_chunks)
