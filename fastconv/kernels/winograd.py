"""Winograd convolution F(m, 3) over the last one or two spatial axes.

Each output tile of mh x mw comes from an (mh+2) x (mw+2) input tile (mh = 1,
no transform, for a kernel one row high): input tiles and kernels are
transformed (V = B^T d B, U = G g G^T), multiplied as a2 = (mh+2)(mw+2)
independent channel GEMMs, and transformed back (Y = A^T M A).
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
thread's own V, the a2 GEMMs, the output transform straight into ``out`` —
so its buffers stay near that core and no thread waits for another.  The
transforms run on whole vectors of tiles (:mod:`.winograd_rows`): along W
on each staged input row (the tiles' columns split by shuffles), along H
on rows of tiles.  The GEMMs are the register-blocked micro-kernel of the
direct method (:mod:`.microkernel`; U packed in blocks of OB output
channels, the block's tiles rounded up to whole runs of it): measured per
thread, 64 channels by 140 tiles 112 -> 137-144 GFLOP/s and by 128 tiles
122 -> 134-138 against single-threaded OpenBLAS (runs of one vector, as
for 98 tiles, are load-bound: ~120), and no BLAS pool has to be kept from
oversubscribing the cores.  Output channels are split into blocks only when
there are too few tile blocks to feed every thread.  Work buffers are kept
between calls (``_config.scratch``).

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

from .._config import numba_jit, numba_threads, scratch, serial_below, serial_copy
from . import NonFiniteInput, blocked
from .blocked import _mac, _store_row
from .direct import _copy, _fill, _inline
from .microkernel import OB, lanes
from .winograd_plan import depth_ring, layout, phase_spec, row_length, skew, tile_stride
from .winograd_rows import (
    AT,
    BT,
    cols_copy,
    cols_in2,
    cols_in4,
    cols_out2,
    cols_out4,
    rows_in2,
    rows_in4,
    rows_out2,
    rows_out4,
)

_BT = {1: np.array([[1.0]]), **{m: np.array(BT[m], np.float64) for m in (2, 4)}}
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
_AT = {1: np.array([[1.0]]), **{m: np.array(AT[m], np.float64) for m in (2, 4)}}


def transform_weights(w: np.ndarray, mh: int, mw: int, o_block: int) -> np.ndarray:
    """(O, C, KD, KH, KW) -> U (O blocks, a2, o_block / OB, C*KD, OB), U = G g G^T,
    packed for the micro-kernel: for transform point k, each block of OB
    output channels is a (C*KD, OB) matrix (``o_block`` is a multiple of OB).

    U[:, k] is a sum of the taps' weight planes with the coefficients of
    row k of kron(G_h, G_w) (``_transform_weights``); rows past O are zero.
    The inner index is c * KD + kd, as the V rows.  U lives in a kept scratch
    buffer (a 512x512 layer's F(4x4) U is 38 MB)."""
    if o_block % OB:
        raise ValueError(f"o_block must be a multiple of {OB}, got {o_block}")
    o, c, kd = w.shape[:3]
    gk = np.kron(_G[mh], _G[mw]).astype(w.dtype)  # (a2, KH*KW)
    a2 = gk.shape[0]
    blocks = -(-o // o_block)
    u = scratch("winograd_u", (blocks, a2, o_block // OB, c * kd, OB), w.dtype)
    if blocks * o_block > o:
        u[-1] = 0
    transform = _transform_weights_serial if u.nbytes < serial_below(_SERIAL_U_BELOW) else _transform_weights
    transform(w.reshape(o, c * kd, -1), gk, u)
    return u


def _digest() -> int:
    from . import direct, winograd_rows

    return blocked.source_digest(direct, blocked, winograd_rows)


_SOURCES = _digest()


@numba_jit()
def _compiled_against():
    """The digest of the sources this module's cached kernels were compiled
    with (the micro-kernel and blocked's helpers are inlined into them)."""
    return _SOURCES


def _refresh_stale_cache() -> None:
    blocked.refresh_stale_cache(_compiled_against, _SOURCES, (_winograd, _winograd_depth_ring))


def unpacked(u: np.ndarray) -> np.ndarray:
    """U as (O blocks, a2, o_block, C*KD): output channel by input row."""
    b, a2, nb, k, ob = u.shape
    return u.transpose(0, 1, 2, 4, 3).reshape(b, a2, nb * ob, k)


@numba_jit(parallel=True)
def _transform_weights(w, gk, u):
    """Per output channel: its (K, taps) weights turned into (taps, K) rows,
    then each U row a vector sum of them (zero coefficients skipped),
    accumulated in a local row and stored once."""
    ob = u.shape[4]
    ob_all = u.shape[2] * ob
    K, R = w.shape[1], w.shape[2]
    for o in prange(w.shape[0]):
        bi = o // ob_all
        oo = o - bi * ob_all
        b8 = oo // ob
        o8 = oo - b8 * ob
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
                u[bi, k, b8, c, o8] = acc[c]


_transform_weights_serial = serial_copy(_transform_weights, "_transform_weights_serial")
# a U smaller than this is computed on the calling thread: a parallel launch
# under Numba's workqueue layer costs 0.14-0.2 ms (measured, 2 threads:
# 144 KB 0.17 -> 0.05 ms, 576 KB 0.24 -> 0.11, 2.3 MB 0.34 -> 0.33, 4 MB 0.50 -> 0.61);
# an eighth of it under omp/tbb (see serial_below)
_SERIAL_U_BELOW = 2 << 20


@numba_jit()
def _tile_row(g, tiles_h, od_n):
    """Global tile row g -> (image, output depth, tile row)."""
    nd_ = g // tiles_h
    return nd_ // od_n, nd_ % od_n, g % tiles_h


@_inline
def _input_tiles(x, vf, vk, ts, rw, rowp, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth,
                 kofs, kcount, vl):  # fmt: skip
    """Gather and transform the tiles tw0 .. tw0+ntw-1 of tile rows
    r0 .. r0+rows-1 into rows kofs .. kofs+kcount-1 of V: a2 matrices ``vk``
    elements apart in ``vf``, rows ``ts`` apart, one row per (channel, depth
    tap) from c0:
    each input row's span is staged zero-padded in ``rowp`` and transformed
    along W ``vl`` tiles at a time (:mod:`.winograd_rows`: a row's last
    vector runs on into the next row's tiles, which that row rewrites, and
    past T into ``rw``'s slack), then B^T along H runs as vector loops over
    the T tiles.  Returns 0, or NaN if any input element read was NaN or
    infinite."""
    ah, aw = (mh + 2 if mh > 1 else 1), mw + 2
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    T = rows * ntw
    span = ntw * mw + 2
    nvec = (ntw + vl - 1) // vl
    tcap = rw.shape[2]
    rwf = rw.reshape(-1)
    tvec = (T + vl - 1) // vl
    base = tw0 * mw - pw  # input column of rowp[0]
    q_lo = min(span, max(0, -base))
    q_hi = max(q_lo, min(span, W - base))
    _fill(rowp, 0, q_lo, 0)
    _fill(rowp, q_hi, rowp.shape[0] - q_hi, 0)  # (the vector loads read past the span)
    xf = x.reshape(-1)  # (one view per call: its reference count is shared by the threads)
    C = x.shape[1]
    probe = x.dtype.type(0)
    # a kernel one row high has no transform along H: the row transform writes
    # V itself when the last row's whole vectors stay inside V's rows
    direct = ah == 1 and (rows - 1) * ntw + nvec * vl <= ts
    for kk in range(kcount):
        c = c0 + kk // kdepth
        kd = kk - (kk // kdepth) * kdepth
        vrow = kofs + kk
        for rr in range(rows):
            n, od, th = _tile_row(r0 + rr, tiles_h, od_n)
            t0 = rr * ntw
            idp = od * sd + kd * dd - pd
            for k in range(ah):
                ih = th * mh + k - ph
                dst, dbase, dstride = rwf, k * aw * tcap + t0, tcap
                if direct:
                    dst, dbase, dstride = vf, vrow * ts + t0, vk
                if idp < 0 or idp >= D or ih < 0 or ih >= H:
                    for j in range(aw):
                        _fill(dst, dbase + j * dstride, nvec * vl, 0)
                    continue
                _copy(rowp, q_lo, xf, (((n * C + c) * D + idp) * H + ih) * W + base + q_lo, q_hi - q_lo)
                if mw == 4:
                    probe += rows_in4(rowp, 0, nvec, dst, dbase, dstride)
                else:
                    probe += rows_in2(rowp, 0, nvec, dst, dbase, dstride)
        if direct:
            continue
        for j in range(aw):  # B^T along H, whole vectors of tiles (v's rows have room)
            if ah == 1:
                cols_copy(rwf, j * tcap, 0, tvec, vf, j * vk + vrow * ts, aw * vk)
            elif mh == 4:
                cols_in4(rwf, j * tcap, aw * tcap, tvec, vf, j * vk + vrow * ts, aw * vk)
            else:
                cols_in2(rwf, j * tcap, aw * tcap, tvec, vf, j * vk + vrow * ts, aw * vk)
    return probe


@_inline
def _output_tiles(mf, mk, ts, out, bias, tb, orow, mh, mw, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl):
    """Transform M (a2 matrices ``mk`` elements apart in ``mf``, rows ``ts``
    apart) back (A^T along H as vector loops over the
    tiles, then along W ``vl`` tiles at a time into ``orow``, the row's
    outputs side by side) and write the clipped rows plus bias."""
    ah, aw = (mh + 2 if mh > 1 else 1), mw + 2
    C_out, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    of = out.reshape(-1)
    T = rows * ntw
    nvec = (ntw + vl - 1) // vl
    tcap = tb.shape[2]
    tbf = tb.reshape(-1)
    tvec = (T + vl - 1) // vl
    count = min(OW - mw * tw0, mw * ntw)  # output columns of the tiles
    col0 = mw * tw0
    # a kernel one row high: the row transform reads M itself (as the input's writes V)
    direct = ah == 1 and (rows - 1) * ntw + nvec * vl <= ts
    for o in range(n_o):
        bv = bias[o0 + o]
        src, sbase, sstride = tbf, 0, tcap
        if direct:
            src, sbase, sstride = mf, o * ts, mk
        for ll in range(0 if direct else aw):  # A^T along H, whole vectors of tiles
            if ah == 1:
                cols_copy(mf, ll * mk + o * ts, 0, tvec, tbf, ll * tcap, aw * tcap)
            elif mh == 4:
                cols_out4(mf, ll * mk + o * ts, aw * mk, tvec, tbf, ll * tcap, aw * tcap)
            else:
                cols_out2(mf, ll * mk + o * ts, aw * mk, tvec, tbf, ll * tcap, aw * tcap)
        for rr in range(rows):
            n, od, th = _tile_row(r0 + rr, tiles_h, od_n)
            for i in range(mh):
                oh = th * mh + i
                if oh >= OH:
                    break
                if mw == 4:
                    rows_out4(src, sbase + i * aw * sstride + rr * ntw, sstride, nvec, orow, 0)
                else:
                    rows_out2(src, sbase + i * aw * sstride + rr * ntw, sstride, nvec, orow, 0)
                _store_row(of, (((n * C_out + o0 + o) * OD + od) * OH + oh) * OW + col0, orow, 0, count, bv)


@_inline
def _input_sized(x, vf, vk, ts, rw, rowp, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth,
                 kofs, kcount, vl):  # fmt: skip
    """:func:`_input_tiles` compiled for F(4x4) and F(2x2) with the tile sizes
    as constants, else with them as variables (kernels one row high); its
    NaN/Inf probe."""
    if mh == 4:
        return _input_tiles(x, vf, vk, ts, rw, rowp, 4, 4, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth,
                            kofs, kcount, vl)  # fmt: skip
    elif mh == 2:
        return _input_tiles(x, vf, vk, ts, rw, rowp, 2, 2, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth,
                            kofs, kcount, vl)  # fmt: skip
    else:
        return _input_tiles(x, vf, vk, ts, rw, rowp, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth,
                            kofs, kcount, vl)  # fmt: skip


@_inline
def _output_sized(mf, mk, ts, out, bias, tb, orow, mh, mw, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl):
    """:func:`_output_tiles` with constant tile sizes, as :func:`_input_sized`."""
    if mh == 4:
        _output_tiles(mf, mk, ts, out, bias, tb, orow, 4, 4, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl)
    elif mh == 2:
        _output_tiles(mf, mk, ts, out, bias, tb, orow, 2, 2, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl)
    else:
        _output_tiles(mf, mk, ts, out, bias, tb, orow, mh, mw, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl)


@_inline
def _gemms(a2, vflat, xoff, vbase, vk, uflat, ubase, K, mflat, mk, ts, n_b8, nv, step, T):
    """M[k] = U[k] V[k] for the ``a2`` transform points k: per block of OB
    output channels, the micro-kernel over runs of ``nv`` vectors (``step``
    tiles; columns past ``T`` up to the stride ``ts`` are computed and never
    read).  V[k] starts at ``vbase + k * vk``, M[k] at ``k * mk`` (rows ``ts``
    apart), U's blocks are (K, OB) matrices from ``ubase``.  Runs outside
    channel blocks (a run's V columns stay in L1 for every block) and the
    other order (a block's U in L1 for every run) measured the same, within
    noise, on 64 @56, 128 @28, 256 @14, 512 @7 and cifar 64 @16."""
    nrun = (T + step - 1) // step
    for k in range(a2):
        for run in range(nrun):
            for b8 in range(n_b8):
                wb = ubase + (k * n_b8 + b8) * K * OB
                mb = k * mk + b8 * OB * ts
                _mac(OB, nv, vflat, xoff, vbase + k * vk + run * step, uflat, wb, 0, K, mflat, mb + run * step, ts)


@_inline
def _zero_columns(vf, base, vk, ts, T, nmat, nrows):
    """Zero columns T .. ts-1 of the ``nrows`` rows from ``base`` of the
    ``nmat`` matrices in ``vf``: the micro-kernel reads them (their products are dropped), and
    a kept buffer may hold anything there, subnormals included (slow)."""
    for a in range(nmat):
        for kk in range(nrows):
            _fill(vf, base + a * vk + kk * ts + T, ts - T, 0)


@numba_jit(parallel=True)
def _winograd(x, uflat, u_shape, out, bias, mh, mw, vbuf, vk, mbuf, mk, rwbuf, rowp, probe, xoff, nv, step, ts, vl, c0,
              o0, o_count, tiles_h, tiles_w, seg, od_n, sd, dd, pd, ph, pw, kdepth, rows_per_block, n_rows):  # fmt: skip
    """Every work item (tile block, output-channel block) on one thread, start
    to end.  A tile block is ``rows_per_block`` whole tile rows, or, for rows
    longer than ``seg`` tiles (long 1-D signals), a ``seg``-tile piece of one.
    V and M rows are ``ts`` apart (the block's tiles rounded up to whole runs
    of the micro-kernel), their a2 matrices ``vk`` and ``mk`` apart; U is
    ``uflat`` of ``u_shape`` (see :func:`transform_weights`).  ``probe[tid]``
    turns NaN if the thread read a NaN or infinite input."""
    n_oblocks, a2, n_b8, K = u_shape[0], u_shape[1], u_shape[2], u_shape[3]
    ob = n_b8 * OB
    nseg = (tiles_w + seg - 1) // seg
    n_blocks = (n_rows + rows_per_block - 1) // rows_per_block * nseg
    items = n_blocks * n_oblocks
    nthreads = vbuf.shape[0]
    for tid in prange(nthreads):
        vflat = vbuf[tid]
        mflat = mbuf[tid]
        for item in range(tid, items, nthreads):
            b = item // n_oblocks
            oi = item - b * n_oblocks
            rb = b // nseg
            tw0 = (b - rb * nseg) * seg
            ntw = min(seg, tiles_w - tw0)
            r0 = rb * rows_per_block
            rows = min(rows_per_block, n_rows - r0)
            T = rows * ntw
            probe[tid] += _input_sized(x, vflat, vk, ts, rwbuf[tid], rowp[tid], mh, mw, c0, rows, r0, tiles_h, tw0,
                                       ntw, od_n, sd, dd, pd, ph, pw, kdepth, 0, K, vl)  # fmt: skip
            _zero_columns(vflat, 0, vk, ts, T, a2, K)
            _gemms(a2, vflat, xoff, 0, vk, uflat, oi * a2 * ob * K, K, mflat, mk, ts, n_b8, nv, step, T)
            n_o = min(ob, o_count - oi * ob)
            _output_sized(mflat, mk, ts, out, bias, rwbuf[tid], rowp[tid], mh, mw, o0 + oi * ob, n_o, rows, r0, tiles_h,
                          tw0, ntw, od_n, vl)  # fmt: skip


@numba_jit(parallel=True)
def _winograd_depth_ring(x, uflat, u_shape, out, bias, mh, mw, slab, vk, mbuf, mk, rwbuf, rowp, probe, xoff, nv, step,
                         ts, vl, c0, o0, o_count, tiles_h, tiles_w, pd, ph, pw, kdepth, rows_per_block, n_thb):  # fmt: skip
    """conv3d, depth stride and dilation 1: each work item (image, block of
    tile rows, block of output channels) walks the output depth in order and
    keeps the 2-D transforms of the last ``kdepth`` input slices in a ring, so
    each slice is transformed once instead of once per depth tap.  Slice j
    lives at ring slots j % kdepth and j % kdepth + kdepth (written twice):
    any window of ``kdepth`` consecutive slices is then one contiguous
    (kdepth * C) x ts matrix — the V of the GEMMs, rows ordered (tap, channel)
    like ``u``; the a2 rings are ``vk`` elements apart."""
    n_oblocks, a2, n_b8, K = u_shape[0], u_shape[1], u_shape[2], u_shape[3]
    ob = n_b8 * OB
    C = K // kdepth
    N = x.shape[0]
    OD = out.shape[2]
    items = N * n_thb * n_oblocks
    nthreads = slab.shape[0]
    per_slot = C * ts
    for tid in prange(nthreads):
        sflat = slab[tid]
        mflat = mbuf[tid]
        for item in range(tid, items, nthreads):
            oi = item % n_oblocks
            rest = item // n_oblocks
            tb = rest % n_thb
            n = rest // n_thb
            th0 = tb * rows_per_block
            rows = min(rows_per_block, tiles_h - th0)
            T = rows * tiles_w
            n_o = min(ob, o_count - oi * ob)
            for od in range(OD):
                j0 = od - pd  # input slice of depth tap 0
                first = j0 if od == 0 else j0 + kdepth - 1
                for j in range(first, j0 + kdepth):
                    sl = ((j % kdepth) + kdepth) % kdepth
                    r0 = (n * OD + od) * tiles_h + th0
                    # depth index od*1 + 0 - (od - j) = j: the slice itself
                    probe[tid] += _input_sized(x, sflat, vk, ts, rwbuf[tid], rowp[tid], mh, mw, c0, rows, r0, tiles_h,
                                               0, tiles_w, OD, 1, 0, od - j, ph, pw, 1, sl * C, C, vl)  # fmt: skip
                    _zero_columns(sflat, sl * per_slot, vk, ts, T, a2, C)
                    for k in range(a2):  # (the slot's second place, kdepth slots on)
                        q = k * vk + sl * per_slot
                        _copy(sflat, q + kdepth * per_slot, sflat, q, per_slot)
                s0 = ((j0 % kdepth) + kdepth) % kdepth
                _gemms(a2, sflat, xoff, s0 * per_slot, vk, uflat, oi * a2 * ob * K, K, mflat, mk, ts, n_b8, nv, step, T)
                _output_sized(mflat, mk, ts, out, bias, rwbuf[tid], rowp[tid], mh, mw, o0 + oi * ob, n_o, rows,
                              (n * OD + od) * tiles_h + th0, tiles_h, 0, tiles_w, OD, vl)  # fmt: skip


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
    else:
        T = lay.rows_per_block * lay.seg
        o_block = lay.o_block
    ts, nv, step = tile_stride(T, dt.itemsize)
    # the a2 matrices of V and M one cache line off a multiple of 4 kB apart:
    # the transforms write (and read) a row of each of them in turn, and rows
    # at 4 kB strides share L1 sets (measured, a 64-channel block of 140
    # tiles: B^T along H 116 -> 61 us, the whole input transform 260 -> 193)
    vk = (2 if ring is not None else 1) * K * ts + skew(dt.itemsize)
    mk = o_block * ts + skew(dt.itemsize)
    vbuf = scratch("winograd_v", (nt, a2 * vk), dt)
    xoff = np.arange(K, dtype=np.int64) * ts
    mbuf = scratch("winograd_m", (nt, a2 * mk), dt)
    vl = lanes(dt.itemsize)
    # the row transforms run whole vectors of tiles: room past the last tile
    rwbuf = scratch("winograd_rw", (nt, ah, aw, T + vl), dt)
    # each thread's staging row (and output row) on cache lines of its own
    # (a line two threads write to makes both crawl)
    rowp = scratch("winograd_row", (nt, row_length(lay.seg, mw, dt.itemsize)), dt)
    sd, dd = spec.lifted("stride")[0], spec.lifted("dilation")[0]
    pd, ph, pw = spec.kernel_pad_lo
    probe = np.zeros(nt, dt)  # per thread: NaN once it read a NaN or Inf
    _refresh_stale_cache()
    with numba_threads(num_threads):
        for g in range(G):
            w = ops.w[g * cog : (g + 1) * cog]
            if ring is not None:
                u = transform_weights(np.ascontiguousarray(w.transpose(0, 2, 1, 3, 4)), mh, mw, o_block)
                _winograd_depth_ring(ops.x, u.reshape(-1), np.array(u.shape), out, bias, mh, mw, vbuf, vk, mbuf, mk,
                                     rwbuf, rowp, probe, xoff, nv, step, ts, vl, g * cig, g * cog, cog, lay.tiles_h, lay.tiles_w, pd,
                                     ph, pw, lay.kdepth, ring.rows_per_block, ring.n_blocks)  # fmt: skip
            else:
                u = transform_weights(w, mh, mw, o_block)
                _winograd(ops.x, u.reshape(-1), np.array(u.shape), out, bias, mh, mw, vbuf, vk, mbuf, mk, rwbuf, rowp,
                          probe, xoff, nv, step, ts, vl, g * cig, g * cog, cog, lay.tiles_h, lay.tiles_w, lay.seg, out.shape[2], sd, dd,
                          pd, ph, pw, lay.kdepth, lay.rows_per_block, lay.n_rows)  # fmt: skip
    if np.isnan(probe).any():
        raise NonFiniteInput("the input holds NaN or Inf")


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
