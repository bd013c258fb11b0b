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
from numba import prange, types

from .._config import numba_jit, numba_threads, scratch, serial_below, serial_copy
from ..plans.winograd import (
    FUSED_OC,
    FUSED_ROWS,
    depth_ring,
    fused_piece,
    layout,
    phase_spec,
    skew,
    staging_length,
    tile_stride,
    u_pitch,
)
from . import NonFiniteInput
from ._link import I64, Linkage, arrays, bias, ints, unit
from .blocked import _mac, _store_row
from .direct import _copy, _fill, _gather, _inline
from .microkernel import OB, lanes
from .transpose_blocked import _store_strided
from .winograd_rows import (
    AT,
    BT,
    G,
    cols_copy,
    cols_in2,
    cols_in4,
    cols_out2,
    cols_out4,
    make_weight_transform,
    rows_in2,
    rows_in2_by2,
    rows_in2_by4,
    rows_in2_by8,
    rows_in4,
    rows_in4_by2,
    rows_in4_by4,
    rows_in4_by8,
    rows_out2,
    rows_out4,
)

_BT = {1: np.array([[1.0]]), **{m: np.array(BT[m], np.float64) for m in (2, 4)}}
_G = {1: np.array([[1.0]]), **{m: np.array(G[m], np.float64) for m in (2, 4)}}
_AT = {1: np.array([[1.0]]), **{m: np.array(AT[m], np.float64) for m in (2, 4)}}


#: the weight transforms (``winograd_rows.make_weight_transform``) by (mh, mw)
_wt_1x2, _wt_1x4, _wt_2x2, _wt_4x4 = (make_weight_transform(h, w, OB) for h, w in ((1, 2), (1, 4), (2, 2), (4, 4)))
#: input rows per work item of the stored weight transform, items taking a
#: block of OB channels' chunks in turn (measured, F(4x4), 2 threads,
#: 256x256 / 512x512 ms: chunks of 16, 64, 256 rows 0.32/1.21, 0.31/1.24,
#: 0.30/1.17 -- within noise; chunks outer, blocks inner 0.47/1.94,
#: 0.38/1.44, 0.31/1.24)
_U_CHUNK = 64


def transform_weights(w: np.ndarray, mh: int, mw: int, o_block: int) -> np.ndarray:
    """(O, C, KD, KH, KW) -> U (O blocks, a2, pitch), U = G g G^T packed for
    the micro-kernel: for transform point k of a block of ``o_block`` output
    channels (a multiple of OB), the first o_block * C*KD elements of its
    row are ``o_block / OB`` (C*KD, OB) matrices, one per OB channels
    (:func:`unpacked` for the plain matrices); ``pitch`` is
    ``winograd_plan.u_pitch``: a cache line past them, so the a2 rows the
    transform writes at once fall in different L1 sets (measured, 2
    threads: 256x256 F(4x4) 0.48 -> 0.26 ms, 512x512 2.0 -> 1.0).

    Computed by :func:`_transform_weights`; rows past O are zero.  The inner
    index is c * KD + kd, as the V rows.  U lives in a kept scratch buffer
    (a 512x512 layer's F(4x4) U is 38 MB).  Raises NonFiniteInput if a
    weight is NaN or infinite."""
    if o_block % OB:
        raise ValueError(f"o_block must be a multiple of {OB}, got {o_block}")
    o, c, kd = w.shape[:3]
    a2 = _G[mh].shape[0] * _G[mw].shape[0]
    blocks = -(-o // o_block)
    u = scratch("winograd_u", (blocks, a2, u_pitch(o_block, c * kd, w.dtype.itemsize)), w.dtype)
    if blocks * o_block > o:
        u[-1] = 0
    transform = _transform_weights_serial if u.nbytes < serial_below(_SERIAL_U_BELOW) else _transform_weights
    probe = np.zeros(-(-o // OB) * -(-(c * kd) // _U_CHUNK), w.dtype)
    fwt = WEIGHTS.address(_transform_block, w.dtype)
    transform(
        np.ascontiguousarray(w).reshape(o, c * kd, -1), mh, mw, o_block // OB, lanes(w.dtype.itemsize), u, probe, fwt
    )
    if np.isnan(probe).any():
        raise NonFiniteInput("the weights hold NaN or Inf")
    return u


def unpacked(u: np.ndarray, o_block: int, rows: int) -> np.ndarray:
    """U of :func:`transform_weights` as (O blocks, a2, o_block, rows):
    output channel by input row."""
    b, a2 = u.shape[:2]
    packed = u[:, :, : o_block * rows].reshape(b, a2, o_block // OB, rows, OB)
    return packed.transpose(0, 1, 2, 4, 3).reshape(b, a2, o_block, rows)


@unit
def _transform_block(w, o0, c0, c1, mh, mw, vl, uf, base, kstride):
    """``uf[base + k*kstride + (c - c0)*OB + o8]`` = U[k] of output channel
    ``o0 + o8`` (zero past w's) and input row c, for c0 <= c < c1 (w: (O, K,
    R), C-contiguous), by ``winograd_rows.make_weight_transform``.  Returns 0,
    or NaN if any of the block's weights is NaN or infinite (its loads probe
    them: the dispatcher's check of the weights beforehand, a pass over a
    9.4 MB weight of 0.5 ms, is not needed)."""
    n_out, K, R = w.shape
    cpv = vl // OB
    n = c1 - c0
    first = (o0 * K + c0) * R
    if mh == 1:
        if mw == 2:
            return _wt_1x2(w, first, K * R, n_out - o0, n // cpv, n % cpv, uf, base, kstride)
        return _wt_1x4(w, first, K * R, n_out - o0, n // cpv, n % cpv, uf, base, kstride)
    if mh == 2:
        return _wt_2x2(w, first, K * R, n_out - o0, n // cpv, n % cpv, uf, base, kstride)
    return _wt_4x4(w, first, K * R, n_out - o0, n // cpv, n % cpv, uf, base, kstride)


@numba_jit(parallel=True)
def _transform_weights(w, mh, mw, nb8, vl, u, probe, fwt):
    """U from w (O, K, R) into ``u`` (blocks of ``nb8`` * OB channels, a2,
    pitch) for ``transform_weights``: work items of OB output channels by
    _U_CHUNK input rows (:func:`_transform_block`, at address ``fwt``).  ``probe[item]`` turns
    NaN if the item read a NaN or infinite weight."""
    a2, pitch = u.shape[1], u.shape[2]
    n_out, K = w.shape[0], w.shape[1]
    nblk = (n_out + OB - 1) // OB
    nch = (K + _U_CHUNK - 1) // _U_CHUNK
    uf = u.reshape(-1)
    for item in prange(nblk * nch):
        blk = item // nch
        c0 = (item % nch) * _U_CHUNK
        c1 = min(K, c0 + _U_CHUNK)
        bi = blk // nb8
        base = bi * a2 * pitch + ((blk - bi * nb8) * K + c0) * OB
        probe[item] = _call_weights(fwt, (w, blk * OB, c0, c1, mh, mw, vl, uf, base, pitch))


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


@numba_jit()
def _row_starts(r0, rows, tiles_h, od_n, sd, pd, mh, ph):
    """Per tile row r0 .. r0+rows-1: its image, first depth (``od*sd - pd``)
    and first row (``th*mh - ph``), the same for every channel.  (Not
    inlined, as :func:`_stage_rows`: each inlined copy of a loop in the
    Winograd kernels measured ~7 s more compilation.)"""
    row_n = np.empty(rows, np.int64)
    row_d = np.empty(rows, np.int64)
    row_h = np.empty(rows, np.int64)
    for rr in range(rows):
        n, od, th = _tile_row(r0 + rr, tiles_h, od_n)
        row_n[rr] = n
        row_d[rr] = od * sd - pd
        row_h[rr] = th * mh - ph
    return row_n, row_d, row_h


@numba_jit()
def _stage_rows(rowp, xf, shape, c, dz, k, span, base, q_lo, q_hi, row_n, row_d, row_h):
    """rowp[rr*span + q] = x[row_n[rr], c, row_d[rr] + dz, row_h[rr] + k, base + q]
    for q < span, zero outside x (q outside [q_lo, q_hi), or rows in the
    padding): each tile row's k-th input row, side by side."""
    C, D, H, W = shape[1], shape[2], shape[3], shape[4]
    for rr in range(row_n.shape[0]):
        idp = row_d[rr] + dz
        ih = row_h[rr] + k
        at = rr * span
        if idp < 0 or idp >= D or ih < 0 or ih >= H:
            _fill(rowp, at, span, 0)
            continue
        _fill(rowp, at, q_lo, 0)
        _copy(rowp, at + q_lo, xf, (((row_n[rr] * C + c) * D + idp) * H + ih) * W + base + q_lo, q_hi - q_lo)
        _fill(rowp, at + q_hi, span - q_hi, 0)


@numba_jit()
def _store_rows(of, shape, orow, co, i, pitch, col0, count, bv, row_n, row_d, row_h):
    """out[row_n[rr], co, row_d[rr], row_h[rr] + i, col0 : col0 + count] =
    orow[rr*pitch : rr*pitch + count] + bv for the tile rows whose output
    row is inside ``out`` (of ``shape``)."""
    C_out, OD, OH, OW = shape[1], shape[2], shape[3], shape[4]
    for rr in range(row_n.shape[0]):
        oh = row_h[rr] + i
        if oh < OH:
            _store_row(
                of, (((row_n[rr] * C_out + co) * OD + row_d[rr]) * OH + oh) * OW + col0, orow, rr * pitch, count, bv
            )


@numba_jit()
def _rows_in_batched(m, ntw, rowp, nvec, dst, dbase, dstride):
    """The input transform along W over staged rows of ``ntw`` (2, 4 or 8)
    tiles side by side (``winograd_rows.make_input_rows``)."""
    if m == 4:
        if ntw == 2:
            return rows_in4_by2(rowp, 0, nvec, dst, dbase, dstride)
        if ntw == 4:
            return rows_in4_by4(rowp, 0, nvec, dst, dbase, dstride)
        return rows_in4_by8(rowp, 0, nvec, dst, dbase, dstride)
    if ntw == 2:
        return rows_in2_by2(rowp, 0, nvec, dst, dbase, dstride)
    if ntw == 4:
        return rows_in2_by4(rowp, 0, nvec, dst, dbase, dstride)
    return rows_in2_by8(rowp, 0, nvec, dst, dbase, dstride)


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
    the T tiles.  Rows of 2, 4 or 8 tiles (fewer than a vector) are staged
    side by side instead, all the block's tile rows' k-th input rows at
    once (:func:`_stage_rows`), and one vector of tiles covers several rows
    (``winograd_rows.make_input_rows(m, ntw)``; measured, cifar 64 @16
    F(4x4): the input transform 0.75 -> 0.42 ms).  Returns 0, or NaN if any
    input element read was NaN or infinite."""
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
    # short rows (tiles dividing the lanes) staged side by side, a vector of
    # tiles over several rows (batched_pitch); else row by row
    batched = ah > 1 and rows > 1 and ntw < vl and vl % ntw == 0 and (ntw == 2 or ntw == 4 or ntw == 8)
    if batched:
        rpv = vl // ntw
        _fill(rowp, rows * span, ((tvec * rpv) - rows) * span + vl, 0)  # read past the last row
        row_n, row_d, row_h = _row_starts(r0, rows, tiles_h, od_n, sd, pd, mh, ph)
    for kk in range(kcount):
        c = c0 + kk // kdepth
        kd = kk - (kk // kdepth) * kdepth
        vrow = kofs + kk
        for k in range(ah if batched else 0):
            _stage_rows(rowp, xf, x.shape, c, kd * dd, k, span, base, q_lo, q_hi, row_n, row_d, row_h)
            probe += _rows_in_batched(mw, ntw, rowp, tvec, rwf, k * aw * tcap, tcap)
        for rr in range(0 if batched else rows):
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
    outputs side by side) and write the clipped rows plus bias.  With a
    transform along H, each of a tile's output rows is transformed along W
    for all the block's tile rows at once (row rr's outputs at rr*ntw*mw
    in ``orow``: short rows no longer fill a vector each)."""
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
    row_n, row_d, row_h = _row_starts(r0, rows, tiles_h, od_n, 1, 0, mh, 0)
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
        if not direct:
            # every row's tiles at once: row rr's outputs land at rr*ntw*mw
            for i in range(mh):
                if mw == 4:
                    rows_out4(src, sbase + i * aw * sstride, sstride, tvec, orow, 0)
                else:
                    rows_out2(src, sbase + i * aw * sstride, sstride, tvec, orow, 0)
                _store_rows(of, out.shape, orow, o0 + o, i, ntw * mw, col0, count, bv, row_n, row_d, row_h)
            continue
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


# The per-item steps below are units of their own, called by address
# (:mod:`._link`): each is compiled once, not again inside every module of
# the parallel kernels (measured, F(4x4) float32 first call, 2-core Zen 4:
# the ~30k LLVM instructions of the item steps were optimised and compiled
# four times, 17 of 23 s of LLVM time), and the input and output steps come
# in one unit per tile size, so a first call compiles only its own (the tile
# sizes as constants; variables for kernels one row high).  A call per work
# item costs nothing measurable (12 suite layers, A/B in alternating
# processes: 0.85-1.20, geomean 1.0).


#: x, V, its strides, the row buffers, 18 integers -> the NaN/Inf probe
INPUT = Linkage("winograd input step", lambda dt: (dt, (*arrays(dt, 5, 1), *ints(2), *arrays(dt, 3, 1), *ints(18))))
#: M, its strides, out, bias, the row buffers, 11 integers
OUTPUT = Linkage(
    "winograd output step",
    lambda dt: (
        types.none,
        (*arrays(dt, 1), *ints(2), *arrays(dt, 5), bias(dt), *arrays(dt, 3, 1), *ints(11)),
    ),
)
GEMMS = Linkage(
    "winograd gemms",
    lambda dt: (
        types.none,
        (types.int64, *arrays(dt, 1), I64, *ints(2), *arrays(dt, 1), *ints(3), *arrays(dt, 1), *ints(6)),
    ),
)
#: _transform_block's: w, 6 integers, U, 2 integers -> the probe
WEIGHTS = Linkage("winograd weight block", lambda dt: (dt, (*arrays(dt, 3), *ints(6), *arrays(dt, 1), *ints(2))))
#: w, 6 integers, U's piece, its pitch, V, xoff, V's stride, M, 6 integers -> the probe
FUSED = Linkage(
    "winograd fused gemms",
    lambda dt: (
        dt,
        (
            *arrays(dt, 3),
            *ints(6),
            *arrays(dt, 1),
            types.int64,
            *arrays(dt, 1),
            I64,
            types.int64,
            *arrays(dt, 1),
            *ints(6),
        ),
    ),
)
_call_input, _call_output, _call_gemms, _call_weights, _call_fused = (
    INPUT.call, OUTPUT.call, GEMMS.call, WEIGHTS.call, FUSED.call,
)  # fmt: skip


@unit
def _input_f4(x, vf, vk, ts, rw, rowp, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth, kofs,
              kcount, vl):  # fmt: skip
    """:func:`_input_tiles` of F(4x4) (``mh``, ``mw`` ignored); its NaN/Inf probe."""
    return _input_tiles(x, vf, vk, ts, rw, rowp, 4, 4, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth,
                        kofs, kcount, vl)  # fmt: skip


@unit
def _input_f2(x, vf, vk, ts, rw, rowp, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth, kofs,
              kcount, vl):  # fmt: skip
    """:func:`_input_tiles` of F(2x2)."""
    return _input_tiles(x, vf, vk, ts, rw, rowp, 2, 2, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth,
                        kofs, kcount, vl)  # fmt: skip


@unit
def _input_row(x, vf, vk, ts, rw, rowp, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw, kdepth, kofs,
               kcount, vl):  # fmt: skip
    """:func:`_input_tiles` of a kernel one row high (tile sizes as variables)."""
    return _input_tiles(x, vf, vk, ts, rw, rowp, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd, ph, pw,
                        kdepth, kofs, kcount, vl)  # fmt: skip


@unit
def _output_f4(mf, mk, ts, out, bias, tb, orow, mh, mw, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl):
    """:func:`_output_tiles` of F(4x4)."""
    _output_tiles(mf, mk, ts, out, bias, tb, orow, 4, 4, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl)


@unit
def _output_f2(mf, mk, ts, out, bias, tb, orow, mh, mw, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl):
    """:func:`_output_tiles` of F(2x2)."""
    _output_tiles(mf, mk, ts, out, bias, tb, orow, 2, 2, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl)


@unit
def _output_row(mf, mk, ts, out, bias, tb, orow, mh, mw, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl):
    """:func:`_output_tiles` of a kernel one row high."""
    _output_tiles(mf, mk, ts, out, bias, tb, orow, mh, mw, o0, n_o, rows, r0, tiles_h, tw0, ntw, od_n, vl)


def _units(mh: int, dt, fused: bool) -> np.ndarray:
    """The addresses the parallel kernels call for tiles ``mh`` high: input
    and output steps, GEMMs, fused GEMMs and weight block (those two zero
    unless ``fused``: never called, never compiled), :func:`_winograd_thread`."""
    unit_in, unit_out = {4: (_input_f4, _output_f4), 2: (_input_f2, _output_f2)}.get(mh, (_input_row, _output_row))
    gemms = fused_gemms = weights = 0
    if fused:
        fused_gemms, weights = FUSED.address(_fused_gemms, dt), WEIGHTS.address(_transform_block, dt)
    else:
        gemms = GEMMS.address(_gemms, dt)
    steps = INPUT.address(unit_in, dt), OUTPUT.address(unit_out, dt)
    # (the kernels read these by position: a wrong one is a jump to anywhere)
    return np.array([*steps, gemms, fused_gemms, weights, THREAD.address(_winograd_thread, dt)], np.int64)


@unit
def _gemms(a2, vflat, xoff, vbase, vk, uflat, ubase, upitch, K, mflat, mk, ts, n_b8, nv, step, T):
    """M[k] = U[k] V[k] for the ``a2`` transform points k: per block of OB
    output channels, the micro-kernel over runs of ``nv`` vectors (``step``
    tiles; columns past ``T`` up to the stride ``ts`` are computed and never
    read).  V[k] starts at ``vbase + k * vk``, M[k] at ``k * mk`` (rows ``ts``
    apart), U[k]'s blocks are (K, OB) matrices from ``ubase + k * upitch``.  Runs outside
    channel blocks (a run's V columns stay in L1 for every block) and the
    other order (a block's U in L1 for every run) measured the same, within
    noise, on 64 @56, 128 @28, 256 @14, 512 @7 and cifar 64 @16."""
    nrun = (T + step - 1) // step
    for k in range(a2):
        for run in range(nrun):
            for b8 in range(n_b8):
                wb = ubase + k * upitch + b8 * K * OB
                mb = k * mk + b8 * OB * ts
                _mac(OB, nv, vflat, xoff, vbase + k * vk + run * step, uflat, wb, 0, K, mflat, mb + run * step, ts)


@unit
def _fused_gemms(w, o_first, ob, mh, mw, a2, vl, uf, upitch, vflat, xoff, vk, mflat, mk, ts, nv, step, T, fwt):
    """M[k] = U[k] V[k] for the ``ob`` output channels from ``o_first``, U made
    here: per piece of FUSED_OC channels by FUSED_ROWS input rows, U's
    piece ((a2, channel blocks, rows, OB) in ``uf``, U[k] ``upitch`` after
    U[k-1], ``winograd_plan.u_pitch`` of a whole piece; :func:`_transform_block`
    at address ``fwt``),
    then the micro-kernel over those rows for every transform point, run and
    block, adding to M after the first piece of rows.  Returns 0, or NaN if
    a weight read was NaN or infinite."""
    K = w.shape[1]
    nrun = (T + step - 1) // step
    found = w.dtype.type(0)
    for g0 in range(0, ob, FUSED_OC):
        nb = min(FUSED_OC, ob - g0) // OB
        for c0 in range(0, K, FUSED_ROWS):
            c1 = min(K, c0 + FUSED_ROWS)
            piece = (c1 - c0) * OB
            for b8 in range(nb):
                found += _call_weights(fwt, (w, o_first + g0 + b8 * OB, c0, c1, mh, mw, vl, uf, b8 * piece, upitch))
            for k in range(a2):
                for run in range(nrun):
                    for b8 in range(nb):
                        # (U's row r of this piece at wb + r*OB for c0 <= r < c1)
                        wb = k * upitch + b8 * piece - c0 * OB
                        mb = k * mk + (g0 + b8 * OB) * ts + run * step
                        _mac(OB, nv, vflat, xoff, k * vk + run * step, uf, wb, c0, c1, mflat, mb, ts)
    return found


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
              o0, o_count, tiles_h, tiles_w, seg, od_n, sd, dd, pd, ph, pw, kdepth, rows_per_block, n_rows, w,
              ubuf, fns):  # fmt: skip
    """Every work item (tile block, output-channel block) on one thread, start
    to end.  A tile block is ``rows_per_block`` whole tile rows, or, for rows
    longer than ``seg`` tiles (long 1-D signals), a ``seg``-tile piece of one.
    V and M rows are ``ts`` apart (the block's tiles rounded up to whole runs
    of the micro-kernel), their a2 matrices ``vk`` and ``mk`` apart; U is
    ``uflat`` of ``u_shape`` (blocks, a2, OB blocks, rows, U[k]'s pitch: see
    :func:`transform_weights`; with ``w``, the pitch of a fused piece).  ``probe[tid]``
    turns NaN if the thread read a NaN or infinite input (or weight).

    With ``w`` (the group's (O, K, R) weights; empty otherwise) U is not
    given: each item transforms its output channels' weights itself, a
    piece of FUSED_OC channels by FUSED_ROWS input rows at a time into its
    thread's ``ubuf``, and runs that piece's share of the GEMMs while it is
    in L2 (see :func:`_fused_gemms`); for a single tile block, where U is
    used once.  ``fns``: the addresses of the input and output steps, the
    GEMMs, the fused GEMMs, the weight block and the thread's work
    (:func:`_winograd_thread`; see :func:`_units`)."""
    nthreads = vbuf.shape[0]
    for tid in prange(nthreads):
        probe[tid] += _call_thread(fns[5], (x, uflat, u_shape, out, bias, mh, mw, vbuf[tid], vk, mbuf[tid], mk,
                                            rwbuf[tid], rowp[tid], xoff, nv, step, ts, vl, c0, o0, o_count, tiles_h,
                                            tiles_w, seg, od_n, sd, dd, pd, ph, pw, kdepth, rows_per_block, n_rows, w,
                                            ubuf[tid], fns, tid, nthreads))  # fmt: skip


#: :func:`_winograd_thread`'s: x, U, its shape, out, bias, 2 integers, V, its
#: stride, M, its stride, the row buffers, xoff, 19 integers, w, U's piece,
#: the addresses, thread, threads -> the probe
def _thread_args(dt):
    a1, a3, a5 = arrays(dt, 1, 3, 5)
    return (a5, a1, I64, a5, bias(dt), *ints(2), a1, types.int64, a1, types.int64, a3, a1, I64)


THREAD = Linkage("winograd thread", lambda dt: (dt, (*_thread_args(dt), *ints(19), *arrays(dt, 3, 1), I64, *ints(2))))
_call_thread = THREAD.call


@unit
def _winograd_thread(x, uflat, u_shape, out, bias, mh, mw, vflat, vk, mflat, mk, rw, rowp, xoff, nv, step, ts, vl, c0,
                     o0, o_count, tiles_h, tiles_w, seg, od_n, sd, dd, pd, ph, pw, kdepth, rows_per_block, n_rows, w,
                     ub, fns, tid, nthreads):  # fmt: skip
    """Thread ``tid``'s work items of :func:`_winograd` (its buffers given),
    start to end; the NaN/Inf probe.  A unit of its own: the parallel
    kernel's four modules hold only the call (their LLVM time 2.4 -> 0.6 s,
    this unit's 0.3; F(4x4) float32 first call, 2-core Zen 4)."""
    n_oblocks, a2, n_b8, K, upitch = u_shape[0], u_shape[1], u_shape[2], u_shape[3], u_shape[4]
    ob = n_b8 * OB
    f_in, f_out, f_gemms, f_fused, f_wt = fns[0], fns[1], fns[2], fns[3], fns[4]
    nseg = (tiles_w + seg - 1) // seg
    n_blocks = (n_rows + rows_per_block - 1) // rows_per_block * nseg
    items = n_blocks * n_oblocks
    probe = x.dtype.type(0)
    for item in range(tid, items, nthreads):
        b = item // n_oblocks
        oi = item - b * n_oblocks
        rb = b // nseg
        tw0 = (b - rb * nseg) * seg
        ntw = min(seg, tiles_w - tw0)
        r0 = rb * rows_per_block
        rows = min(rows_per_block, n_rows - r0)
        T = rows * ntw
        probe += _call_input(f_in, (x, vflat, vk, ts, rw, rowp, mh, mw, c0, rows, r0, tiles_h, tw0, ntw, od_n, sd, dd, pd,
                                    ph, pw, kdepth, 0, K, vl))  # fmt: skip
        _zero_columns(vflat, 0, vk, ts, T, a2, K)
        if w.shape[0] > 0:
            probe += _call_fused(f_fused, (w, oi * ob, ob, mh, mw, a2, vl, ub, upitch, vflat, xoff, vk, mflat, mk, ts,
                                           nv, step, T, f_wt))  # fmt: skip
        else:
            _call_gemms(f_gemms, (a2, vflat, xoff, 0, vk, uflat, oi * a2 * upitch, upitch, K, mflat, mk, ts, n_b8, nv,
                                  step, T))  # fmt: skip
        n_o = min(ob, o_count - oi * ob)
        _call_output(f_out, (mflat, mk, ts, out, bias, rw, rowp, mh, mw, o0 + oi * ob, n_o, rows, r0, tiles_h, tw0,
                             ntw, od_n, vl))  # fmt: skip
    return probe


@numba_jit(parallel=True)
def _winograd_depth_ring(x, uflat, u_shape, out, bias, mh, mw, slab, vk, mbuf, mk, rwbuf, rowp, probe, xoff, nv, step,
                         ts, vl, c0, o0, o_count, tiles_h, tiles_w, pd, ph, pw, kdepth, rows_per_block, n_thb,
                         fns):  # fmt: skip
    """conv3d, depth stride and dilation 1: each work item (image, block of
    tile rows, block of output channels) walks the output depth in order and
    keeps the 2-D transforms of the last ``kdepth`` input slices in a ring, so
    each slice is transformed once instead of once per depth tap.  Slice j
    lives at ring slots j % kdepth and j % kdepth + kdepth (written twice):
    any window of ``kdepth`` consecutive slices is then one contiguous
    (kdepth * C) x ts matrix — the V of the GEMMs, rows ordered (tap, channel)
    like ``u``; the a2 rings are ``vk`` elements apart.  ``fns`` as for
    :func:`_winograd`."""
    n_oblocks, a2, n_b8, K, upitch = u_shape[0], u_shape[1], u_shape[2], u_shape[3], u_shape[4]
    f_in, f_out, f_gemms = fns[0], fns[1], fns[2]
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
                    probe[tid] += _call_input(f_in, (x, sflat, vk, ts, rwbuf[tid], rowp[tid], mh, mw, c0, rows, r0,
                                                     tiles_h, 0, tiles_w, OD, 1, 0, od - j, ph, pw, 1, sl * C, C,
                                                     vl))  # fmt: skip
                    _zero_columns(sflat, sl * per_slot, vk, ts, T, a2, C)
                    for k in range(a2):  # (the slot's second place, kdepth slots on)
                        q = k * vk + sl * per_slot
                        _copy(sflat, q + kdepth * per_slot, sflat, q, per_slot)
                s0 = ((j0 % kdepth) + kdepth) % kdepth
                ub = oi * a2 * upitch
                _call_gemms(f_gemms, (a2, sflat, xoff, s0 * per_slot, vk, uflat, ub, upitch, K, mflat, mk, ts, n_b8,
                                      nv, step, T))  # fmt: skip
                _call_output(f_out, (mflat, mk, ts, out, bias, rwbuf[tid], rowp[tid], mh, mw, o0 + oi * ob, n_o, rows,
                                     (n * OD + od) * tiles_h + th0, tiles_h, 0, tiles_w, OD, vl))  # fmt: skip


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
    rows = ring.rows_per_block if ring is not None else lay.rows_per_block
    rowp = scratch("winograd_row", (nt, staging_length(rows, lay.seg, mw, dt.itemsize)), dt)
    sd, dd = spec.lifted("stride")[0], spec.lifted("dilation")[0]
    pd, ph, pw = spec.kernel_pad_lo
    probe = np.zeros(nt, dt)  # per thread: NaN once it read a NaN or Inf
    # the fused weight transform's pieces of U (fused_piece), or empty ones
    none = np.empty(0, dt)
    no_w = np.empty((0, K, 3 if mh == 1 else 9), dt)
    ubuf = scratch("winograd_fused_u", (nt, fused_piece(lay, dt.itemsize)), dt)

    fns = _units(mh, dt, fused=lay.fused and ring is None)

    def packed(u):  # U's flat buffer and its shape for the kernels
        return u.reshape(-1), np.array([u.shape[0], a2, o_block // OB, K, u.shape[2]])

    with numba_threads(num_threads):
        for g in range(G):
            w = ops.w[g * cog : (g + 1) * cog]
            if ring is not None:
                wt = np.ascontiguousarray(w.transpose(0, 2, 1, 3, 4))
                uflat, u_shape = packed(transform_weights(wt, mh, mw, o_block))
                _winograd_depth_ring(ops.x, uflat, u_shape, out, bias, mh, mw, vbuf, vk, mbuf, mk,
                                     rwbuf, rowp, probe, xoff, nv, step, ts, vl, g * cig, g * cog, cog, lay.tiles_h, lay.tiles_w, pd,
                                     ph, pw, lay.kdepth, ring.rows_per_block, ring.n_blocks, fns)  # fmt: skip
            elif lay.fused:
                w3 = np.ascontiguousarray(w).reshape(cog, K, -1)
                u_shape = np.array([lay.n_oblocks, a2, o_block // OB, K, u_pitch(FUSED_OC, FUSED_ROWS, dt.itemsize)])
                _winograd(ops.x, none, u_shape, out, bias, mh, mw, vbuf, vk, mbuf, mk, rwbuf, rowp, probe, xoff, nv,
                          step, ts, vl, g * cig, g * cog, cog, lay.tiles_h, lay.tiles_w, lay.seg, out.shape[2], sd, dd,
                          pd, ph, pw, lay.kdepth, lay.rows_per_block, lay.n_rows, w3, ubuf, fns)  # fmt: skip
            else:
                uflat, u_shape = packed(transform_weights(w, mh, mw, o_block))
                _winograd(ops.x, uflat, u_shape, out, bias, mh, mw, vbuf, vk, mbuf, mk, rwbuf, rowp,
                          probe, xoff, nv, step, ts, vl, g * cig, g * cog, cog, lay.tiles_h, lay.tiles_w, lay.seg, out.shape[2], sd, dd,
                          pd, ph, pw, lay.kdepth, lay.rows_per_block, lay.n_rows, no_w, ubuf, fns)  # fmt: skip
    if np.isnan(probe).any():
        raise NonFiniteInput("the input or the weights hold NaN or Inf")


def _by_phases(spec, ops, out: np.ndarray, num_threads: int, m: int) -> None:
    """Dilated 3x3 conv2d (``winograd_plan.phase_spec``): the padded input's
    dh*dw phases stacked as a batch (:func:`_split_phases`), one undilated
    Winograd convolution, the output phases interleaved back
    (:func:`_merge_phases`).  (Measured, deeplab 4x256x28x28 d2, 2 threads:
    the two copies 2.45 ms of 9.3 through numpy's pad, transposes and
    slices.)"""
    from .._spec import ConvOperands

    sub = phase_spec(spec)
    dh, dw = spec.dilation
    ph, pw = spec.kernel_pad_lo[1:]
    xs = scratch("winograd_phases_x", (sub.n, spec.c_in, 1, *sub.in_spatial), spec.dtype)
    y = scratch("winograd_phases_y", (sub.n, spec.c_out, 1, *sub.out_spatial), spec.dtype)
    with numba_threads(num_threads):
        _split_phases(ops.x, xs, dh, dw, ph, pw)
    conv_winograd(sub, ConvOperands(x=xs, w=ops.w, b=ops.b), y, num_threads, m=m)
    with numba_threads(num_threads):
        _merge_phases(y, out, dh, dw)


@numba_jit(parallel=True)
def _split_phases(x, xs, dh, dw, ph, pw):
    """xs[(n*dh + a)*dw + b, c, 0, i, j] = x[n, c, 0, i*dh + a - ph, j*dw + b - pw],
    zero where that is outside x: the phases of the zero-padded input."""
    N, C, H, W = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    hq, wq = xs.shape[3], xs.shape[4]
    xf = x.reshape(-1)
    sf = xs.reshape(-1)
    for t in prange(N * C):
        n = t // C
        c = t - n * C
        for a in range(dh):
            for b in range(dw):
                dst = (((n * dh + a) * dw + b) * C + c) * hq * wq
                lo = min(wq, max(0, (pw - b + dw - 1) // dw))  # first j whose column is >= 0
                hi = max(lo, min(wq, (W - 1 + pw - b) // dw + 1))  # past the last whose column is < W
                for i in range(hq):
                    ih = i * dh + a - ph
                    row = dst + i * wq
                    if ih < 0 or ih >= H:
                        _fill(sf, row, wq, 0)
                        continue
                    _fill(sf, row, lo, 0)
                    _gather(sf, row + lo, xf, ((t * H) + ih) * W + lo * dw + b - pw, hi - lo, dw)
                    _fill(sf, row + hi, wq - hi, 0)


@numba_jit(parallel=True)
def _merge_phases(y, out, dh, dw):
    """out[n, o, 0, i*dh + a, j*dw + b] = y[(n*dh + a)*dw + b, o, 0, i, j]
    for every output position: the phases' outputs interleaved."""
    N, C, OH, OW = out.shape[0], out.shape[1], out.shape[3], out.shape[4]
    qh, qw = y.shape[3], y.shape[4]
    yf = y.reshape(-1)
    of = out.reshape(-1)
    zero = out.dtype.type(0)
    for t in prange(N * C):
        n = t // C
        o = t - n * C
        for a in range(min(dh, OH)):
            for b in range(min(dw, OW)):
                src = (((n * dh + a) * dw + b) * C + o) * qh * qw
                cols = (OW - b + dw - 1) // dw
                for i in range((OH - a + dh - 1) // dh):
                    _store_strided(of, (t * OH + i * dh + a) * OW + b, dw, yf, src + i * qw, cols, zero)


def conv_winograd_f2(spec, ops, out, num_threads):
    conv_winograd(spec, ops, out, num_threads, m=2)


def conv_winograd_f4(spec, ops, out, num_threads):
    conv_winograd(spec, ops, out, num_threads, m=4)
