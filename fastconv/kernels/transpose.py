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
:mod:`fastconv.kernels.transpose_plan`; each phase runs through the
convolution dispatcher (direct, im2col, Winograd, FFT: whichever it picks for
that stride-1 shape) into a scratch array that is copied into the strided
output positions.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._config import numba_jit, numba_threads
from .direct import _axpy, _fill

_BLOCK = 8  # output channels per work item: the input row is read once for 8


@numba_jit(parallel=True)
def conv_transpose_direct_kernel(x, w, b, out, groups, geometry, nparts):
    """out[n, co, od, oh, ow] = b[co] + sum over (ci, kd, kh, kw) with
    o + p == i*s + k*d of x[n, ci, id, ih, iw] * w[ci, co % cog, kd, kh, kw]."""
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
    for part in prange(nparts):
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
        conv_transpose_direct_kernel(ops.x, ops.w, b, out, spec.groups, geometry, nparts)


def subpixel_weight(spec, w: np.ndarray, phase) -> np.ndarray:
    """The phase's convolution weight (C_out, C_in/g, taps...) from the
    transposed weight (C_in, C_out/g, KD, KH, KW)."""
    g = spec.groups
    cig, cog = spec.c_in // g, spec.c_out // g
    taps = [(0,)] * (3 - spec.nd) + [a.taps for a in phase.axes]
    sub = w[:, :, list(taps[0])][:, :, :, list(taps[1])][:, :, :, :, list(taps[2])]
    sub = sub.reshape(g, cig, cog, *sub.shape[2:]).swapaxes(1, 2)
    return np.ascontiguousarray(sub.reshape(spec.c_out, cig, *sub.shape[3:]))


def conv_transpose_subpixel(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Run each output phase as a stride-1 convolution (chosen by the
    convolution dispatcher) and copy it into its strided output positions."""
    from .._spec import ConvOperands
    from ..dispatch import select
    from .transpose_plan import phases

    if out.size == 0:
        return
    lift = 3 - spec.nd
    strides = spec.lifted("stride")
    for ph in phases(spec):
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
        plan = select(ph.spec, sub_ops)
        if dst.flags.c_contiguous:
            plan.run(sub_ops, dst)
        else:
            scratch = np.empty(dst.shape, dtype=spec.dtype)
            plan.run(sub_ops, scratch)
            dst[...] = scratch


@numba_jit(parallel=True)
def col2im_add(cols, out, n, co0, r0, nrows, in_shape, geometry, kshape):
    """out[n, co0 + c, o...] += cols[c*K + tap, pos] for every tap and input
    position pos in input rows [r0, r0 + nrows) (row = id*IH + ih); parallel
    over the output channels, so no two threads touch the same output."""
    _ID, IH, IW = in_shape
    sd, sh, sw, dd, dh, dw, pd, ph, pw = geometry
    KD, KH, KW = kshape
    K = KD * KH * KW
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    ncols = nrows * IW
    of = out.reshape(-1)
    cf = cols.reshape(-1)
    for c in prange(cols.shape[0] // K):
        co = co0 + c
        for tap in range(K):
            kw = tap % KW
            kh = (tap // KW) % KH
            kd = tap // (KW * KH)
            src = (c * K + tap) * ncols
            # input columns whose output column lies inside [0, OW)
            e = kw * dw - pw
            lo = 0 if e >= 0 else (-e + sw - 1) // sw
            hi = min(IW, (OW - 1 - e) // sw + 1) if OW - 1 - e >= 0 else 0
            for rr in range(nrows):
                r = r0 + rr
                idd = r // IH
                ih = r - idd * IH
                o_d = idd * sd - pd + kd * dd
                o_h = ih * sh - ph + kh * dh
                if o_d < 0 or o_d >= OD or o_h < 0 or o_h >= OH:
                    continue
                ob = (((n * out.shape[1] + co) * OD + o_d) * OH + o_h) * OW + e
                sb = src + rr * IW
                if sw == 1:
                    for iw in range(lo, hi):
                        of[ob + iw] += cf[sb + iw]
                else:
                    for iw in range(lo, hi):
                        of[ob + iw * sw] += cf[sb + iw]


def conv_transpose_gemm(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """GEMM + col2im: ``cols = W_g^T @ x[n, g]`` (every tap of every output
    channel for a block of input rows, one BLAS GEMM), then col2im adds the
    columns into the output.  Exactly the transposed convolution's FLOPs, in
    BLAS; the column block is sized to ``workspace_limit``."""
    from .._config import blas_threads, get_config
    from .transpose_plan import gemm_rows

    if out.size == 0:
        return
    x = ops.x
    G = spec.groups
    cig, cog = spec.c_in // G, spec.c_out // G
    kshape = spec.lifted("kernel")
    K = kshape[0] * kshape[1] * kshape[2]
    ID, IH, IW = spec.lifted("in_spatial")
    # W_g^T: (cog*K, cig), rows ordered (co, tap) as col2im reads them
    wt = np.ascontiguousarray(ops.w.reshape(G, cig, cog * K).transpose(0, 2, 1))
    out[...] = 0 if ops.b is None else ops.b.reshape(1, -1, 1, 1, 1)
    if x.size == 0:
        return
    rows = ID * IH
    nrows = gemm_rows(spec, get_config().workspace_limit)
    cols = np.empty(cog * K * nrows * IW, dtype=spec.dtype)
    geometry = (*spec.lifted("stride"), *spec.lifted("dilation"), *spec.lifted("pad_lo"))
    xin = x.reshape(spec.n, spec.c_in, rows * IW)
    for n in range(spec.n):
        for g in range(G):
            for r0 in range(0, rows, nrows):
                nr = min(nrows, rows - r0)
                c = cols[: cog * K * nr * IW].reshape(cog * K, nr * IW)
                with blas_threads(num_threads):
                    np.matmul(wt[g], xin[n, g * cig : (g + 1) * cig, r0 * IW : (r0 + nr) * IW], out=c)
                with numba_threads(num_threads):
                    col2im_add(c, out, n, g * cog, r0, nr, (ID, IH, IW), geometry, kshape)
