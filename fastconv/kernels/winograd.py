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

Tiles are processed in blocks sized to ``workspace_limit``; transforms run
on Numba threads, the GEMMs on BLAS threads, one after the other.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._config import numba_jit, numba_threads
from .im2col import blas_threads
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
    """(O, C, 3, 3) -> U (a*a, O, C) with U = G g G^T, computed in float64."""
    g = _G[m]
    u = np.einsum("ik,ockl,jl->ijoc", g, w.astype(np.float64), g)
    a = m + 2
    return np.ascontiguousarray(u.reshape(a * a, w.shape[0], w.shape[1]).astype(w.dtype))


@numba_jit(parallel=True)
def input_transform(x, v, bt, n0, t0, nt, c0, ph, pw, tiles_h, tiles_w):
    """v[:, c, t] = B^T d B for tile t0 + t of images from n0, channels c0 + c;
    d is the (a x a) input patch at (th*m - ph, tw*m - pw), zero outside."""
    a = bt.shape[0]
    m = a - 2
    C = v.shape[1]
    H, W = x.shape[2], x.shape[3]
    per_img = tiles_h * tiles_w
    for job in prange(C * nt):
        c = job // nt
        t = job - c * nt
        g = t0 + t
        n = n0 + g // per_img
        r = g - (g // per_img) * per_img
        th = r // tiles_w
        tw = r - th * tiles_w
        d = np.zeros((a, a), x.dtype)
        h0 = th * m - ph
        w0 = tw * m - pw
        for i in range(a):
            ih = h0 + i
            if 0 <= ih < H:
                for j in range(a):
                    iw = w0 + j
                    if 0 <= iw < W:
                        d[i, j] = x[n, c0 + c, ih, iw]
        tmp = np.zeros((a, a), x.dtype)
        for i in range(a):
            for k in range(a):
                b = bt[i, k]
                if b != 0:
                    for j in range(a):
                        tmp[i, j] += b * d[k, j]
        for i in range(a):
            for j in range(a):
                s = tmp[i, 0] * bt[j, 0]
                for k in range(1, a):
                    s += tmp[i, k] * bt[j, k]
                v[i * a + j, c, t] = s


@numba_jit(parallel=True)
def output_transform(mm, out, at, bias, n0, t0, nt, o0, tiles_h, tiles_w):
    """out[n, o0 + o, th*m + i, tw*m + j] = (A^T M A)[i, j] + bias for the
    block's tiles; partial tiles at the bottom/right edges are clipped."""
    m = at.shape[0]
    a = at.shape[1]
    n_out = mm.shape[1]
    OH, OW = out.shape[2], out.shape[3]
    per_img = tiles_h * tiles_w
    for job in prange(n_out * nt):
        o = job // nt
        t = job - o * nt
        g = t0 + t
        n = n0 + g // per_img
        r = g - (g // per_img) * per_img
        th = r // tiles_w
        tw = r - th * tiles_w
        tmp = np.zeros((m, a), mm.dtype)
        for i in range(m):
            for k in range(a):
                c = at[i, k]
                if c != 0:
                    for j in range(a):
                        tmp[i, j] += c * mm[k * a + j, o, t]
        bv = bias[o0 + o]
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
    for g in range(G):
        u = transform_weights(w[g * cog : (g + 1) * cog], m)  # (a2, O, C)
        for t0 in range(0, total, block):
            nt = min(block, total - t0)
            v = np.empty((a2, cig, nt), dt)
            with numba_threads(num_threads):
                input_transform(x, v, bt, 0, t0, nt, g * cig, ph, pw, tiles_h, tiles_w)
            with blas_threads(num_threads):
                mm = np.matmul(u, v)  # (a2, O, nt)
            with numba_threads(num_threads):
                output_transform(mm, o4, at, bias, 0, t0, nt, g * cog, tiles_h, tiles_w)


def conv_winograd_f2(spec, ops, out, num_threads):
    conv_winograd(spec, ops, out, num_threads, m=2)


def conv_winograd_f4(spec, ops, out, num_threads):
    conv_winograd(spec, ops, out, num_threads, m=4)
