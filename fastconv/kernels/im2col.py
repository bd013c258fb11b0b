"""im2col + GEMM: gather every window into columns, then one BLAS GEMM.

For each image block and group, ``cols[(ci, kd, kh, kw), p]`` holds the input
value each tap reads for output position p (zero where it reads padding), and
``out[g] = W[g] @ cols`` is one matrix product in BLAS.  The column buffer is
tiled so it never exceeds ``workspace_limit``: small output planes fold
several images into one GEMM (wider, faster), large ones are split into
chunks of output rows.  A 1x1, stride-1, unpadded convolution needs no
columns at all: the input plane already is the matrix (no copy), one GEMM
per image, group and block of output channels (:func:`pointwise_kernel`).

Threads: tiles run in parallel on Numba's threads, each gathering its
columns into kept per-thread buffers and calling BLAS from that thread with
BLAS kept single-threaded (threadpoolctl), so only one thread pool is ever
busy.  A tile that is one image's whole output plane has its GEMM write
straight into the output (no result buffer, no copy); others go through a
kept result buffer (measured on this project's Intel AVX-512 VM, 1x1/2
256->512 @56: 1.16-1.20 -> 0.96 of torch's time; an earlier measurement
had found no gain).
"""

from __future__ import annotations

import numpy as np
from numba import prange, types

from .._config import blas_threads, numba_jit, numba_threads, scratch
from ..plans.im2col import is_pointwise, plan_tiles, whole_planes
from ._link import Linkage, arrays, bias, ints, unit
from .direct import _copy, _fill, _gather, _inline


@_inline
def _tap_range(off, sw, W, OW):
    """Output columns ``[lo, hi)`` whose input column ``ow*sw + off`` lies in ``[0, W)``."""
    lo = 0 if off >= 0 else (-off + sw - 1) // sw
    lim = W - 1 - off
    if lim < 0:
        return lo, lo
    hi = min(OW, lim // sw + 1)
    return lo, max(lo, hi)


@_inline
def _gather_cols(xf, cf, xshape, n0, nimg, c0, wshape, r0, r1, geometry, OH, OW):
    """cf[t, (im, r - r0, ow)] = x[n0 + im, c0 + ci, idd, ih, iw] for every tap
    t = (ci, kd, kh, kw) and output row r in [r0, r1) (r = od*OH + oh); zero
    where the tap reads padding."""
    sd, sh, sw, dd, dh, dw, pd, ph, pw = geometry
    C_in, D, H, W = xshape[1], xshape[2], xshape[3], xshape[4]
    Cig, KD, KH, KW = wshape
    nr = r1 - r0
    width = nimg * nr * OW
    for t in range(Cig * KD * KH * KW):
        kw = t % KW
        u = t // KW
        kh = u % KH
        u = u // KH
        kd = u % KD
        ci = u // KD
        lo, hi = _tap_range(kw * dw - pw, sw, W, OW)
        for im in range(nimg):
            xc = ((n0 + im) * C_in + c0 + ci) * D
            for rr in range(nr):
                r = r0 + rr
                od = r // OH
                oh = r - od * OH
                idd = od * sd + kd * dd - pd
                ih = oh * sh + kh * dh - ph
                dst = t * width + (im * nr + rr) * OW
                if idd < 0 or idd >= D or ih < 0 or ih >= H:
                    _fill(cf, dst, OW, 0)
                else:
                    _fill(cf, dst, lo, 0)
                    src = ((xc + idd) * H + ih) * W + lo * sw + kw * dw - pw
                    if sw == 1:
                        _copy(cf, dst + lo, xf, src, hi - lo)
                    else:
                        _gather(cf, dst + lo, xf, src, hi - lo, sw)
                    _fill(cf, dst + hi, OW - hi, 0)


@numba_jit(parallel=True)
def im2col_gemm_kernel(x, wmat, b, out, groups, nimg, nrows, geometry, colbuf, resbuf, has_bias, nparts, part_at):
    """out[n, g*cog:(g+1)*cog, rows] = wmat[g] @ cols(n, g, rows) + b.

    Tiles (image block of ``nimg``, group, block of ``nrows`` output rows) run
    in parallel, each gathering its columns into its part's scratch row of
    ``colbuf`` (the GEMM result into ``resbuf``: buffers kept between calls,
    see ``_config.scratch``) and
    calling BLAS GEMM from that thread (BLAS itself kept single-threaded by the
    caller), so only one thread pool is ever active.  A tile that is one
    image's whole output plane writes its GEMM straight into ``out`` (its
    channels' rows are one contiguous (cog, plane) matrix there) and adds
    the bias in place, without the result buffer and its copy (measured,
    2 threads, 1x1/2 256->512 @56 batch 8: 6.4 -> 5.2 ms).

    ``nparts``: ``colbuf``'s rows.  Each part runs :func:`im2col_gemm_kernel_part` at
    address ``part_at`` (:mod:`._link`: compiled once, not again in each of
    this kernel's modules).
    """
    for part in prange(nparts):
        _call_im2col_gemm_kernel(
            part_at, (x, wmat, b, out, groups, nimg, nrows, geometry, colbuf, resbuf, has_bias, nparts, part)
        )


IM2COL_PART = Linkage(
    "im2col_gemm_kernel part",
    lambda dt: (
        types.none,
        (
            *arrays(dt, 5, 3),
            bias(dt),
            *arrays(dt, 5),
            *ints(3),
            types.UniTuple(types.int64, 12),
            *arrays(dt, 2, 2),
            types.boolean,
            *ints(2),
        ),
    ),
)
_call_im2col_gemm_kernel = IM2COL_PART.call


@unit
def im2col_gemm_kernel_part(x, wmat, b, out, groups, nimg, nrows, geometry, colbuf, resbuf, has_bias, nparts, part):
    """Part ``part`` of ``nparts`` of :func:`im2col_gemm_kernel`."""
    N = x.shape[0]
    G = groups
    cog = wmat.shape[1]
    taps = wmat.shape[2]
    Cig = x.shape[1] // G
    KD, KH, KW = geometry[9], geometry[10], geometry[11]
    geo = (geometry[0], geometry[1], geometry[2], geometry[3], geometry[4], geometry[5],
           geometry[6], geometry[7], geometry[8])  # fmt: skip
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    rows = OD * OH
    plane = rows * OW
    nblk_n = (N + nimg - 1) // nimg
    nblk_r = (rows + nrows - 1) // nrows
    tiles = nblk_n * G * nblk_r
    per_part = (tiles + nparts - 1) // nparts
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for tile in range(part * per_part, min(tiles, (part + 1) * per_part)):
        rb = tile % nblk_r
        t = tile // nblk_r
        g = t % G
        n0 = (t // G) * nimg
        ni = min(nimg, N - n0)
        r0 = rb * nrows
        r1 = min(rows, r0 + nrows)
        width = ni * (r1 - r0) * OW
        cols = colbuf[part, : taps * width].reshape((taps, width))
        _gather_cols(xf, cols.reshape(-1), x.shape, n0, ni, g * Cig, (Cig, KD, KH, KW), r0, r1, geo, OH, OW)
        if ni == 1 and r0 == 0 and r1 == rows:
            _gemm_into(wmat[g], cols, of, (n0 * out.shape[1] + g * cog) * plane, b, g * cog, has_bias)
            continue
        res = resbuf[part, : cog * width].reshape((cog, width))
        np.dot(wmat[g], cols, res)
        rf = res.reshape(-1)
        seg = (r1 - r0) * OW
        for im in range(ni):
            for j in range(cog):
                co = g * cog + j
                ob = ((n0 + im) * out.shape[1] + co) * plane + r0 * OW
                bv = b[co]
                src = j * width + im * seg
                for i in range(seg):
                    of[ob + i] = rf[src + i] + bv


def channel_blocks(gemms: int, rows: int, threads: int) -> int:
    """Blocks of output channels to split each of ``gemms`` GEMMs into so
    that the GEMMs divide evenly among the threads (none under 8 rows)."""
    import math

    return max(1, min(threads // math.gcd(gemms, threads), rows // 8))


@_inline
def _gemm_into(a, cols, of, start, b, b0, has_bias):
    """``of[start:]`` viewed as the (rows of ``a``) x (columns of ``cols``)
    matrix = a @ cols, plus ``b[b0 + row]`` on each row if ``has_bias``: a
    GEMM written straight into the output."""
    rows, width = a.shape[0], cols.shape[1]
    o = of[start : start + rows * width].reshape((rows, width))
    np.dot(a, cols, o)
    if has_bias:
        for r in range(rows):
            bv = b[b0 + r]
            for i in range(width):
                o[r, i] += bv


@numba_jit(parallel=True)
def pointwise_kernel(x, wmat, b, out, groups, nrb, has_bias):
    """out[n, g*cog + rows] = wmat[g, rows] @ x[n, g*cig:(g+1)*cig] (+ b):
    a 1x1 stride-1 convolution on the input itself (``x``: (N, C_in, P),
    ``out``: (N, C_out, P), both C-contiguous), one BLAS GEMM per (image,
    group, block of ``cog / nrb`` output channels) in parallel on Numba's
    threads, BLAS single-threaded (the caller's ``blas_threads(1)``).

    Not BLAS at full width from Python: OpenBLAS's idle threads spin for
    ~0.1-0.2 s after a multi-threaded call, and every Numba kernel run in
    that time (the next layer's) measured at half speed (a 3x3 layer 7.3 ->
    13.2 ms after a 512x512 GEMM)."""
    N, C_in, P = x.shape
    C_out = out.shape[1]
    G = groups
    cig = C_in // G
    cog = C_out // G
    rb = (cog + nrb - 1) // nrb
    xf = x.reshape(-1)
    of = out.reshape(-1)
    wf = wmat.reshape(-1)
    for item in prange(N * G * nrb):
        k = item % nrb
        t = item // nrb
        g = t % G
        n = t // G
        r0 = k * rb
        r1 = min(cog, r0 + rb)
        if r1 <= r0:
            continue
        a = wf[(g * cog + r0) * cig : (g * cog + r1) * cig].reshape((r1 - r0, cig))
        xs = (n * C_in + g * cig) * P
        xm = xf[xs : xs + cig * P].reshape((cig, P))
        _gemm_into(a, xm, of, (n * C_out + g * cog + r0) * P, b, g * cog + r0, has_bias)


def conv_im2col(spec, ops, out: np.ndarray, num_threads: int, *, limit: int | None = None) -> None:
    """Run im2col + GEMM for ``spec`` into the C-contiguous 5-D ``out``."""
    from .._config import get_config

    x, w = ops.x, ops.w
    if out.size == 0:
        return
    limit = get_config().workspace_limit if limit is None else limit
    nimg, nrows = plan_tiles(spec, limit, num_threads)
    if nimg == 0:
        raise ValueError("im2col: one row of columns exceeds workspace_limit")
    G = spec.groups
    cog = spec.c_out // G
    wmat = np.ascontiguousarray(w.reshape(G, cog, -1))
    b = ops.b if ops.b is not None else np.zeros(spec.c_out, dtype=spec.dtype)
    od, oh, ow = spec.lifted("out_spatial")
    if is_pointwise(spec):
        # the input plane is the column matrix, no copy: one GEMM per image,
        # group and block of output channels, on Numba's threads
        plane = od * oh * ow
        with blas_threads(1), numba_threads(num_threads):
            pointwise_kernel(
                x.reshape(spec.n, spec.c_in, plane), wmat, b, out.reshape(spec.n, spec.c_out, plane), G,
                channel_blocks(spec.n * G, spec.c_out // G, num_threads), ops.b is not None,
            )  # fmt: skip
        return
    geometry = (*spec.lifted("stride"), *spec.lifted("dilation"), *spec.kernel_pad_lo, *spec.lifted("kernel"))
    tiles = -(-spec.n // nimg) * G * -(-(od * oh) // nrows)
    nparts = min(tiles, num_threads)
    width = nimg * min(nrows, od * oh) * ow
    colbuf = scratch("im2col_cols", (nparts, wmat.shape[2] * width), spec.dtype)
    # (the result buffer only for tiles that are not whole planes)
    resbuf = scratch("im2col_res", (nparts, 0 if whole_planes(spec, nimg, nrows) else cog * width), spec.dtype)
    with blas_threads(1), numba_threads(num_threads):
        im2col_gemm_kernel(
            x,
            wmat,
            b,
            out,
            G,
            nimg,
            nrows,
            geometry,
            colbuf,
            resbuf,
            ops.b is not None,
            nparts,
            IM2COL_PART.address(im2col_gemm_kernel_part, spec.dtype),
        )
