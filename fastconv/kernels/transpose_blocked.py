"""Transposed convolution on the register-blocked micro-kernel: every output
phase a stride-1 sum over its own taps, all phases read from one padded copy.

Output ``o = q*s + r`` receives input ``i = q + e`` through tap ``k`` exactly
when ``e = (r + p - k*d) / s`` is an integer (see :mod:`.transpose`).
So for each phase ``r`` (one per axis) the outputs ``q = 0, 1, ...`` are a
stride-1 correlation of the input with that phase's taps, each reading the
input shifted by its ``e``.  One copy of the input, shifted by the smallest
``e`` and zero-padded, serves every phase: tap ``(ci, k)`` of phase ``r``
reads ``xp[base + p + xoff]`` for position ``p = qh*Wp + qw`` of a phase
plane, so a block of ``OB`` output channels x a run of consecutive positions
is one call of the micro-kernel (:mod:`.microkernel`) over the phase's taps
-- exactly the transposed convolution's multiply-adds, no inserted zeros, no
columns and no col2im -- and the run is stored into every ``s``-th output
element of its row.

The rows of a block of images lie side by side (``xp[c, z, y, n, j]``;
positions ``p = qh*pitch + n*Wp + qw``), and rows share their padding (the
zeros after one row are the zeros before the next): the row width ``Wp`` is
``Qw + (taps' reach) - (zeros needed before a row)`` rather than their sum,
so a 14-wide phase plane of a 4x4 stride-2 layer is computed 15 wide, not
16 (positions on the padding columns are computed and dropped), and runs
are rounded up once per plane of all the images, not per image.  Each plane
has one extra zero row for the last row's reads.

Work items, run in parallel: runs of positions of one group over phase
planes (as in :mod:`.blocked`); for each phase, taps in chunks of whole
input channels, every block of output channels over the run's input window,
partial sums accumulated, then stored with the bias.

Stride-1 convolutions on small planes run here too
(:func:`conv_stride1`: the flipped kernel as a stride-1 transposed
convolution, chosen by :func:`.blocked.shifted`).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import prange, types

from .._config import numba_jit, numba_threads, scratch
from .._memo import ByValue
from ..plans.shape import oc_blocks, share_runs
from ..plans.transpose_blocked import (
    _acc_bytes,
    _itemsize,
    _slack,
    _taps,
    conv_as_transposed,
    image_elements,
    images_per_block,
    layout,
    runs,
    tap_tables,
)
from ._link import Linkage, arrays, bias, ints, unit
from .direct import _U, _copy, _fill, _inline, pack_gather
from .microkernel import OB, block_mac, block_mac1, block_mac2, positions


def pack(spec, w4: np.ndarray, flip: bool = False, name: str | None = None) -> np.ndarray:
    """The weight as (groups, blocks, taps of all phases, OB): the tap order of
    :func:`tap_tables`, the block's channels adjacent, zero past the group's
    end.  ``w4`` is a view (group, input channel, output channel, flat tap);
    ``flip``: its taps reversed (a convolution's weight).  In a kept work
    buffer when ``name`` is given."""
    g = spec.groups
    cig = spec.c_in // g
    shape = (g, oc_blocks(spec), cig * layout(spec).taps, OB)
    out = np.empty(shape, w4.dtype) if name is None else scratch(name, shape, w4.dtype)
    pack_gather(w4, *_pack_index(spec, flip), out)
    return out


@functools.lru_cache(maxsize=64)
def _pack_index(spec, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """(input channel within the group, flat kernel tap) of every tap of
    :func:`tap_tables`, in its order (the flat tap reversed when ``flip``:
    reversing every axis reverses the flat index)."""
    kd, kh, kw = spec.lifted("kernel")
    cig = spec.c_in // spec.groups
    ci, k = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for _, taps in layout(spec).phases:
        flat = np.array([(a * kh + b) * kw + c for a, b, c, *_ in taps], dtype=np.int64)
        if flip:
            flat = kd * kh * kw - 1 - flat
        ci.append(np.repeat(np.arange(cig, dtype=np.int64), len(flat)))
        k.append(np.tile(flat, cig))
    return np.concatenate(ci), np.concatenate(k)


@numba_jit(parallel=True)
def _pad_shifted(x, xp, ed, eh, ew, dp, rows, wp, lo, hi):
    """xp[c, z, y, n, j] = x[n, c, z + ed, y + eh, j + ew] for j in [lo, hi),
    zero elsewhere and on each plane's last row (the rows of the images side
    by side), flat; the elements past the last plane are zeroed."""
    N, C, D, H, W = x.shape
    xf = x.reshape(-1)
    pitch = N * wp
    nrows = C * dp * rows
    for row in prange(nrows):
        y = row % rows
        t = row // rows
        z = t % dp + ed
        c = t // dp
        yy = y + eh
        if y == rows - 1 or z < 0 or z >= D or yy < 0 or yy >= H or hi <= lo:
            _fill(xp, row * pitch, pitch, 0)
            continue
        for n in range(N):
            dst = row * pitch + n * wp
            _fill(xp, dst, lo, 0)
            _copy(xp, dst + lo, xf, (((n * C + c) * D + z) * H + yy) * W + lo + ew, hi - lo)
            _fill(xp, dst + hi, wp - hi, 0)
    _fill(xp, nrows * pitch, xp.shape[0] - nrows * pitch, 0)


@_inline
def _store_strided(dst, d0, step, src, s0, n, bias):
    """dst[d0 + i*step] = src[s0 + i] + bias for i in [0, n) (unit steps
    vectorised)."""
    o = _U(d0)
    s = _U(s0)
    if step == 1:
        for i in range(_U(n)):
            dst[o + i] = src[s + i] + bias
        return
    st = _U(step)
    for i in range(_U(n)):
        dst[o + i * st] = src[s + i] + bias


@_inline
def _fill_strided(dst, d0, step, n, value):
    o = _U(d0)
    st = _U(step)
    for i in range(_U(n)):
        dst[o + i * st] = value


@numba_jit(parallel=True)
def _transpose_kernel(xp, wk, xoff, meta, b, out, c_in, groups, geom, nv, tb, rpi, nparts, part_at):
    """out[n, co, qd*sd + rd, qh*sh + rh, qw*sw + rw] = b[co] + the phase
    (rd, rh, rw)'s taps over the copy, one micro-kernel call per (chunk of
    taps, run of ``tb`` positions of a phase plane, block of OB channels).
    A plane's positions are ``qh*pitch + n*wq + qw``: the images' rows side
    by side.  An item is ``rpi`` consecutive runs of one group; per phase its
    partial sums accumulate in ``acc`` and are then stored into every s-th
    output.

    Each part runs :func:`_transpose_kernel_part` at address ``part_at`` (:mod:`._link`:
    compiled once, not again in each of this kernel's modules)."""
    for part in prange(nparts):
        _call_transpose_kernel(part_at, (xp, wk, xoff, meta, b, out, c_in, groups, geom, nv, tb, rpi, nparts, part))


TRANSPOSE_BLOCKED_PART = Linkage(
    "transpose_kernel part",
    lambda dt: (
        types.none,
        (
            *arrays(dt, 1, 4),
            *arrays(types.int64, 1, 2),
            bias(dt),
            *arrays(dt, 5),
            *ints(2),
            types.UniTuple(types.int64, 8),
            *ints(5),
        ),
    ),
)
_call_transpose_kernel = TRANSPOSE_BLOCKED_PART.call


@unit
def _transpose_kernel_part(xp, wk, xoff, meta, b, out, c_in, groups, geom, nv, tb, rpi, nparts, part):
    """Part ``part`` of ``nparts`` of :func:`_transpose_kernel`."""
    N, C_out, OD, OH, OW = out.shape
    sd, sh, sw, dp, rows, wq, QD, QH = geom
    pitch = N * wq
    plane = rows * pitch
    nb = wk.shape[1]
    R = wk.shape[2]
    cog = C_out // groups
    cig = c_in // groups
    npos = QH * pitch
    nrun = (npos + tb - 1) // tb
    runs = QD * nrun
    nitem = (runs + rpi - 1) // rpi
    items = groups * nitem
    per_part = (items + nparts - 1) // nparts
    wf = wk.reshape(-1)
    of = out.reshape(-1)
    span = rpi * tb
    acc = np.empty(nb * OB * span, out.dtype)
    for item in range(part * per_part, min(items, (part + 1) * per_part)):
        g = item // nitem
        r0 = (item % nitem) * rpi
        r1 = min(runs, r0 + rpi)
        for ph in range(meta.shape[0]):
            t0 = meta[ph, 0]
            nt = meta[ph, 1]
            chunk = meta[ph, 2]
            for c0 in range(0, nt, chunk):
                c1 = min(nt, c0 + chunk)
                for gr in range(r0, r1):
                    xbase = (g * cig * dp + gr // nrun) * plane + (gr % nrun) * tb
                    for blk in range(nb):
                        wbase = (g * nb + blk) * R * OB
                        obase = blk * OB * span + (gr - r0) * tb
                        if nv == 3:
                            block_mac(xp, xoff, xbase, wf, wbase, t0 + c0, t0 + c1, acc, obase, span, c0 > 0)
                        elif nv == 2:
                            block_mac2(xp, xoff, xbase, wf, wbase, t0 + c0, t0 + c1, acc, obase, span, c0 > 0)
                        else:
                            block_mac1(xp, xoff, xbase, wf, wbase, t0 + c0, t0 + c1, acc, obase, span, c0 > 0)
            rd = meta[ph, 3]
            rh = meta[ph, 4]
            rw = meta[ph, 5]
            cw = (OW - rw + sw - 1) // sw  # positions of an image's row that are outputs
            for gr in range(r0, r1):
                od = (gr // nrun) * sd + rd
                if od >= OD:
                    continue
                p0 = (gr % nrun) * tb
                p1 = min(npos, p0 + tb)
                p = p0
                while p < p1:  # segments of one image's row
                    qh = p // pitch
                    n = (p - qh * pitch) // wq
                    qw = p - qh * pitch - n * wq
                    end = min(p1, qh * pitch + (n + 1) * wq)
                    oh = qh * sh + rh
                    if qw < cw and oh < OH:
                        cnt = min(end - p, cw - qw)
                        for blk in range(nb):
                            for o in range(min(OB, cog - blk * OB)):
                                co = g * cog + blk * OB + o
                                dst = (((n * C_out + co) * OD + od) * OH + oh) * OW + qw * sw + rw
                                if nt > 0:
                                    src = (blk * OB + o) * span + (gr - r0) * tb + p - p0
                                    _store_strided(of, dst, sw, acc, src, cnt, b[co])
                                else:
                                    _fill_strided(of, dst, sw, cnt, b[co])
                    p = end


def conv_transpose_blocked(spec, ops, out: np.ndarray, num_threads: int, *, limit: int | None = None) -> None:
    """Run the register-blocked transposed convolution for ``spec`` into the
    C-contiguous 5-D ``out``."""
    g = spec.groups
    w4 = ops.w.reshape(g, spec.c_in // g, spec.c_out // g, _taps(spec))
    run(spec, ops.x, w4, False, ops.b, out, num_threads, limit)


def conv_stride1(spec, ops, out: np.ndarray, num_threads: int, *, limit: int | None = None) -> None:
    """Run the stride-1 convolution ``spec`` as :func:`conv_as_transposed`."""
    g = spec.groups
    w4 = ops.w.reshape(g, spec.c_out // g, spec.c_in // g, _taps(spec)).transpose(0, 2, 1, 3)
    run(conv_as_transposed(spec), ops.x, w4, True, ops.b, out, num_threads, limit)


def run(spec, x, w4, flip, bias, out, num_threads: int, limit: int | None) -> None:
    """The transposed convolution ``spec`` of ``x`` (5-D) with the weight view
    ``w4`` (see :func:`pack`) into the C-contiguous 5-D ``out``."""
    if out.size == 0:
        return
    b = bias if bias is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    launches = _launches(spec, num_threads, limit)
    with numba_threads(num_threads):
        _launch(spec, x, pack(spec, w4, flip, name="transpose_blocked_w"), b, out, launches)


def _launches(spec, num_threads: int, limit: int | None) -> tuple:
    """Per block of images that fit the workspace limit together: (n0, n1,
    the padded copy's elements, the kernel's arguments after the copy and
    the packed weights, before the bias)."""
    from .._config import get_config

    limit = get_config().workspace_limit if limit is None else limit
    nimg = images_per_block(spec, limit, num_threads)
    if nimg == 0:
        raise ValueError("blocked: one image's padded copy exceeds workspace_limit")
    item = _itemsize(spec)
    sd, sh, sw = spec.lifted("stride")
    lay = layout(spec)
    channels = oc_blocks(spec) * OB
    acc_bytes = _acc_bytes(spec, limit, num_threads)
    address = TRANSPOSE_BLOCKED_PART.address(_transpose_kernel_part, spec.dtype)
    launches = []
    for n0 in range(0, spec.n, nimg):
        n1 = min(spec.n, n0 + nimg)
        xoff, meta = tap_tables(spec, n1 - n0)
        tb, nrun = runs(spec, n1 - n0)
        nv = tb // positions(item, 1)
        total = lay.q[0] * nrun * spec.groups
        rpi = share_runs(total, channels, tb, item, num_threads, acc_bytes)
        items = spec.groups * -(-(lay.q[0] * nrun) // rpi)
        nparts = max(1, min(num_threads, items))
        geom = (sd, sh, sw, lay.dp, lay.rows, lay.wp, lay.q[0], lay.q[1])
        size = (n1 - n0) * image_elements(spec) + _slack(spec)
        launches.append((n0, n1, size, (xoff, meta), (spec.c_in, spec.groups, geom, nv, tb, rpi, nparts, address)))
    return tuple(launches)


def _launch(spec, x, wk, b, out, launches) -> None:
    """Run :func:`_launches`'s blocks (inside :func:`numba_threads`)."""
    lay = layout(spec)
    for n0, n1, size, tables, fixed in launches:
        xp = scratch("transpose_blocked_xp", (size,), spec.dtype)
        _pad_shifted(x[n0:n1], xp, *lay.e_min, lay.dp, lay.rows, lay.wp, *lay.cols)
        _transpose_kernel(xp, wk, *tables, b, out[n0:n1], *fixed)


def prepare(spec, num_threads: int, flip: bool = False):
    """The runner of the transposed convolution ``spec`` (or, ``flip``, of
    the stride-1 convolution it stands for: :func:`conv_stride1`) with the
    launches fixed and a small weight's packing kept while its values stay
    (a repeated call's: see ``Method.prepare``)."""
    if spec.n * spec.c_out * int(np.prod(spec.out_spatial)) == 0:
        return lambda ops, out: None
    launches = _launches(spec, num_threads, None)
    zeros = np.zeros(spec.c_out, dtype=spec.dtype)  # (no bias: shared by the calls, never written)
    g = spec.groups
    cg, og = (spec.c_out // g, spec.c_in // g) if flip else (spec.c_in // g, spec.c_out // g)
    taps = _taps(spec)

    def view(w):
        w4 = w.reshape(g, cg, og, taps)
        return w4.transpose(0, 2, 1, 3) if flip else w4

    packed = ByValue(lambda w: pack(spec, view(w), flip))

    def run_prepared(ops, out: np.ndarray) -> None:
        b = ops.b if ops.b is not None else zeros
        w = ops.w
        with numba_threads(num_threads):
            wk = packed(w) if w.nbytes <= packed.limit else pack(spec, view(w), flip, name="transpose_blocked_w")
            _launch(spec, ops.x, wk, b, out, launches)

    return run_prepared
