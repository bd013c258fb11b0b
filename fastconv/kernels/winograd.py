"""Winograd convolution F(m x m, 3 x 3) for 3x3, stride-1, dilation-1 conv2d.

Each output tile of m x m comes from an (m+2) x (m+2) input tile: the input
tiles and the kernels are transformed (V = B^T d B, U = G g G^T), multiplied
as (m+2)^2 independent channel GEMMs (BLAS, batched over the tile
positions), and transformed back (Y = A^T M A).  Multiplications per output
drop from 9 to (m+2)^2/m^2 per channel pair: 4 for F(2x2), 2.25 for F(4x4).

Accuracy: the transforms amplify round-off, more for larger tiles; float32
error relative to the output scale is measured in ``tests/test_winograd.py``
(on unit-variance data: F(2x2) 2e-7 / 6e-7 / 1e-6 and F(4x4) 3e-6 / 1.5e-5 /
2.2e-5 for 16 / 256 / 1024 input channels; direct and im2col 3e-7..3e-6), inside
the float32 test tolerance of 2e-4; F(4x4) is not offered above 4096 float32
input channels.  A NaN/Inf in a tile reaches
every output of the tile, so these methods are ``finite_only``: the
dispatcher runs another method for non-finite input.

Tiles are processed in blocks sized to ``workspace_limit``; transforms and
GEMMs all run in Numba's thread pool (BLAS single-threaded inside it).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._config import blas_threads, numba_jit, numba_threads
from .winograd_plan import tiles_per_block

_BT = {
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
    4: np.array(
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        np.float64,
    ),
}
_G = {
    2: np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
    4: np.array(
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        np.float64,
    ),
}
_AT = {
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
    4: np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64),
}


def transform_weights(w: np.ndarray, m: int) -> np.ndarray:
    """(O, C, 3, 3) -> U (a*a, O, C) with U = G g G^T, accumulated in float64.
    (In NumPy, the transposes of this layout alone cost 0.2 s on a 512x512
    layer, 15x the convolution; the Numba loop writes U in place.)"""
    a = m + 2
    u = np.empty((a * a, w.shape[0], w.shape[1]), dtype=w.dtype)
    _transform_weights(w, _G[m], u)
    return u


@numba_jit(parallel=True)
def _transform_weights(w, g, u):
    a = g.shape[0]
    for o in prange(w.shape[0]):
        tmp = np.empty((a, 3), np.float64)
        for c in range(w.shape[1]):
            for i in range(a):
                for k in range(3):
                    tmp[i, k] = g[i, 0] * w[o, c, 0, k] + g[i, 1] * w[o, c, 1, k] + g[i, 2] * w[o, c, 2, k]
            for i in range(a):
                for j in range(a):
                    u[i * a + j, o, c] = tmp[i, 0] * g[j, 0] + tmp[i, 1] * g[j, 1] + tmp[i, 2] * g[j, 2]


@numba_jit(parallel=True)
def winograd_block(x, u, v, mm, out, bt, at, bias, t0, c0, o0, ph, pw, tiles_h, tiles_w):
    """One block of tiles t0 .. t0 + v.shape[2] - 1 for one group: input
    transform (V = B^T d B), the (m+2)^2 channel GEMMs (M = U V, BLAS called
    from each thread, BLAS itself single-threaded), output transform
    (Y = A^T M A, clipped at the edges, plus bias).  Three parallel loops in one
    thread pool: alternating Numba and BLAS pools would oversubscribe the cores."""
    a = bt.shape[0]
    m = a - 2
    a2 = a * a
    C = v.shape[1]
    nt = v.shape[2]
    n_out = mm.shape[1]
    H, W = x.shape[2], x.shape[3]
    OH, OW = out.shape[2], out.shape[3]
    per_img = tiles_h * tiles_w
    for c in prange(C):
        d = np.empty((a, a), x.dtype)
        tmp = np.empty((a, a), x.dtype)
        for t in range(nt):
            g = t0 + t
            n = g // per_img
            r = g - n * per_img
            th = r // tiles_w
            h0 = th * m - ph
            w0 = (r - th * tiles_w) * m - pw
            for i in range(a):
                ih = h0 + i
                for j in range(a):
                    iw = w0 + j
                    if 0 <= ih < H and 0 <= iw < W:
                        d[i, j] = x[n, c0 + c, ih, iw]
                    else:
                        d[i, j] = 0
            for i in range(a):
                for j in range(a):
                    s = bt[i, 0] * d[0, j]
                    for k in range(1, a):
                        s += bt[i, k] * d[k, j]
                    tmp[i, j] = s
            for i in range(a):
                for j in range(a):
                    s = tmp[i, 0] * bt[j, 0]
                    for k in range(1, a):
                        s += tmp[i, k] * bt[j, k]
                    v[i * a + j, c, t] = s
    for k in prange(a2):
        np.dot(u[k], v[k], mm[k])
    for o in prange(n_out):
        tmp = np.empty((m, a), mm.dtype)
        bv = bias[o0 + o]
        for t in range(nt):
            g = t0 + t
            n = g // per_img
            r = g - n * per_img
            th = r // tiles_w
            tw = r - th * tiles_w
            for i in range(m):
                for j in range(a):
                    s = at[i, 0] * mm[j, o, t]
                    for k in range(1, a):
                        s += at[i, k] * mm[k * a + j, o, t]
                    tmp[i, j] = s
            for i in range(m):
                oh = th * m + i
                if oh < OH:
                    for j in range(m):
                        ow = tw * m + j
                        if ow < OW:
                            s = tmp[i, 0] * at[j, 0]
                            for k in range(1, a):
                                s += tmp[i, k] * at[j, k]
                            out[n, o0 + o, oh, ow] = s + bv


def conv_winograd(spec, ops, out: np.ndarray, num_threads: int, *, m: int) -> None:
    """Run Winograd F(m x m, 3 x 3) for ``spec`` into the C-contiguous 5-D ``out``."""
    from .._config import get_config

    if out.size == 0:
        return
    x = ops.x[:, :, 0]  # (N, C, H, W)
    w = ops.w[:, :, 0]
    o4 = out[:, :, 0]
    G = spec.groups
    cig, cog = spec.c_in // G, spec.c_out // G
    ph, pw = spec.kernel_pad_lo[1:]
    oh, ow = o4.shape[2:]
    tiles_h, tiles_w = -(-oh // m), -(-ow // m)
    total = spec.n * tiles_h * tiles_w
    block = tiles_per_block(spec, m, get_config().workspace_limit)
    dt = spec.dtype
    bt = _BT[m].astype(dt)
    at = _AT[m].astype(dt)
    a2 = (m + 2) ** 2
    bias = ops.b if ops.b is not None else np.zeros(spec.c_out, dt)
    with blas_threads(1), numba_threads(num_threads):
        for g in range(G):
            u = transform_weights(np.ascontiguousarray(w[g * cog : (g + 1) * cog]), m)  # (a2, O, C)
            for t0 in range(0, total, block):
                nt = min(block, total - t0)
                v = np.empty((a2, cig, nt), dt)
                mm = np.empty((a2, cog, nt), dt)
                winograd_block(x, u, v, mm, o4, bt, at, bias, t0, g * cig, g * cog, ph, pw, tiles_h, tiles_w)


def conv_winograd_f2(spec, ops, out, num_threads):
    conv_winograd(spec, ops, out, num_threads, m=2)


def conv_winograd_f4(spec, ops, out, num_threads):
    conv_winograd(spec, ops, out, num_threads, m=4)
