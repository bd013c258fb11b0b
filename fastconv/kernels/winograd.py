"""Winograd convolution F(m, 3) over the last one or two spatial axes.

Each output tile of mh x mw comes from an (mh+2) x (mw+2) input tile (mh = 1,
no transform, for a kernel one row high): input tiles and kernels are
transformed (V = B^T d B, U = G g G^T), multiplied as a2 = (mh+2)(mw+2)
independent channel GEMMs (BLAS), and transformed back (Y = A^T M A).
Multiplications per output drop from 9 to a2 / (mh mw) per channel pair:
4 for F(2x2), 2.25 for F(4x4); 3 -> 1.5 for 1-D F(4).

conv3d with a (kd, 3, 3) kernel stacks the depth taps into the GEMMs' inner
dimension: the rows of V are (input channel, depth tap) pairs, each the 2-D
transform of the input slice that tap reads, so any depth stride, dilation
and padding works and the GEMMs get kd times deeper.

Layout and threads: the tiles are cut into blocks of whole tile rows (or
pieces of one long row), ~``_TARGET_TILES`` tiles each and within
``workspace_limit``, and each work item (block, block of output channels)
runs on one thread from start to end — gather + input transform into the
thread's own V, the a2 GEMMs with single-threaded BLAS, the output transform
straight into ``out`` — so its buffers stay near that core and no thread
waits for another.  The transforms are the unrolled F(2)/F(4) formulas:
along W per tile as each input row is staged, along H as vector loops over
the block's tiles.  Output channels are split into blocks only when there
are too few tile blocks to feed every thread.  Work buffers are kept between
calls (``_config.scratch``).

Accuracy: the transforms amplify round-off, more for larger tiles; float32
error relative to the output scale is measured in ``tests/test_winograd.py``
(on unit-variance data: F(2x2) 2e-7 / 8e-7 / 1.5e-6 and F(4x4) 3e-6 / 7e-6 /
2.5e-5 for 16 / 256 / 1024 input channels; direct and im2col 3e-7..3e-6), inside
the float32 test tolerance of 2e-4; F(4x4) is not offered above 4096 float32
input channels.  A NaN/Inf in a tile reaches every output of the tile, so
these methods are ``finite_only``: the dispatcher runs another method for
non-finite input.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._config import blas_threads, numba_jit, numba_threads, scratch, serial_copy
from .winograd_plan import depth_ring, layout, phase_spec

_BT = {
    1: np.array([[1.0]]),
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
    4: np.array(
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        np.float64,
    ),
}
_G = {
    1: np.array([[1.0]]),
    2: np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
    4: np.array(
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        np.float64,
    ),
}
_AT = {
    1: np.array([[1.0]]),
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
    4: np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64),
}


def transform_weights(w: np.ndarray, mh: int, mw: int, o_block: int) -> np.ndarray:
    """(O, C, KD, KH, KW) -> U (O blocks, a2, o_block, C*KD), U = G g G^T.

    U[:, k] is a sum of the taps' weight planes with the coefficients of
    row k of kron(G_h, G_w) (``_transform_weights``); rows past O are zero.
    The inner index is c * KD + kd, as the V rows.  U lives in a kept scratch
    buffer (a 512x512 layer's F(4x4) U is 38 MB)."""
    o, c, kd = w.shape[:3]
    gk = np.kron(_G[mh], _G[mw]).astype(w.dtype)  # (a2, KH*KW)
    a2 = gk.shape[0]
    blocks = -(-o // o_block)
    u = scratch("winograd_u", (blocks, a2, o_block, c * kd), w.dtype)
    if blocks * o_block > o:
        u[-1, :, o - (blocks - 1) * o_block :] = 0
    transform = _transform_weights_serial if u.nbytes < _SERIAL_U_BELOW else _transform_weights
    transform(w.reshape(o, c * kd, -1), gk, u)
    return u


@numba_jit(parallel=True)
def _transform_weights(w, gk, u):
    """Per output channel: its (K, taps) weights turned into (taps, K) rows,
    then each U row a vector sum of them (zero coefficients skipped),
    accumulated in a local row and stored once."""
    ob = u.shape[2]
    K, R = w.shape[1], w.shape[2]
    for o in prange(w.shape[0]):
        bi = o // ob
        oo = o - bi * ob
        acc = np.empty(K, u.dtype)
        taps = np.empty((R, K), u.dtype)
        for c in range(K):
            for r in range(R):
                taps[r, c] = w[o, c, r]
        for k in range(gk.shape[0]):
            acc[:] = 0
            for r in range(R):
                cf = gk[k, r]
                if cf != 0:
                    for c in range(K):
                        acc[c] += cf * taps[r, c]
            for c in range(K):
                u[bi, k, oo, c] = acc[c]


_transform_weights_serial = serial_copy(_transform_weights, "_transform_weights_serial")
# a U smaller than this is computed on the calling thread: a parallel launch
# under Numba's workqueue layer costs 0.14-0.2 ms (measured, 2 threads:
# 144 KB 0.17 -> 0.05 ms, 576 KB 0.24 -> 0.11, 2.3 MB 0.34 -> 0.33, 4 MB 0.50 -> 0.61)
_SERIAL_U_BELOW = 2 << 20


@numba_jit()
def _bt4(d0, d1, d2, d3, d4, d5, c2, c4, c5):
    """B^T d for F(4, 3); the constants come in the data's dtype (a Python
    int would promote float32 arithmetic to float64)."""
    return (
        c4 * d0 - c5 * d2 + d4,
        d3 + d4 - c4 * (d1 + d2),
        c4 * (d1 - d2) - d3 + d4,
        c2 * (d3 - d1) - d2 + d4,
        c2 * (d1 - d3) - d2 + d4,
        c4 * d1 - c5 * d3 + d5,
    )


@numba_jit()
def _bt2(d0, d1, d2, d3):
    """B^T d for F(2, 3)."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@numba_jit()
def _at4(m0, m1, m2, m3, m4, m5, c2, c4, c8):
    """A^T m for F(4, 3) (constants in the data's dtype)."""
    a, b = m1 + m2, m1 - m2
    c, d = m3 + m4, m3 - m4
    return m0 + a + c, b + c2 * d, a + c4 * c, b + c8 * d + m5


@numba_jit()
def _at2(m0, m1, m2, m3):
    """A^T m for F(2, 3)."""
    return m0 + m1 + m2, m1 - m2 - m3


@numba_jit()
def _tile_row(g, tiles_h, od_n):
    """Global tile row g -> (image, output depth, tile row)."""
    nd_ = g // tiles_h
    return nd_ // od_n, nd_ % od_n, g % tiles_h


@numba_jit()
def _row_transform(rowp, rw, k, t0, ntw, mw, cf):
    """B^T along W for the ``ntw`` tiles of one staged (zero-padded) input row.
    (Splitting the row by phase first, for unit-stride reads, was faster
    alone but not inside the kernel: measured, and left out.)"""
    c2, c4, c5 = cf[0], cf[1], cf[2]
    if mw == 4:
        for tw in range(ntw):
            b = 4 * tw
            r = _bt4(rowp[b], rowp[b + 1], rowp[b + 2], rowp[b + 3], rowp[b + 4], rowp[b + 5], c2, c4, c5)
            for j in range(6):
                rw[k, j, t0 + tw] = r[j]
    else:
        for tw in range(ntw):
            b = 2 * tw
            r2 = _bt2(rowp[b], rowp[b + 1], rowp[b + 2], rowp[b + 3])
            for j in range(4):
                rw[k, j, t0 + tw] = r2[j]


@numba_jit()
def _input_tiles(x, v, rw, rowp, cf, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth, kofs,
                 kcount):  # fmt: skip
    """Gather and transform the tiles tw0 .. tw0+ntw-1 of tile rows
    r0 .. r0+rows-1 into rows kofs .. kofs+kcount-1 of ``v`` (a2, K, T), one
    per (channel, depth tap) from c0:
    each input row's span is staged zero-padded in ``rowp`` and transformed
    along W, then B^T along H runs as vector loops over the T tiles."""
    ah, aw = (mh + 2 if mh > 1 else 1), mw + 2
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    T = rows * ntw
    span = ntw * mw + 2
    base = tw0 * mw - pw  # input column of rowp[0]
    q_lo = min(span, max(0, -base))
    q_hi = max(q_lo, min(span, W - base))
    for q in range(q_lo):
        rowp[q] = 0
    for q in range(q_hi, span):
        rowp[q] = 0
    c2, c4, c5 = cf[0], cf[1], cf[2]
    for kk in range(kcount):
        c = c0 + kk // kdepth
        kd = kk - (kk // kdepth) * kdepth
        for rr in range(rows):
            n, od, th = _tile_row(r0 + rr, tiles_h, od_n)
            t0 = rr * ntw
            idp = od * sd + kd * dd - pd
            for k in range(ah):
                ih = th * mh + k - ph
                if idp < 0 or idp >= D or ih < 0 or ih >= H:
                    for j in range(aw):
                        for tw in range(ntw):
                            rw[k, j, t0 + tw] = 0
                    continue
                for q in range(q_lo, q_hi):  # (no view of x here: its reference count is shared by the threads)
                    rowp[q] = x[n, c, idp, ih, base + q]
                _row_transform(rowp, rw, k, t0, ntw, mw, cf)
        if ah == 1:
            for j in range(aw):
                for t in range(T):
                    v[j, kofs + kk, t] = rw[0, j, t]
        elif mh == 4:
            for j in range(6):
                for t in range(T):
                    r = _bt4(rw[0, j, t], rw[1, j, t], rw[2, j, t], rw[3, j, t], rw[4, j, t], rw[5, j, t], c2, c4, c5)
                    for i in range(6):
                        v[i * aw + j, kofs + kk, t] = r[i]
        else:
            for j in range(aw):
                for t in range(T):
                    r2 = _bt2(rw[0, j, t], rw[1, j, t], rw[2, j, t], rw[3, j, t])
                    for i in range(4):
                        v[i * aw + j, kofs + kk, t] = r2[i]


@numba_jit()
def _output_tiles(mm, out, bias, tb, cf, mh, mw, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n):
    """Transform M (a2, o_block, T) back (A^T along H as vector loops over the
    tiles, then along W per tile) and write the clipped tiles plus bias."""
    ah, aw = (mh + 2 if mh > 1 else 1), mw + 2
    OH, OW = out.shape[3], out.shape[4]
    T = rows * ntw
    full = OW // mw  # tiles wholly inside the output row
    c2, c4, c8 = cf[0], cf[1], cf[3]
    for o in range(n_o):
        bv = bias[o0 + o]
        if ah == 1:
            for ll in range(aw):
                for t in range(T):
                    tb[0, ll, t] = mm[ll, o, t]
        elif mh == 4:
            for ll in range(6):
                for t in range(T):
                    y = _at4(mm[ll, o, t], mm[6 + ll, o, t], mm[12 + ll, o, t], mm[18 + ll, o, t], mm[24 + ll, o, t],
                             mm[30 + ll, o, t], c2, c4, c8)  # fmt: skip
                    for i in range(4):
                        tb[i, ll, t] = y[i]
        else:
            for ll in range(aw):
                for t in range(T):
                    y2 = _at2(mm[ll, o, t], mm[aw + ll, o, t], mm[2 * aw + ll, o, t], mm[3 * aw + ll, o, t])
                    for i in range(2):
                        tb[i, ll, t] = y2[i]
        for rr in range(rows):
            n, od, th = _tile_row(r0 + rr, tiles_h, od_n)
            t0 = rr * ntw - tw0
            for i in range(mh):
                oh = th * mh + i
                if oh >= OH:
                    break
                if mw == 4:
                    for tw in range(tw0, tw0 + ntw):
                        t = t0 + tw
                        y = _at4(
                            tb[i, 0, t], tb[i, 1, t], tb[i, 2, t], tb[i, 3, t], tb[i, 4, t], tb[i, 5, t], c2, c4, c8
                        )
                        if tw < full:
                            for j in range(4):
                                out[n, o0 + o, od, oh, 4 * tw + j] = y[j] + bv
                        else:
                            for j in range(OW - 4 * tw):
                                out[n, o0 + o, od, oh, 4 * tw + j] = y[j] + bv
                else:
                    for tw in range(tw0, tw0 + ntw):
                        t = t0 + tw
                        y2 = _at2(tb[i, 0, t], tb[i, 1, t], tb[i, 2, t], tb[i, 3, t])
                        if tw < full:
                            out[n, o0 + o, od, oh, 2 * tw] = y2[0] + bv
                            out[n, o0 + o, od, oh, 2 * tw + 1] = y2[1] + bv
                        else:
                            out[n, o0 + o, od, oh, 2 * tw] = y2[0] + bv


@numba_jit(parallel=True)
def _winograd(x, u, out, bias, cf, mh, mw, vbuf, mbuf, rwbuf, rowp, c0, o0, o_count,
              tiles_h, tiles_w, seg, od_n, sd, dd, pd, ph, pw, kdepth, rows_per_block, n_rows):  # fmt: skip
    """Every work item (tile block, output-channel block) on one thread, start
    to end.  A tile block is ``rows_per_block`` whole tile rows, or, for rows
    longer than ``seg`` tiles (long 1-D signals), a ``seg``-tile piece of one."""
    n_oblocks, a2, ob, K = u.shape
    nseg = (tiles_w + seg - 1) // seg
    n_blocks = (n_rows + rows_per_block - 1) // rows_per_block * nseg
    items = n_blocks * n_oblocks
    nthreads = vbuf.shape[0]
    for tid in prange(nthreads):
        for item in range(tid, items, nthreads):
            b = item // n_oblocks
            oi = item - b * n_oblocks
            rb = b // nseg
            tw0 = (b - rb * nseg) * seg
            ntw = min(seg, tiles_w - tw0)
            r0 = rb * rows_per_block
            rows = min(rows_per_block, n_rows - r0)
            T = rows * ntw
            v = vbuf[tid, : a2 * K * T].reshape((a2, K, T))
            mm = mbuf[tid, : a2 * ob * T].reshape((a2, ob, T))
            _input_tiles(x, v, rwbuf[tid], rowp[tid], cf, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd,
                         ph, pw, kdepth, 0, K)  # fmt: skip
            for k in range(a2):
                np.dot(u[oi, k], v[k], mm[k])
            n_o = min(ob, o_count - oi * ob)
            _output_tiles(mm, out, bias, rwbuf[tid], cf, mh, mw, o0 + oi * ob, n_o, rows, r0, tiles_h, tw0, ntw,
                          od_n)  # fmt: skip


@numba_jit(parallel=True)
def _winograd_depth_ring(x, u, out, bias, cf, mh, mw, slab, mbuf, rwbuf, rowp, c0, o0, o_count,
                         tiles_h, tiles_w, pd, ph, pw, kdepth, rows_per_block, n_thb):  # fmt: skip
    """conv3d, depth stride and dilation 1: each work item (image, block of
    tile rows, block of output channels) walks the output depth in order and
    keeps the 2-D transforms of the last ``kdepth`` input slices in a ring, so
    each slice is transformed once instead of once per depth tap.  Slice j
    lives at ring slots j % kdepth and j % kdepth + kdepth (written twice):
    any window of ``kdepth`` consecutive slices is then one contiguous
    (kdepth * C) x T matrix — the V of the GEMMs, rows ordered (tap, channel)
    like ``u``."""
    n_oblocks, a2, ob, K = u.shape
    C = K // kdepth
    N = x.shape[0]
    OD = out.shape[2]
    items = N * n_thb * n_oblocks
    nthreads = slab.shape[0]
    for tid in prange(nthreads):
        for item in range(tid, items, nthreads):
            oi = item % n_oblocks
            rest = item // n_oblocks
            tb = rest % n_thb
            n = rest // n_thb
            th0 = tb * rows_per_block
            rows = min(rows_per_block, tiles_h - th0)
            T = rows * tiles_w
            per_slot = C * T
            ring = slab[tid, : a2 * 2 * kdepth * per_slot].reshape((a2, 2 * kdepth * C, T))
            flat = slab[tid, : a2 * 2 * kdepth * per_slot].reshape((a2, 2 * kdepth * per_slot))
            mm = mbuf[tid, : a2 * ob * T].reshape((a2, ob, T))
            n_o = min(ob, o_count - oi * ob)
            for od in range(OD):
                j0 = od - pd  # input slice of depth tap 0
                first = j0 if od == 0 else j0 + kdepth - 1
                for j in range(first, j0 + kdepth):
                    sl = ((j % kdepth) + kdepth) % kdepth
                    r0 = (n * OD + od) * tiles_h + th0
                    # depth index od*1 + 0 - (od - j) = j: the slice itself
                    _input_tiles(x, ring, rwbuf[tid], rowp[tid], cf, mh, mw, c0, rows, r0, tiles_h, 0, tiles_w, OD, 1,
                                 0, od - j, ph, pw, 1, sl * C, C)  # fmt: skip
                    for k in range(a2):
                        for q in range(sl * per_slot, (sl + 1) * per_slot):
                            flat[k, q + kdepth * per_slot] = flat[k, q]
                s0 = ((j0 % kdepth) + kdepth) % kdepth
                for k in range(a2):
                    np.dot(u[oi, k], flat[k, s0 * per_slot : (s0 + kdepth) * per_slot].reshape((K, T)), mm[k])
                _output_tiles(mm, out, bias, rwbuf[tid], cf, mh, mw, o0 + oi * ob, n_o, rows,
                              (n * OD + od) * tiles_h + th0, tiles_h, 0, tiles_w, OD)  # fmt: skip


def conv_winograd(spec, ops, out: np.ndarray, num_threads: int, *, m: int) -> None:
    """Run Winograd F(m, 3) for ``spec`` into the C-contiguous 5-D ``out``."""
    from .._config import get_config

    if out.size == 0:
        return
    if phase_spec(spec) is not spec:  # dilated 3x3 conv2d
        _by_phases(spec, ops, out, num_threads, m)
        return
    G = spec.groups
    cig, cog = spec.c_in // G, spec.c_out // G
    if cig == 0:  # no input channels: every output is its bias
        out[...] = 0 if ops.b is None else ops.b.reshape(1, -1, 1, 1, 1)
        return
    limit = get_config().workspace_limit
    ring = depth_ring(spec, m, limit, num_threads)
    lay = layout(spec, m, limit, num_threads)
    dt = spec.dtype
    mh, mw, ah, aw, a2 = lay.mh, lay.mw, lay.ah, lay.aw, lay.a2
    bias = ops.b if ops.b is not None else np.zeros(spec.c_out, dt)
    K = cig * lay.kdepth
    nt = lay.threads
    if ring is not None:
        T = ring.rows_per_block * lay.tiles_w
        o_block = ring.o_block
        slab = scratch("winograd_v", (nt, a2 * 2 * K * T), dt)
    else:
        T = lay.rows_per_block * lay.seg
        o_block = lay.o_block
        vbuf = scratch("winograd_v", (nt, a2 * K * T), dt)
    mbuf = scratch("winograd_m", (nt, a2 * o_block * T), dt)
    rwbuf = scratch("winograd_rw", (nt, ah, aw, T), dt)
    # each thread's staging row on cache lines of its own (a line two
    # threads write to makes both crawl)
    rowp = scratch("winograd_row", (nt, -(-(lay.seg * mw + 2) // 16) * 16 + 16), dt)
    sd, dd = spec.lifted("stride")[0], spec.lifted("dilation")[0]
    pd, ph, pw = spec.kernel_pad_lo
    cf = np.array([2, 4, 5, 8], dt)
    # BLAS single-threaded for the whole call (the GEMMs run on the kernel's
    # threads): a BLAS pool woken anywhere in it keeps spinning (~0.1 s) and
    # takes the cores from those threads (measured: two threads no faster than one)
    with blas_threads(1), numba_threads(num_threads):
        for g in range(G):
            w = ops.w[g * cog : (g + 1) * cog]
            if ring is not None:
                u = transform_weights(np.ascontiguousarray(w.transpose(0, 2, 1, 3, 4)), mh, mw, o_block)
                _winograd_depth_ring(ops.x, u, out, bias, cf, mh, mw, slab, mbuf, rwbuf, rowp, g * cig, g * cog, cog,
                                     lay.tiles_h, lay.tiles_w, pd, ph, pw, lay.kdepth, ring.rows_per_block,
                                     ring.n_blocks)  # fmt: skip
            else:
                u = transform_weights(w, mh, mw, o_block)
                _winograd(ops.x, u, out, bias, cf, mh, mw, vbuf, mbuf, rwbuf, rowp, g * cig, g * cog, cog,
                          lay.tiles_h, lay.tiles_w, lay.seg, out.shape[2], sd, dd, pd, ph, pw, lay.kdepth,
                          lay.rows_per_block, lay.n_rows)  # fmt: skip


def _by_phases(spec, ops, out: np.ndarray, num_threads: int, m: int) -> None:
    """Dilated 3x3 conv2d (``winograd_plan.phase_spec``): the padded input's
    dh*dw phases stacked as a batch, one undilated Winograd convolution, the
    output phases interleaved back."""
    from .._spec import ConvOperands

    sub = phase_spec(spec)
    dh, dw = spec.dilation
    n, c, o = spec.n, spec.c_in, spec.c_out
    oh, ow = spec.out_spatial
    (hq, wq), (qh, qw) = sub.in_spatial, sub.out_spatial
    ph, pw = spec.kernel_pad_lo[1:]
    x = ops.x[:, :, 0]
    h1, w1 = min(x.shape[2], hq * dh - ph), min(x.shape[3], wq * dw - pw)
    xpad = np.zeros((n, c, hq * dh, wq * dw), spec.dtype)
    xpad[:, :, ph : ph + h1, pw : pw + w1] = x[:, :, :h1, :w1]
    phases = xpad.reshape(n, c, hq, dh, wq, dw).transpose(0, 3, 5, 1, 2, 4)
    xs = np.ascontiguousarray(phases).reshape(n * dh * dw, c, 1, hq, wq)
    y = np.empty((n * dh * dw, o, 1, qh, qw), spec.dtype)
    conv_winograd(sub, ConvOperands(x=xs, w=ops.w, b=ops.b), y, num_threads, m=m)
    y = y.reshape(n, dh, dw, o, qh, qw).transpose(0, 3, 4, 1, 5, 2).reshape(n, o, qh * dh, qw * dw)
    out[:, :, 0] = y[:, :, :oh, :ow]


def conv_winograd_f2(spec, ops, out, num_threads):
    conv_winograd(spec, ops, out, num_threads, m=2)


def conv_winograd_f4(spec, ops, out, num_threads):
    conv_winograd(spec, ops, out, num_threads, m=4)
