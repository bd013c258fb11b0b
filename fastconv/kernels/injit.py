"""What fastconv's functions run when they are called from Numba-compiled
code (``fastconv/_numba_ext.py`` registers them as overloads): the work is
the same kernels' -- the filters' sweep (:mod:`.passes`) for 1-D passes
and separable filters, the direct correlation (:mod:`.filter`) for
``ndimage.correlate``/``convolve`` -- with the padding by index tables
made here in compiled code, and the pooling kernels (:mod:`.pool`) on
window tables made here as the Python path makes them; ``conv1d/2d/3d``
and ``conv_transpose1d/2d/3d`` run the Python path's direct kernels
(:mod:`.direct`, :mod:`.transpose`), or for small work direct loops whose
innermost loop runs along output columns (the patches and tiny layers such
code calls them on).  No method is chosen here: past :data:`ROUTE_PAYS`,
from serial code, ``fastconv._numba_ext`` hands the call to the Python
path's dispatcher (:func:`routed`).

Every kernel, serial and parallel, small work's loops included, is a build
called by address (:data:`BUILDS`): Numba links a called function's code
into its caller and optimises and compiles it again there, so what is
linked is what every user function compiles again.  What the functions
here link is argument handling, index tables, and plain loops (``_pass``,
``_taps_loops``, ``_direct_plain``, ``_transpose_plain``, ``_pool_plain``;
no fastmath, nothing for LLVM to vectorise) that run only while a build is
not in the table: a first use whose builds compile in the background.

Threads (:func:`threads_for`): a call large enough to pay for a parallel
region runs on Numba's threads (``numba.get_num_threads()``) when it is made
outside one, and on the calling thread inside a ``prange`` body, under every
threading layer: under ``omp`` the OpenMP runtime says whether a region is
active (``omp_in_parallel``); under ``workqueue`` (whose chunks never run on
the thread that launched the region) and ``tbb`` a call launches only from
the main thread.  What the compiled code needs for that test -- the layer,
the native functions' addresses, the main thread's identity, the serial
threshold -- is a table in the process (:data:`THREAD_TABLE`, registered by
``fastconv._numba_ext`` when Numba loads it and filled when a compiled call
is first typed), read when the call runs, so machine code cached on disk
stays valid in another process; until the table is filled (a process that
only loads cached code), and in a forked child of an ``omp`` process, every
call runs on the calling thread."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .._config import numba_jit, renamed
from .._spec import pool_output_size
from ..plans.blocked import _WINDOW_BYTES, phases_read, window_runs
from ..plans.pool import adaptive_tables, regular_tables
from ..plans.shape import _ACC_BYTES, _CHUNK, _SPAN, LANES32, OB, vectors_for
from ._link import I64, Linkage, arrays, ints, unit
from .blocked import PLANE_WINDOW_PART, _plane_window_kernel_part
from .direct import _BLOCK, _CHUNK_ELEMS, PART, _inline, _pack_flat_serial, _part, conv_direct_kernel
from .filter import correlate_kernel_serial
from .passes import MODE_NAMES, MODE_RULES, two_pass_kernel, two_pass_kernel_serial
from .pool import avg_pool_kernel, avg_pool_kernel_serial, max_pool_kernel, max_pool_kernel_serial, pack_windows
from .transpose import TRANSPOSE_DIRECT_PART, conv_transpose_direct_kernel, conv_transpose_direct_kernel_part

#: the process's table for :func:`threads_for` (int64 slots, below), by this symbol
THREAD_TABLE = "fastconv_injit_threads"
#: its slots: the rule (0 calling thread only, 1 main thread launches, 2 OpenMP
#: says), the main thread's ``pthread_self()``, the addresses of
#: ``omp_in_parallel``, ``pthread_self`` and the layer's ``get_num_threads``
#: (Numba's own ``get_num_threads()`` would make the code uncacheable), the
#: serial threshold (multiply-adds); from ``BUILDS_AT`` on, the addresses of
#: the builds called by address (:data:`BUILDS`, float32 then float64 each)
MODE, MAIN_THREAD, IN_PARALLEL, THREAD_SELF, NUM_THREADS, SERIAL_BELOW, BUILDS_AT = range(7)

_EPS = float(np.finfo(np.float64).eps)


def _serial(kernel, name: str):
    """``kernel``'s serial build (as ``_config.serial_copy``: another name,
    so that the disk cache never hands back the parallel machine code) with
    its array arguments declared not to alias (``_link.unit``; every caller
    here passes distinct buffers, as to the parallel build)."""
    return unit(renamed(kernel.py_func, name))


@intrinsic
def _slot(typingctx, i):
    """The table's slot ``i`` (an int64), loaded when the call runs."""

    def codegen(context, builder, signature, args):
        table = builder.module.globals.get(THREAD_TABLE)
        if table is None:  # (declared as its first slot: the same declaration whatever the table's length)
            table = ir.GlobalVariable(builder.module, ir.IntType(64), THREAD_TABLE)
            table.linkage = "external"
        index = context.cast(builder, args[0], signature.args[0], types.intp)
        return builder.load(builder.gep(table, [index]))

    return types.int64(i), codegen


def _native(bits):
    """An intrinsic calling the argument-less native function at an address
    (an int64), its ``bits``-wide integer result widened to int64."""

    @intrinsic
    def call(typingctx, address):
        def codegen(context, builder, signature, args):
            function = builder.inttoptr(args[0], ir.FunctionType(ir.IntType(bits), []).as_pointer())
            result = builder.call(function, [])
            return builder.sext(result, ir.IntType(64)) if bits < 64 else result

        return types.int64(address), codegen

    return call


_call_int, _call_word = _native(32), _native(64)


@numba_jit()
def threads_for(work):
    """How many threads a kernel called here may use for ``work``
    multiply-adds: 1 below the serial threshold, inside a parallel region,
    or where the table says nothing (see the module's docstring); else
    Numba's thread count."""
    if work < _slot(SERIAL_BELOW) or not _launches():
        return 1
    return max(_call_int(_slot(NUM_THREADS)), 1)


@_inline
def _launches():
    """True on a thread that may launch Numba's threads: outside a parallel
    region (``omp``), on the main thread (``workqueue``); False where the
    table says nothing."""
    mode = _slot(MODE)
    if mode == 2:
        return _call_int(_slot(IN_PARALLEL)) == 0
    if mode == 1:
        return _call_word(_slot(THREAD_SELF)) == _slot(MAIN_THREAD)
    return False


@numba_jit(parallel=True)
def omp_probe(first, second):
    """How many of 64 ``prange`` iterations each of two argument-less
    ``int`` functions (addresses: two runtimes' ``omp_in_parallel``) said
    yes in (``_numba_ext._omp_in_use``)."""
    said = np.zeros((64, 2), np.int64)
    for i in prange(64):
        said[i, 0] = _call_int(first) != 0
        said[i, 1] = _call_int(second) != 0
    return said[:, 0].sum(), said[:, 1].sum()


#: the work (multiply-adds) from which a convolution called from serial compiled code runs the Python
#: path's entry (the dispatcher: every method, the cost model, the workspace limit, learning).  Measured
#: (conv2d 3x3, float32, 2 threads, Zen 3): the Python call's time / the direct kernel's from @njit
#: 1.73 at 2.4M, 1.33 at 4.7M, 0.76-0.98 at 9.4M, 0.52-0.64 at 19M, 0.43 at 38M
ROUTE_PAYS = 1 << 23


@numba_jit()
def routed(work):
    """True where a call of ``work`` multiply-adds from compiled code goes
    through the Python path's entry (``_numba_ext._python_entry``, in an
    object-mode block): past :data:`ROUTE_PAYS` on a thread that may
    launch Numba's threads -- never in a ``prange`` body, never where the
    table says nothing (there the compiled kernels run)."""
    return work >= ROUTE_PAYS and _launches()


@numba_jit()
def conv_work(n, o, cg, size, kernel, s, p, d):
    """:func:`conv3d_direct`'s multiply-adds for ``n`` images, ``o`` output
    and ``cg`` input channels per group, the lifted (D, H, W) ``size`` and
    ``kernel``, strides, padding (6) and dilations; 0 where they do not fit
    (its checks raise)."""
    work = n * o * cg
    for a in range(3):
        if s[a] < 1 or d[a] < 1 or p[2 * a] < 0 or p[2 * a + 1] < 0:
            return 0
        out = _conv_out(size[a], kernel[a], s[a], p[2 * a] + p[2 * a + 1], d[a])
        if out < 1:
            return 0
        work *= out * kernel[a]
    return work


@_inline
def _conv_out(size, k, s, pads, d):
    """A convolution's output length along an axis of ``size`` (``pads``
    both sides together)."""
    return (size + pads - d * (k - 1) - 1) // s + 1


@numba_jit()
def parallel_at(build, x, work, items):
    """(threads, address) for ``work`` multiply-adds in ``items`` parts on
    arrays like ``x``: the parallel build ``build``'s machine code (an index
    in :data:`BUILDS`, called by address: linked into every
    caller, it would be optimised again in each user function, 2-3x its
    first-use compile time) where :func:`threads_for` gives more than one
    thread and the build is in the table; else (1, 0): the serial build."""
    nt = min(threads_for(work), items)
    if nt < 2:
        return 1, 0
    address = build_at(build, x)
    return (nt, address) if address != 0 else (1, 0)


@numba_jit()
def build_at(build, x):
    """The address of build ``build`` (:data:`BUILDS`) for arrays like
    ``x``, 0 where the table does not hold it."""
    return _slot(BUILDS_AT + 2 * build + x.itemsize // 8)


@numba_jit()
def mode_code(mode):
    """scipy.ndimage's mode name -> its boundary rule (``passes.MODE_RULE``)."""
    for i in range(len(MODE_NAMES)):
        if mode == MODE_NAMES[i]:
            return MODE_RULES[i]
    raise ValueError(
        "mode must be one of 'reflect', 'constant', 'nearest', 'mirror', 'wrap', "
        "'grid-constant', 'grid-mirror', 'grid-wrap'"
    )


@numba_jit()
def boundary(n, lo, hi, rule):
    """``passes.boundary_index`` (the input index of each padded position;
    -1: the constant) as one scalar loop, the position within a period
    counted on (no division per position, nothing to vectorise): a fraction
    of the machine code of its array expressions, which every user function
    that calls a filter compiles again."""
    size = lo + n + hi
    out = np.empty(size, np.int64)
    period = n if rule == 3 else (2 * n if rule == 0 else max(2 * n - 2, 1))
    m = (-lo) % period
    for i in range(size):
        p = i - lo
        if rule == 4:
            v = p if 0 <= p < n else -1
        elif rule == 2:
            v = min(max(p, 0), n - 1)
        elif m < n:
            v = m
        else:
            v = period - 1 - m if rule == 0 else period - m
        out[i] = v
        m += 1
        if m == period:
            m = 0
    return out


@numba_jit()
def _as(x, value):
    """``value`` as a scalar of ``x``'s dtype."""
    box = np.empty(1, x.dtype)
    box[0] = value
    return box[0]


@numba_jit()
def _pad_lo(taps, origin):
    lo = taps // 2 + origin
    if lo < 0 or lo >= taps:
        raise ValueError("origin is out of range for the weights' size (taps // 2 + origin must be in [0, taps))")
    return lo


@numba_jit()
def sweep(x3, wv, mode_v, origin_v, wh, mode_h, origin_h, cval, vertical_first):
    """The passes ``wv`` along axis 1 and ``wh`` along axis 2 of the (N, H,
    W) C-contiguous ``x3`` in one sweep (float weights of x3's dtype; a
    one-tap weight of 1 is the identity)."""
    _, H, W = x3.shape
    lo_v = _pad_lo(len(wv), origin_v)
    lo_h = _pad_lo(len(wh), origin_h)
    rows = boundary(H, lo_v, len(wv) - 1 - lo_v, mode_code(mode_v))
    cols = boundary(W, lo_h, len(wh) - 1 - lo_h, mode_code(mode_h))
    out = np.empty_like(x3)
    c = _as(x3, cval)
    nt, address = parallel_at(SWEEP, x3, x3.size * (len(wv) + len(wh)), x3.shape[0] * H)
    if not address:
        nt, address = 1, build_at(SWEEP_SERIAL, x3)
    if address:
        _call_two_pass(address, (x3, out, rows, wv, cols, wh, lo_h, c, vertical_first, nt))
    elif vertical_first:  # (neither build in the table: plain loops)
        _pass(out, _pass(np.empty_like(x3), x3, rows, wv, c, True), cols, wh, c, False)
    else:
        _pass(out, _pass(np.empty_like(x3), x3, cols, wh, c, False), rows, wv, c, True)
    return out


@numba_jit(fastmath=False)
def _pass(out, x3, index, w, c, vertical):
    """One pass of :func:`sweep` as plain loops (its builds' stand-in while
    they are not in the table; kept small, as every user function that
    calls a filter compiles it): ``out`` = ``x3`` correlated with ``w``
    along axis 1 (``vertical``) or 2, padded by ``index`` (-1: ``c``)."""
    N, H, W = x3.shape
    for n in range(N):
        for h in range(H):
            for col in range(W):
                acc = 0.0
                for t in range(len(w)):
                    i = index[(h if vertical else col) + t]
                    if i < 0:
                        acc += w[t] * c
                    else:
                        acc += w[t] * (x3[n, i, col] if vertical else x3[n, h, i])
                out[n, h, col] = acc
    return out


@numba_jit()
def view3(shape, axis):
    """(N, H, W) of a C-contiguous array of ``shape`` seen as (axes before
    ``axis``, axis ``axis``, axes after)."""
    n = 1
    for a in range(axis):
        n *= shape[a]
    w = 1
    for a in range(axis + 1, len(shape)):
        w *= shape[a]
    return n, shape[axis], w


@numba_jit()
def along(x, w, axis, mode, cval, origin):
    """correlate1d: ``w`` (every tap multiplied, scipy's rule) along ``axis``
    of ``x`` (float32/64, any layout), a new array of x's shape and dtype."""
    nd = x.ndim
    if axis < -nd or axis >= nd:
        raise ValueError("axis is out of range for the input's dimensions")
    if axis < 0:
        axis += nd
    if len(w) == 0:
        raise ValueError("weights must have at least one element")
    xc = np.ascontiguousarray(x)
    if xc.size == 0:
        return xc.copy()
    ws = w.astype(x.dtype)
    one = np.ones(1, x.dtype)
    c = cval
    if axis == nd - 1:
        wd = xc.shape[nd - 1]
        y = sweep(xc.reshape((xc.size // wd, 1, wd)), one, mode, 0, ws, mode, origin, c, True)
    else:
        n, h, wd = view3(xc.shape, axis)
        y = sweep(xc.reshape((n, h, wd)), ws, mode, origin, one, mode, 0, c, True)
    return y.reshape(xc.shape)


@numba_jit()
def pair(x, wv, mode_v, origin_v, wh, mode_h, origin_h, cval, vertical_first):
    """Two passes along the last two axes of ``x`` (ndim >= 2) in one sweep."""
    xc = np.ascontiguousarray(x)
    if xc.size == 0:
        return xc.copy()
    h, wd = xc.shape[-2], xc.shape[-1]
    n = xc.size // (h * wd)
    c = cval
    y = sweep(xc.reshape((n, h, wd)), wv.astype(x.dtype), mode_v, origin_v, wh.astype(x.dtype), mode_h, origin_h, c,
              vertical_first)  # fmt: skip
    return y.reshape(xc.shape)


@numba_jit()
def gaussian_weights(sigma, order, truncate, radius, single):
    """gaussian_filter1d's correlation weights (radius < 0: from
    ``truncate``), as ``fastconv._filters.gaussian_weights``; of order 0,
    float32-rounded values that still sum to 1 for single-precision data
    (as the Python path's ``single_weights``)."""
    if not sigma > 0:
        raise ValueError("sigma must be positive")
    if order < 0:
        raise ValueError("order must be non-negative")
    r = radius if radius >= 0 else int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1).astype(np.float64)
    s2 = sigma * sigma
    phi = np.exp(-0.5 / s2 * x * x)
    phi /= phi.sum()
    if order == 0:
        if single:
            s = phi.astype(np.float32).astype(np.float64)
            peak = np.argmax(np.abs(s))
            s[peak] = np.float64(np.float32(s[peak] + (1.0 - s.sum())))
            return s
        return phi
    q = np.zeros(order + 1)  # (the polynomial q: q <- q' - x q / sigma^2, ``order`` times)
    q[0] = 1.0
    for _ in range(order):
        nq = np.zeros(order + 1)
        for i in range(1, order + 1):
            nq[i - 1] += i * q[i]
        for i in range(order):
            nq[i + 1] -= q[i] / s2
        q = nq
    weights = np.zeros(len(x))
    for j in range(len(x)):
        v = 0.0
        for i in range(order, -1, -1):
            v = v * x[j] + q[i]
        weights[j] = v * phi[j]
    return weights[::-1].copy()


@numba_jit()
def correlate3(x3, w3, mode, cval, o0, o1, o2):
    """ndimage.correlate of the (D, H, W) ``x3`` with (KD, KH, KW) weights of
    its dtype: the input padded by index tables, then the direct kernel over
    the footprint (weights above 2.2e-16 in magnitude, scipy's rule)."""
    KD, KH, KW = w3.shape
    code = mode_code(mode)
    l0, l1, l2 = _pad_lo(KD, o0), _pad_lo(KH, o1), _pad_lo(KW, o2)
    D, H, W = x3.shape
    return padded_correlate(x3, w3, l0, l1, l2, D, H, W, code, cval, False)


@numba_jit()
def padded_correlate(x3, w3, l0, l1, l2, D, H, W, code, cval, every_tap):
    """The (D, H, W) "valid" correlation of ``x3`` extended by boundary rule
    ``code`` (:func:`boundary`) with ``l0, l1, l2`` positions before each
    axis (and as many after as the output needs) with the weights ``w3`` of
    its dtype: every tap multiplied (``every_tap``: scipy.signal) or the
    footprint (scipy.ndimage)."""
    KD, KH, KW = w3.shape
    if x3.size == 0 or D * H * W == 0:
        return np.zeros((D, H, W), x3.dtype)
    Dp, Hp, Wp = D + KD - 1, H + KH - 1, W + KW - 1
    rd = boundary(x3.shape[0], l0, Dp - x3.shape[0] - l0, code)
    rh = boundary(x3.shape[1], l1, Hp - x3.shape[1] - l1, code)
    rw = boundary(x3.shape[2], l2, Wp - x3.shape[2] - l2, code)
    c = _as(x3, cval)
    # bands of output rows, their padded input in one small buffer (a fresh padded copy of a large
    # image costs its page faults on every call; a thread's buffer stays in its cache)
    nb = min(H, max(8, (1 << 17) // (KD * Wp)))
    Hb = nb + KH - 1
    taps = 0
    for a in range(KD):
        for b in range(KH):
            for e in range(KW):
                if every_tap or abs(w3[a, b, e]) > _EPS:
                    taps += 1
    offs = np.empty(taps, np.int64)
    ws = np.empty(taps, x3.dtype)
    t = 0
    for a in range(KD):
        for b in range(KH):
            for e in range(KW):
                if every_tap or abs(w3[a, b, e]) > _EPS:
                    offs[t] = (a * Hb + b) * Wp + e
                    ws[t] = w3[a, b, e]
                    t += 1
    out = np.empty((D, H, W), x3.dtype)
    nbands = (H + nb - 1) // nb
    nt, address = parallel_at(BANDS, x3, D * H * W * taps, D * nbands)
    if not address:
        nt, address = 1, build_at(BANDS_SERIAL, x3)
    if address:
        _call_bands(address, (x3, out, rd, rh, rw, l2, c, offs, ws, KD, KH, nb, nt))
    else:
        _taps_loops(x3, out, rd, rh, rw, c, offs, ws, Hb * Wp, Wp)
    return out


@numba_jit(fastmath=False)
def _taps_loops(x3, out, rd, rh, rw, c, offs, ws, plane, row):
    """:func:`padded_correlate`'s work as plain loops (its builds' stand-in
    while they are not in the table; kept small, as every user function
    that calls it compiles it): the taps ``offs`` (band offsets, ``plane``
    and ``row`` long) decoded to (plane, row, column)."""
    D, H, W = out.shape
    for d in range(D):
        for h in range(H):
            for col in range(W):
                acc = 0.0
                for t in range(len(offs)):
                    a, rest = divmod(offs[t], plane)
                    b, e = divmod(rest, row)
                    i, j, q = rd[d + a], rh[h + b], rw[col + e]
                    acc += ws[t] * (c if i < 0 or j < 0 or q < 0 else x3[i, j, q])
                out[d, h, col] = acc


@numba_jit(parallel=True)
def correlate_bands(x3, out, rd, rh, rw, l2, c, offs, ws, KD, KH, nb, nparts):
    """:func:`padded_correlate`'s work: the output in bands of ``nb`` rows,
    each band's padded input rows copied (by the tables ``rd``, ``rh``,
    ``rw``; -1: the constant ``c``) into a small buffer of the part's, then
    the direct kernel over the taps ``offs``/``ws``; the bands split in
    ``nparts`` contiguous ranges."""
    D, H, W = out.shape
    Wp = len(rw)
    n = x3.shape[2]
    lo, hi = max(l2, 0), min(l2 + n, Wp)  # (the padded columns the row copies: rw[e] == e - l2 there)
    Hb = nb + KH - 1
    nbands = (H + nb - 1) // nb
    items = D * nbands
    per = (items + nparts - 1) // nparts
    for part in prange(nparts):
        band = np.empty((KD, Hb, Wp), x3.dtype)
        ob = np.empty((1, nb, W), x3.dtype)
        for it in range(part * per, min(items, (part + 1) * per)):
            d = it // nbands
            r0 = (it - d * nbands) * nb
            rows = min(nb, H - r0)
            for a in range(KD):
                for h in range(rows + KH - 1):
                    i, j = rd[d + a], rh[r0 + h]
                    row = band[a, h]
                    if i < 0 or j < 0:
                        row[:] = c
                        continue
                    source = x3[i, j]
                    if hi > lo:
                        row[lo:hi] = source[lo - l2 : hi - l2]  # (the inside: a copy; the ends by the table)
                    for e in range(lo):
                        row[e] = source[rw[e]] if rw[e] >= 0 else c
                    for e in range(max(hi, lo), Wp):
                        row[e] = source[rw[e]] if rw[e] >= 0 else c
            if rows < nb:  # (the last band: rows past it read stale values, never copied out)
                band[:, rows + KH - 1 :, :] = c
            correlate_kernel_serial(band, ob, offs, ws, 2048, 1)
            out[d, r0 : r0 + rows, :] = ob[0, :rows, :]


correlate_bands_serial = _serial(correlate_bands, "correlate_bands_serial")


@numba_jit()
def signal_correlate3(x3, w3, mode, code, cval, start_high):
    """scipy.signal's correlation (every tap multiplied) of the (D, H, W)
    ``x3`` with ``w3`` in output ``mode`` "full", "same" or "valid", the
    input extended by rule ``code`` (4: the constant ``cval``); "same" is
    the full output from ``(k - 1) // 2`` on, or from ``k // 2`` with
    ``start_high`` (correlate2d's centring)."""
    n0, n1, n2 = x3.shape
    k0, k1, k2 = w3.shape
    if mode == "full":
        return padded_correlate(x3, w3, k0 - 1, k1 - 1, k2 - 1, n0 + k0 - 1, n1 + k1 - 1, n2 + k2 - 1, code, cval,
                                True)  # fmt: skip
    if mode == "same":
        s0, s1, s2 = (k0 // 2, k1 // 2, k2 // 2) if start_high else ((k0 - 1) // 2, (k1 - 1) // 2, (k2 - 1) // 2)
        return padded_correlate(x3, w3, k0 - 1 - s0, k1 - 1 - s1, k2 - 1 - s2, n0, n1, n2, code, cval, True)
    if mode == "valid":
        if n0 < k0 or n1 < k1 or n2 < k2:
            raise ValueError("for 'valid' mode, in1 must be at least as large as in2 in every dimension")
        return padded_correlate(x3, w3, 0, 0, 0, n0 - k0 + 1, n1 - k1 + 1, n2 - k2 + 1, code, cval, True)
    raise ValueError("mode must be 'full', 'same' or 'valid'")


@numba_jit()
def fft_convolve3(a, b, mode):
    """fastconv.signal.fftconvolve of the (D, H, W) ``a`` and ``b`` (one
    float dtype) in output ``mode``: the full convolution by FFT
    (:func:`fft_full`, a build, called by address: it needs rocket-fft, and
    its ``numpy.fft`` code compiled into every caller cost 10-20 s), then
    scipy's centred slice; or, as the Python path does where it estimates
    it faster (a short kernel: 10 F log2 F > the multiply-adds, F the FFT
    size; measured on one thread, 2-core Zen 3: the FFT 0.6 ms for 128x128 by
    7x7, against 0.06 ms direct) and where the table does not hold the
    build, the direct correlation with ``b`` reversed (``signal.convolve``'s
    direct method: a NaN reaches only the outputs whose window covers it)."""
    if mode != "full" and mode != "same" and mode != "valid":
        raise ValueError("mode must be 'full', 'same' or 'valid'")
    if a.size == 0 or b.size == 0:
        return np.zeros((0, 0, 0), a.dtype)
    if mode == "valid" and not (a.shape[0] >= b.shape[0] and a.shape[1] >= b.shape[1] and a.shape[2] >= b.shape[2]):
        if not (b.shape[0] >= a.shape[0] and b.shape[1] >= a.shape[1] and b.shape[2] >= a.shape[2]):
            raise ValueError("For 'valid' mode, one must be at least as large as the other in every dimension")
        a, b = b, a  # (convolution commutes; scipy swaps too)
    full = (a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1, a.shape[2] + b.shape[2] - 1)
    shape = full
    if mode == "same":
        shape = a.shape
    elif mode == "valid":
        shape = (a.shape[0] - b.shape[0] + 1, a.shape[1] - b.shape[1] + 1, a.shape[2] - b.shape[2] + 1)
    size = _fast_length(full[0]) * _fast_length(full[1]) * _fast_length(full[2])
    address = build_at(FFT_FULL, a)
    if address == 0 or 10.0 * size * np.log2(size + 1) >= shape[0] * shape[1] * shape[2] * b.size:
        return signal_correlate3(a, b[::-1, ::-1, ::-1].copy(), mode, 4, 0.0, False)
    out = np.empty(shape, a.dtype)
    _call_fft(address, (a, b, out, (full[0] - shape[0]) // 2, (full[1] - shape[1]) // 2, (full[2] - shape[2]) // 2))
    return out


@numba_jit()
def fft_full(a, b, out, s0, s1, s2):
    """``out`` = the full convolution of the (D, H, W) ``a`` and ``b`` from
    position (s0, s1, s2) on, by real FFTs (NumPy's, compiled by rocket-fft)
    of 5-smooth lengths (a build: :func:`fft_convolve3`)."""
    fs = (_fast_length(a.shape[0] + b.shape[0] - 1), _fast_length(a.shape[1] + b.shape[1] - 1),
          _fast_length(a.shape[2] + b.shape[2] - 1))  # fmt: skip
    y = np.fft.irfftn(np.fft.rfftn(a, s=fs) * np.fft.rfftn(b, s=fs), s=fs)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for m in range(out.shape[2]):
                out[i, j, m] = y[s0 + i, s1 + j, s2 + m]


@numba_jit()
def _fast_length(n):
    """The smallest 2^a 3^b 5^c >= ``n``: a length pocketfft transforms fast."""
    best = 1
    while best < n:
        best *= 2
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = p35
            while q < n:
                q *= 2
            best = min(best, q)
            p35 *= 3
        p5 *= 5
    return best


@numba_jit()
def conv3d_direct(x, w, b, s, p, d, groups, auto=True):
    """conv3d of the (N, C, D, H, W) ``x`` with (O, C / groups, KD, KH, KW)
    weights (one dtype; ``b`` the bias, length O or 0), strides ``s`` and
    dilations ``d`` (3 each), zero padding ``p`` (before and after each
    axis: 6): direct loops, the innermost along the output row (conv1d and
    conv2d are the cases of length-1 axes), or with ``auto`` (``method=
    "auto"``) on one thread -- a ``prange`` body, small work -- the
    register-blocked kernel (:func:`blocked_run`, from
    :data:`_BLOCKED_TAPS` multiply-adds per output).  Raises ValueError,
    naming the argument, on shapes that do not fit."""
    N, C, D, H, W = x.shape
    O, Cg, KD, KH, KW = w.shape  # noqa: E741
    if groups < 1 or C % groups != 0 or O % groups != 0:
        raise ValueError("groups must divide both in_channels (input.shape[1]) and out_channels (weight.shape[0])")
    if Cg * groups != C:
        raise ValueError("weight.shape[1] * groups must equal input.shape[1] (in_channels)")
    if len(b) != 0 and len(b) != O:
        raise ValueError("bias must have out_channels (weight.shape[0]) elements")
    for a in range(3):
        if s[a] < 1 or d[a] < 1:
            raise ValueError("stride and dilation must be positive")
        if p[2 * a] < 0 or p[2 * a + 1] < 0:
            raise ValueError("padding must be non-negative")
    OD = _conv_out(D, KD, s[0], p[0] + p[1], d[0])
    OH = _conv_out(H, KH, s[1], p[2] + p[3], d[1])
    OW = _conv_out(W, KW, s[2], p[4] + p[5], d[2])
    if OD < 1 or OH < 1 or OW < 1:
        raise ValueError("the (padded) input is smaller than the (dilated) kernel")
    work = conv_work(N, O, Cg, (D, H, W), (KD, KH, KW), s, p, d)
    out = np.empty((N, O, OD, OH, OW), x.dtype)
    run, part = build_at(DIRECT_RUN, x), build_at(DIRECT_PART, x)
    if not (run and part and work >= _DIRECT_PAYS):  # (small work: the loops below)
        run = build_at(DIRECT_LOOPS, x)
    if auto and Cg * KD * KH * KW >= _BLOCKED_TAPS and threads_for(work) == 1:  # (a prange body, or small work)
        blocked = build_at(BLOCKED_RUN, x)
        if blocked and build_at(PLANE_PART, x):
            run = blocked
    if run:  # (the Python path's direct kernel, or the loops' build)
        _call_direct_run(run, (x, w, b, out, s, p, d, groups, threads_for(work)))
    else:  # (neither build in the table: plain loops, small, as every caller compiles them)
        _direct_plain(x, w, b, out, s, p, d, groups)
    return out


@numba_jit()
def direct_loops(x, w, b, out, s, p, d, groups, nt):
    """:func:`conv3d_direct`'s small work (a build, called by address):
    loops whose innermost runs along the output row, on a zero-padded copy
    of ``x`` (no packing, no scratch; 2,000 tiny conv2d + max_pool2d steps
    are their case).  ``nt`` is unused (the direct kernel's signature)."""
    N, C, D, H, W = x.shape
    O, Cg, KD, KH, KW = w.shape  # noqa: E741
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    xp = np.zeros((N, C, D + p[0] + p[1], H + p[2] + p[3], W + p[4] + p[5]), x.dtype)
    xp[:, :, p[0] : p[0] + D, p[2] : p[2] + H, p[4] : p[4] + W] = x
    out[...] = 0
    per = O // groups
    sw = s[2]
    for n in range(N):
        for o in range(O):
            g = o // per
            acc = out[n, o]
            for i in range(Cg):
                volume = xp[n, g * Cg + i]
                for kd in range(KD):
                    for kh in range(KH):
                        for kw in range(KW):
                            wt = w[o, i, kd, kh, kw]
                            base = kw * d[2]
                            for od in range(OD):
                                plane = volume[od * s[0] + kd * d[0]]
                                for oh in range(OH):
                                    row = plane[oh * s[1] + kh * d[1]]
                                    target = acc[od, oh]
                                    for ow in range(OW):
                                        target[ow] += wt * row[base + ow * sw]
            if len(b):
                acc += b[o]


@numba_jit(fastmath=False)
def _direct_plain(x, w, b, out, s, p, d, groups):
    """:func:`conv3d_direct` as plain loops (its builds' stand-in while they
    are not in the table; kept small, as every user function that calls a
    convolution compiles it: one loop over the output and one over the taps,
    indices decoded, nothing for LLVM to unswitch or vectorise)."""
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    O, Cg, KD, KH, KW = w.shape  # noqa: E741
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    for e in range(out.size):
        n, o, od, oh, ow = _unravel5(e, O, OD, OH, OW)
        c0 = (o // (O // groups)) * Cg
        acc = 0.0
        for t in range(Cg * KD * KH * KW):
            i, kd, kh, kw = _unravel4(t, KD, KH, KW)
            z, y, q = od * s[0] - p[0] + kd * d[0], oh * s[1] - p[2] + kh * d[1], ow * s[2] - p[4] + kw * d[2]
            if 0 <= z < D and 0 <= y < H and 0 <= q < W:
                acc += w[o, i, kd, kh, kw] * x[n, c0 + i, z, y, q]
        out[n, o, od, oh, ow] = acc + (b[o] if len(b) else 0.0)


@numba_jit()
def _unravel5(e, O, OD, OH, OW):  # noqa: E741
    """Flat index ``e`` of an (N, O, OD, OH, OW) array -> its 5 indices."""
    e, ow = divmod(e, OW)
    e, oh = divmod(e, OH)
    e, od = divmod(e, OD)
    n, o = divmod(e, O)
    return n, o, od, oh, ow


@numba_jit()
def _unravel4(t, KD, KH, KW):
    """Flat index ``t`` of a (C, KD, KH, KW) array -> its 4 indices."""
    t, kw = divmod(t, KW)
    t, kh = divmod(t, KH)
    i, kd = divmod(t, KD)
    return i, kd, kh, kw


#: the convolution work (multiply-adds) from which the direct kernel runs: below, :func:`direct_loops`
_DIRECT_PAYS = 32768


@numba_jit()
def direct_run(x, w, b, out, s, p, d, groups, nt):
    """``kernels.direct``'s kernel (the Python path's ``direct`` method) on
    the C-contiguous (N, C, D, H, W) ``x``: the weights packed in blocks of
    ``_BLOCK`` output channels per tap, a work split of row chunks, then
    its parallel build on ``nt`` threads or one part on this thread (by
    address, as this function itself)."""
    O, Cg, KD, KH, KW = w.shape  # noqa: E741
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    cog = O // groups
    nblk = (cog + _BLOCK - 1) // _BLOCK
    taps = Cg * KD * KH * KW
    wp = np.zeros(groups * nblk * taps * _BLOCK, x.dtype)  # (pack_weights' layout, zeros past a group's end)
    wf = w.reshape(-1)
    for g in range(groups):
        for j in range(cog):
            src = (g * cog + j) * taps
            dst = (g * nblk + j // _BLOCK) * taps * _BLOCK + j % _BLOCK
            for r in range(taps):
                wp[dst + r * _BLOCK] = wf[src + r]
    bias = b if len(b) else np.zeros(O, x.dtype)
    wq = ((OW - 1) * s[2] + (KW - 1) * d[2] + s[2]) // s[2]
    rows = max(1, min(OH, _CHUNK_ELEMS // wq))
    items = x.shape[0] * groups * nblk * OD
    while rows > 1 and items * ((OH + rows - 1) // rows) < 4 * nt:  # (an item or more per thread)
        rows = (rows + 1) // 2
    nitems = items * ((OH + rows - 1) // rows)
    part = build_at(DIRECT_PART, x)
    kernel = build_at(DIRECT_KERNEL, x) if nt > 1 else 0
    if kernel:
        _call_direct_kernel(kernel, (x, w, wp, bias, out, s[0], s[1], s[2], d[0], d[1], d[2], p[0], p[2], p[4],
                                     groups, rows, 1, min(nitems, 8 * nt), part))  # fmt: skip
    else:
        _call_direct_part(part, (x, w, wp, bias, out, s[0], s[1], s[2], d[0], d[1], d[2], p[0], p[2], p[4], groups,
                                 rows, 1, 1, 0))  # fmt: skip


#: least multiply-adds per output (input channels of a group x taps) for
#: which a convolution on one thread in compiled code runs the
#: register-blocked kernel (:func:`blocked_run`) rather than the direct
#: one.  Measured, one thread, 2-core Zen 3, float32 3x3 conv2d, blocked /
#: direct (the Python path's, both): 16 ch @64 0.58, 32 @32 0.48, 3 -> 16
#: @128 0.75, 64 @16 0.53, 128 @8 0.33, 3 @32 0.47, 4 @16 0.40; one input
#: channel (9 per output) 1.06
_BLOCKED_TAPS = 18


#: ``plans``' rules of the blocked kernel's geometry, compiled (the same functions)
_vectors_for, _window_runs, _phases_read = (numba_jit()(f) for f in (vectors_for, window_runs, phases_read))


@numba_jit()
def blocked_run(x, w, b, out, s, p, d, groups, nt):
    """The register-blocked kernel (``kernels.blocked``, plane windows: the
    Python path's ``blocked`` method) on the C-contiguous (N, C, D, H, W)
    ``x``, on this thread: its geometry by ``plans.blocked``'s rules (their
    integer functions compiled; ``window_geometry`` and ``tap_offsets``'
    arithmetic on the spec's values), the weights packed by the Python
    path's packer, then one part of its work by address.  ``nt`` is unused
    (the direct kernel's signature): a build for one thread, in a
    ``prange`` body or on small work."""
    W = x.shape[4]
    O, Cg, KD, KH, KW = w.shape  # noqa: E741
    OH, OW = out.shape[3], out.shape[4]
    item = x.itemsize
    cog = O // groups
    ob = min(OB, 4) if cog <= 4 else OB  # (plans.blocked.block_channels)
    nb = (cog + ob - 1) // ob
    taps = KD * KH * KW
    R = Cg * taps
    wp = np.empty((groups, nb, R, ob), x.dtype)
    _pack_flat_serial(w.reshape(-1), cog * R, R, cog, np.arange(R), wp)  # (pack_weights of a C-contiguous w)
    sd, sh, sw = s[0], s[1], s[2]
    dd, dh, dw = d[0], d[1], d[2]
    wq = OW + (KW - 1) * dw // sw
    phases = sh * sw
    nv = _vectors_for(OH * wq, item)
    tb = nv * (LANES32 * 4 // item)
    nrun = (OH * wq + tb - 1) // tb
    reach = ((KH - 1) * dh // sh) * wq + (KW - 1) * dw // sw
    most = max(1, min(_SPAN // tb, _ACC_BYTES // (nb * ob * tb * item)))
    rpi, hw = _window_runs(nrun, tb, wq, reach, Cg * KD * phases * wq * item, most, _WINDOW_BYTES)
    plane = hw * wq
    xoff = np.empty(R, np.int64)  # (tap_offsets(spec, hw))
    for c in range(Cg):
        for a in range(KD):
            for i in range(KH):
                for j in range(KW):
                    bh, bw = i * dh, j * dw
                    xoff[((c * KD + a) * KH + i) * KW + j] = (
                        (c * KD + a) * phases * plane + ((bh % sh) * sw + bw % sw) * plane + (bh // sh) * wq + bw // sw
                    )
    bias = b if len(b) else np.zeros(O, x.dtype)
    split = (W - 1 + p[4]) // 2 < wq  # (splits_rows)
    rchunk = max(1, _CHUNK // taps) * taps  # (taps_per_chunk)
    _call_plane_part(build_at(PLANE_PART, x), (x, wp, xoff, bias, out, groups, sd, sh, sw, dd, p[0], p[2], p[4], KD,
                                               hw, wq, _phases_read(sh, sw, KH, KW, dh, dw), split, nv, tb, rpi, rchunk,
                                               1, 0))  # fmt: skip


@numba_jit()
def conv_transpose3d_direct(x, w, b, s, p, op, d, groups):
    """conv_transpose3d of the (N, C, D, H, W) ``x`` with (C, O / groups,
    KD, KH, KW) weights (one dtype; ``b`` the bias, length O or 0), strides
    ``s``, padding ``p``, output padding ``op`` and dilations ``d`` (3 each):
    every input element adds ``x * w[tap]`` at ``i s + tap d - p`` of the
    output where that lies inside it (torch's definition); conv_transpose1d
    and 2d are the cases of length-1 axes.  Raises ValueError, naming the
    argument, on shapes that do not fit."""
    N, C, D, H, W = x.shape
    Cw, Og, KD, KH, KW = w.shape
    if groups < 1 or C % groups != 0:
        raise ValueError("groups must be positive and divide in_channels (input.shape[1])")
    if Cw != C:
        raise ValueError("weight.shape[0] must be in_channels (input.shape[1]); weight is (C_in, C_out/groups, ...)")
    O = Og * groups  # noqa: E741
    if len(b) != 0 and len(b) != O:
        raise ValueError("bias must have out_channels (weight.shape[1] * groups) elements")
    if D * H * W == 0 or KD * KH * KW == 0:
        raise ValueError("input's spatial axes and weight's kernel axes must be non-empty")
    size = (D, H, W)
    kernel = (KD, KH, KW)
    outs = np.empty(3, np.int64)
    for a in range(3):
        if s[a] < 1 or d[a] < 1:
            raise ValueError("stride and dilation must be positive")
        if p[a] < 0 or op[a] < 0:
            raise ValueError("padding and output_padding must be non-negative")
        if op[a] >= s[a] and op[a] >= d[a]:
            raise ValueError("output_padding must be smaller than either stride or dilation")
        outs[a] = (size[a] - 1) * s[a] - 2 * p[a] + d[a] * (kernel[a] - 1) + op[a] + 1
        if outs[a] < 1:
            raise ValueError("the output size is not positive for this input, weight, stride and padding")
    work = x.size * Og * KD * KH * KW
    out = np.empty((N, O, outs[0], outs[1], outs[2]), x.dtype)
    bias = b if len(b) else np.zeros(O, x.dtype)
    geometry = (s[0], s[1], s[2], d[0], d[1], d[2], p[0], p[1], p[2])
    part = build_at(TRANSPOSE_PART, x)
    if part and work >= _DIRECT_PAYS:  # (the Python path's gather-form kernel)
        nt, kernel = parallel_at(TRANSPOSE_KERNEL, x, work, N * O * outs[0] * outs[1])
        if kernel:
            _call_transpose_kernel(kernel, (x, w, bias, out, groups, geometry, nt, part))
        else:
            _call_transpose_part(part, (x, w, bias, out, groups, geometry, 1, 0))
        return out
    loops = build_at(TRANSPOSE_LOOPS, x)
    if loops:  # (small work: the scatter's build)
        _call_transpose_kernel(loops, (x, w, bias, out, groups, geometry, 1, 0))
    else:  # (neither build in the table: plain loops, small, as every caller compiles them)
        _transpose_plain(x, w, bias, out, s, p, d)
    return out


@numba_jit()
def transpose_loops(x, w, b, out, groups, g, nt, part):
    """:func:`conv_transpose3d_direct`'s small work (a build, called by
    address; the kernel's signature, ``g`` the strides, dilations and
    padding, ``nt`` and ``part`` unused): :func:`_transpose_planes`."""
    out[...] = 0
    _transpose_planes(x, w, b, out, (g[0], g[1], g[2]), (g[6], g[7], g[8]), (g[3], g[4], g[5]))


@numba_jit(fastmath=False)
def _transpose_plain(x, w, b, out, s, p, d):
    """:func:`conv_transpose3d_direct` as plain loops (its builds' stand-in
    while they are not in the table; kept small, as :func:`_direct_plain`):
    each output element gathers the taps whose input position lands on it."""
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    _, Og, KD, KH, KW = w.shape
    O, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]  # noqa: E741
    Cg = x.shape[1] // (O // Og)
    for e in range(out.size):
        n, o, tz, th, tw = _unravel5(e, O, OD, OH, OW)
        c0, j = (o // Og) * Cg, o % Og
        acc = 0.0
        for t in range(Cg * KD * KH * KW):
            i, kd, kh, kw = _unravel4(t, KD, KH, KW)
            z, y, q = tz + p[0] - kd * d[0], th + p[1] - kh * d[1], tw + p[2] - kw * d[2]
            if z < 0 or y < 0 or q < 0 or z % s[0] or y % s[1] or q % s[2]:
                continue
            z, y, q = z // s[0], y // s[1], q // s[2]
            if z < D and y < H and q < W:
                acc += x[n, c0 + i, z, y, q] * w[c0 + i, j, kd, kh, kw]
        out[n, o, tz, th, tw] = acc + b[o]


@_inline
def _span(n, start, step, limit):
    """The first and one-past-last ``i`` in [0, n) with 0 <= start + i step < limit."""
    lo = 0 if start >= 0 else (-start + step - 1) // step
    hi = n if start + (n - 1) * step < limit else (limit - 1 - start) // step + 1
    return lo, max(lo, hi)


@_inline
def _transpose_planes(x, w, b, out, s, p, d):
    """:func:`conv_transpose3d_direct`'s scatter into the zeroed ``out`` (its
    small calls): per (image, output channel) plane, input channel of the
    group and tap, the input positions whose target lies in the output, a
    strided row at a time."""
    N, C, D, H, W = x.shape
    _, Og, KD, KH, KW = w.shape
    O, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]  # noqa: E741
    Cg = C // (O // Og)
    for n in range(N):
        for o in range(O):
            g, j = o // Og, o % Og
            acc = out[n, o]
            for i in range(g * Cg, (g + 1) * Cg):
                volume = x[n, i]
                for kd in range(KD):
                    z0, z1 = _span(D, kd * d[0] - p[0], s[0], OD)
                    for kh in range(KH):
                        h0, h1 = _span(H, kh * d[1] - p[1], s[1], OH)
                        for kw in range(KW):
                            c0, c1 = _span(W, kw * d[2] - p[2], s[2], OW)
                            wt = w[i, j, kd, kh, kw]
                            base = kw * d[2] - p[2]
                            for z in range(z0, z1):
                                plane = acc[z * s[0] + kd * d[0] - p[0]]
                                for h in range(h0, h1):
                                    row = volume[z, h]
                                    target = plane[h * s[1] + kh * d[1] - p[1]]
                                    for c in range(c0, c1):
                                        target[base + c * s[2]] += wt * row[c]
            if len(b):
                acc += b[o]


#: torch's pooling output length (``_spec.pool_output_size``), the window
#: tables (``plans.pool``) and their packing (``kernels.pool``), compiled
pool_size = numba_jit()(pool_output_size)
regular_tables = numba_jit()(regular_tables)
adaptive_tables = numba_jit()(adaptive_tables)
pack_windows = numba_jit()(pack_windows)


@_inline
def _window(x, q, z0, nz, dz, h0, nh, dh, w0, nw, dw, is_max):
    """The max (torch's rule: a NaN wins; -inf for a window over padding
    only) or the sum of volume ``q`` of ``x`` over the window's positions
    ``(z0 + a dz, h0 + e dh, w0 + f dw)`` that lie inside it."""
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    m = -np.inf
    total = 0.0
    for a in range(nz):
        z = z0 + a * dz
        if z < 0 or z >= D:
            continue
        for e in range(nh):
            h = h0 + e * dh
            if h < 0 or h >= H:
                continue
            for f in range(nw):
                c = w0 + f * dw
                if 0 <= c < W:
                    v = x[q, z, h, c]
                    if not is_max:
                        total += v
                    elif v > m or v != v:
                        m = v
    return m if is_max else total


@numba_jit()
def pool3d(x, k, s, p, d, ceil_mode, is_max, count_include_pad, divisor):
    """max_pool (``is_max``) or avg_pool of the (P, D, H, W) volumes ``x``
    (kernel ``k``, stride ``s``, padding ``p``, dilation ``d``: 3 each): max
    as torch's (a NaN in the window gives NaN; padding is -inf), mean over
    the window's padded or real elements, or over ``divisor`` (> 0)."""
    P, D, H, W = x.shape
    size = (D, H, W)
    outs = np.empty(3, np.int64)
    for a in range(3):
        if k[a] < 1 or s[a] < 1 or d[a] < 1:
            raise ValueError("kernel_size, stride and dilation must be positive")
        if p[a] < 0 or p[a] > k[a] // 2:
            raise ValueError("padding must be non-negative and at most half of kernel_size")
        outs[a] = pool_size(size[a], k[a], s[a], p[a], d[a], ceil_mode)
        if outs[a] < 1:
            raise ValueError("the output size is too small for this input, kernel_size, stride and padding")
    OD, OH, OW = outs[0], outs[1], outs[2]
    out = np.empty((P, OD, OH, OW), x.dtype)
    work = out.size * k[0] * k[1] * k[2]
    nt, address = parallel_at(MAX_POOL if is_max else AVG_POOL, x, work, P)
    if not address and work >= _TABLES_PAY:
        nt, address = 1, build_at(MAX_POOL_SERIAL if is_max else AVG_POOL_SERIAL, x)
    tables = build_at(POOL_WINDOWS, x)
    if not (address and tables):  # (small work: the loops' build)
        tables = build_at(POOL_LOOPS, x)
    if tables:  # (the Python path's kernels, on window tables made as it makes them; or the loops)
        _call_pool_tables(tables, (x, out, k, s, p, d, is_max, count_include_pad, divisor, address, nt))
    else:  # (neither build in the table: plain loops, small, as every caller compiles them)
        _pool_plain(x, out, k, s, p, d, is_max, count_include_pad, divisor)
    return out


@numba_jit()
def pool_loops(x, out, k, s, p, d, is_max, count_include_pad, divisor, address, nt):
    """:func:`pool3d`'s small work (a build, called by address; the
    tables' signature, ``address`` and ``nt`` unused): loops over the
    windows, no tables (2,000 tiny conv2d + max_pool2d steps are its case)."""
    _pool_volumes(x, out, k, s, p, d, is_max, count_include_pad, divisor, 0, x.shape[0])


@numba_jit(fastmath=False)
def _pool_plain(x, out, k, s, p, d, is_max, count_include_pad, divisor):
    """:func:`pool3d`'s stand-in while its builds are not in the table: the
    loops of :func:`pool_loops`, not inlined (kept small, as every user
    function that pools compiles it)."""
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    for q in range(x.shape[0]):
        for od in range(out.shape[1]):
            for oh in range(out.shape[2]):
                for ow in range(out.shape[3]):
                    z0, h0, w0 = od * s[0] - p[0], oh * s[1] - p[1], ow * s[2] - p[2]
                    v = _window_plain(x, q, z0, k[0], d[0], h0, k[1], d[1], w0, k[2], d[2], is_max)
                    if is_max:
                        out[q, od, oh, ow] = v
                        continue
                    if divisor > 0:
                        n = divisor
                    elif count_include_pad:  # (the window clipped to the padded volume)
                        n = (min(z0 + k[0], D + p[0]) - z0) * (min(h0 + k[1], H + p[1]) - h0) * (
                            min(w0 + k[2], W + p[2]) - w0)  # fmt: skip
                    else:  # (to the volume)
                        n = (min(z0 + k[0], D) - max(z0, 0)) * (min(h0 + k[1], H) - max(h0, 0)) * (
                            min(w0 + k[2], W) - max(w0, 0))  # fmt: skip
                    out[q, od, oh, ow] = v / n


#: :func:`_window`, called (not inlined) and without fastmath (nothing to vectorise): small machine code
_window_plain = numba_jit(fastmath=False)(renamed(_window.py_func, "_window_plain"))


@numba_jit()
def pool_tables(x, out, k, s, p, d, is_max, count_include_pad, divisor, address, nt):
    """:func:`pool3d`'s window tables (``plans.pool``), and the pooling
    kernel at ``address`` on them (called by address itself: the tables'
    NumPy code, linked into every caller, doubled a first use's compile
    time)."""
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    lo0, hi0, _, size0, _ = regular_tables(D, OD, k[0], s[0], p[0], d[0], count_include_pad)
    lo1, hi1, _, size1, _ = regular_tables(H, OH, k[1], s[1], p[1], d[1], count_include_pad)
    lo2, hi2, _, size2, regular = regular_tables(W, OW, k[2], s[2], p[2], d[2], count_include_pad)
    tab, par = pack_windows((lo0, lo1, lo2), (hi0, hi1, hi2), (size0, size1, size2), d, regular)
    _run_pool(address, x, out, tab, par, is_max, float(divisor), nt)


@numba_jit()
def _run_pool(address, x, out, tab, par, is_max, divisor, nt):
    """The max or avg pooling kernel at ``address`` (``kernels.pool``)."""
    if is_max:
        _call_max_pool(address, (x, out, np.empty((1, 1, 1, 1), np.int64), False, tab, par, nt))
    else:
        _call_avg_pool(address, (x, out, tab, par, divisor, nt))


@numba_jit()
def adaptive_tables_run(x, out, is_max, address, nt):
    """:func:`adaptive3d`'s window tables and kernel (as :func:`pool_tables`)."""
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    lo0, hi0, _, size0, _ = adaptive_tables(x.shape[1], OD)
    lo1, hi1, _, size1, _ = adaptive_tables(x.shape[2], OH)
    lo2, hi2, _, size2, regular = adaptive_tables(x.shape[3], OW)
    tab, par = pack_windows((lo0, lo1, lo2), (hi0, hi1, hi2), (size0, size1, size2), (1, 1, 1), regular)
    _run_pool(address, x, out, tab, par, is_max, 0.0, nt)


#: the pooling work (window elements) below which the loops here run: the window tables' dozen
#: small arrays cost more than they save (2,000 tiny conv2d + max_pool2d steps: 2.7 -> 6.4 ms)
_TABLES_PAY = 8192


@_inline
def _pool_volumes(x, out, k, s, p, d, is_max, count_include_pad, divisor, q0, q1):
    """:func:`pool3d`'s loops over volumes ``q0`` to ``q1`` (inlined: as a
    called function the serial build tripled the first-use compile time)."""
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    for q in range(q0, q1):
        for od in range(OD):
            z0 = od * s[0] - p[0]
            for oh in range(OH):
                h0 = oh * s[1] - p[1]
                for ow in range(OW):
                    w0 = ow * s[2] - p[2]
                    v = _window(x, q, z0, k[0], d[0], h0, k[1], d[1], w0, k[2], d[2], is_max)
                    if is_max:
                        out[q, od, oh, ow] = v
                    elif divisor > 0:
                        out[q, od, oh, ow] = v / divisor
                    elif count_include_pad:  # (the window clipped to the padded volume)
                        out[q, od, oh, ow] = v / ((min(z0 + k[0], D + p[0]) - z0) * (min(h0 + k[1], H + p[1]) - h0)
                                                  * (min(w0 + k[2], W + p[2]) - w0))  # fmt: skip
                    else:  # (to the volume)
                        out[q, od, oh, ow] = v / ((min(z0 + k[0], D) - max(z0, 0)) * (min(h0 + k[1], H) - max(h0, 0))
                                                  * (min(w0 + k[2], W) - max(w0, 0)))  # fmt: skip


@_inline
def _adaptive_volumes(x, out, is_max, q0, q1):
    """:func:`adaptive3d`'s loops over volumes ``q0`` to ``q1`` (inlined)."""
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    for q in range(q0, q1):
        for od in range(OD):
            z0, z1 = (od * D) // OD, -((-(od + 1) * D) // OD)
            for oh in range(OH):
                h0, h1 = (oh * H) // OH, -((-(oh + 1) * H) // OH)
                for ow in range(OW):
                    w0, w1 = (ow * W) // OW, -((-(ow + 1) * W) // OW)
                    v = _window(x, q, z0, z1 - z0, 1, h0, h1 - h0, 1, w0, w1 - w0, 1, is_max)
                    out[q, od, oh, ow] = v if is_max else v / ((z1 - z0) * (h1 - h0) * (w1 - w0))


@numba_jit()
def adaptive3d(x, OD, OH, OW, is_max):
    """adaptive_max_pool / adaptive_avg_pool of the (P, D, H, W) volumes
    ``x`` to (OD, OH, OW): window [floor(o L / O), ceil((o + 1) L / O)) per
    axis, torch's formulas and NaN rule."""
    P = x.shape[0]
    if OD < 1 or OH < 1 or OW < 1:
        raise ValueError("output_size must be positive")
    out = np.empty((P, OD, OH, OW), x.dtype)
    nt, address = parallel_at(MAX_POOL if is_max else AVG_POOL, x, x.size, P)
    if not address and x.size >= _TABLES_PAY:
        nt, address = 1, build_at(MAX_POOL_SERIAL if is_max else AVG_POOL_SERIAL, x)
    tables = build_at(ADAPTIVE_WINDOWS, x)
    if not (address and tables):
        tables = build_at(ADAPTIVE_LOOPS, x)
    if tables:
        _call_adaptive_tables(tables, (x, out, is_max, address, nt))
    else:  # (neither build in the table: plain loops, as :func:`pool3d`)
        _adaptive_plain(x, out, is_max)
    return out


@numba_jit()
def adaptive_loops(x, out, is_max, address, nt):
    """:func:`adaptive3d`'s small work (a build, as :func:`pool_loops`)."""
    _adaptive_volumes(x, out, is_max, 0, x.shape[0])


@numba_jit(fastmath=False)
def _adaptive_plain(x, out, is_max):
    """:func:`adaptive3d`'s stand-in while its builds are not in the table."""
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    OD, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    for q in range(x.shape[0]):
        for od in range(OD):
            for oh in range(OH):
                for ow in range(OW):
                    z0, z1 = (od * D) // OD, -((-(od + 1) * D) // OD)
                    h0, h1 = (oh * H) // OH, -((-(oh + 1) * H) // OH)
                    w0, w1 = (ow * W) // OW, -((-(ow + 1) * W) // OW)
                    v = _window_plain(x, q, z0, z1 - z0, 1, h0, h1 - h0, 1, w0, w1 - w0, 1, is_max)
                    out[q, od, oh, ow] = v if is_max else v / ((z1 - z0) * (h1 - h0) * (w1 - w0))


# --- the builds called by address -------------------------------------------------------------

_TRIPLE = types.UniTuple(types.int64, 3)
TWO_PASS = Linkage(
    "two_pass_kernel",
    lambda dt: (
        types.none,
        (*arrays(dt, 3, 3), I64, *arrays(dt, 1), I64, *arrays(dt, 1), types.int64, dt, types.boolean, types.int64),
    ),
)
CORRELATE_BANDS = Linkage(
    "correlate_bands",
    lambda dt: (types.none, (*arrays(dt, 3, 3), I64, I64, I64, types.int64, dt, I64, *arrays(dt, 1), *ints(4))),
)
DIRECT_RUN_CALL = Linkage(
    "direct_run", lambda dt: (types.none, (*arrays(dt, 5, 5, 1, 5), _TRIPLE, I64, _TRIPLE, *ints(2)))
)
DIRECT_KERNEL_CALL = Linkage("conv_direct_kernel", lambda dt: (types.none, (*arrays(dt, 5, 5, 1, 1, 5), *ints(14))))
TRANSPOSE_KERNEL_CALL = Linkage(
    "conv_transpose_direct_kernel",
    lambda dt: (types.none, (*arrays(dt, 5, 5, 1, 5), types.int64, types.UniTuple(types.int64, 9), *ints(2))),
)
FFT_CONVOLVE = Linkage("fft_full", lambda dt: (types.none, (*arrays(dt, 3, 3, 3), *ints(3))))
_TABLES = (types.Array(types.int64, 2, "C"), I64)
MAX_POOL_KERNEL = Linkage(
    "max_pool_kernel",
    lambda dt: (
        types.none,
        (*arrays(dt, 4, 4), types.Array(types.int64, 4, "C"), types.boolean, *_TABLES, types.int64),
    ),
)
AVG_POOL_KERNEL = Linkage(
    "avg_pool_kernel", lambda dt: (types.none, (*arrays(dt, 4, 4), *_TABLES, types.float64, types.int64))
)
POOL_TABLES = Linkage(
    "pool_tables",
    lambda dt: (
        types.none,
        (*arrays(dt, 4, 4), _TRIPLE, _TRIPLE, _TRIPLE, _TRIPLE, types.boolean, types.boolean, *ints(3)),
    ),
)
ADAPTIVE_TABLES = Linkage("adaptive_tables_run", lambda dt: (types.none, (*arrays(dt, 4, 4), types.boolean, *ints(2))))
_call_pool_tables, _call_adaptive_tables = POOL_TABLES.call, ADAPTIVE_TABLES.call
_call_two_pass, _call_bands, _call_fft = TWO_PASS.call, CORRELATE_BANDS.call, FFT_CONVOLVE.call
_call_direct_run, _call_direct_kernel, _call_direct_part = DIRECT_RUN_CALL.call, DIRECT_KERNEL_CALL.call, PART.call
_call_transpose_kernel, _call_transpose_part = TRANSPOSE_KERNEL_CALL.call, TRANSPOSE_DIRECT_PART.call
_call_plane_part = PLANE_WINDOW_PART.call
_call_max_pool, _call_avg_pool = MAX_POOL_KERNEL.call, AVG_POOL_KERNEL.call
#: (linkage, build) by index; ``fastconv._numba_ext`` puts their addresses in the table.  The
#: pooling kernels are the Python path's own (``kernels.pool``), serial builds included: linked,
#: they would be optimised again in every user function
BUILDS = (
    (TWO_PASS, two_pass_kernel.dispatcher),
    (CORRELATE_BANDS, correlate_bands.dispatcher),
    (DIRECT_RUN_CALL, direct_run),
    (PART, _part),
    (DIRECT_KERNEL_CALL, conv_direct_kernel.dispatcher),
    (TRANSPOSE_KERNEL_CALL, conv_transpose_direct_kernel.dispatcher),
    (TRANSPOSE_DIRECT_PART, conv_transpose_direct_kernel_part),
    (MAX_POOL_KERNEL, max_pool_kernel.dispatcher),
    (MAX_POOL_KERNEL, max_pool_kernel_serial),
    (AVG_POOL_KERNEL, avg_pool_kernel.dispatcher),
    (AVG_POOL_KERNEL, avg_pool_kernel_serial),
    (POOL_TABLES, pool_tables),
    (ADAPTIVE_TABLES, adaptive_tables_run),
    (TWO_PASS, two_pass_kernel_serial),
    (CORRELATE_BANDS, correlate_bands_serial),
    (DIRECT_RUN_CALL, direct_loops),
    (POOL_TABLES, pool_loops),
    (ADAPTIVE_TABLES, adaptive_loops),
    (TRANSPOSE_KERNEL_CALL, transpose_loops),
    (FFT_CONVOLVE, fft_full),  # (needs rocket-fft: asked for only where it is installed)
    (DIRECT_RUN_CALL, blocked_run),
    (PLANE_WINDOW_PART, _plane_window_kernel_part),
)  # fmt: skip
SWEEP, BANDS, DIRECT_RUN, DIRECT_PART, DIRECT_KERNEL, TRANSPOSE_KERNEL, TRANSPOSE_PART, MAX_POOL, MAX_POOL_SERIAL, AVG_POOL, AVG_POOL_SERIAL, POOL_WINDOWS, ADAPTIVE_WINDOWS, SWEEP_SERIAL, BANDS_SERIAL, DIRECT_LOOPS, POOL_LOOPS, ADAPTIVE_LOOPS, TRANSPOSE_LOOPS, FFT_FULL, BLOCKED_RUN, PLANE_PART = (
    range(len(BUILDS)))  # fmt: skip
SLOTS = BUILDS_AT + 2 * len(BUILDS)
