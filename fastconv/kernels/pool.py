"""Pooling: one separable kernel for max, avg and adaptive pooling in 1/2/3-D.

Max and sum are separable: for each input row (d, h) of a plane, a
horizontal pass reduces the taps of every output column into ``t[(d, h), ow]``;
then each output row (od, oh) reduces the rows of its window, a unit-stride
stream over ``ow``.  A 3x3 window costs 3 + 3 reductions per output instead
of 9, the input is read once per plane, and every inner loop is a vector
stream (regular interior columns) with the edges done tap by tap from the
window tables of :mod:`fastconv.plans.pool`.

torch's rules, kept exactly: the running max is replaced by a larger value
or by a NaN (so NaN propagates and its index is the last NaN in row-major
window order; ties keep the first); a window that starts at -inf keeps the
first tap's index; avg divides the sum by torch's per-window divisor.  The
separable order gives the same value and index as torch's row-major scan
(first strict maximum of the first row holding it; last NaN of the last row
holding one).  Sums are added in a different order than torch (rounding
differs in the last bits).

Work is parallel over planes (image, channel); each thread keeps one
plane's ``t`` (``D * H * OW`` elements) as scratch.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._config import numba_jit, numba_threads, serial_below, serial_copy
from .direct import _inline

_U = np.uint64


@_inline
def _better(v, m):
    """torch's max rule: a larger value or a NaN replaces the running max
    (bitwise ``|``: no branch, so the loops vectorise)."""
    return (v > m) | (v != v)


@_inline
def _hmax_cols(x, xb, t, tb, a, b, lo, hi, step):
    """Columns [a, b) tap by tap, from the window tables (padding never read)."""
    for ow in range(a, b):
        m = -np.inf
        for iw in range(lo[ow], hi[ow], step):
            v = x[xb + iw]
            if _better(v, m):
                m = v
        t[tb + ow] = m


@_inline
def _hmax_edges(x, xb, t, tb, OW, lo, hi, step, o0, o1):
    """Columns outside the regular interior [o0, o1)."""
    if o1 <= o0:
        _hmax_cols(x, xb, t, tb, 0, OW, lo, hi, step)
    else:
        _hmax_cols(x, xb, t, tb, 0, o0, lo, hi, step)
        _hmax_cols(x, xb, t, tb, o1, OW, lo, hi, step)


@_inline
def _deinterleave2(x, b, ph, n, span):
    """ph[0, i] = x[b + 2i], ph[1, i] = x[b + 2i + 1] over the ``span`` elements
    from b.  One loop reading both (an interleaved pair LLVM loads with
    shuffles); a loop reading only x[b + 2i] compiles to slow gathers
    (measured: 3x3/2 horizontal pass 3 ns -> 0.6 ns per output)."""
    pairs = _U(span // 2)
    ub = _U(b)
    for i in range(pairs):
        ph[0, i] = x[ub + _U(2) * i]
        ph[1, i] = x[ub + _U(2) * i + _U(1)]
    if span % 2:
        ph[0, pairs] = x[ub + _U(2) * pairs]


@_inline
def _hmax(x, xb, t, tb, OW, lo, hi, step, reg, ph):
    """t[tb + ow] = max over the taps of output column ow of the row at x[xb:].

    The interior runs as streams with the stride a literal (1, 2) where it can
    be: LLVM vectorises a constant stride (contiguous or interleaved loads),
    not a variable one."""
    s, K, off, o0, o1 = reg
    _hmax_edges(x, xb, t, tb, OW, lo, hi, step, o0, o1)
    if o1 <= o0:
        return
    n = _U(o1 - o0)
    b0 = _U(xb + o0 * s + off)
    d0 = _U(tb + o0)
    if s == 1:
        for i in range(n):
            t[d0 + i] = x[b0 + i]
        for k in range(1, K):
            bk = b0 + _U(k * step)
            for i in range(n):
                v = x[bk + i]
                m = t[d0 + i]
                t[d0 + i] = v if _better(v, m) else m
    elif s == 2:
        _deinterleave2(x, b0, ph, n, 2 * (o1 - o0 - 1) + (K - 1) * step + 1)
        for i in range(n):
            t[d0 + i] = ph[0, i]
        for k in range(1, K):
            c = k * step
            q = _U(c // 2)
            r = c % 2
            for i in range(n):
                v = ph[r, q + i]
                m = t[d0 + i]
                t[d0 + i] = v if _better(v, m) else m
    else:
        us = _U(s)
        for i in range(n):
            t[d0 + i] = x[b0 + i * us]
        for k in range(1, K):
            bk = b0 + _U(k * step)
            for i in range(n):
                v = x[bk + i * us]
                m = t[d0 + i]
                t[d0 + i] = v if _better(v, m) else m


@_inline
def _hmax_idx(x, xb, t, ti, tb, OW, lo, hi, step, reg):
    """:func:`_hmax` and the column of the winning tap in ti."""
    s, K, off, o0, o1 = reg
    for ow in range(OW):
        if o0 <= ow < o1:
            continue  # (indices: not the hot path)
        m = -np.inf
        j = lo[ow]
        for iw in range(lo[ow], hi[ow], step):
            v = x[xb + iw]
            if _better(v, m):
                m = v
                j = iw
        t[tb + ow] = m
        ti[tb + ow] = j
    if o1 <= o0:
        return
    n = _U(o1 - o0)
    us = _U(s)
    b0 = _U(xb + o0 * s + off)
    d0 = _U(tb + o0)
    c0 = o0 * s + off
    for i in range(n):
        t[d0 + i] = x[b0 + i * us]
        ti[d0 + i] = c0 + np.int64(i) * s
    for k in range(1, K):
        bk = b0 + _U(k * step)
        ck = c0 + k * step
        for i in range(n):
            v = x[bk + i * us]
            m = t[d0 + i]
            if _better(v, m):
                t[d0 + i] = v
                ti[d0 + i] = ck + np.int64(i) * s


@_inline
def _hsum_cols(x, xb, t, tb, a, b, lo, hi):
    for ow in range(a, b):
        acc = 0.0
        for iw in range(lo[ow], hi[ow]):
            acc += x[xb + iw]
        t[tb + ow] = acc


@_inline
def _hsum(x, xb, t, tb, OW, lo, hi, reg, ph):
    """t[tb + ow] = sum of the taps of output column ow (step 1: avg pooling)."""
    s, K, off, o0, o1 = reg
    if o1 <= o0:
        _hsum_cols(x, xb, t, tb, 0, OW, lo, hi)
    else:
        _hsum_cols(x, xb, t, tb, 0, o0, lo, hi)
        _hsum_cols(x, xb, t, tb, o1, OW, lo, hi)
    if o1 <= o0:
        return
    n = _U(o1 - o0)
    b0 = _U(xb + o0 * s + off)
    d0 = _U(tb + o0)
    if s == 1:
        for i in range(n):
            t[d0 + i] = x[b0 + i]
        for k in range(1, K):
            bk = b0 + _U(k)
            for i in range(n):
                t[d0 + i] += x[bk + i]
    elif s == 2:
        _deinterleave2(x, b0, ph, n, 2 * (o1 - o0 - 1) + K)
        for i in range(n):
            t[d0 + i] = ph[0, i]
        for k in range(1, K):
            q = _U(k // 2)
            r = k % 2
            for i in range(n):
                t[d0 + i] += ph[r, q + i]
    else:
        us = _U(s)
        for i in range(n):
            t[d0 + i] = x[b0 + i * us]
        for k in range(1, K):
            bk = b0 + _U(k)
            for i in range(n):
                t[d0 + i] += x[bk + i * us]


@numba_jit(parallel=True)
def max_pool_kernel(x, out, idx, want_idx, tab, par, nparts):
    """out[p, od, oh, ow] = max of plane p over the window; idx: its flat index.
    ``tab``, ``par``: the window tables and steps packed by :func:`_packed`."""
    P, D, H, W = x.shape
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    lod, hid, loh, hih, low, hiw = tab[0, :OD], tab[1, :OD], tab[2, :OH], tab[3, :OH], tab[4, :OW], tab[5, :OW]
    sd, sh, sw = par[0], par[1], par[2]
    reg = (par[3], par[4], par[5], par[6], par[7])
    xf = x.reshape(-1)
    of = out.reshape(-1)
    jf = idx.reshape(-1)
    per = (P + nparts - 1) // nparts
    for part in prange(nparts):
        t = np.empty(D * H * OW, x.dtype)
        ti = np.empty(D * H * OW if want_idx else 1, np.int64)
        ph = np.empty((2, W // 2 + 1), x.dtype)
        for p in range(part * per, min(P, (part + 1) * per)):
            pb = p * D * H * W
            for r in range(D * H):
                if want_idx:
                    _hmax_idx(xf, pb + r * W, t, ti, r * OW, OW, low, hiw, sw, reg)
                else:
                    _hmax(xf, pb + r * W, t, r * OW, OW, low, hiw, sw, reg, ph)
            for od in range(OD):
                for oh in range(OH):
                    ob = _U(((p * OD + od) * OH + oh) * OW)
                    first = True
                    for i_d in range(lod[od], hid[od], sd):
                        for i_h in range(loh[oh], hih[oh], sh):
                            r = i_d * H + i_h
                            tb = _U(r * OW)
                            if first:
                                first = False
                                for i in range(_U(OW)):
                                    of[ob + i] = t[tb + i]
                                if want_idx:
                                    for i in range(_U(OW)):
                                        jf[ob + i] = r * W + ti[tb + i]
                            elif want_idx:
                                for i in range(_U(OW)):
                                    v = t[tb + i]
                                    m = of[ob + i]
                                    if _better(v, m):
                                        of[ob + i] = v
                                        jf[ob + i] = r * W + ti[tb + i]
                            else:
                                for i in range(_U(OW)):
                                    v = t[tb + i]
                                    m = of[ob + i]
                                    of[ob + i] = v if _better(v, m) else m
                    if first:  # no tap inside the input (dilated window over padding)
                        for i in range(_U(OW)):
                            of[ob + i] = -np.inf
                            if want_idx:
                                jf[ob + i] = (lod[od] * H + loh[oh]) * W + low[i]


@numba_jit(parallel=True)
def avg_pool_kernel(x, out, tab, par, override, nparts):
    """out[p, od, oh, ow] = window sum / divisor (torch's divisor, or ``override`` if non-zero).
    ``tab``, ``par``: the window tables, divisor factors and steps packed by :func:`_packed`."""
    P, D, H, W = x.shape
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    lod, hid, loh, hih, low, hiw = tab[0, :OD], tab[1, :OD], tab[2, :OH], tab[3, :OH], tab[4, :OW], tab[5, :OW]
    fd, fh, fw = tab[6, :OD], tab[7, :OH], tab[8, :OW]
    reg = (par[3], par[4], par[5], par[6], par[7])
    fwf = fw.astype(x.dtype)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    per = (P + nparts - 1) // nparts
    for part in prange(nparts):
        t = np.empty(D * H * OW, x.dtype)
        ph = np.empty((2, W // 2 + 1), x.dtype)
        for p in range(part * per, min(P, (part + 1) * per)):
            pb = p * D * H * W
            for r in range(D * H):
                _hsum(xf, pb + r * W, t, r * OW, OW, low, hiw, reg, ph)
            for od in range(OD):
                for oh in range(OH):
                    ob = _U(((p * OD + od) * OH + oh) * OW)
                    for i in range(_U(OW)):
                        of[ob + i] = 0
                    for i_d in range(lod[od], hid[od]):
                        for i_h in range(loh[oh], hih[oh]):
                            tb = _U((i_d * H + i_h) * OW)
                            for i in range(_U(OW)):
                                of[ob + i] += t[tb + i]
                    if override != 0:
                        for i in range(_U(OW)):
                            of[ob + i] = of[ob + i] / override
                    else:
                        # divisors are small ints: exact in the float type, so one
                        # vectorised division rounds as torch's sum / divisor
                        dv = x.dtype.type(fd[od] * fh[oh])
                        for i in range(_U(OW)):
                            of[ob + i] = of[ob + i] / (dv * fwf[i])


_LANES = 16


@numba_jit(parallel=True)
def global_max_kernel(x, out, nparts):
    """out[p] = max of plane p (NaN if the plane holds one), in 16 vector lanes."""
    P, L = x.shape
    per = (P + nparts - 1) // nparts
    for part in prange(nparts):
        acc = np.empty(_LANES, x.dtype)
        for p in range(part * per, min(P, (part + 1) * per)):
            for j in range(_LANES):
                acc[j] = -np.inf
            body = L - L % _LANES
            for i in range(0, body, _LANES):
                for j in range(_LANES):
                    v = x[p, i + j]
                    m = acc[j]
                    acc[j] = v if _better(v, m) else m
            m = -np.inf
            for i in range(body, L):
                v = x[p, i]
                if _better(v, m):
                    m = v
            for j in range(_LANES):
                v = acc[j]
                if _better(v, m):
                    m = v
            out[p] = m


@numba_jit(parallel=True)
def global_sum_kernel(x, out, divisor, nparts):
    """out[p] = sum of plane p / divisor."""
    P, L = x.shape
    per = (P + nparts - 1) // nparts
    zero = np.zeros(1, x.dtype)[0]  # accumulate in the input's type, as torch
    for part in prange(nparts):
        for p in range(part * per, min(P, (part + 1) * per)):
            acc = zero
            for i in range(L):
                acc += x[p, i]
            out[p] = acc / divisor


max_pool_kernel_serial = serial_copy(max_pool_kernel, "max_pool_kernel_serial")
avg_pool_kernel_serial = serial_copy(avg_pool_kernel, "avg_pool_kernel_serial")
global_max_kernel_serial = serial_copy(global_max_kernel, "global_max_kernel_serial")
global_sum_kernel_serial = serial_copy(global_sum_kernel, "global_sum_kernel_serial")
#: global pooling below this many elements runs the serial kernels: a parallel
#: launch under the workqueue layer costs ~0.2 ms, more than it saves here
#: (measured: 16384 planes of 49 -- parallel 0.27 ms, serial 0.11 ms); an
#: eighth of it under omp/tbb (serial_below; measured there, 802k elements:
#: serial 0.143 ms against torch's 0.060)
_GLOBAL_SERIAL_BELOW = 2_000_000
#: windowed pooling below this many window taps (outputs x taps; an eighth
#: of it under ``omp``/``tbb``, see serial_below) runs the serial kernels.
#: Measured, 2-core Zen 4, max pool 2x2 prepared runner: 1x1x8x8 (64 taps)
#: serial 2.5 us, parallel 4.5 (the region's start); 1x16x32x32 (16k taps)
#: and 1x64x16x16 (16k) serial 27 and 50 us, parallel 14 and 14
_WINDOW_SERIAL_BELOW = 32_000


def pool_direct(spec, planes: np.ndarray, out, num_threads: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The pooling method's runner (the dispatcher's signature; ``out`` unused)."""
    return run_pool(spec, planes, num_threads)


def prepare_pool(spec, num_threads: int, axis_windows=None):
    """The pooling runner for ``spec``, ``run(planes, out=None) -> (values,
    indices or None)``, with its window tables and launch fixed once (a
    repeated call's: see ``Method.prepare``).  ``axis_windows`` (three
    :class:`~fastconv.plans.pool.AxisWindows`) replaces the spec's own
    window tables: the dask path pools one tile of a larger input with it."""
    from ..plans.pool import is_global, windows

    P = spec.n * spec.c
    out_spatial = spec.lifted("out_spatial")
    out_shape, dtype, want_idx = spec.out_shape, spec.dtype, spec.return_indices
    nparts = max(1, min(P, num_threads))
    empty = P == 0 or 0 in out_spatial
    no_idx = np.empty((1, 1, 1, 1), dtype=np.int64)  # (never written without return_indices)
    if axis_windows is None and is_global(spec) and not want_idx:
        plane = int(np.prod(spec.lifted("in_spatial")))
        size = P * plane
        serial = nparts == 1 or size < serial_below(_GLOBAL_SERIAL_BELOW)
        max_ = spec.kind == "max"
        kernel = (global_max_kernel_serial if max_ else global_sum_kernel_serial) if serial else (
            global_max_kernel if max_ else global_sum_kernel)  # fmt: skip
        extra = () if max_ else (float(spec.divisor_override or plane),)
        parts = 1 if serial else nparts

        def launch(x, out, idx):
            kernel(x.reshape(x.shape[0], -1), out.reshape(-1), *extra, parts)

    else:
        wd, wh, ww = axis_windows or windows(spec)
        tab, par = _packed(wd, wh, ww)
        taps = np.prod([max(1, int(np.max(t.hi - t.lo, initial=1))) for t in (wd, wh, ww)])
        serial = nparts == 1 or P * int(np.prod(out_spatial)) * taps < serial_below(_WINDOW_SERIAL_BELOW)
        parts = 1 if serial else nparts
        if spec.kind == "max":
            kernel = max_pool_kernel_serial if serial else max_pool_kernel
            args = (want_idx, tab, par, parts)

            def launch(x, out, idx):
                kernel(x, out, idx, *args)

        else:
            kernel = avg_pool_kernel_serial if serial else avg_pool_kernel
            args = (tab, par, float(spec.divisor_override or 0), parts)

            def launch(x, out, idx):
                kernel(x, out, *args)

    def run(x: np.ndarray, out=None) -> tuple[np.ndarray, np.ndarray | None]:
        values = np.empty((P, *out_spatial), dtype=dtype)
        idx = np.empty(values.shape, dtype=np.int64) if want_idx else no_idx
        if not empty:
            if serial:
                launch(x, values, idx)
            else:
                with numba_threads(num_threads):
                    launch(x, values, idx)
        return values.reshape(out_shape), (idx.reshape(out_shape) if want_idx else None)

    if serial and not empty and not want_idx and axis_windows is None:
        run.whole = _whole(spec, launch, no_idx)
    return run


def _whole(spec, launch, no_idx: np.ndarray):
    """``whole(x) -> values``: a serial pool of the caller's own array (None
    where it is not kernel-ready as given: the planes path then runs).  A
    tiny pool's Python is most of its time: this skips the planes' checks'
    copies, the run's tuple and its frames."""
    from .._spec import planes_shape, ready_as_given

    dtype, out_shape = spec.dtype, spec.out_shape
    planes = planes_shape(spec)
    shape = (spec.n * spec.c, *spec.lifted("out_spatial"))
    empty = np.empty

    def whole(x):
        if not ready_as_given(x, dtype):
            return None
        values = empty(shape, dtype)
        launch(x.reshape(planes), values, no_idx)
        return values.reshape(out_shape)

    return whole


def _packed(wd, wh, ww) -> tuple[np.ndarray, np.ndarray]:
    """The three axes' window tables as one int64 array and their steps
    with W's regular run as another (:func:`pack_windows`): two arguments
    instead of eleven arrays and a tuple, which Numba unboxes on every call
    (measured: 1.0 us per call for the tuples, 0.3 us for two arrays -- a
    tiny pool's whole kernel takes 1.8)."""
    return pack_windows((wd.lo, wh.lo, ww.lo), (wd.hi, wh.hi, ww.hi), (wd.size, wh.size, ww.size),
                        (wd.step, wh.step, ww.step), ww.regular)  # fmt: skip


def pack_windows(lo, hi, size, steps, regular) -> tuple[np.ndarray, np.ndarray]:
    """(tab, par) of the kernels: tab's rows lo, hi of D, H, W, then the avg
    divisor factors of D, H, W (each row padded to the longest axis); par
    the steps and W's ``regular`` run.  Plain NumPy that Numba compiles as
    it stands (pooling in compiled code, ``kernels.injit``)."""
    tab = np.zeros((9, max(len(lo[0]), len(lo[1]), len(lo[2]))), dtype=np.int64)
    for i in range(3):
        n = len(lo[i])
        tab[2 * i, :n], tab[2 * i + 1, :n], tab[6 + i, :n] = lo[i], hi[i], size[i]
    par = np.empty(8, dtype=np.int64)
    for i in range(3):
        par[i] = steps[i]
    for i in range(5):
        par[3 + i] = regular[i]
    return tab, par


def run_pool(spec, x: np.ndarray, num_threads: int, axis_windows=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Pool the kernel-ready planes ``x`` (P, D, H, W); returns (values, indices or None)
    shaped as ``spec.out_shape`` (see :func:`prepare_pool`)."""
    return prepare_pool(spec, num_threads, axis_windows)(x)
