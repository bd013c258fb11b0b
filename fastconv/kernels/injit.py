"""What fastconv's functions run when they are called from Numba-compiled
code (``fastconv/_numba_ext.py`` registers them as overloads): the work is
the same kernels' -- the filters' sweep (:mod:`.passes`) for 1-D passes
and separable filters, the direct correlation (:mod:`.filter`) for
``ndimage.correlate``/``convolve`` -- with the padding by index tables
made here in compiled code; ``conv1d/2d`` and ``max/avg_pool1d/2d`` are
direct loops whose innermost loop runs along output columns (the small
layers and patches such code calls them on).  Everything runs on the
calling thread (serial builds): inside a ``prange`` body nothing launches
a nested parallel region, under any threading layer."""

from __future__ import annotations

import numpy as np

from .._config import numba_jit
from .._spec import pool_output_size
from .direct import _inline
from .filter import correlate_kernel_serial
from .passes import MODE_NAMES, MODE_RULES, boundary_index, two_pass_kernel_serial

_EPS = float(np.finfo(np.float64).eps)


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


#: the padded positions' input indices (``passes.boundary_index``, compiled)
boundary = numba_jit()(boundary_index)


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
    two_pass_kernel_serial(x3, out, rows, wv, cols, wh, lo_h, _as(x3, cval), vertical_first, 1)
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
    n = x3.shape[2]
    c = _as(x3, cval)
    lo, hi = max(l2, 0), min(l2 + n, Wp)  # (the padded columns the row copies: rw[e] == e - l2 there)
    # bands of output rows, their padded input in one small buffer (a fresh padded copy of a large
    # image costs its page faults on every call; the buffer stays in cache)
    nb = min(H, max(8, (1 << 17) // (KD * Wp)))
    Hb = nb + KH - 1
    band = np.empty((KD, Hb, Wp), x3.dtype)
    ob = np.empty((1, nb, W), x3.dtype)
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
    for d in range(D):
        for r0 in range(0, H, nb):
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
    return out


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
def conv3d_direct(x, w, b, s, p, d, groups):
    """conv3d of the (N, C, D, H, W) ``x`` with (O, C / groups, KD, KH, KW)
    weights (one dtype; ``b`` the bias, length O or 0), strides ``s`` and
    dilations ``d`` (3 each), zero padding ``p`` (before and after each
    axis: 6): direct loops, the innermost along the output row (conv1d and
    conv2d are the cases of length-1 axes).  Raises ValueError, naming the
    argument, on shapes that do not fit."""
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
    Dp, Hp, Wp = D + p[0] + p[1], H + p[2] + p[3], W + p[4] + p[5]
    OD = (Dp - d[0] * (KD - 1) - 1) // s[0] + 1
    OH = (Hp - d[1] * (KH - 1) - 1) // s[1] + 1
    OW = (Wp - d[2] * (KW - 1) - 1) // s[2] + 1
    if OD < 1 or OH < 1 or OW < 1:
        raise ValueError("the (padded) input is smaller than the (dilated) kernel")
    xp = np.zeros((N, C, Dp, Hp, Wp), x.dtype)
    xp[:, :, p[0] : p[0] + D, p[2] : p[2] + H, p[4] : p[4] + W] = x
    out = np.zeros((N, O, OD, OH, OW), x.dtype)
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
    return out


#: torch's pooling output length (``_spec.pool_output_size``, compiled)
pool_size = numba_jit()(pool_output_size)


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
    for q in range(P):
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
    return out


@numba_jit()
def adaptive3d(x, OD, OH, OW, is_max):
    """adaptive_max_pool / adaptive_avg_pool of the (P, D, H, W) volumes
    ``x`` to (OD, OH, OW): window [floor(o L / O), ceil((o + 1) L / O)) per
    axis, torch's formulas and NaN rule."""
    P, D, H, W = x.shape
    if OD < 1 or OH < 1 or OW < 1:
        raise ValueError("output_size must be positive")
    out = np.empty((P, OD, OH, OW), x.dtype)
    for q in range(P):
        for od in range(OD):
            z0, z1 = (od * D) // OD, -((-(od + 1) * D) // OD)
            for oh in range(OH):
                h0, h1 = (oh * H) // OH, -((-(oh + 1) * H) // OH)
                for ow in range(OW):
                    w0, w1 = (ow * W) // OW, -((-(ow + 1) * W) // OW)
                    v = _window(x, q, z0, z1 - z0, 1, h0, h1 - h0, 1, w0, w1 - w0, 1, is_max)
                    out[q, od, oh, ow] = v if is_max else v / ((z1 - z0) * (h1 - h0) * (w1 - w0))
    return out
