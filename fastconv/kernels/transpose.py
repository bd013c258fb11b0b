"""Transposed convolution: a gather-form direct kernel and the stride
decomposition (sub-pixel) into ordinary convolutions.

Gather form (``conv_transpose_direct``): every output row computes its own
sum -- no scatter, so no races, parallel over (image, group, block of
``_BLOCK`` output channels, output depth, output row).  For an output row
only the (kd, kh) taps whose ``od + pd - kd*dd`` (and h likewise) is a
multiple of the stride contribute; along the row, tap kw feeds exactly one
column phase ``ow = q*sw + r`` from input column ``q + off``, so each
(input channel, tap) is one unit-stride stream into a phase-split
accumulator, interleaved into the output row at the end.

Sub-pixel (``conv_transpose_subpixel``): see
:mod:`fastconv.kernels.transpose`; each phase runs through the
convolution dispatcher (direct, im2col, Winograd, FFT: whichever it picks for
that stride-1 shape) into a scratch array that is copied into the strided
output positions.
"""

from __future__ import annotations

import numpy as np
from numba import prange, types

from .._config import numba_jit, numba_threads
from ._link import I64, Linkage, arrays, bias, ints, unit
from .direct import _axpy, _fill, _inline

_U = np.uint64
_BLOCK = 8  # output channels per work item: the input row is read once for 8


@numba_jit(parallel=True)
def conv_transpose_direct_kernel(x, w, b, out, groups, geometry, nparts, part_at):
    """out[n, co, od, oh, ow] = b[co] + sum over (ci, kd, kh, kw) with
    o + p == i*s + k*d of x[n, ci, id, ih, iw] * w[ci, co % cog, kd, kh, kw].

    Each part runs :func:`conv_transpose_direct_kernel_part` at address ``part_at`` (:mod:`._link`:
    compiled once, not again in each of this kernel's modules)."""
    for part in prange(nparts):
        _call_conv_transpose_direct_kernel(part_at, (x, w, b, out, groups, geometry, nparts, part))


TRANSPOSE_DIRECT_PART = Linkage(
    "conv_transpose_direct_kernel part",
    lambda dt: (
        types.none,
        (*arrays(dt, 5, 5), bias(dt), *arrays(dt, 5), types.int64, types.UniTuple(types.int64, 9), *ints(2)),
    ),
)
_call_conv_transpose_direct_kernel = TRANSPOSE_DIRECT_PART.call


@unit
def conv_transpose_direct_kernel_part(x, w, b, out, groups, geometry, nparts, part):
    """Part ``part`` of ``nparts`` of :func:`conv_transpose_direct_kernel`."""
    N, C_in, ID, IH, IW = x.shape
    C_out, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    KD, KH, KW = w.shape[2], w.shape[3], w.shape[4]
    sd, sh, sw, dd, dh, dw, pd, ph, pw = geometry
    cig = C_in // groups
    cog = C_out // groups
    nqw = (OW + sw - 1) // sw
    nbc = (cog + _BLOCK - 1) // _BLOCK
    items = N * groups * nbc * OD * OH
    per = (items + nparts - 1) // nparts
    xf = x.reshape(-1)
    wf = w.reshape(-1)
    of = out.reshape(-1)
    acc = np.zeros(_BLOCK * sw * nqw, x.dtype)
    for it in range(part * per, min(items, (part + 1) * per)):
        oh = it % OH
        t = it // OH
        od = t % OD
        t = t // OD
        cb = t % nbc
        t = t // nbc
        g = t % groups
        n = t // groups
        co0 = cb * _BLOCK
        nb = min(_BLOCK, cog - co0)
        for kd in range(KD):
            td = od + pd - kd * dd
            if td < 0 or td % sd != 0 or td // sd >= ID:
                continue
            idd = td // sd
            for kh in range(KH):
                th = oh + ph - kh * dh
                if th < 0 or th % sh != 0 or th // sh >= IH:
                    continue
                ih = th // sh
                for ci in range(cig):
                    c = g * cig + ci
                    xrow = (((n * C_in + c) * ID + idd) * IH + ih) * IW
                    wbase = (c * cog + co0) * KD * KH * KW + (kd * KH + kh) * KW
                    for kw in range(KW):
                        e = kw * dw - pw  # ow = iw*sw + e
                        r = e % sw
                        off = (r - e) // sw  # iw = q + off for ow = q*sw + r
                        nq = (OW - r + sw - 1) // sw
                        q0 = max(0, -off)
                        q1 = min(nq, IW - off)
                        if q1 <= q0:
                            continue
                        for j in range(nb):
                            wv = wf[wbase + j * KD * KH * KW + kw]
                            _axpy(acc, (j * sw + r) * nqw + q0, xf, xrow + q0 + off, wv, q1 - q0)
        for j in range(nb):
            co = g * cog + co0 + j
            bv = b[co]
            ob = (((n * C_out + co) * OD + od) * OH + oh) * OW
            for r in range(sw):
                nq = (OW - r + sw - 1) // sw
                ab = (j * sw + r) * nqw
                for q in range(nq):
                    of[ob + q * sw + r] = acc[ab + q] + bv
        _fill(acc, 0, nb * sw * nqw, 0)


def conv_transpose_direct(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Run the gather-form kernel for ``spec`` into the C-contiguous 5-D ``out``."""
    if out.size == 0:
        return
    b = ops.b if ops.b is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    if ops.x.size == 0:
        out[...] = b.reshape(1, -1, 1, 1, 1)
        return
    geometry = (*spec.lifted("stride"), *spec.lifted("dilation"), *spec.lifted("pad_lo"))
    od, oh, _ = spec.lifted("out_spatial")
    cog = spec.c_out // spec.groups
    items = spec.n * spec.groups * -(-cog // _BLOCK) * od * oh
    nparts = max(1, min(items, num_threads))
    with numba_threads(num_threads):
        conv_transpose_direct_kernel(
            ops.x, ops.w, b, out, spec.groups, geometry, nparts,
            TRANSPOSE_DIRECT_PART.address(conv_transpose_direct_kernel_part, spec.dtype),
        )  # fmt: skip


def subpixel_weight(spec, w: np.ndarray, phase) -> np.ndarray:
    """The phase's convolution weight (C_out, C_in/g, taps...) from the
    transposed weight (C_in, C_out/g, KD, KH, KW)."""
    g = spec.groups
    cig, cog = spec.c_in // g, spec.c_out // g
    taps = [(0,)] * (3 - spec.nd) + [a.taps for a in phase.axes]
    sub = w[:, :, list(taps[0])][:, :, :, list(taps[1])][:, :, :, :, list(taps[2])]
    sub = sub.reshape(g, cig, cog, *sub.shape[2:]).swapaxes(1, 2)
    return np.ascontiguousarray(sub.reshape(spec.c_out, cig, *sub.shape[3:]))


def conv_transpose_subpixel(spec, ops, out: np.ndarray, num_threads: int, *, children: tuple) -> None:
    """Run each output phase as a stride-1 convolution -- ``children``, the
    plans the dispatcher made for the phases of :func:`phases` -- and copy it
    into its strided output positions."""
    from .._spec import ConvOperands
    from ..plans.transpose import phases

    if out.size == 0:
        return
    lift = 3 - spec.nd
    strides = spec.lifted("stride")
    for ph, plan in zip(phases(spec), children):
        axes = [None] * lift + list(ph.axes)
        dst = out[(slice(None), slice(None), *(slice(a.r if a else 0, None, s) for a, s in zip(axes, strides)))]
        if ph.spec is None:
            dst[...] = 0 if ops.b is None else ops.b.reshape(1, -1, 1, 1, 1)
            continue
        x = ops.x
        crop = (slice(None), slice(None), *(slice(a.crop[0], x.shape[2 + i] - a.crop[1]) if a else slice(None)
                                            for i, a in enumerate(axes)))  # fmt: skip
        if any(a is not None and (a.crop[0] or a.crop[1]) for a in axes):
            x = np.ascontiguousarray(x[crop])
        w = subpixel_weight(spec, ops.w, ph)
        sub_ops = ConvOperands(x=x, w=w, b=ops.b)
        if dst.flags.c_contiguous:
            plan.run(sub_ops, dst)
        else:
            scratch = np.empty(dst.shape, dtype=spec.dtype)
            plan.run(sub_ops, scratch)
            dst[...] = scratch


@_inline
def _col2im_channel(cf, src, acc, of, ob, r0, nrows, IH, IW, geometry, kshape, oshape, tabs, first, bv):
    """Add the K column rows of one output channel (starting at cf[src], each
    ``nrows*IW`` long) into its output plane at of[ob]: summed first in the
    phase-split plane ``acc`` (``ow = q*sw + r``), where every (tap, input
    row) is one unit-stride add, then interleaved once (measured on a 4x4/2
    layer: strided adds straight into the output ran 5x slower).  The first
    row block writes the whole plane (bias included) instead of adding, so the
    output needs no separate initialisation pass."""
    sd, sh, sw, dd, dh, _, pd, ph, _ = geometry
    KD, KH, KW = kshape
    OD, OH, OW = oshape
    rk, offk, lok, hik = tabs
    nqw = (OW + sw - 1) // sw
    pitch = sw * nqw
    ncols = nrows * IW
    # output rows this block of input rows can reach (all of them when first)
    id0 = r0 // IH
    id1 = (r0 + nrows - 1) // IH
    od0, od1, oh0, oh1 = 0, OD, 0, OH
    if not first:
        od0 = max(0, id0 * sd - pd)
        od1 = min(OD, id1 * sd - pd + (KD - 1) * dd + 1)
        if id0 == id1:
            oh0 = max(0, (r0 - id0 * IH) * sh - ph)
            oh1 = min(OH, (r0 + nrows - 1 - id0 * IH) * sh - ph + (KH - 1) * dh + 1)
    for o_d in range(od0, od1):
        a0 = _U((o_d * OH + oh0) * pitch)
        for i in range(_U(max(0, oh1 - oh0) * pitch)):
            acc[a0 + i] = 0
    for rr in range(nrows):
        row = r0 + rr
        idd = row // IH
        ih = row - idd * IH
        for kd in range(KD):
            o_d = idd * sd - pd + kd * dd
            if o_d < 0 or o_d >= OD:
                continue
            for kh in range(KH):
                o_h = ih * sh - ph + kh * dh
                if o_h < 0 or o_h >= OH:
                    continue
                abase = (o_d * OH + o_h) * pitch
                sbase = src + (kd * KH + kh) * KW * ncols + rr * IW
                for kw in range(KW):
                    lo = lok[kw]
                    hi = hik[kw]
                    if hi <= lo:
                        continue
                    ab = _U(abase + rk[kw] * nqw + offk[kw] + lo)
                    sb = _U(sbase + kw * ncols + lo)
                    for i in range(_U(hi - lo)):
                        acc[ab + i] += cf[sb + i]
    usw = _U(sw)
    for o_d in range(od0, od1):
        for o_h in range(oh0, oh1):
            orow = o_d * OH + o_h
            for r in range(sw):
                nq = (OW - r + sw - 1) // sw
                a0 = _U(orow * pitch + r * nqw)
                o0 = _U(ob + orow * OW + r)
                if first:
                    for q in range(_U(nq)):
                        of[o0 + q * usw] = acc[a0 + q] + bv
                else:
                    for q in range(_U(nq)):
                        of[o0 + q * usw] += acc[a0 + q]


@numba_jit(parallel=True)
def transpose_gemm_kernel(
    x, wg, wt, bias, out, groups, geometry, kshape, tabs, cblk, nrows, colbuf, xtbuf, accbuf, nparts, part_at
):
    """Work units (image, group, block of ``cblk`` output channels) in
    parallel; each thread runs BLAS GEMMs (kept single-threaded by the
    caller) for its unit's blocks of input rows and adds them back with
    col2im, so only one thread pool is ever active and no two threads write
    the same output channel.  The GEMM's left operand is ``wg[g].T`` (the
    weight as it is, read transposed by BLAS) when a block holds all of a
    group's output channels, else rows of ``wt``, a transposed copy.  With one block of rows per image the first
    col2im pass initialises the output; with several, ``out`` must hold the
    bias already and every block adds the rows it reaches.  Each part (one
    per thread) works in its rows of the kept buffers ``colbuf``, ``xtbuf``
    and ``accbuf``.

    ``nparts``: the buffers' rows.  Each part runs :func:`transpose_gemm_kernel_part` at address ``part_at`` (:mod:`._link`:
    compiled once, not again in each of this kernel's modules)."""
    for part in prange(nparts):
        _call_transpose_gemm_kernel(
            part_at,
            (x, wg, wt, bias, out, groups, geometry, kshape, tabs, cblk, nrows, colbuf, xtbuf, accbuf, nparts, part),
        )


TRANSPOSE_GEMM_PART = Linkage(
    "transpose_gemm_kernel part",
    lambda dt: (
        types.none,
        (
            *arrays(dt, 5, 3, 3),
            bias(dt),
            *arrays(dt, 5),
            types.int64,
            types.UniTuple(types.int64, 9),
            types.UniTuple(types.int64, 3),
            types.UniTuple(I64, 4),
            *ints(2),
            *arrays(dt, 2, 2, 2),
            *ints(2),
        ),
    ),
)
_call_transpose_gemm_kernel = TRANSPOSE_GEMM_PART.call


@unit
def transpose_gemm_kernel_part(
    x, wg, wt, bias, out, groups, geometry, kshape, tabs, cblk, nrows, colbuf, xtbuf, accbuf, nparts, part
):
    """Part ``part`` of ``nparts`` of :func:`transpose_gemm_kernel`."""
    N, C_in, ID, IH, IW = x.shape
    C_out, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    KD, KH, KW = kshape
    K = KD * KH * KW
    cig = C_in // groups
    cog = C_out // groups
    rows = ID * IH
    nb = (cog + cblk - 1) // cblk
    units = N * groups * nb
    per = (units + nparts - 1) // nparts
    xr = x.reshape(N, C_in, rows * IW)
    of = out.reshape(-1)
    single = nrows >= rows
    cols = colbuf[part]
    xt = xtbuf[part]
    acc = accbuf[part]
    for u in range(part * per, min(units, (part + 1) * per)):
        b = u % nb
        t = u // nb
        g = t % groups
        n = t // groups
        c0 = b * cblk
        nc = min(cblk, cog - c0)
        for r0 in range(0, rows, nrows):
            nr = min(nrows, rows - r0)
            c = cols[: nc * K * nr * IW].reshape(nc * K, nr * IW)
            if single:
                xs = xr[n, g * cig : (g + 1) * cig]
            else:
                xs = xt[: cig * nr * IW].reshape(cig, nr * IW)
                for ci in range(cig):
                    for i in range(nr * IW):
                        xs[ci, i] = xr[n, g * cig + ci, r0 * IW + i]
            if nb == 1:
                np.dot(wg[g].T, xs, c)
            else:
                np.dot(wt[g, c0 * K : (c0 + nc) * K], xs, c)
            cf = c.reshape(-1)
            for j in range(nc):
                co = g * cog + c0 + j
                ob = (n * C_out + co) * OD * OH * OW
                _col2im_channel(cf, j * K * nr * IW, acc, of, ob, r0, nr, IH, IW, geometry, kshape,
                                (OD, OH, OW), tabs, single, bias[co])  # fmt: skip


def _kw_tables(spec):
    """Per kw: output column phase, offset and valid input columns (col2im)."""
    _, _, KW = spec.lifted("kernel")
    _, _, sw = spec.lifted("stride")
    _, _, dw = spec.lifted("dilation")
    _, _, pw = spec.lifted("pad_lo")
    _, _, IW = spec.lifted("in_spatial")
    _, _, OW = spec.lifted("out_spatial")
    e = np.arange(KW, dtype=np.int64) * dw - pw
    r = e % sw
    off = (e - r) // sw
    nq = (OW - r + sw - 1) // sw
    return r, off, np.maximum(0, -off), np.minimum(IW, nq - off)


def conv_transpose_gemm(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """GEMM + col2im: ``cols = W_g^T @ x[n, g]`` (every tap of a block of
    output channels, one BLAS GEMM per block of input rows), then col2im adds
    the columns into the output.  Exactly the transposed convolution's FLOPs,
    in BLAS; the blocks are sized to ``workspace_limit``."""
    from .._config import blas_threads, get_config, scratch
    from ..plans.transpose import gemm_buffers, gemm_tiles

    if out.size == 0:
        return
    G = spec.groups
    cig, cog = spec.c_in // G, spec.c_out // G
    kd, kh, kw = spec.lifted("kernel")
    K = kd * kh * kw
    b = ops.b if ops.b is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    cblk, nrows = gemm_tiles(spec, get_config().workspace_limit, num_threads)
    if ops.x.size == 0 or nrows < spec.lifted("in_spatial")[0] * spec.lifted("in_spatial")[1]:
        out[...] = b.reshape(1, -1, 1, 1, 1)  # several row blocks add into it
    if ops.x.size == 0:
        return
    # W_g^T: (cog*K, cig), rows ordered (co, tap) as col2im reads them; a
    # transposed copy only when channel blocks need row slices of it (numpy's
    # copy of the transposed 256x2048 weight of a 4x4 layer took 1.7 ms)
    wg = ops.w.reshape(G, cig, cog * K)
    if cblk < cog:
        wt = np.ascontiguousarray(wg.transpose(0, 2, 1))
    else:
        wt = np.empty((1, 1, 1), dtype=spec.dtype)
    units = spec.n * G * -(-cog // cblk)
    nparts = max(1, min(units, num_threads))
    geometry = (*spec.lifted("stride"), *spec.lifted("dilation"), *spec.lifted("pad_lo"))
    cols, xcopy, plane = gemm_buffers(spec, get_config().workspace_limit, num_threads)
    colbuf = scratch("transpose_cols", (nparts, cols), spec.dtype)
    xtbuf = scratch("transpose_x", (nparts, xcopy), spec.dtype)
    accbuf = scratch("transpose_acc", (nparts, plane), spec.dtype)
    with blas_threads(1), numba_threads(num_threads):
        transpose_gemm_kernel(ops.x, wg, wt, b, out, G, geometry, (kd, kh, kw), _kw_tables(spec), cblk, nrows, colbuf,
                              xtbuf, accbuf, nparts,
                              TRANSPOSE_GEMM_PART.address(transpose_gemm_kernel_part, spec.dtype))  # fmt: skip
