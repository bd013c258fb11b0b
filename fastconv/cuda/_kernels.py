"""numba.cuda kernels, built on first use (one build per dtype and tile shape).

Every kernel sees lifted arrays: inputs ``(N, C, D, H, W)``, weights
``(C_out, C_in/groups, KD, KH, KW)`` (transposed: ``(C_in, C_out/groups, ...)``),
pooling planes ``(P, D, H, W)``.  Launch shapes are module settings so that
tests can shrink them (many blocks and partial tiles on tiny arrays, under the
CUDA simulator).

- :func:`direct_kernel` -- shared-memory tiled direct convolution: a block
  computes a ``TH x TW`` output tile for ``COB`` output channels of one
  (image, depth); per input channel and depth tap it stages the input patch
  the tile reads (stride and dilation included) in shared memory once, and
  every thread accumulates its ``COB`` outputs in registers.
- :func:`gemm_kernel` -- implicit GEMM: ``C_out/groups x (N*OD*OH*OW)``
  outputs, reduction over ``C_in/groups * KD*KH*KW``; ``BM x BK`` weight and
  ``BK x BN`` input tiles (the input gathered on the fly: no im2col buffer)
  in shared memory, ``TM x TN`` register blocking per thread.
- :func:`depthwise_kernel` -- one thread per output, ``C_in/groups == 1``.
- :func:`transpose_kernel` -- transposed convolution in gather form: one
  thread per output sums the taps that land on it (no atomics, no races).
- :func:`pool_kernel` -- max/avg/adaptive pooling from the CPU path's window
  tables, torch's NaN and index rules, one thread per output.
- :func:`filter_kernel` -- ndimage/signal correlation with the boundary mode
  applied by index arithmetic (no padded copy), one thread per output.
"""

from __future__ import annotations

import functools

import numpy as np

#: threads per block of the one-thread-per-output kernels
THREADS = 128
#: direct kernel: output tile (TH, TW) and output channels per block
TILE = (8, 16)
COB = 4
#: elements of the direct kernel's shared input patch
SHARED_ELEMS = 4096
#: implicit GEMM: block tile BM x BN, depth BK, per-thread TM x TN
GEMM = (64, 64, 8, 4, 4)

#: the hardware's launch limits (every kernel loops over whatever a capped
#: grid does not cover: grid-stride loops, block loops in y and z)
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_BLOCK_THREADS = 1024

#: boundary modes of filter_kernel (numpy.pad names)
PAD_MODES = {"constant": 0, "edge": 1, "symmetric": 2, "reflect": 3, "wrap": 4}


#: numba.cuda, bound on first use; kernels must see it as a *global* (the CUDA
#: simulator swaps the module in the kernel's globals)
cuda = None


def _bind_cuda() -> None:
    global cuda
    if cuda is None:
        from numba import cuda as _numba_cuda

        cuda = _numba_cuda


def _nbtype(dtype_name: str):
    import numba

    return numba.from_dtype(np.dtype(dtype_name))


@functools.cache
def direct_kernel(dtype_name: str, cob: int, shared: int):
    _bind_cuda()
    nbt = _nbtype(dtype_name)

    @cuda.jit
    def kernel(x, w, b, has_b, y, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups, th, tw):
        patch = cuda.shared.array(shared, nbt)
        acc = cuda.local.array(cob, nbt)
        C, D, H, W = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
        CO, OH, OW = y.shape[1], y.shape[3], y.shape[4]
        KD, KH, KW = w.shape[2], w.shape[3], w.shape[4]
        cig = C // groups
        cog = CO // groups
        nbg = (cog + cob - 1) // cob
        tiles_w = (OW + tw - 1) // tw
        for n in range(cuda.blockIdx.z, x.shape[0], cuda.gridDim.z):
            for by in range(cuda.blockIdx.y, y.shape[2] * groups * nbg, cuda.gridDim.y):
                for bx in range(cuda.blockIdx.x, tiles_w * ((OH + th - 1) // th), cuda.gridDim.x):
                    oh0 = (bx // tiles_w) * th
                    ow0 = (bx % tiles_w) * tw
                    od = by // (groups * nbg)
                    g = (by // nbg) % groups
                    cb = by % nbg
                    co0 = g * cog + cb * cob
                    count = min(cob, cog - cb * cob)
                    ty = cuda.threadIdx.y
                    tx = cuda.threadIdx.x
                    tid = ty * tw + tx
                    nthreads = th * tw
                    pspan_w = (tw - 1) * sw + (KW - 1) * dw + 1
                    pspan = ((th - 1) * sh + (KH - 1) * dh + 1) * pspan_w
                    oh = oh0 + ty
                    ow = ow0 + tx
                    for j in range(cob):
                        acc[j] = 0
                    for ci in range(cig):
                        cin = g * cig + ci
                        for kd in range(KD):
                            i_d = od * sd - pd + kd * dd
                            if i_d < 0 or i_d >= D:
                                continue  # the same for the whole block: no divergent barrier
                            for idx in range(tid, pspan, nthreads):
                                ih = oh0 * sh - ph + idx // pspan_w
                                iw = ow0 * sw - pw + idx % pspan_w
                                if 0 <= ih < H and 0 <= iw < W:
                                    patch[idx] = x[n, cin, i_d, ih, iw]
                                else:
                                    patch[idx] = 0
                            cuda.syncthreads()
                            if oh < OH and ow < OW:
                                for kh in range(KH):
                                    row = (ty * sh + kh * dh) * pspan_w + tx * sw
                                    for kw in range(KW):
                                        v = patch[row + kw * dw]
                                        for j in range(cob):
                                            if j < count:
                                                acc[j] += v * w[co0 + j, ci, kd, kh, kw]
                            cuda.syncthreads()
                    if oh < OH and ow < OW:
                        for j in range(cob):
                            if j < count:
                                r = acc[j]
                                if has_b:
                                    r += b[co0 + j]
                                y[n, co0 + j, od, oh, ow] = r

    return kernel


@functools.cache
def gemm_kernel(dtype_name: str, bm: int, bn: int, bk: int, tm: int, tn: int):
    _bind_cuda()
    nbt = _nbtype(dtype_name)
    tx_n = bn // tn  # threads along the columns
    ty_n = bm // tm  # threads along the rows

    @cuda.jit
    def kernel(x, w2, b, has_b, y, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups, KD, KH, KW):
        As = cuda.shared.array((bk, bm), nbt)
        Bs = cuda.shared.array((bk, bn), nbt)
        acc = cuda.local.array((tm, tn), nbt)
        ra = cuda.local.array(tm, nbt)
        rb = cuda.local.array(tn, nbt)
        N, C, D, H, W = x.shape
        CO, OD, OH, OW = y.shape[1], y.shape[2], y.shape[3], y.shape[4]
        cig = C // groups
        M = CO // groups
        taps = KD * KH * KW
        K = cig * taps
        P = OD * OH * OW
        NCOL = N * P
        for g in range(cuda.blockIdx.z, groups, cuda.gridDim.z):
            for by in range(cuda.blockIdx.y, (M + bm - 1) // bm, cuda.gridDim.y):
                for bx in range(cuda.blockIdx.x, (NCOL + bn - 1) // bn, cuda.gridDim.x):
                    m0 = by * bm
                    n0 = bx * bn
                    tx = cuda.threadIdx.x
                    ty = cuda.threadIdx.y
                    tid = ty * tx_n + tx
                    nthreads = tx_n * ty_n
                    for i in range(tm):
                        for j in range(tn):
                            acc[i, j] = 0
                    for k0 in range(0, K, bk):
                        for idx in range(tid, bk * bm, nthreads):
                            kk = idx // bm
                            mm = idx % bm
                            m = m0 + mm
                            k = k0 + kk
                            if m < M and k < K:
                                As[kk, mm] = w2[g * M + m, k]
                            else:
                                As[kk, mm] = 0
                        for idx in range(tid, bk * bn, nthreads):
                            kk = idx // bn
                            nn = idx % bn
                            col = n0 + nn
                            k = k0 + kk
                            v = nbt(0)
                            if col < NCOL and k < K:
                                n = col // P
                                p = col % P
                                od = p // (OH * OW)
                                r = p % (OH * OW)
                                oh = r // OW
                                ow = r % OW
                                ci = k // taps
                                t = k % taps
                                i_d = od * sd - pd + (t // (KH * KW)) * dd
                                t = t % (KH * KW)
                                ih = oh * sh - ph + (t // KW) * dh
                                iw = ow * sw - pw + (t % KW) * dw
                                if 0 <= i_d < D and 0 <= ih < H and 0 <= iw < W:
                                    v = x[n, g * cig + ci, i_d, ih, iw]
                            Bs[kk, nn] = v
                        cuda.syncthreads()
                        for kk in range(bk):
                            for i in range(tm):
                                ra[i] = As[kk, ty + i * ty_n]
                            for j in range(tn):
                                rb[j] = Bs[kk, tx + j * tx_n]
                            for i in range(tm):
                                for j in range(tn):
                                    acc[i, j] += ra[i] * rb[j]
                        cuda.syncthreads()
                    for i in range(tm):
                        m = m0 + ty + i * ty_n
                        if m < M:
                            co = g * M + m
                            for j in range(tn):
                                col = n0 + tx + j * tx_n
                                if col < NCOL:
                                    n = col // P
                                    p = col % P
                                    r = acc[i, j]
                                    if has_b:
                                        r += b[co]
                                    y[n, co, p // (OH * OW), (p // OW) % OH, p % OW] = r

    return kernel


@functools.cache
def _unravel():
    """Output element ``i`` of an (N, C, D, H, W) array -> its five indices."""
    _bind_cuda()

    @cuda.jit(device=True)
    def unravel(i, C, D, H, W):
        w = i % W
        r = i // W
        h = r % H
        r //= H
        d = r % D
        r //= D
        return r // C, r % C, d, h, w

    return unravel


@functools.cache
def depthwise_kernel(dtype_name: str):
    _bind_cuda()
    nbt = _nbtype(dtype_name)
    unravel = _unravel()

    @cuda.jit
    def kernel(x, w, b, has_b, y, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups):
        N, D, H, W = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
        CO, OD, OH, OW = y.shape[1], y.shape[2], y.shape[3], y.shape[4]
        for i in range(cuda.grid(1), N * CO * OD * OH * OW, cuda.gridsize(1)):
            n, co, od, oh, ow = unravel(i, CO, OD, OH, OW)
            ci = co // (CO // groups)
            acc = nbt(0)
            for kd in range(w.shape[2]):
                i_d = od * sd - pd + kd * dd
                if 0 <= i_d < D:
                    for kh in range(w.shape[3]):
                        ih = oh * sh - ph + kh * dh
                        if 0 <= ih < H:
                            for kw in range(w.shape[4]):
                                iw = ow * sw - pw + kw * dw
                                if 0 <= iw < W:
                                    acc += x[n, ci, i_d, ih, iw] * w[co, 0, kd, kh, kw]
            if has_b:
                acc += b[co]
            y[n, co, od, oh, ow] = acc

    return kernel


@functools.cache
def transpose_kernel(dtype_name: str):
    _bind_cuda()
    nbt = _nbtype(dtype_name)
    unravel = _unravel()

    @cuda.jit
    def kernel(x, w, b, has_b, y, sd, sh, sw, pd, ph, pw, dd, dh, dw, groups):
        N, C, D, H, W = x.shape
        CO, OD, OH, OW = y.shape[1], y.shape[2], y.shape[3], y.shape[4]
        for i in range(cuda.grid(1), N * CO * OD * OH * OW, cuda.gridsize(1)):
            n, co, od, oh, ow = unravel(i, CO, OD, OH, OW)
            cog = CO // groups
            cig = C // groups
            g = co // cog
            col = co % cog
            acc = nbt(0)
            for kd in range(w.shape[2]):
                td = od + pd - kd * dd  # = i_d * sd when input i_d reaches this output
                if td < 0 or td % sd != 0 or td // sd >= D:
                    continue
                for kh in range(w.shape[3]):
                    t_h = oh + ph - kh * dh
                    if t_h < 0 or t_h % sh != 0 or t_h // sh >= H:
                        continue
                    for kw in range(w.shape[4]):
                        t_w = ow + pw - kw * dw
                        if t_w < 0 or t_w % sw != 0 or t_w // sw >= W:
                            continue
                        for ci in range(cig):
                            c = g * cig + ci
                            acc += x[n, c, td // sd, t_h // sh, t_w // sw] * w[c, col, kd, kh, kw]
            if has_b:
                acc += b[co]
            y[n, co, od, oh, ow] = acc

    return kernel


@functools.cache
def pool_kernel(dtype_name: str):
    _bind_cuda()
    nbt = _nbtype(dtype_name)

    @cuda.jit
    def kernel(x, y, idx, want_idx, is_max, lod, hid, loh, hih, low, hiw, steps, fd, fh, fw, override):
        P, H, W = x.shape[0], x.shape[2], x.shape[3]
        OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
        for i in range(cuda.grid(1), P * OD * OH * OW, cuda.gridsize(1)):
            ow = i % OW
            r = i // OW
            oh = r % OH
            r //= OH
            od = r % OD
            p = r // OD
            if is_max:
                # torch: a larger value or a NaN replaces the running max (row-major
                # window order); the index starts at the first tap inside
                m = nbt(-np.inf)
                j = (lod[od] * H + loh[oh]) * W + low[ow]
                for a in range(lod[od], hid[od], steps[0]):
                    for c in range(loh[oh], hih[oh], steps[1]):
                        for e in range(low[ow], hiw[ow], steps[2]):
                            v = x[p, a, c, e]
                            if v > m or v != v:
                                m = v
                                j = (a * H + c) * W + e
                y[p, od, oh, ow] = m
                if want_idx:
                    idx[p, od, oh, ow] = j
            else:
                s = nbt(0)
                for a in range(lod[od], hid[od]):
                    for c in range(loh[oh], hih[oh]):
                        for e in range(low[ow], hiw[ow]):
                            s += x[p, a, c, e]
                if override != 0:
                    y[p, od, oh, ow] = s / nbt(override)
                else:
                    y[p, od, oh, ow] = s / nbt(fd[od] * fh[oh] * fw[ow])

    return kernel


@functools.cache
def _source():
    _bind_cuda()

    @cuda.jit(device=True)
    def source(i, n, mode):
        """Index of the input sample that padding position ``i`` reads (-1: cval)."""
        if 0 <= i < n:
            return i
        if mode == 0:
            return -1
        if mode == 1:  # edge
            return 0 if i < 0 else n - 1
        if mode == 4:  # wrap
            return i % n
        if mode == 2:  # symmetric: the edge sample repeats
            period = 2 * n
            i = i % period
            return i if i < n else period - 1 - i
        if n == 1:  # reflect about the edge sample
            return 0
        period = 2 * n - 2
        i = i % period
        return i if i < n else period - i

    return source


@functools.cache
def pad_kernel(dtype_name: str):
    """torch's non-zero padding modes, materialised: y = x read through the mode."""
    _bind_cuda()
    source = _source()
    unravel = _unravel()

    @cuda.jit
    def kernel(x, y, lo0, lo1, lo2, mode):
        N, C, OD, OH, OW = y.shape
        for i in range(cuda.grid(1), N * C * OD * OH * OW, cuda.gridsize(1)):
            n, c, od, oh, ow = unravel(i, C, OD, OH, OW)
            y[n, c, od, oh, ow] = x[n, c, source(od - lo0, x.shape[2], mode), source(oh - lo1, x.shape[3], mode),
                                    source(ow - lo2, x.shape[4], mode)]  # fmt: skip

    return kernel


@functools.cache
def filter_kernel(dtype_name: str):
    _bind_cuda()
    nbt = _nbtype(dtype_name)
    source = _source()

    @cuda.jit
    def kernel(x, w, y, off0, off1, off2, m0, m1, m2, cval, skip, eps):
        D, H, W = x.shape
        OD, OH, OW = y.shape
        for i in range(cuda.grid(1), OD * OH * OW, cuda.gridsize(1)):
            ow = i % OW
            r = i // OW
            oh = r % OH
            od = r // OH
            acc = nbt(0)
            for a in range(w.shape[0]):
                sa = source(od + off0 + a, D, m0)
                for c in range(w.shape[1]):
                    sc = source(oh + off1 + c, H, m1)
                    for e in range(w.shape[2]):
                        wv = w[a, c, e]
                        if skip and abs(wv) <= nbt(eps):
                            continue  # scipy's footprint: a NaN under a zero weight stays out
                        se = source(ow + off2 + e, W, m2)
                        if sa < 0 or sc < 0 or se < 0:
                            acc += wv * nbt(cval)
                        else:
                            acc += wv * x[sa, sc, se]
            y[od, oh, ow] = acc

    return kernel
