"""Plain-NumPy references, written independently of fastconv's kernels.

Padding is done here by explicit index maps (not ``np.pad``, which fastconv
itself uses for non-zero padding modes), and the convolution by gathering
every window with ``sliding_window_view`` and contracting with ``tensordot``
in float64.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _index_map(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """Source index for each padded position, -1 where the value is zero."""
    idx = np.arange(-lo, n + hi)
    if mode == "zeros":
        return np.where((idx >= 0) & (idx < n), idx, -1)
    if mode == "replicate":
        return np.clip(idx, 0, n - 1)
    if mode == "circular":
        return idx % n
    if mode == "reflect":  # mirror without repeating the edge sample
        out = idx.copy()
        for i, v in enumerate(idx):
            while v < 0 or v >= n:
                v = -v if v < 0 else 2 * (n - 1) - v
            out[i] = v
        return out
    raise ValueError(mode)


def pad(x: np.ndarray, lo, hi, mode: str) -> np.ndarray:
    """Pad the trailing ``len(lo)`` axes of x."""
    nd = len(lo)
    out = np.asarray(x, dtype=np.float64)
    for k in range(nd):
        axis = out.ndim - nd + k
        m = _index_map(out.shape[axis], lo[k], hi[k], mode)
        taken = np.take(out, np.maximum(m, 0), axis=axis)
        if mode == "zeros":
            shape = [1] * out.ndim
            shape[axis] = len(m)
            taken = np.where((m >= 0).reshape(shape), taken, 0.0)
        out = taken
    return out


def conv_nd(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """torch.nn.functional.conv{1,2,3}d semantics in float64.  ``x`` is batched
    (N, C, *spatial); ``padding`` is an int, a tuple, a tuple of (lo, hi)
    pairs, "valid" or "same"."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = w.ndim - 2
    k = w.shape[2:]

    def tup(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd

    stride, dilation = tup(stride), tup(dilation)
    if padding == "valid":
        lo = hi = (0,) * nd
    elif padding == "same":
        total = [d * (kk - 1) for d, kk in zip(dilation, k)]
        lo = tuple(t // 2 for t in total)
        hi = tuple(t - t // 2 for t in total)
    elif isinstance(padding, (tuple, list)) and padding and isinstance(padding[0], (tuple, list)):
        lo = tuple(p[0] for p in padding)
        hi = tuple(p[1] for p in padding)
    else:
        lo = hi = tup(padding)
    xp = pad(x, lo, hi, padding_mode)
    n, c = x.shape[:2]
    c_out = w.shape[0]
    cig, cog = c // groups, c_out // groups
    span = tuple(d * (kk - 1) + 1 for d, kk in zip(dilation, k))
    win = sliding_window_view(xp, span, axis=tuple(range(2, 2 + nd)))
    # win: (N, C, *positions, *span) -> dilate the window, stride the positions
    sl = (slice(None), slice(None))
    sl += tuple(slice(None, None, s) for s in stride)
    sl += tuple(slice(None, None, d) for d in dilation)
    win = win[sl]
    out_sp = win.shape[2 : 2 + nd]
    outs = []
    for g in range(groups):
        wg = win[:, g * cig : (g + 1) * cig]  # (N, cig, *out, *k)
        wg = np.moveaxis(wg, 1, 1 + nd)  # (N, *out, cig, *k)
        kern = w[g * cog : (g + 1) * cog]  # (cog, cig, *k)
        axes_w = tuple(range(1, 2 + nd))
        axes_x = tuple(range(1 + nd, 2 + 2 * nd))
        r = np.tensordot(wg, kern, axes=(axes_x, axes_w))  # (N, *out, cog)
        outs.append(np.moveaxis(r, -1, 1))
    out = np.concatenate(outs, axis=1) if outs else np.zeros((n, 0, *out_sp))
    if b is not None:
        out = out + np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * nd)
    return out


def receptive_mask(shape_in, index, w_shape, **conv_kwargs) -> np.ndarray:
    """Boolean mask of the outputs whose window covers input element ``index``
    (computed by convolving an indicator with all-ones weights)."""
    ind = np.zeros(shape_in)
    ind[index] = 1.0
    return conv_nd(ind, np.ones(w_shape), **conv_kwargs) > 0.5


def conv_transpose_nd(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose{1,2,3}d in float64, in scatter form:
    every input element adds ``x * w[tap]`` at ``i*stride + tap*dilation``
    of an uncropped output, which is then cropped by ``padding``."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = w.ndim - 2

    def tup(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd

    stride, padding, output_padding, dilation = map(tup, (stride, padding, output_padding, dilation))
    n, c_in = x.shape[:2]
    ins = x.shape[2:]
    k = w.shape[2:]
    cig, cog = c_in // groups, w.shape[1]
    full = tuple((i - 1) * s + d * (kk - 1) + 1 + op + p for i, s, d, kk, op, p in
                 zip(ins, stride, dilation, k, output_padding, padding))  # fmt: skip
    acc = np.zeros((n, cog * groups, *full))
    for tap in np.ndindex(*k):
        dst = (
            slice(None),
            slice(None),
            *tuple(slice(t * d, t * d + (i - 1) * s + 1, s) for t, d, i, s in zip(tap, dilation, ins, stride)),
        )
        for g in range(groups):
            xg = x[:, g * cig : (g + 1) * cig]  # (N, cig, *in)
            wg = w[(slice(g * cig, (g + 1) * cig), slice(None), *tap)]  # (cig, cog)
            contrib = np.einsum("nc...,co->no...", xg, wg)
            acc[(dst[0], slice(g * cog, (g + 1) * cog), *dst[2:])] += contrib
    out_size = tuple((i - 1) * s - 2 * p + d * (kk - 1) + op + 1 for i, s, p, d, kk, op in
                     zip(ins, stride, padding, dilation, k, output_padding))  # fmt: skip
    crop = (slice(None), slice(None), *tuple(slice(p, p + o) for p, o in zip(padding, out_size)))
    out = acc[crop]
    if b is not None:
        out = out + np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * nd)
    return out


def _pool_len(size, k, s, p, d, ceil_mode):
    """torch's documented output length (nn.MaxPool2d / AvgPool2d docs)."""
    import math

    rnd = math.ceil if ceil_mode else math.floor
    out = rnd((size + 2 * p - d * (k - 1) - 1) / s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _windows(shape_in, kernel, stride, padding, dilation, ceil_mode):
    """For each output position: the list of in-bounds input index tuples in
    row-major window order, and the padded-window extents per axis."""
    nd = len(shape_in)
    outs = [_pool_len(shape_in[a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode) for a in range(nd)]
    for pos in np.ndindex(*outs):
        starts = [pos[a] * stride[a] - padding[a] for a in range(nd)]
        taps = []
        for t in np.ndindex(*kernel):
            idx = tuple(starts[a] + t[a] * dilation[a] for a in range(nd))
            if all(0 <= idx[a] < shape_in[a] for a in range(nd)):
                taps.append(idx)
        yield pos, starts, taps, outs


def max_pool_nd(x, kernel, stride, padding, dilation, ceil_mode):
    """Max pooling with torch's NaN rule; returns (values, flat indices)."""
    x = np.asarray(x, dtype=np.float64)
    nd = len(kernel)
    sp = x.shape[2:]
    vals = idxs = None
    for pos, _, taps, outs in _windows(sp, kernel, stride, padding, dilation, ceil_mode):
        if vals is None:
            vals = np.empty(x.shape[:2] + tuple(outs))
            idxs = np.empty(x.shape[:2] + tuple(outs), dtype=np.int64)
        sel = (slice(None), slice(None), *pos)
        if not taps:  # a dilated window entirely over padding: torch gives -inf and
            first = []  # the index of its first tap moved onto the input's side
            for a in range(nd):
                st_ = pos[a] * stride[a] - padding[a]
                while st_ < 0:
                    st_ += dilation[a]
                first.append(st_)
            vals[sel] = -np.inf
            idxs[sel] = int(np.dot(first, np.cumprod((1, *sp[::-1]))[:nd][::-1]))
            continue
        window = np.stack([x[(slice(None), slice(None), *t)] for t in taps], axis=-1)  # (N, C, T)
        flat = np.array([np.ravel_multi_index(t, sp) for t in taps])
        isnan = np.isnan(window)
        last_nan = window.shape[-1] - 1 - np.argmax(isnan[..., ::-1], axis=-1)
        first_max = np.argmax(np.where(isnan, -np.inf, window), axis=-1)
        choice = np.where(isnan.any(-1), last_nan, first_max)
        vals[sel] = np.take_along_axis(window, choice[..., None], -1)[..., 0]
        idxs[sel] = flat[choice]
    assert nd == len(sp)
    return vals, idxs


def avg_pool_nd(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    x = np.asarray(x, dtype=np.float64)
    sp = x.shape[2:]
    nd = len(sp)
    out = None
    for pos, starts, taps, outs in _windows(sp, kernel, stride, padding, (1,) * nd, ceil_mode):
        if out is None:
            out = np.empty(x.shape[:2] + tuple(outs))
        total = sum(x[(slice(None), slice(None), *t)] for t in taps)
        if divisor_override:
            div = divisor_override
        elif count_include_pad:  # the window clipped to the padded input
            div = 1
            for a in range(nd):
                div *= min(starts[a] + kernel[a], sp[a] + padding[a]) - starts[a]
        else:
            div = len(taps)
        out[(slice(None), slice(None), *pos)] = total / div
    return out


def adaptive_pool_nd(x, output_size, kind):
    """Adaptive pooling by torch's formulas: window [floor(o*L/O), ceil((o+1)*L/O))."""
    x = np.asarray(x, dtype=np.float64)
    sp = x.shape[2:]
    vals = np.empty(x.shape[:2] + tuple(output_size))
    idxs = np.empty(vals.shape, dtype=np.int64)
    for pos in np.ndindex(*output_size):
        sl = []
        for a, o in enumerate(pos):
            lo = (o * sp[a]) // output_size[a]
            hi = -((-(o + 1) * sp[a]) // output_size[a])
            sl.append(range(lo, hi))
        taps = [t for t in np.ndindex(*[len(r) for r in sl])]
        taps = [tuple(sl[a][t[a]] for a in range(len(sp))) for t in taps]
        window = np.stack([x[(slice(None), slice(None), *t)] for t in taps], axis=-1)
        sel = (slice(None), slice(None), *pos)
        if kind == "avg":
            vals[sel] = window.mean(-1)
            continue
        flat = np.array([np.ravel_multi_index(t, sp) for t in taps])
        isnan = np.isnan(window)
        last_nan = window.shape[-1] - 1 - np.argmax(isnan[..., ::-1], axis=-1)
        first_max = np.argmax(np.where(isnan, -np.inf, window), axis=-1)
        choice = np.where(isnan.any(-1), last_nan, first_max)
        vals[sel] = np.take_along_axis(window, choice[..., None], -1)[..., 0]
        idxs[sel] = flat[choice]
    return vals, idxs
