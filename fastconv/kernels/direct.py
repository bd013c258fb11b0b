"""Direct convolution: every output row is a weighted sum of shifted input rows.

One kernel serves conv1d/2d/3d (everything is lifted to three spatial axes).
Work items, run in parallel: (image n, group g, block of ``_BLOCK`` output
channels, output depth od, chunk of output rows).

Per item, the input rows of up to four input channels are staged in a small
(L1/L2-sized) tile with the zero padding around them, split into stride
phases: block (p, q) holds padded rows p, p+sh, ... and columns q, q+sw, ...
The accumulator has the tile's pitch, so every tap (c, kh, kw) is *one* long
unit-stride stream ``acc[i] += w * tile[base + i]`` over all rows of the
chunk, whatever the stride and dilation; columns past OW are computed and
dropped.  Taps are applied ``_TAPS`` at a time (8 FMAs per accumulator
load/store) and the ``_BLOCK`` output channels of the item reuse the staged
tile from cache.

Why streams: LLVM vectorises the inner loop 16 wide and unrolls it 4 times, so
a per-row loop over a 56-wide row runs mostly in the scalar remainder
(measured on one core, 64x56x56 3x3 layer: 11 GFLOP/s row by row, 40+ as
streams).  Zero padding is never materialised for the tensor, only inside the
tile, so NaN/Inf reach only the outputs whose window covers them.

Numba notes, measured: (1) a signed index ``a[base + i]`` gets a wraparound
select that blocks vectorisation, and (2) every slice is an array view whose
reference count is updated atomically, as is every array passed to a
function that is not inlined (two threads contend on those counters: on the
depthwise layers, inlining every helper with ``inline="always"`` is 10-25%
faster, for about 4 s more compilation per dtype, once, then cached).  So the
hot helpers take (array, offset), index with uint64, and are inlined.
"""

from __future__ import annotations

import numpy as np
from numba import prange, types

from .._config import numba_jit, numba_threads, serial_below, serial_copy
from .._memo import ByValue
from ._link import Linkage, arrays, bias, ints, unit

_inline = numba_jit(inline="always")

_BLOCK = 8  # output channels per work item (measured: 4 -> 8 gains 8%, 16 ~ 8)
_TAPS = 8  # taps per accumulator pass (measured: 4 -> 8 gains 25%)
_CHUNK_ELEMS = 1024  # accumulator elements per channel and chunk (512..4096 within noise)
# packed weights smaller than this are packed on the calling thread: a
# parallel launch under Numba's workqueue layer costs 0.14-0.2 ms (measured,
# 2 threads: 48 KB 0.21 -> 0.02 ms, 576 KB 0.21 -> 0.08, 2.3 MB 0.43 -> 0.34,
# 9.2 MB 1.39 -> 1.59); an eighth of it under omp/tbb (see serial_below)
_PACK_SERIAL_BELOW = 4 << 20

_U = np.uint64


@_inline
def _fill(dst, d0, n, value):
    """dst[d0 : d0 + n] = value."""
    if n <= 0:
        return
    o = _U(d0)
    for i in range(_U(n)):
        dst[o + i] = value


@_inline
def _copy(dst, d0, src, s0, n):
    """dst[d0 : d0 + n] = src[s0 : s0 + n] (distinct arrays)."""
    if n <= 0:
        return
    o = _U(d0)
    s = _U(s0)
    for i in range(_U(n)):
        dst[o + i] = src[s + i]


@_inline
def _gather(dst, d0, src, s0, n, step):
    """dst[d0 + i] = src[s0 + i*step] for i in [0, n)."""
    if n <= 0:
        return
    o = _U(d0)
    s = _U(s0)
    st = _U(step)
    for i in range(_U(n)):
        dst[o + i] = src[s + i * st]


@_inline
def _axpy(y, yb, x, xb, wv, n):
    """y[yb + i] += wv * x[xb + i] for i in [0, n)."""
    if n <= 0:
        return
    o = _U(yb)
    s = _U(xb)
    for i in range(_U(n)):
        y[o + i] += wv * x[s + i]


@_inline
def _pass4(y, yb, x, tb, tw, j, wp, n):
    """Four taps, one stream: y[yb + i] += sum_k wp[tw[k] + j] * x[tb[k] + i]."""
    if n <= 0:
        return
    w0 = wp[tw[0] + j]
    w1 = wp[tw[1] + j]
    w2 = wp[tw[2] + j]
    w3 = wp[tw[3] + j]
    o = _U(yb)
    c0 = _U(tb[0])
    c1 = _U(tb[1])
    c2 = _U(tb[2])
    c3 = _U(tb[3])
    for i in range(_U(n)):
        y[o + i] += w0 * x[c0 + i] + w1 * x[c1 + i] + w2 * x[c2 + i] + w3 * x[c3 + i]


@_inline
def _pass8(y, yb, x, tb, tw, j, wp, n):
    """Eight taps, one stream: y[yb + i] += sum_k wp[tw[k] + j] * x[tb[k] + i]."""
    if n <= 0:
        return
    w0 = wp[tw[0] + j]
    w1 = wp[tw[1] + j]
    w2 = wp[tw[2] + j]
    w3 = wp[tw[3] + j]
    w4 = wp[tw[4] + j]
    w5 = wp[tw[5] + j]
    w6 = wp[tw[6] + j]
    w7 = wp[tw[7] + j]
    o = _U(yb)
    c0 = _U(tb[0])
    c1 = _U(tb[1])
    c2 = _U(tb[2])
    c3 = _U(tb[3])
    c4 = _U(tb[4])
    c5 = _U(tb[5])
    c6 = _U(tb[6])
    c7 = _U(tb[7])
    for i in range(_U(n)):
        y[o + i] += (w0 * x[c0 + i] + w1 * x[c1 + i] + w2 * x[c2 + i] + w3 * x[c3 + i]) + (
            w4 * x[c4 + i] + w5 * x[c5 + i] + w6 * x[c6 + i] + w7 * x[c7 + i]
        )


@_inline
def _apply_taps(y, yb, x, tb, tw, nt, j, wp, n):
    """y[yb + i] += sum over the first ``nt`` taps of wp[tw[k] + j] * x[tb[k] + i]."""
    k = 0
    while nt - k >= 8:
        _pass8(y, yb, x, tb[k:], tw[k:], j, wp, n)
        k += 8
    while nt - k >= 4:
        _pass4(y, yb, x, tb[k:], tw[k:], j, wp, n)
        k += 4
    while k < nt:
        _axpy(y, yb, x, tb[k], wp[tw[k] + j], n)
        k += 1


def pack_weights(w: np.ndarray, groups: int, block: int = _BLOCK, name: str | None = None) -> np.ndarray:
    """(C_out, C_in/g, KD, KH, KW) -> (groups, blocks, taps, block), C-contiguous:
    the channels of a block adjacent per tap, zero-filled past the group's end
    (the direct kernel's blocks of _BLOCK, the register-blocked method's of
    OB or 4).  In a kept work buffer when ``name`` is given (see
    :func:`fastconv._config.scratch`); on the calling thread's Numba
    threads, or on the calling thread alone below _PACK_SERIAL_BELOW."""
    from .._config import scratch

    c_out = w.shape[0]
    cog = c_out // groups
    taps = int(np.prod(w.shape[1:]))
    shape = (groups, (cog + block - 1) // block, taps, block)
    out = np.empty(shape, w.dtype) if name is None else scratch(name, shape, w.dtype)
    every = np.arange(taps, dtype=np.int64)
    w4 = np.ascontiguousarray(w).reshape(groups, cog, 1, taps).transpose(0, 2, 1, 3)
    pack_gather(w4, np.zeros_like(every), every, out)
    return out


def pack_gather(w4, ci, k, out):
    """out[g, blk, r, o] = w4[g, ci[r], blk*B + o, k[r]], zero past w4's
    channels: a block of B output channels adjacent per tap ``r``.  (w4 is
    any view with non-negative strides and axes (group, input channel,
    output channel, tap).  Measured: numpy's transposed copy with its
    innermost axis of 8 took 3.5 ms for a 512x512x3x3 weight, a third of the
    layer's time; a Numba gather through the 4-axis view 1.7 ms; through
    one flat offset per tap and a fixed-length inner loop 1.05 ms.)"""
    if min(w4.strides) < 0:
        raise ValueError("pack_gather: the weight view needs non-negative strides")
    item = w4.itemsize
    sg, sci, sco, sk = (st // item for st in w4.strides)
    span = 1 + sum((n - 1) * st for n, st in zip(w4.shape, (sg, sci, sco, sk)) if n > 0)
    flat = np.lib.stride_tricks.as_strided(w4, shape=(span if w4.size else 0,), strides=(item,))
    off = ci * sci + k * sk
    pack = _pack_flat_serial if out.nbytes < serial_below(_PACK_SERIAL_BELOW) else _pack_flat
    pack(flat, sg, sco, w4.shape[2], off, out)


@numba_jit(parallel=True)
def _pack_flat(wf, sg, so, cog, off, out):
    """out[g, blk, r, o] = wf[g*sg + (blk*B + o)*so + off[r]], zero past the
    group's ``cog`` channels (the inner loop of fixed length for B = 8 and 4:
    unrolled, 1.5x faster than with B a runtime bound)."""
    G, nb, R, B = out.shape
    of = out.reshape(-1)
    for gb in prange(G * nb):
        g = gb // nb
        blk = gb - g * nb
        base = g * sg + blk * B * so
        full = min(B, cog - blk * B)
        ob = gb * R * B
        if full == 8 and B == 8:
            for r in range(R):
                s = base + off[r]
                for o in range(8):
                    of[ob + r * 8 + o] = wf[s + o * so]
        elif full == 4 and B == 4:
            for r in range(R):
                s = base + off[r]
                for o in range(4):
                    of[ob + r * 4 + o] = wf[s + o * so]
        else:
            for r in range(R):
                s = base + off[r]
                for o in range(B):
                    of[ob + r * B + o] = wf[s + o * so] if o < full else 0


_pack_flat_serial = serial_copy(_pack_flat, "_pack_flat_serial")


@numba_jit(parallel=True)
def conv_direct_kernel(x, w, wp, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, groups, chunk_rows, fold, nparts, part_at):
    """out[n, co] = b[co] + sum over (ci, kd, kh, kw) of w * x (cross-correlation).

    x (N, C_in, D, H, W), w (C_out, C_in/groups, KD, KH, KW), wp =
    pack_weights(w) flattened, b (C_out,), out (N, C_out, OD, OH, OW), all C-contiguous;
    zero padding (pd, ph, pw) on the low side of each axis (the high side
    follows from the output size).  An item covers ``chunk_rows`` output rows
    of one image, or (``fold`` > 1, only when chunk_rows >= OH) whole planes of
    ``fold`` images stacked in one stream.  ``nparts`` contiguous ranges of
    items run in parallel, each with its own scratch: :func:`_part`, called
    at address ``part_at`` (:mod:`._link`: compiled once, not again in each
    of the parallel kernel's modules -- 6.8 of its 16 s first compilation
    was LLVM doing that, 2-core Zen 4).
    """
    for part in prange(nparts):
        _call_part(part_at, (x, w, wp, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, groups, chunk_rows, fold, nparts,
                             part))  # fmt: skip


#: x, w, packed w, b, out, strides, dilations, paddings, groups, chunk_rows, fold, nparts, part
PART = Linkage("direct part", lambda dt: (types.none, (*arrays(dt, 5, 5, 1), bias(dt), *arrays(dt, 5), *ints(14))))
_call_part = PART.call


@unit
def _part(x, w, wp, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, groups, chunk_rows, fold, nparts, part):
    """Items ``part``/``nparts`` of :func:`conv_direct_kernel`, with their scratch."""
    C_out, Cig, _, KH, KW = w.shape
    OD = out.shape[2]
    OH = out.shape[3]
    OW = out.shape[4]
    # the tile: per input channel, sh*sw phase blocks of fold*mmax rows x wq
    # columns; block (p, q) holds padded rows p, p+sh, ... and columns q, q+sw, ...
    wq = ((OW - 1) * sw + (KW - 1) * dw + 1 + sw - 1) // sw
    Cog = C_out // groups
    nblk = (Cog + _BLOCK - 1) // _BLOCK
    nchunk = (OH + chunk_rows - 1) // chunk_rows
    nfold = (x.shape[0] + fold - 1) // fold
    items = nfold * groups * nblk * OD * nchunk
    per_part = (items + nparts - 1) // nparts
    rmax = min(OH, chunk_rows)
    mmax = ((rmax - 1) * sh + (KH - 1) * dh + 1 + sh - 1) // sh
    xf = x.reshape(-1)
    of = out.reshape(-1)
    acc = np.empty(_BLOCK * fold * mmax * wq, x.dtype)
    tile = np.empty(min(4, Cig) * sh * sw * fold * mmax * wq, x.dtype)
    tb = np.empty(4 * KH * KW, np.int64)
    tw = np.empty(4 * KH * KW, np.int64)
    for item in range(part * per_part, min(items, (part + 1) * per_part)):
        chunk = item % nchunk
        t = item // nchunk
        od = t % OD
        t = t // OD
        blk = t % nblk
        t = t // nblk
        g = t % groups
        n0 = (t // groups) * fold
        nimg = min(fold, x.shape[0] - n0)
        _item(x.shape, w.shape, out.shape, xf, wp, b, of, acc, tile, tb, tw,
              n0, nimg, g, blk, nblk, od, chunk * chunk_rows, chunk_rows, wq, mmax,
              groups, (sd, sh, sw, dd, dh, dw, pd, ph, pw))  # fmt: skip


@_inline
def _item(xshape, wshape, oshape, xf, wp, b, of, acc, tile, tb, tw, n0, nimg,
          g, blk, nblk, od, oh0, chunk_rows, wq, mmax, groups, geometry):  # fmt: skip
    """One work item: block ``blk`` of group ``g``'s output channels, depth od,
    output rows oh0 .. oh0 + chunk_rows - 1 of images n0 .. n0 + nimg - 1.
    (Python passes more than 30 arguments as ``*args``, which numba cannot
    inline: the strides, dilations and paddings travel as one tuple.)"""
    sd, sh, sw, dd, dh, dw, pd, ph, pw = geometry
    C_in, D, H, W = xshape[1], xshape[2], xshape[3], xshape[4]
    C_out, Cig, KD, KH, KW = wshape
    OD, OH, OW = oshape[2], oshape[3], oshape[4]
    Cog = C_out // groups
    co0 = g * Cog + blk * _BLOCK
    nco = min(_BLOCK, (g + 1) * Cog - co0)
    R = min(OH, oh0 + chunk_rows) - oh0
    wblk = (g * nblk + blk) * (Cig * KD * KH * KW) * _BLOCK
    img = mmax * wq  # one image's rows in the accumulator and in a phase block
    L = nimg * img  # accumulator per channel: pitch wq; rows >= R of an image and columns >= OW are junk
    Ls = ((nimg - 1) * mmax + R - 1) * wq + OW  # stream length
    rin = (R - 1) * sh + (KH - 1) * dh + 1  # padded input rows an image's chunk reads
    blk_sz = nimg * img
    ctile = sh * sw * blk_sz
    plane_in = H * W
    i0 = oh0 * sh - ph  # input row of padded row 0
    for j in range(nco):
        _fill(acc, j * L, L, b[co0 + j])
    for ci0 in range(0, Cig, 4):
        nci = min(4, Cig - ci0)
        for kd in range(KD):
            idd = od * sd + kd * dd - pd
            if idd < 0 or idd >= D:
                continue
            # stage the phase blocks the taps read, zero padding included
            for c in range(nci):
                for p in range(sh):
                    if not _phase_used(p, sh, KH, dh):
                        continue
                    for q in range(sw):
                        if not _phase_used(q, sw, KW, dw):
                            continue
                        # columns m of the block hold input column q + m*sw - pw
                        mlo = min(wq, max(0, (pw - q + sw - 1) // sw))
                        mhi = max(mlo, min(wq, (W + pw - q + sw - 1) // sw))
                        for im in range(nimg):
                            xc = (((n0 + im) * C_in + g * Cig + ci0 + c) * D + idd) * plane_in
                            t0 = c * ctile + (p * sw + q) * blk_sz + im * img
                            for m in range(mmax):
                                tr = t0 + m * wq
                                pr = p + m * sh
                                ih = i0 + pr
                                if pr >= rin or ih < 0 or ih >= H:
                                    _fill(tile, tr, wq, 0)
                                else:
                                    _fill(tile, tr, mlo, 0)
                                    src = xc + ih * W + q + mlo * sw - pw
                                    if sw == 1:
                                        _copy(tile, tr + mlo, xf, src, mhi - mlo)
                                    else:
                                        _gather(tile, tr + mlo, xf, src, mhi - mlo, sw)
                                    _fill(tile, tr + mhi, wq - mhi, 0)
            # every (c, kh, kw) tap is one stream over the same range
            nt = 0
            for kh in range(KH):
                for kw in range(KW):
                    for c in range(nci):
                        a = kh * dh
                        e = kw * dw
                        tb[nt] = c * ctile + ((a % sh) * sw + e % sw) * blk_sz + (a // sh) * wq + e // sw
                        tw[nt] = wblk + ((((ci0 + c) * KD + kd) * KH + kh) * KW + kw) * _BLOCK
                        nt += 1
            for j in range(nco):
                _apply_taps(acc, j * L, tile, tb, tw, nt, j, wp, Ls)
    for im in range(nimg):
        for j in range(nco):
            ob = (((n0 + im) * C_out + co0 + j) * OD + od) * OH * OW
            for r in range(R):
                _copy(of, ob + (oh0 + r) * OW, acc, j * L + im * img + r * wq, OW)


@_inline
def _phase_used(p, s, K, d):
    """Does any tap k < K read phase p, i.e. (k*d) % s == p?"""
    for k in range(K):
        if (k * d) % s == p:
            return True
    return False


def conv_direct(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Run the direct method for ``spec`` into the C-contiguous 5-D ``out``."""
    prepare_direct(spec, num_threads)(ops, out)


def prepare_direct(spec, num_threads: int):
    """The direct runner for ``spec`` with its work split fixed (a repeated
    call's: see ``Method.prepare``)."""
    OD, OH, OW = spec.lifted("out_spatial")
    empty = spec.n * spec.c_out * OD * OH * OW == 0
    sd, sh, sw = spec.lifted("stride")
    dd, dh, dw = spec.lifted("dilation")
    pd, ph, pw = spec.kernel_pad_lo
    cog = spec.c_out // spec.groups
    items = spec.n * spec.groups * ((cog + _BLOCK - 1) // _BLOCK)
    wq = -(-((OW - 1) * sw + (spec.kernel[-1] - 1) * dw + 1) // sw)
    chunk_rows = max(1, min(OH, _CHUNK_ELEMS // wq))
    # enough items for every thread to stay busy
    while chunk_rows > 1 and items * OD * -(-OH // chunk_rows) < 4 * num_threads:
        chunk_rows = (chunk_rows + 1) // 2
    fold = 1
    if chunk_rows == OH and not empty:  # small planes: stack several images in one stream
        mmax = -(-((OH - 1) * sh + (spec.lifted("kernel")[1] - 1) * dh + 1) // sh)
        fold = max(1, min(spec.n, _CHUNK_ELEMS // (mmax * wq)))
        while fold > 1 and -(-spec.n // fold) * (items // spec.n) * OD < 4 * num_threads:
            fold = (fold + 1) // 2
    nitems = 0 if empty else -(-spec.n // fold) * (items // spec.n) * OD * -(-OH // chunk_rows)
    fixed = (sd, sh, sw, dd, dh, dw, pd, ph, pw, spec.groups, chunk_rows, fold, min(nitems, 8 * num_threads))
    zeros = np.zeros(spec.c_out, dtype=spec.dtype)  # (no bias: shared by the calls, never written)
    groups = spec.groups
    # a small weight keeps its packing while its values stay (packing costs
    # ~25 us of Python, more than a small layer's arithmetic); a large one is
    # packed per call into the kept work buffer
    packed = ByValue(lambda w: pack_weights(w, groups).reshape(-1))

    def run(ops, out: np.ndarray) -> None:
        if empty:
            return
        b = ops.b if ops.b is not None else zeros
        with numba_threads(num_threads):
            if ops.w.nbytes <= packed.limit:
                wp = packed(ops.w)
            else:
                wp = pack_weights(ops.w, groups, name="direct_w").reshape(-1)
            conv_direct_kernel(ops.x, ops.w, wp, b, out, *fixed, PART.address(_part, ops.x.dtype))

    return run
