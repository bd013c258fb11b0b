"""Register-blocked direct convolution: no columns, no BLAS.

The input is copied once into a zero-padded, stride-phase-split layout
``xp[n, c, dz, a, b, i, j] = xpad[n, c, dz, i*sh + a, j*sw + b]`` (planes of
``Hq x Wq``).  In that layout every tap ``(c, kd, kh, kw)`` of every output
position ``p = oh*Wq + ow`` of a plane reads ``xp[base + p + xoff[tap]]``: the
taps of a run of consecutive positions are consecutive elements, whatever
the stride or dilation.  So a block of ``OB`` (or 4) output channels x ``nv*lanes``
consecutive positions is one call of the register-blocked micro-kernel
(:mod:`.microkernel`): the sum over all ``C_in/groups * taps`` inputs with the
accumulators held in vector registers, then copied into ``out`` with the
bias (positions ``ow >= OW``, computed on the plane's padding columns, are
dropped: ``Wq/OW`` of the work, 9/7 on a 7-wide image, 58/56 on a 56-wide).
``nv`` (1-3 vectors) is the widest that does not round a plane's positions
up much further than one vector would (small planes: 1).

Work items, run in parallel: runs of positions of one group, over planes
and images; each runs every block of output channels over its runs' input
windows, which stay in L1/L2 while the block's packed weights are reused.  Workspace: the padded copy of a
block of images (at most ``workspace_limit``) and the packed weights.

conv1d (:func:`windowed`) and 2-D/3-D planes of at least _WINDOW_RUNS runs
(:func:`plane_windows`) make no copy of the whole input: each work item
copies the part of that layout its runs read (a window of rows, per input
channel, depth tap and stride phase) into its thread's buffer, in the same
parallel launch as the micro-kernel that reads it.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import prange, types

from .._config import numba_jit, numba_threads, scratch, serial_below, serial_copy
from .._memo import ByValue
from ..plans.blocked import (
    _SERIAL_FLOPS,
    _halo,
    block_channels,
    choose_variant,
    conv_as_transposed,
    geometry,
    image_elements,
    images_per_block,
    runs,
    runs_per_item,
    slack,
    splits_rows,
    taps_per_chunk,
    used_phases,
    vectors,
    window_geometry,
    windowed_runs,
)
from ._link import BOOLS2, I64, Linkage, arrays, bias, ints, unit
from .direct import _U, _copy, _fill, _gather, _inline, pack_weights
from .microkernel import OB, block_mac, block_mac1, block_mac2, positions, quad_mac, quad_mac1, quad_mac2


@functools.lru_cache(maxsize=256)
def tap_offsets(spec, hw: int | None = None) -> np.ndarray:
    """xoff[(ci, kd, kh, kw)]: where each tap reads, relative to the output
    position's own index: in the padded copy (``Dp`` depth slices of ``Hq``
    rows per phase plane), or, given ``hw``, in an item's window (one depth
    slice per depth tap, ``hw`` rows per phase plane).  Cached per shape:
    callers only read it."""
    _, sh, sw = spec.lifted("stride")
    dd, dh, dw = spec.lifted("dilation")
    kd, kh, kw = spec.lifted("kernel")
    dp, hq, wq, phases = geometry(spec)
    depth, step, rows = (dp, dd, hq) if hw is None else (kd, 1, hw)
    plane = rows * wq
    ci = np.arange(spec.c_in // spec.groups).reshape(-1, 1, 1, 1)
    a = np.arange(kd).reshape(1, -1, 1, 1) * step
    bh = np.arange(kh).reshape(1, 1, -1, 1) * dh
    bw = np.arange(kw).reshape(1, 1, 1, -1) * dw
    off = (ci * depth + a) * phases * plane + ((bh % sh) * sw + bw % sw) * plane + (bh // sh) * wq + bw // sw
    return np.ascontiguousarray(off.reshape(-1), dtype=np.int64)


@numba_jit(parallel=True)
def _pad_split(x, xp, sd, sh, sw, pd, ph, pw, dp, hq, wq):
    """xp[n, c, dz, a, b, i, j] = x[n, c, dz - pd, i*sh + a - ph, j*sw + b - pw]
    (zero outside x), flat; the elements past the last plane are zeroed."""
    N, C, D, H, W = x.shape
    xf = x.reshape(-1)
    plane = hq * wq
    rows = N * C * dp
    for row in prange(rows):
        dz = row % dp
        nc = row // dp
        z = dz - pd
        for a in range(sh):
            for bb in range(sw):
                base = ((row * sh + a) * sw + bb) * plane
                lo, hi = _columns(W, wq, sw, bb, pw)
                for i in range(hq):
                    y = i * sh + a - ph
                    inside = 0 <= z < D and 0 <= y < H
                    _pad_row(
                        xp, base + i * wq, xf, ((nc * D + z) * H + y) * W + lo * sw + bb - pw, inside, lo, hi, wq, sw
                    )
    _fill(xp, rows * sh * sw * plane, xp.shape[0] - rows * sh * sw * plane, 0)


@_inline
def _columns(W, wq, sw, bb, pw):
    """(lo, hi): the columns j of a padded phase-``bb`` row of ``wq`` that hold
    input column j*sw + bb - pw (the others are padding)."""
    lo = 0 if bb >= pw else (pw - bb + sw - 1) // sw
    hi = max(lo, min(wq, (W - 1 + pw - bb) // sw + 1)) if W - 1 + pw - bb >= 0 else lo
    return lo, hi


@_inline
def _pad_row(dst, d, xf, src, inside, lo, hi, wq, sw):
    """dst[d + j] = xf[src + (j - lo)*sw] for lo <= j < hi, zero elsewhere in
    [0, wq) (all zero unless ``inside``): one padded, phase-split row
    (:func:`_window_row` with its padding columns zeroed)."""
    if inside:
        _fill(dst, d, lo, 0)
        _fill(dst, d + hi, wq - hi, 0)
    _window_row(dst, d, xf, src, inside, lo, hi, wq, sw)


@_inline
def _store_row(dst, d0, src, s0, n, bias):
    """dst[d0 + i] = src[s0 + i] + bias for i in [0, n)."""
    if n <= 0:
        return
    o = _U(d0)
    s = _U(s0)
    for i in range(_U(n)):
        dst[o + i] = src[s + i] + bias


@_inline
def _store_run(dst, obase, acc, src, p0, p1, wq, OW, bias):
    """dst[obase + oh*OW + ow] = acc[src + p] + bias for the positions p =
    oh*wq + ow in [p0, p1) of a plane of rows ``wq`` wide: those on the
    plane's padding columns (ow >= OW) are dropped."""
    p = p0
    while p < p1:
        oh = p // wq
        ow = p - oh * wq
        row_end = min(p1, (oh + 1) * wq)
        if ow < OW:
            _store_row(dst, obase + oh * OW + ow, acc, src + p, min(row_end, oh * wq + OW) - p, bias)
        p = row_end


@_inline
def _mac(ob, nv, x, xoff, xbase, wf, wbase, c0, c1, acc, obase, span):
    """The micro-kernel for a block of ``ob`` (OB or 4) channels x ``nv``
    vectors of positions over taps [c0, c1), adding to ``acc`` after the
    first chunk of taps (see :func:`.microkernel.make_block_mac`)."""
    if ob == OB:
        if nv == 3:
            block_mac(x, xoff, xbase, wf, wbase, c0, c1, acc, obase, span, c0 > 0)
        elif nv == 2:
            block_mac2(x, xoff, xbase, wf, wbase, c0, c1, acc, obase, span, c0 > 0)
        else:
            block_mac1(x, xoff, xbase, wf, wbase, c0, c1, acc, obase, span, c0 > 0)
    elif nv == 3:
        quad_mac(x, xoff, xbase, wf, wbase, c0, c1, acc, obase, span, c0 > 0)
    elif nv == 2:
        quad_mac2(x, xoff, xbase, wf, wbase, c0, c1, acc, obase, span, c0 > 0)
    else:
        quad_mac1(x, xoff, xbase, wf, wbase, c0, c1, acc, obase, span, c0 > 0)


@numba_jit(parallel=True)
def _blocked_kernel(xp, wp, xoff, b, out, c_in, groups, sd, dp, phases, hq, wq, nv, tb, rpi, rchunk, nparts, part_at):
    """out[n, co, od, oh, ow] = b[co] + sum_taps wp * xp, one micro-kernel call
    per (chunk of ``rchunk`` taps, run of ``tb`` = ``nv`` vectors of positions
    of a plane, block of ``ob`` = OB or 4 channels: the packed weights' last
    axis).  An item is ``rpi`` consecutive runs of
    one group (over planes and images, so small planes still share the
    weights); per chunk of taps, each run's input window (a few kB) stays in
    L1 while every block of channels passes over it, the chunk's weights in
    L2, and the partial sums of all blocks accumulate in ``acc``.

    Each part runs :func:`_blocked_kernel_part` at address ``part_at`` (:mod:`._link`:
    compiled once, not again in each of this kernel's modules and its serial
    build's)."""
    for part in prange(nparts):
        _call_blocked_kernel(
            part_at, (xp, wp, xoff, b, out, c_in, groups, sd, dp, phases, hq, wq, nv, tb, rpi, rchunk, nparts, part)
        )


BLOCKED_PART = Linkage(
    "blocked_kernel part", lambda dt: (types.none, (*arrays(dt, 1, 4), I64, bias(dt), *arrays(dt, 5), *ints(13)))
)
_call_blocked_kernel = BLOCKED_PART.call


@unit
def _blocked_kernel_part(xp, wp, xoff, b, out, c_in, groups, sd, dp, phases, hq, wq, nv, tb, rpi, rchunk, nparts, part):
    """Part ``part`` of ``nparts`` of :func:`_blocked_kernel`."""
    N, C_out, OD, OH, OW = out.shape
    nb = wp.shape[1]
    R = wp.shape[2]
    ob = wp.shape[3]
    cog = C_out // groups
    cig = c_in // groups
    npos = OH * wq
    nrun = (npos + tb - 1) // tb
    runs = N * OD * nrun
    nitem = (runs + rpi - 1) // rpi
    items = groups * nitem
    per_part = (items + nparts - 1) // nparts
    plane = hq * wq
    wf = wp.reshape(-1)
    of = out.reshape(-1)
    oplane = OH * OW
    span = rpi * tb
    acc = np.empty(nb * ob * span, out.dtype)
    for item in range(part * per_part, min(items, (part + 1) * per_part)):
        g = item // nitem
        r0 = (item % nitem) * rpi
        r1 = min(runs, r0 + rpi)
        for c0 in range(0, R, rchunk):
            c1 = min(R, c0 + rchunk)
            for gr in range(r0, r1):
                run = gr % nrun
                t = gr // nrun
                od = t % OD
                n = t // OD
                xbase = ((n * c_in + g * cig) * dp + od * sd) * phases * plane + run * tb
                for blk in range(nb):
                    wbase = (g * nb + blk) * R * ob
                    obase = blk * ob * span + (gr - r0) * tb
                    _mac(ob, nv, xp, xoff, xbase, wf, wbase, c0, c1, acc, obase, span)
        for blk in range(nb):
            for gr in range(r0, r1):
                run = gr % nrun
                t = gr // nrun
                od = t % OD
                n = t // OD
                p0 = run * tb
                p1 = min(npos, p0 + tb)
                for o in range(min(ob, cog - blk * ob)):
                    co = g * cog + blk * ob + o
                    obase = ((n * C_out + co) * OD + od) * oplane
                    src = (blk * ob + o) * span + (gr - r0) * tb - p0
                    _store_run(of, obase, acc, src, p0, p1, wq, OW, b[co])


@numba_jit(parallel=True)
def _windowed_kernel(x, wp, xoff, b, out, groups, pad, st, lw, nv, tb, rpi, rchunk, nparts, part_at):
    """conv1d with no padded copy of the whole input: each work item (``rpi``
    runs of ``tb`` output positions of one row: image and group) first
    copies its input window -- per input channel of the group and stride
    phase ``a``, the ``lw`` = rpi*tb + halo elements ``xpad[(r0*tb + j)*st +
    a]``, zero outside the row -- into a buffer of its thread, then runs the
    micro-kernel over it (tap (c, k) at ``xoff = (c*st + k*dil % st)*lw +
    k*dil // st``) as ``_blocked_kernel`` does over the padded copy, and
    stores the partial sums with the bias.  One pass over the input instead
    of a copy pass and a read pass, each window read from L2 right after it
    was written, and one parallel launch instead of two.

    Each part runs :func:`_windowed_kernel_part` at address ``part_at`` (:mod:`._link`:
    compiled once, not again in each of this kernel's modules and its serial
    build's)."""
    for part in prange(nparts):
        _call_windowed_kernel(part_at, (x, wp, xoff, b, out, groups, pad, st, lw, nv, tb, rpi, rchunk, nparts, part))


WINDOWED_PART = Linkage(
    "windowed_kernel part", lambda dt: (types.none, (*arrays(dt, 5, 4), I64, bias(dt), *arrays(dt, 5), *ints(10)))
)
_call_windowed_kernel = WINDOWED_PART.call


@unit
def _windowed_kernel_part(x, wp, xoff, b, out, groups, pad, st, lw, nv, tb, rpi, rchunk, nparts, part):
    """Part ``part`` of ``nparts`` of :func:`_windowed_kernel`."""
    N, C_in = x.shape[0], x.shape[1]
    L = x.shape[4]
    C_out = out.shape[1]
    OW = out.shape[4]
    nb = wp.shape[1]
    R = wp.shape[2]
    ob = wp.shape[3]
    cig = C_in // groups
    cog = C_out // groups
    nrun = (OW + tb - 1) // tb
    per_row = (nrun + rpi - 1) // rpi
    items = groups * N * per_row
    per_part = (items + nparts - 1) // nparts
    span = rpi * tb
    xf = x.reshape(-1)
    wf = wp.reshape(-1)
    of = out.reshape(-1)
    acc = np.empty(nb * ob * span, out.dtype)
    buf = np.empty(cig * st * lw, x.dtype)
    for item in range(part * per_part, min(items, (part + 1) * per_part)):
        row = item // per_row
        g = row // N
        n = row - g * N
        r0 = (item - row * per_row) * rpi
        r1 = min(nrun, r0 + rpi)
        p0 = r0 * tb
        for a in range(st):
            # window elements j with 0 <= (p0 + j)*st + a - pad < L
            lo = min(lw, max(0, -((a - pad) // st) - p0))
            hi = max(lo, min(lw, -((a - pad - L) // st) - p0))
            for c in range(cig):
                d = (c * st + a) * lw
                src = (n * C_in + g * cig + c) * L + (p0 + lo) * st + a - pad
                _fill(buf, d, lo, 0)
                if st == 1:
                    _copy(buf, d + lo, xf, src, hi - lo)
                else:
                    _gather(buf, d + lo, xf, src, hi - lo, st)
                _fill(buf, d + hi, lw - hi, 0)
        for c0 in range(0, R, rchunk):
            c1 = min(R, c0 + rchunk)
            for run in range(r0, r1):
                xbase = (run - r0) * tb
                for blk in range(nb):
                    wbase = (g * nb + blk) * R * ob
                    obase = blk * ob * span + (run - r0) * tb
                    _mac(ob, nv, buf, xoff, xbase, wf, wbase, c0, c1, acc, obase, span)
        for blk in range(nb):
            for o in range(min(ob, cog - blk * ob)):
                co = g * cog + blk * ob + o
                dst = (n * C_out + co) * OW
                src = (blk * ob + o) * span - p0
                for run in range(r0, r1):
                    q0 = run * tb
                    _store_row(of, dst + q0, acc, src + q0, min(OW, q0 + tb) - q0, b[co])


@_inline
def _window_row(dst, d, xf, src, inside, lo, hi, wq, sw):
    """One row of an item's window (:func:`_pad_row` on a buffer whose
    padding columns [0, lo) and [hi, wq) are zero from the start and never
    written): the input columns, or zeros for a row outside the input.
    Measured: the two short zero fills per row cost as much as a 56-element
    row copy."""
    if not inside:
        _fill(dst, d, wq, 0)
    elif sw == 1:
        _copy(dst, d + lo, xf, src, hi - lo)
    else:
        _gather(dst, d + lo, xf, src, hi - lo, sw)


@_inline
def _split_row(dst, d0, d1, xf, src, inside, W, wq, pw):
    """An input row (``W`` elements from ``src``) into its two column phases
    of a stride-2 window (rows at ``d0`` and ``d1``, padding columns zero
    and never written, as :func:`_window_row`): input column c goes to phase
    (c + pw) % 2 at (c + pw) // 2, in pairs of columns one loop takes as an
    interleaved load (measured: a stride-2 gather per phase row cost 26 ns
    a row of 29, 3.6 of 15.5 ms of 3x3/2 128 @56 on one thread)."""
    if not inside:
        _fill(dst, d0, wq, 0)
        _fill(dst, d1, wq, 0)
        return
    c0 = pw % 2  # first column of a pair (phase 0, then phase 1)
    if c0 == 1:
        dst[d1 + pw // 2] = xf[src]
    j0 = (c0 + pw) // 2
    npair = (W - c0) // 2
    o0 = _U(d0 + j0)
    o1 = _U(d1 + j0)
    s = _U(src + c0)
    two = _U(2)
    one = _U(1)
    for k in range(_U(npair)):
        dst[o0 + k] = xf[s + two * k]
        dst[o1 + k] = xf[s + two * k + one]
    if (W - c0) % 2:
        dst[d0 + (W - 1 + pw) // 2] = xf[src + W - 1]


@numba_jit(parallel=True)
def _plane_window_kernel(x, wp, xoff, b, out, groups, sd, sh, sw, dd, pd, ph, pw, kd, hw, wq, used, split, nv, tb, rpi,
                         rchunk, nparts, part_at):  # fmt: skip
    """conv2d/3d with no padded copy of the whole input: each work item
    (``rpi`` runs of ``tb`` positions of one output plane: group, image,
    depth) first copies its window -- per input channel of the group, depth
    tap ``a`` and stride phase, the ``hw`` padded phase rows from the row of
    its first position, ``Wq`` wide (as :func:`_pad_split` lays them out) --
    into a buffer of its thread, then runs the micro-kernel over it as
    :func:`_blocked_kernel` does over the padded copy, and stores the
    partial sums with the bias.  Phases no tap reads (``used``, see
    :func:`used_phases`) are not copied; ``split`` (:func:`splits_rows`):
    stride-2 rows go into both column phases in one pass.

    Each part runs :func:`_plane_window_kernel_part` at address ``part_at`` (:mod:`._link`:
    compiled once, not again in each of this kernel's modules and its serial
    build's)."""
    for part in prange(nparts):
        _call_plane_window_kernel(part_at, (x, wp, xoff, b, out, groups, sd, sh, sw, dd, pd, ph, pw, kd, hw, wq, used,
                                            split, nv, tb, rpi, rchunk, nparts, part))  # fmt: skip


PLANE_WINDOW_PART = Linkage(
    "plane_window_kernel part",
    lambda dt: (
        types.none,
        (*arrays(dt, 5, 4), I64, bias(dt), *arrays(dt, 5), *ints(11), BOOLS2, types.boolean, *ints(6)),
    ),
)
_call_plane_window_kernel = PLANE_WINDOW_PART.call


@unit
def _plane_window_kernel_part(
    x, wp, xoff, b, out, groups, sd, sh, sw, dd, pd, ph, pw, kd, hw, wq, used, split, nv, tb, rpi, rchunk, nparts, part
):
    """Part ``part`` of ``nparts`` of :func:`_plane_window_kernel`."""
    N, C_in, D, H, W = x.shape
    C_out, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    nb = wp.shape[1]
    R = wp.shape[2]
    ob = wp.shape[3]
    cig = C_in // groups
    cog = C_out // groups
    npos = OH * wq
    nrun = (npos + tb - 1) // tb
    per_plane = (nrun + rpi - 1) // rpi
    items = groups * N * OD * per_plane
    per_part = (items + nparts - 1) // nparts
    span = rpi * tb
    plane = hw * wq
    xf = x.reshape(-1)
    wf = wp.reshape(-1)
    of = out.reshape(-1)
    oplane = OH * OW
    acc = np.empty(nb * ob * span, out.dtype)
    buf = np.zeros(cig * kd * sh * sw * plane, x.dtype)  # padding columns stay zero
    for item in range(part * per_part, min(items, (part + 1) * per_part)):
        pl = item // per_plane
        g = pl // (N * OD)
        t = pl - g * (N * OD)
        n = t // OD
        od = t - n * OD
        r0 = (item - pl * per_plane) * rpi
        r1 = min(nrun, r0 + rpi)
        row0 = r0 * tb // wq
        for c in range(cig):
            for a in range(kd):
                z = od * sd + a * dd - pd
                for pa in range(sh):
                    if not used[pa, :].any():  # no tap reads this row phase (a kernel smaller than the stride)
                        continue
                    if sw == 2 and split and used[pa, 0] and used[pa, 1]:  # both column phases in one pass
                        base = ((c * kd + a) * sh + pa) * 2 * plane
                        for i in range(hw):
                            y = (row0 + i) * sh + pa - ph
                            inside = 0 <= z < D and 0 <= y < H
                            src = (((n * C_in + g * cig + c) * D + z) * H + y) * W
                            _split_row(buf, base + i * wq, base + plane + i * wq, xf, src, inside, W, wq, pw)
                        continue
                    for bb in range(sw):
                        if not used[pa, bb]:
                            continue
                        lo, hi = _columns(W, wq, sw, bb, pw)
                        base = (((c * kd + a) * sh + pa) * sw + bb) * plane
                        for i in range(hw):
                            y = (row0 + i) * sh + pa - ph
                            inside = 0 <= z < D and 0 <= y < H
                            src = (((n * C_in + g * cig + c) * D + z) * H + y) * W + lo * sw + bb - pw
                            _window_row(buf, base + i * wq, xf, src, inside, lo, hi, wq, sw)
        for c0 in range(0, R, rchunk):
            c1 = min(R, c0 + rchunk)
            for run in range(r0, r1):
                xbase = run * tb - row0 * wq
                for blk in range(nb):
                    wbase = (g * nb + blk) * R * ob
                    obase = blk * ob * span + (run - r0) * tb
                    _mac(ob, nv, buf, xoff, xbase, wf, wbase, c0, c1, acc, obase, span)
        for blk in range(nb):
            for o in range(min(ob, cog - blk * ob)):
                co = g * cog + blk * ob + o
                obase = ((n * C_out + co) * OD + od) * oplane
                for run in range(r0, r1):
                    p0 = run * tb
                    src = (blk * ob + o) * span + (run - r0) * tb - p0
                    _store_run(of, obase, acc, src, p0, min(npos, p0 + tb), wq, OW, b[co])


_SERIAL = {
    k: serial_copy(k, k.py_func.__name__ + "_serial")
    for k in (_pad_split, _blocked_kernel, _windowed_kernel, _plane_window_kernel)
}


def _small(spec) -> bool:
    """Too small to pay for a parallel launch (:data:`_SERIAL_FLOPS`, for the
    threading layer in use: :func:`serial_below`): one thread, serial builds
    of the kernels."""
    return spec.flops < serial_below(_SERIAL_FLOPS)


def _serial(spec, kernel):
    """``kernel``, or its serial build for a :func:`_small` ``spec``."""
    return _SERIAL[kernel] if _small(spec) else kernel


def _windowed_args(spec, num_threads: int) -> tuple:
    """The windowed kernel's arguments after ``(x, wp)``, before ``(b, out)``
    (``xoff``), and after ``out``: fixed by the spec and the threads."""
    item = np.dtype(spec.dtype).itemsize
    tb, nrun, rpi = windowed_runs(spec, num_threads)
    lw = rpi * tb + _halo(spec)
    cig = spec.c_in // spec.groups
    st = spec.stride[0]
    reach = np.arange(spec.kernel[0]) * spec.dilation[0]
    xoff = ((np.arange(cig, dtype=np.int64)[:, None] * st + reach % st) * lw + reach // st).reshape(-1)
    items = spec.groups * spec.n * -(-nrun // rpi)
    nv = tb // positions(item, 1)
    pad = spec.kernel_pad_lo[2]
    return xoff, (spec.groups, pad, st, lw, nv, tb, rpi, taps_per_chunk(spec), max(1, min(num_threads, items)),
                  WINDOWED_PART.address(_windowed_kernel_part, spec.dtype))  # fmt: skip


def _plane_window_args(spec, num_threads: int) -> tuple:
    """The plane-window kernel's arguments after ``(x, wp)``, before
    ``(b, out)`` (the tap offsets), and after ``out``."""
    tb, nrun, rpi, hw = window_geometry(spec)
    sd, sh, sw = spec.lifted("stride")
    pd, ph, pw = spec.kernel_pad_lo
    wq = geometry(spec)[2]
    items = spec.groups * spec.n * spec.lifted("out_spatial")[0] * -(-nrun // rpi)
    return tap_offsets(spec, hw), (
        spec.groups, sd, sh, sw, spec.lifted("dilation")[0], pd, ph, pw, spec.lifted("kernel")[0], hw, wq,
        used_phases(spec), splits_rows(spec), vectors(spec), tb, rpi, taps_per_chunk(spec),
        max(1, min(num_threads, items)), PLANE_WINDOW_PART.address(_plane_window_kernel_part, spec.dtype),
    )  # fmt: skip


_WINDOW_KERNELS = {
    "windowed": (_windowed_kernel, _windowed_args),
    "plane_windows": (_plane_window_kernel, _plane_window_args),
}


def prepare_blocked(spec, num_threads: int, variant: str | None = None):
    """The register-blocked runner for ``spec`` with what the spec decides
    bound once (a repeated call's: see ``Method.prepare``).  The window
    variants' launch arguments are computed here, and a small weight keeps
    its packing while its values stay: on a 4x16x16x16 3x3 layer (2-core
    Zen 3) the Python around the kernel was two thirds of the call, 0.2 of
    0.3 ms, a third of it packing the weights."""
    variant = variant or choose_variant(spec)
    if variant == "shifted":
        from . import transpose_blocked

        return transpose_blocked.prepare(conv_as_transposed(spec), num_threads, flip=True)
    if variant not in _WINDOW_KERNELS or spec.macs == 0:
        return lambda ops, out: conv_blocked(spec, ops, out, num_threads, variant=variant)
    if _small(spec):
        num_threads = 1
    kernel, make_args = _WINDOW_KERNELS[variant]
    kernel = _serial(spec, kernel)
    xoff, fixed = make_args(spec, num_threads)
    zeros = np.zeros(spec.c_out, dtype=spec.dtype)  # (no bias: shared by the calls, never written)
    groups, ob = spec.groups, block_channels(spec)
    packed = ByValue(lambda w: pack_weights(w, groups, ob))

    def run(ops, out: np.ndarray) -> None:
        b = ops.b if ops.b is not None else zeros
        with numba_threads(num_threads):
            wp = packed(ops.w) if ops.w.nbytes <= packed.limit else pack_weights(ops.w, groups, ob, name="blocked_w")
            kernel(ops.x, wp, xoff, b, out, *fixed)

    return run


def conv_blocked(
    spec, ops, out: np.ndarray, num_threads: int, *, limit: int | None = None, variant: str | None = None
) -> None:
    """Run the register-blocked direct method for ``spec`` into the
    C-contiguous 5-D ``out``: its ``variant`` (one of
    :data:`fastconv.plans.blocked.VARIANTS`; the plan's, or by default the
    one :func:`~fastconv.plans.blocked.choose_variant` picks)."""
    from .._config import get_config

    x, w = ops.x, ops.w
    variant = variant or choose_variant(spec)
    if variant == "shifted":
        from .transpose_blocked import conv_stride1

        conv_stride1(spec, ops, out, num_threads, limit=limit)
        return
    if out.size == 0:
        return
    b = ops.b if ops.b is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    if _small(spec):
        num_threads = 1
    if variant in _WINDOW_KERNELS:
        prepare_blocked(spec, num_threads, variant)(ops, out)
        return
    limit = get_config().workspace_limit if limit is None else limit
    nimg = images_per_block(spec, limit, num_threads, variant)
    if nimg == 0:
        raise ValueError("blocked: one image's padded copy exceeds workspace_limit")
    sd, sh, sw = spec.lifted("stride")
    pd, ph, pw = spec.kernel_pad_lo
    dp, hq, wq, phases = geometry(spec)
    xoff = tap_offsets(spec)
    nv = vectors(spec)
    tb, nrun = runs(spec)
    per_image = image_elements(spec)
    od = out.shape[2]
    with numba_threads(num_threads):
        wp = pack_weights(w, spec.groups, block_channels(spec), name="blocked_w")
        for n0 in range(0, spec.n, nimg):
            n1 = min(spec.n, n0 + nimg)
            xp = scratch("blocked_xp", ((n1 - n0) * per_image + slack(spec),), spec.dtype)
            _serial(spec, _pad_split)(x[n0:n1], xp, sd, sh, sw, pd, ph, pw, dp, hq, wq)
            rpi = runs_per_item(spec, n1 - n0, num_threads)
            items = spec.groups * -(-((n1 - n0) * od * nrun) // rpi)
            nparts = max(1, min(num_threads, items))
            _serial(spec, _blocked_kernel)(
                xp, wp, xoff, b, out[n0:n1], spec.c_in, spec.groups, sd, dp, phases, hq, wq, nv, tb, rpi,
                taps_per_chunk(spec), nparts, BLOCKED_PART.address(_blocked_kernel_part, spec.dtype),
            )  # fmt: skip
