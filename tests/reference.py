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
