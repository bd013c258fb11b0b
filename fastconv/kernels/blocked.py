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
from numba import prange

from .._config import numba_jit, numba_threads, scratch, serial_below, serial_copy
from .direct import _U, _copy, _fill, _gather, _inline, pack_weights
from .microkernel import NV, OB, block_mac, block_mac1, block_mac2, positions, quad_mac, quad_mac1, quad_mac2

_SPAN = 768  # most output positions (of one channel) per work item
_ACC_BYTES = 256 << 10  # most partial sums per work item (all channel blocks)
_CHUNK = 128  # about this many taps per micro-kernel call
# longest work items whose busiest thread has at most this many times the
# fewest runs any item length gives it (measured, 2 threads: 4 -> 16 runs per
# item on conv1d 32 k9 (0.6% more runs on one thread) 0.76-0.87 of the time)
_BALANCE = 1.04
# problems of fewer FLOPs run on the calling thread alone: a parallel launch
# under Numba's workqueue layer costs 0.14-0.2 ms (measured, conv1d, 2
# threads: 0.8 MFLOP 0.40 -> 0.18 ms, 6 MFLOP 0.49 -> 0.29, 25 MFLOP
# 0.98 -> 0.80, 50 MFLOP 1.32 -> 1.84); an eighth of it under omp/tbb
# (see serial_below)
_SERIAL_FLOPS = 32e6
_WINDOW_RUNS = 8  # least runs per output plane for per-item windows (plane_windows)
# most bytes of one item's window, unless it holds a single run (3x3/2 128
# @56, 2 threads: 1.1 MB windows of 9 runs 0.87 of the time of 0.23 MB ones
# of 1 run, stem 0.93, others within 2%)
_WINDOW_BYTES = 2 << 20


def oc_blocks(spec, ob: int = OB) -> int:
    """Blocks of ``ob`` output channels per group (the last one partial when
    ``ob`` does not divide the group's channels)."""
    return -(-(spec.c_out // spec.groups) // ob)


def block_channels(spec) -> int:
    """Output channels per micro-kernel block of the convolution ``spec``:
    OB, or 4 for groups of at most 4 output channels (ResNeXt's 32x4d),
    where blocks of 8 would compute as many zeros as outputs."""
    return min(OB, 4) if spec.c_out // spec.groups <= 4 else OB


_SHIFTED = 1.08  # least ratio of computed work (phase-split / shifted) to run a stride-1 convolution shifted


def shifted(spec):
    """The stride-1 transposed convolution a stride-1 convolution runs as
    (:func:`.transpose_blocked.conv_stride1`), or None.  Its layout puts the
    images' rows side by side, sharing their padding, so small planes compute
    fewer padding columns and rounded-up runs (7x7: 8/7 instead of 9/7 of the
    work); it is used when that saves at least 1 - 1/_SHIFTED of the
    micro-kernel's work, because on planes where both compute about the
    same, it measured 4-9% slower (64 @56, 32 @32, conv1d; not understood)."""
    return _shifted(spec, _SHIFTED)


@functools.lru_cache(maxsize=256)
def _shifted(spec, least: float):
    if not all(s == 1 for s in spec.stride):
        return None
    from . import transpose_blocked

    t = transpose_blocked.conv_as_transposed(spec)
    if computed_flops(spec) < least * transpose_blocked.computed_flops(t, spec.n):
        return None
    return t


@functools.lru_cache(maxsize=256)
def geometry(spec) -> tuple[int, ...]:
    """(Dp, Hq, Wq, phases): padded depth, phase-plane height and width, and
    the number of (row, column) stride phases."""
    sd, sh, sw = spec.lifted("stride")
    dd, dh, dw = spec.lifted("dilation")
    kd, kh, kw = spec.lifted("kernel")
    od, oh, ow = spec.lifted("out_spatial")
    return (od - 1) * sd + (kd - 1) * dd + 1, oh + (kh - 1) * dh // sh, ow + (kw - 1) * dw // sw, sh * sw


@functools.lru_cache(maxsize=256)
def vectors(spec) -> int:
    """Vectors of positions per micro-kernel call for ``spec``'s planes."""
    oh = spec.lifted("out_spatial")[1]
    return vectors_for(oh * geometry(spec)[2], np.dtype(spec.dtype).itemsize)


def vectors_for(npos: int, itemsize: int) -> int:
    """Vectors of positions per micro-kernel call (1..NV) on a plane of
    ``npos`` positions: the widest whose runs, rounded up per plane, cover at
    most 3% more positions than the narrowest (a 7x7 plane is 63 positions
    with its padding columns: one 16-wide vector per run computes 64, three
    compute 96)."""
    covered = {nv: -(-npos // positions(itemsize, nv)) * positions(itemsize, nv) for nv in range(1, NV + 1)}
    least = min(covered.values())
    return max(nv for nv, c in covered.items() if c <= 1.03 * least)


@functools.lru_cache(maxsize=256)
def runs(spec) -> tuple[int, int]:
    """(tb, nrun): positions per micro-kernel call, and calls (runs) per output
    plane, the plane's positions (padding columns included) rounded up."""
    oh = spec.lifted("out_spatial")[1]
    tb = positions(np.dtype(spec.dtype).itemsize, vectors(spec))
    return tb, -(-(oh * geometry(spec)[2]) // tb)


def image_elements(spec) -> int:
    """Elements of one image's padded, phase-split copy."""
    dp, hq, wq, phases = geometry(spec)
    return spec.c_in * dp * phases * hq * wq


def slack(spec) -> int:
    """Elements after the last plane of the padded copy: the last run of a
    plane reads up to one run plus the plane's padding columns past its end
    (only for positions that are dropped; zeroed)."""
    return positions(np.dtype(spec.dtype).itemsize) + geometry(spec)[2]


def _channels(spec) -> int:
    """Output channels per group rounded up to whole micro-kernel blocks
    (:func:`block_channels`): the rows of the packed weights and of the
    partial sums."""
    ob = block_channels(spec)
    return oc_blocks(spec, ob) * ob


def _weight_bytes(spec) -> int:
    """Bytes of the packed weights."""
    return spec.groups * _channels(spec) * _taps(spec) * np.dtype(spec.dtype).itemsize


def _fixed_bytes(spec, threads: int) -> int:
    """Workspace besides the padded images: the packed weights, each thread's
    partial sums (at most _ACC_BYTES) and the slack after the last plane."""
    item = np.dtype(spec.dtype).itemsize
    acc = max(_ACC_BYTES, _channels(spec) * runs(spec)[0] * item)  # at least one run
    return _weight_bytes(spec) + threads * acc + slack(spec) * item


def images_per_block(spec, limit: int, threads: int) -> int:
    """Images whose padded copy fits the workspace limit together (0: not even
    one).  conv1d copies no image (:func:`windowed`): all of them, or 0 when
    its weights and windows do not fit."""
    if windowed(spec):
        return spec.n if _windowed_bytes(spec, threads) <= limit else 0
    t = shifted(spec)
    if t is not None:
        from . import transpose_blocked

        return transpose_blocked.images_per_block(t, limit, threads)
    if plane_windows(spec):
        return spec.n if _plane_window_bytes(spec, threads) <= limit else 0
    per_image = image_elements(spec) * np.dtype(spec.dtype).itemsize
    room = limit - _fixed_bytes(spec, threads)
    return max(0, min(spec.n, room // max(per_image, 1)))


def workspace(spec, limit: int, threads: int) -> int:
    if windowed(spec):
        return _windowed_bytes(spec, threads)
    t = shifted(spec)
    if t is not None:
        from . import transpose_blocked

        return transpose_blocked.workspace(t, limit, threads)
    if plane_windows(spec):
        return _plane_window_bytes(spec, threads)
    nimg = max(1, images_per_block(spec, limit, threads))
    return nimg * image_elements(spec) * np.dtype(spec.dtype).itemsize + _fixed_bytes(spec, threads)


def computed_flops(spec) -> int:
    """FLOPs the micro-kernel runs: whole blocks of output channels
    (:func:`block_channels`) and of positions, the plane's padding columns
    included."""
    tb, nrun = runs(spec)
    return 2 * spec.n * spec.lifted("out_spatial")[0] * nrun * tb * spec.groups * _channels(spec) * _taps(spec)


def calls(spec) -> int:
    """Micro-kernel calls: per run of a plane, group, block of output
    channels and chunk of taps (each call stores or adds its partial sums)."""
    planes = spec.n * spec.lifted("out_spatial")[0]
    chunks = -(-_taps(spec) // taps_per_chunk(spec))
    return planes * runs(spec)[1] * spec.groups * oc_blocks(spec, block_channels(spec)) * chunks


def _taps(spec) -> int:
    kd, kh, kw = spec.lifted("kernel")
    return spec.c_in // spec.groups * kd * kh * kw


def runs_per_item(spec, nimg: int, threads: int) -> int:
    """Runs of positions per work item for a block of ``nimg`` images."""
    tb, nrun = runs(spec)
    total = nimg * spec.lifted("out_spatial")[0] * nrun * spec.groups
    return share_runs(total, _channels(spec), tb, np.dtype(spec.dtype).itemsize, threads)


def share_runs(
    total: int, channels: int, tb: int, itemsize: int, threads: int, acc_bytes: int | None = None, rows: int = 1
) -> int:
    """Runs (of ``tb`` positions) per work item out of ``total`` (in each of
    ``rows`` rows that no item crosses): at most _SPAN positions, few enough
    that the partial sums of ``channels`` stay within ``acc_bytes`` (default
    _ACC_BYTES), and dividing the runs about evenly among the threads (the
    longest items within _BALANCE)."""
    acc_bytes = _ACC_BYTES if acc_bytes is None else acc_bytes
    most = max(1, min(_SPAN // tb, acc_bytes // (channels * tb * itemsize), total))
    # items are split into equal contiguous shares: the largest run count
    # whose busiest thread has at most _BALANCE times the runs of the best
    # choice (longer items reuse each chunk of weights over more runs; but
    # measured: 7 items on 2 threads cost 12% on a 256-channel 14x14 layer)
    share = {}
    for rpi in range(1, most + 1):
        items = rows * -(-total // rpi)
        share[rpi] = -(-items // threads) * rpi  # runs of the busiest thread
    least = min(share.values())
    return max(rpi for rpi, v in share.items() if v <= _BALANCE * least)


def taps_per_chunk(spec) -> int:
    """Taps (input channel x kernel tap) per micro-kernel call: whole input
    channels, about _CHUNK taps, so a run's input window stays in L1."""
    kd, kh, kw = spec.lifted("kernel")
    taps = kd * kh * kw
    return max(1, _CHUNK // taps) * taps


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
def _blocked_kernel(xp, wp, xoff, b, out, c_in, groups, sd, dp, phases, hq, wq, nv, tb, rpi, rchunk, nparts):
    """out[n, co, od, oh, ow] = b[co] + sum_taps wp * xp, one micro-kernel call
    per (chunk of ``rchunk`` taps, run of ``tb`` = ``nv`` vectors of positions
    of a plane, block of ``ob`` = OB or 4 channels: the packed weights' last
    axis).  An item is ``rpi`` consecutive runs of
    one group (over planes and images, so small planes still share the
    weights); per chunk of taps, each run's input window (a few kB) stays in
    L1 while every block of channels passes over it, the chunk's weights in
    L2, and the partial sums of all blocks accumulate in ``acc``."""
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
    for part in prange(nparts):
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


def windowed(spec) -> bool:
    """Whether ``spec`` runs on per-item input windows (:func:`_windowed_kernel`):
    conv1d, whose padded copy is only the rows (split by stride phase) with
    their padding."""
    sizes = (spec.n, spec.c_in, spec.c_out, spec.out_spatial[0]) if spec.nd == 1 else (0,)
    return min(sizes) > 0  # (empty problems: the general path's guards)


def _halo(spec) -> int:
    """Window elements per stride phase past the item's positions."""
    return (spec.kernel[0] - 1) * spec.dilation[0] // spec.stride[0]


def windowed_runs(spec, threads: int) -> tuple[int, int, int]:
    """(tb, nrun, rpi) of the windowed path: positions per micro-kernel call,
    runs per output row, runs per work item (items never cross rows)."""
    item = np.dtype(spec.dtype).itemsize
    ow = spec.out_spatial[0]
    tb = positions(item, vectors_for(ow, item))
    nrun = -(-ow // tb)
    return tb, nrun, share_runs(nrun, _channels(spec), tb, item, threads, rows=spec.n * spec.groups)


def _windowed_bytes(spec, threads: int) -> int:
    """Packed weights and, per thread, one item's input window and partial sums."""
    item = np.dtype(spec.dtype).itemsize
    tb, _, rpi = windowed_runs(spec, threads)
    window = spec.c_in // spec.groups * spec.stride[0] * (rpi * tb + _halo(spec))
    return _weight_bytes(spec) + threads * (window + _channels(spec) * rpi * tb) * item


@numba_jit(parallel=True)
def _windowed_kernel(x, wp, xoff, b, out, groups, pad, st, lw, nv, tb, rpi, rchunk, nparts):
    """conv1d with no padded copy of the whole input: each work item (``rpi``
    runs of ``tb`` output positions of one row: image and group) first
    copies its input window -- per input channel of the group and stride
    phase ``a``, the ``lw`` = rpi*tb + halo elements ``xpad[(r0*tb + j)*st +
    a]``, zero outside the row -- into a buffer of its thread, then runs the
    micro-kernel over it (tap (c, k) at ``xoff = (c*st + k*dil % st)*lw +
    k*dil // st``) as ``_blocked_kernel`` does over the padded copy, and
    stores the partial sums with the bias.  One pass over the input instead
    of a copy pass and a read pass, each window read from L2 right after it
    was written, and one parallel launch instead of two."""
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
    for part in prange(nparts):
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


def plane_windows(spec) -> bool:
    """Whether a 2-D/3-D ``spec`` runs on per-item windows of rows
    (:func:`_plane_window_kernel`) instead of one padded copy of the images
    (:func:`_pad_split`, then :func:`_blocked_kernel`): planes of at least
    _WINDOW_RUNS runs.  Measured (2 threads, 3x3/2 128 @56): the copy pass
    ran 2.4x slower followed by the kernel than alone, the kernel 1.4x (the
    copy written by one core, read by the other, 14 MB through L3, and two
    parallel launches)."""
    if spec.nd == 1 or min(spec.n, spec.c_in, spec.c_out, *spec.out_spatial) == 0:
        return False
    return runs(spec)[1] >= _WINDOW_RUNS


def window_geometry(spec) -> tuple[int, int, int, int]:
    """(tb, nrun, rpi, hw): positions per micro-kernel call, runs per output
    plane, runs per work item (items never cross planes), and rows of each
    phase plane an item's window holds (its runs, the first one's row from
    column 0, and the kernel's reach below)."""
    return _window_geometry(spec, _SPAN, _ACC_BYTES, _WINDOW_BYTES)


@functools.lru_cache(maxsize=256)
def _window_geometry(spec, span: int, acc_bytes: int, window_bytes: int) -> tuple[int, int, int, int]:
    item = np.dtype(spec.dtype).itemsize
    tb, nrun = runs(spec)
    # a plane's runs in the fewest items of at most _SPAN positions and
    # _ACC_BYTES of partial sums, split evenly (every item copies its rows
    # and the kernel's reach below them: one run per item, which
    # share_runs would pick for an odd run count, copied 2.3-3.4x the input);
    # and fewer runs while the window passes _WINDOW_BYTES
    _, sh, sw = spec.lifted("stride")
    _, dh, dw = spec.lifted("dilation")
    kd, kh, kw = spec.lifted("kernel")
    _, _, wq, phases = geometry(spec)
    reach = ((kh - 1) * dh // sh) * wq + (kw - 1) * dw // sw
    per_row = spec.c_in // spec.groups * kd * phases * wq * item  # window bytes per row

    def rows(rpi: int) -> int:
        return (wq - 1 + rpi * tb + reach) // wq + 1

    most = max(1, min(span // tb, acc_bytes // (_channels(spec) * tb * item)))
    k = -(-nrun // most)
    while -(-nrun // k) > 1 and rows(-(-nrun // k)) * per_row > window_bytes:
        k += 1
    rpi = -(-nrun // k)
    return tb, nrun, rpi, rows(rpi)


def _window_elements(spec) -> int:
    """Elements of one item's window: per input channel of a group, depth tap
    and stride phase, ``hw`` rows of ``Wq``."""
    kd = spec.lifted("kernel")[0]
    _, _, _, hw = window_geometry(spec)
    return spec.c_in // spec.groups * kd * geometry(spec)[3] * hw * geometry(spec)[2]


@functools.lru_cache(maxsize=256)
def used_phases(spec) -> np.ndarray:
    """used[a, b]: whether some tap reads stride phase (a, b) -- all of them
    unless the kernel is smaller than the stride (1x1/2: only (0, 0), a
    quarter of the window to copy).  Cached per shape: callers only read it."""
    _, sh, sw = spec.lifted("stride")
    _, dh, dw = spec.lifted("dilation")
    _, kh, kw = spec.lifted("kernel")
    used = np.zeros((sh, sw), np.bool_)
    rows = {(i * dh) % sh for i in range(kh)}
    cols = {(j * dw) % sw for j in range(kw)}
    for a in rows:
        for b in cols:
            used[a, b] = True
    return used


def splits_rows(spec) -> bool:
    """Whether the window kernel copies stride-2 input rows into both column
    phases in one pass (:func:`_split_row`): every input column has its
    place in a phase row of ``Wq``."""
    pw = spec.kernel_pad_lo[-1]
    return (spec.lifted("in_spatial")[2] - 1 + pw) // 2 < geometry(spec)[2]


def gathered_share(spec) -> float:
    """The share of an item's copied window (:func:`plane_windows`; 0 on the
    other paths) that is gathered column by column at the stride (a row
    phase whose columns are not split in one pass: 1x1/2 reads one phase of
    every other row) -- measured: 1x1/2 256->512 @56 ran 1.3x the time of
    the same layer on a stride-1 copy of its input with the same FLOPs and
    copied elements."""
    sw = spec.lifted("stride")[2]
    if sw == 1 or not plane_windows(spec):
        return 0.0
    used = used_phases(spec)
    split = sw == 2 and splits_rows(spec)
    gathered = sum(int(row.sum()) for row in used if not (split and row.all()))
    return gathered / max(1, int(used.sum()))


def copied_elements(spec, threads: int) -> tuple[int, int]:
    """Elements the method copies before its micro-kernel reads them: (into
    the padded copy of the images, into work items' windows) -- conv1d's
    (:func:`windowed`) and 2-D/3-D planes' (:func:`plane_windows`) windows
    hold each item's rows and the kernel's reach past them."""
    if windowed(spec):
        tb, nrun, rpi = windowed_runs(spec, threads)
        items = spec.groups * spec.n * -(-nrun // rpi)
        return 0, items * spec.c_in // spec.groups * spec.stride[0] * (rpi * tb + _halo(spec))
    if plane_windows(spec):
        _, nrun, rpi, _ = window_geometry(spec)
        items = spec.groups * spec.n * spec.lifted("out_spatial")[0] * -(-nrun // rpi)
        used = used_phases(spec)
        return 0, items * _window_elements(spec) * int(used.sum()) // used.size
    return spec.n * image_elements(spec), 0


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


def _plane_window_bytes(spec, threads: int) -> int:
    """Packed weights and, per thread, one item's window and partial sums."""
    tb, _, rpi, _ = window_geometry(spec)
    per_thread = _window_elements(spec) + _channels(spec) * rpi * tb
    return _weight_bytes(spec) + threads * per_thread * np.dtype(spec.dtype).itemsize


@numba_jit(parallel=True)
def _plane_window_kernel(
    x, wp, xoff, b, out, groups, sd, sh, sw, dd, pd, ph, pw, kd, hw, wq, used, split, nv, tb, rpi, rchunk, nparts
):
    """conv2d/3d with no padded copy of the whole input: each work item
    (``rpi`` runs of ``tb`` positions of one output plane: group, image,
    depth) first copies its window -- per input channel of the group, depth
    tap ``a`` and stride phase, the ``hw`` padded phase rows from the row of
    its first position, ``Wq`` wide (as :func:`_pad_split` lays them out) --
    into a buffer of its thread, then runs the micro-kernel over it as
    :func:`_blocked_kernel` does over the padded copy, and stores the
    partial sums with the bias.  Phases no tap reads (``used``, see
    :func:`used_phases`) are not copied; ``split`` (:func:`splits_rows`):
    stride-2 rows go into both column phases in one pass."""
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
    for part in prange(nparts):
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


def _conv_windowed(spec, ops, out: np.ndarray, num_threads: int) -> None:
    item = np.dtype(spec.dtype).itemsize
    tb, nrun, rpi = windowed_runs(spec, num_threads)
    lw = rpi * tb + _halo(spec)
    cig = spec.c_in // spec.groups
    st = spec.stride[0]
    reach = np.arange(spec.kernel[0]) * spec.dilation[0]
    xoff = ((np.arange(cig, dtype=np.int64)[:, None] * st + reach % st) * lw + reach // st).reshape(-1)
    b = ops.b if ops.b is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    items = spec.groups * spec.n * -(-nrun // rpi)
    nv = tb // positions(item, 1)
    pad = spec.kernel_pad_lo[2]
    with numba_threads(num_threads):
        wp = pack_weights(ops.w, spec.groups, block_channels(spec), name="blocked_w")
        _serial(spec, _windowed_kernel)(
            ops.x, wp, xoff, b, out, spec.groups, pad, st, lw, nv, tb, rpi, taps_per_chunk(spec),
            max(1, min(num_threads, items)),
        )  # fmt: skip


def _conv_plane_windows(spec, ops, out: np.ndarray, num_threads: int) -> None:
    tb, nrun, rpi, hw = window_geometry(spec)
    sd, sh, sw = spec.lifted("stride")
    pd, ph, pw = spec.kernel_pad_lo
    wq = geometry(spec)[2]
    b = ops.b if ops.b is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    items = spec.groups * spec.n * spec.lifted("out_spatial")[0] * -(-nrun // rpi)
    with numba_threads(num_threads):
        wp = pack_weights(ops.w, spec.groups, block_channels(spec), name="blocked_w")
        _serial(spec, _plane_window_kernel)(
            ops.x, wp, tap_offsets(spec, hw), b, out, spec.groups, sd, sh, sw, spec.lifted("dilation")[0], pd,
            ph, pw, spec.lifted("kernel")[0], hw, wq, used_phases(spec), splits_rows(spec), vectors(spec), tb, rpi,
            taps_per_chunk(spec), max(1, min(num_threads, items)),
        )  # fmt: skip


def conv_blocked(spec, ops, out: np.ndarray, num_threads: int, *, limit: int | None = None) -> None:
    """Run the register-blocked direct method for ``spec`` into the
    C-contiguous 5-D ``out``."""
    from .._config import get_config

    x, w = ops.x, ops.w
    if shifted(spec) is not None:
        from .transpose_blocked import conv_stride1

        conv_stride1(spec, ops, out, num_threads, limit=limit)
        return
    if out.size == 0:
        return
    b = ops.b if ops.b is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    if _small(spec):
        num_threads = 1
    if windowed(spec):
        _conv_windowed(spec, ops, out, num_threads)
        return
    if plane_windows(spec):
        _conv_plane_windows(spec, ops, out, num_threads)
        return
    limit = get_config().workspace_limit if limit is None else limit
    nimg = images_per_block(spec, limit, num_threads)
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
                taps_per_chunk(spec), nparts,
            )  # fmt: skip
