"""Tier 0: every operation in NumPy, with nothing to compile.

These paths answer a call at once while its Numba kernel compiles in the
background (:mod:`fastconv._warm`), and they are registered as the method
``"numpy"`` (never picked by ``auto``'s cost model; forced by name like any
other method, and tested against the references like every method).  No
numba import: this module must load in milliseconds.

- Convolution: one BLAS GEMM per kernel tap (``W[:, :, tap] @ x`` shifted by
  the tap), each tap reading only the input positions its outputs see (no
  padded copy): NaN/Inf stay in their windows, as with the direct kernel.
- Transposed convolution: the same, scattered: each tap's GEMM is added to
  the output positions it reaches (no zero-inserted input).
- Filters (ndimage, signal): one shifted slice of the padded input per tap.
- Pooling: the windows gathered from the window tables
  (:mod:`fastconv.plans.pool`) and reduced with torch's rules.

Workspace: a block of images at a time, within ``workspace_limit`` (at least
one image; :func:`conv_workspace` says how much).
"""

from __future__ import annotations

import numpy as np

from ..plans.tier0 import _conv_per_image, _image_block, conv_supports, conv_workspace  # noqa: F401


def _ranges(out_len: int, in_len: int, s: int, offset: int) -> tuple[int, int, int]:
    """Outputs ``o`` in [o0, o1) read input ``o*s + offset`` inside [0, in_len);
    returns (o0, o1, the first input index).  (With the roles of input and
    output swapped, the same for the scatter of a transposed convolution.)"""
    o0 = min(out_len, max(0, -(offset // s)))
    o1 = max(o0, min(out_len, (in_len - 1 - offset) // s + 1))
    return o0, o1, o0 * s + offset


def _tap_matrices(w: np.ndarray, groups: int, transposed: bool) -> np.ndarray:
    """(taps, G, cog, cig) matrices: output channel by input channel."""
    taps = w.reshape(w.shape[0], w.shape[1], -1)
    if transposed:  # (C_in, C_out/G, taps)
        cig, cog = w.shape[0] // groups, w.shape[1]
        m = taps.reshape(groups, cig, cog, -1).transpose(3, 0, 2, 1)
    else:  # (C_out, C_in/G, taps)
        cog, cig = w.shape[0] // groups, w.shape[1]
        m = taps.reshape(groups, cog, cig, -1).transpose(3, 0, 1, 2)
    return np.ascontiguousarray(m)


def _mix(m: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(nb, G, cog, S) = m (G, cog, cig) applied to xs (nb, G, cig, S)."""
    if m.shape[2] == 1:  # one input channel per group (depthwise): no GEMM to call
        return m * xs
    if m.shape[0] == 1:
        return np.matmul(m[0], xs[:, 0])[:, None]
    return np.matmul(m, xs)


def conv_numpy(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Convolution ``ops`` -> ``out`` (N, C_out, oD, oH, oW), one GEMM per tap:
    output ``o`` reads input ``o*s + k*d - padding``."""
    _per_tap(spec, ops, out, transposed=False)


def conv_transpose_numpy(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Transposed convolution ``ops`` -> ``out``: each tap's GEMM added to the
    outputs it reaches (input ``i`` feeds output ``i*s + k*d - padding``)."""
    _per_tap(spec, ops, out, transposed=True)


def _per_tap(spec, ops, out: np.ndarray, transposed: bool) -> None:
    """Per kernel tap: the input positions it pairs with the outputs, one
    GEMM (or, one channel per group, a product) between them, added in.  The
    side that moves by the stride is a strided slice: the input for a
    convolution, the output for a transposed one."""
    from .._config import get_config

    x, w = ops.x, ops.w
    n, g = spec.n, spec.groups
    cig = spec.c_in // g
    ins, outs = x.shape[2:], out.shape[2:]
    st, dil = spec.lifted("stride"), spec.lifted("dilation")
    lo = spec.lifted("pad_lo") if transposed else spec.kernel_pad_lo
    m = _tap_matrices(w, g, transposed)
    out[...] = 0 if ops.b is None else ops.b.reshape(-1, 1, 1, 1)
    nb = _image_block(spec, _conv_per_image(spec), get_config().workspace_limit)
    dense_len, strided_len = (ins, outs) if transposed else (outs, ins)
    taps = []  # (tap, input slices, output slices, size of the dense side)
    for t, tap in enumerate(np.ndindex(*w.shape[2:])):
        r = [_ranges(dense_len[a], strided_len[a], st[a], tap[a] * dil[a] - lo[a]) for a in range(3)]
        if any(a1 <= a0 for a0, a1, _ in r):
            continue
        dense = tuple(slice(a0, a1) for a0, a1, _ in r)
        strided = tuple(slice(b0, b0 + (a1 - a0 - 1) * s + 1, s) for (a0, a1, b0), s in zip(r, st))
        isl, osl = (dense, strided) if transposed else (strided, dense)
        taps.append((t, isl, osl, tuple(a1 - a0 for a0, a1, _ in r)))
    blocks = [(a, min(n, a + nb)) for a in range(0, n, nb)]
    # one input channel per group (products, no GEMM): a block of images
    # through every tap keeps its output in cache; GEMMs: every block
    # through one tap.  Measured (2 threads, blocks of 5 images of 32): 3x3
    # depthwise 64 @56 0.76-0.79 of the time of taps-outer; dense 64 @56
    # 1.06-1.13 of it blocks-outer
    order = ((tp, bl) for bl in blocks for tp in taps) if cig == 1 else ((tp, bl) for tp in taps for bl in blocks)
    depthwise = m.shape[2] == m.shape[3] == 1  # (one channel in and out per group: scaled views, no copies)
    for (t, isl, osl, size), (a, b) in order:
        if depthwise:
            np.add(out[(slice(a, b), slice(None), *osl)], m[t].reshape(1, -1, 1, 1, 1) * x[(slice(a, b), slice(None), *isl)],
                   out=out[(slice(a, b), slice(None), *osl)])  # fmt: skip
            continue
        xs = x[(slice(a, b), slice(None), *isl)].reshape(b - a, g, cig, -1)
        y = _mix(m[t], xs).reshape(b - a, spec.c_out, *size)
        out[(slice(a, b), slice(None), *osl)] += y


#: scipy.ndimage leaves weights whose magnitude is at most this out (its footprint)
_EPS = float(np.finfo(np.float64).eps)


def correlate_nd(xp: np.ndarray, w: np.ndarray, shape: tuple[int, ...], skip_zeros: bool = True) -> np.ndarray:
    """The "valid" correlation of the padded ``xp`` with ``w``, any number of
    axes: a sum of shifted slices over the taps (with ``skip_zeros``, only
    scipy.ndimage's footprint: a NaN under a zero weight reaches nothing)."""
    out = np.zeros(shape, dtype=xp.dtype)
    taps = np.abs(w) > _EPS if skip_zeros else np.ones(w.shape, dtype=bool)
    for tap in zip(*np.nonzero(taps)):
        out += w[tap] * xp[tuple(slice(t, t + n) for t, n in zip(tap, shape))]
    return out


def filter_numpy(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """ndimage / signal correlation of the padded input (lifted to 3 axes)."""
    if out.size:
        out[...] = correlate_nd(ops.x, ops.w, out.shape, spec.skip_zeros)


def _axis_taps(win) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, taps) input indices of one axis's windows and their validity."""
    counts = -(-(win.hi - win.lo) // win.step)
    k = max(1, int(counts.max(initial=1)))
    idx = win.lo[:, None] + win.step * np.arange(k)[None, :]
    valid = np.arange(k)[None, :] < counts[:, None]
    return np.where(valid, idx, 0), valid


def pool_numpy(spec, planes: np.ndarray, out=None, num_threads: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """Pool (P, D, H, W) planes with NumPy; (values, indices or None) shaped
    ``spec.out_shape``, torch's rules: NaN propagates (its index: the last NaN
    in row-major window order), ties keep the first tap, a window of -inf
    keeps its first tap's index; avg divides by torch's divisor."""
    from .._config import get_config
    from ..plans.pool import windows

    wins = windows(spec)
    (idd, vd), (idh, vh), (idw, vw) = (_axis_taps(w) for w in wins)
    od, oh, ow = len(idd), len(idh), len(idw)
    H, W = planes.shape[2:]
    flat = (idd[:, None, None, :, None, None] * H + idh[None, :, None, None, :, None]) * W
    flat = (flat + idw[None, None, :, None, None, :]).reshape(od, oh, ow, -1)
    valid = vd[:, None, None, :, None, None] & vh[None, :, None, None, :, None] & vw[None, None, :, None, None, :]
    valid = valid.reshape(od, oh, ow, -1)
    P = planes.shape[0]
    values = np.empty((P, od, oh, ow), spec.dtype)
    indices = np.empty((P, od, oh, ow), np.int64) if spec.return_indices else None
    per_plane = max(1, flat.size * planes.itemsize * 3)
    step = max(1, min(P, get_config().workspace_limit // per_plane))
    first_valid = np.argmax(valid, axis=-1)
    if spec.kind == "avg":
        size = (wins[0].size[:, None, None] * wins[1].size[None, :, None] * wins[2].size[None, None, :]).astype(float)
        divisor = float(spec.divisor_override) if spec.divisor_override else size
    for a in range(0, P, step):
        b = min(P, a + step)
        g = planes.reshape(P, -1)[a:b][:, flat]  # (p, od, oh, ow, taps)
        if spec.kind == "avg":
            values[a:b] = (np.where(valid, g, 0).sum(axis=-1, dtype=spec.dtype) / divisor).astype(spec.dtype)
            continue
        g = np.where(valid, g, -np.inf).astype(spec.dtype, copy=False)
        nan = np.isnan(g)
        any_nan = nan.any(axis=-1)
        values[a:b] = np.where(any_nan, np.nan, g.max(axis=-1, initial=-np.inf, where=~nan))
        if indices is not None:
            last_nan = nan.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
            best = np.argmax(np.where(nan, -np.inf, g), axis=-1)
            tap = np.where(any_nan, last_nan, np.where(values[a:b] == -np.inf, first_valid, best))
            indices[a:b] = np.take_along_axis(np.broadcast_to(flat, g.shape), tap[..., None], axis=-1)[..., 0]
    shape = spec.out_shape
    return values.reshape(shape), (None if indices is None else indices.reshape(shape))


def bias_only(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """A convolution without input channels: the sum is empty, every output
    is its bias (one rule for forward and transposed, any method's answer)."""
    out[...] = 0 if ops.b is None else ops.b.reshape((-1,) + (1,) * (out.ndim - 2))
