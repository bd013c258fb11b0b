"""Image filters (``fastconv.ndimage``): "valid" correlation of an input that
is already padded by the boundary mode, with three methods.

- ``direct``: work items (output row, chunk of ``_CHUNK`` columns) run in
  parallel -- so a single image or a single long signal uses every thread --
  and each kernel tap is one unit-stride stream ``acc += w * row``.  Taps at
  or below scipy's footprint threshold are skipped, as scipy does (a NaN
  under a zero weight does not reach the output).  Releases the GIL.
- ``separable``: weights that are an outer product of 1-D kernels (Gaussian,
  box, Sobel, ...) run as one 1-D pass per axis with the same kernel:
  ``k1 + k2 (+ k3)`` taps per output instead of ``k1 * k2 (* k3)``.
- ``fft``: real FFTs of fast lengths (scipy.fft, threaded), for large
  kernels.  Like every FFT path it spreads NaN/Inf, so the dispatcher only
  offers it (and ``separable``, whose pass order changes how Inf cancels) for
  finite input.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numba import prange

from .._config import numba_jit, numba_threads, serial_below, serial_copy
from .._memo import ByValue
from ..plans.filter import oa_block
from .direct import _inline

_U = np.uint64

_CHUNK = 2048  # output columns per work item (a 1-D signal of 1M samples: 512 items)
_EPS = float(np.finfo(np.float64).eps)


@_inline
def _stream4(y, yb, x, xb, offs, ws, t, n, first):
    """y[yb + i] (+)= sum of four taps ws[t..t+3] * x[xb + offs[t..t+3] + i]."""
    w0, w1, w2, w3 = ws[t], ws[t + 1], ws[t + 2], ws[t + 3]
    c0 = _U(xb + offs[t])
    c1 = _U(xb + offs[t + 1])
    c2 = _U(xb + offs[t + 2])
    c3 = _U(xb + offs[t + 3])
    o = _U(yb)
    if first:
        for i in range(_U(n)):
            y[o + i] = (w0 * x[c0 + i] + w1 * x[c1 + i]) + (w2 * x[c2 + i] + w3 * x[c3 + i])
    else:
        for i in range(_U(n)):
            y[o + i] += (w0 * x[c0 + i] + w1 * x[c1 + i]) + (w2 * x[c2 + i] + w3 * x[c3 + i])


@_inline
def _stream8(y, yb, x, xb, offs, ws, t, n, first):
    """y[yb + i] (+)= sum of eight taps ws[t..t+7] * x[xb + offs[t..t+7] + i]."""
    w0, w1, w2, w3 = ws[t], ws[t + 1], ws[t + 2], ws[t + 3]
    w4, w5, w6, w7 = ws[t + 4], ws[t + 5], ws[t + 6], ws[t + 7]
    c0 = _U(xb + offs[t])
    c1 = _U(xb + offs[t + 1])
    c2 = _U(xb + offs[t + 2])
    c3 = _U(xb + offs[t + 3])
    c4 = _U(xb + offs[t + 4])
    c5 = _U(xb + offs[t + 5])
    c6 = _U(xb + offs[t + 6])
    c7 = _U(xb + offs[t + 7])
    o = _U(yb)
    if first:
        for i in range(_U(n)):
            y[o + i] = ((w0 * x[c0 + i] + w1 * x[c1 + i]) + (w2 * x[c2 + i] + w3 * x[c3 + i])) + (
                (w4 * x[c4 + i] + w5 * x[c5 + i]) + (w6 * x[c6 + i] + w7 * x[c7 + i])
            )
    else:
        for i in range(_U(n)):
            y[o + i] += ((w0 * x[c0 + i] + w1 * x[c1 + i]) + (w2 * x[c2 + i] + w3 * x[c3 + i])) + (
                (w4 * x[c4 + i] + w5 * x[c5 + i]) + (w6 * x[c6 + i] + w7 * x[c7 + i])
            )


@_inline
def _stream1(y, yb, x, xb, offs, ws, t, n, first):
    """y[yb + i] (+)= ws[t] * x[xb + offs[t] + i]."""
    w0 = ws[t]
    c0 = _U(xb + offs[t])
    o = _U(yb)
    if first:
        for i in range(_U(n)):
            y[o + i] = w0 * x[c0 + i]
    else:
        for i in range(_U(n)):
            y[o + i] += w0 * x[c0 + i]


@numba_jit(parallel=True)
def correlate_kernel(xp, out, offs, ws, chunk, nparts):
    """out[d, h, c] = sum over the footprint taps t of ws[t] * xp.flat[base(d, h, c) + offs[t]],
    eight (then four, then one) taps per pass over the output chunk (one load
    and store of the output per eight taps); an empty footprint gives zeros."""
    D, H, W = out.shape
    Hp, Wp = xp.shape[1], xp.shape[2]
    nt = len(offs)
    nch = (W + chunk - 1) // chunk
    items = D * H * nch
    per = (items + nparts - 1) // nparts
    xf = xp.reshape(-1)
    of = out.reshape(-1)
    for part in prange(nparts):
        for it in range(part * per, min(items, (part + 1) * per)):
            cb = it % nch
            row = it // nch
            d = row // H
            h = row - d * H
            c0 = cb * chunk
            n = min(chunk, W - c0)
            ob = row * W + c0
            xb = (d * Hp + h) * Wp + c0
            if nt == 0:
                for i in range(n):
                    of[ob + i] = 0
                continue
            t = 0
            while t + 8 <= nt:
                _stream8(of, ob, xf, xb, offs, ws, t, n, t == 0)
                t += 8
            while t + 4 <= nt:
                _stream4(of, ob, xf, xb, offs, ws, t, n, t == 0)
                t += 4
            while t < nt:
                _stream1(of, ob, xf, xb, offs, ws, t, n, t == 0)
                t += 1


def _taps(w: np.ndarray, padded: tuple[int, ...], dtype, skip_zeros: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Flat offsets into the padded input and values of the taps, in
    row-major order: with ``skip_zeros``, only the footprint (weights above
    scipy.ndimage's threshold); else every tap (scipy.signal multiplies all)."""
    _, hp, wp = padded
    idx = np.nonzero(np.abs(w) > _EPS) if skip_zeros else np.nonzero(np.ones(w.shape, dtype=bool))
    offs = (idx[0] * hp + idx[1]) * wp + idx[2]
    return offs.astype(np.int64), w[idx].astype(dtype)


#: the same kernel compiled without a parallel region: with one thread per
#: call, several Python threads run it at once (a parallel region would have
#: to be serialised under Numba's workqueue layer, which is not thread-safe)
correlate_kernel_serial = serial_copy(correlate_kernel, "correlate_kernel_serial")


#: correlations below this many multiply-adds (taps x outputs) run the serial
#: build: a parallel region's start (~2 us under ``omp``, an eighth of the
#: threshold; 120-200 us under ``workqueue``) is most of a 16x16 3x3 filter
_SERIAL_BELOW = 400_000


def _launch(out_shape: tuple[int, ...], taps: int, num_threads: int):
    """(kernel, nparts, parallel) for a correlation into ``out_shape``."""
    items = out_shape[0] * out_shape[1] * -(-out_shape[2] // _CHUNK)
    nparts = max(1, min(items, num_threads))
    if nparts == 1 or taps * int(np.prod(out_shape)) < serial_below(_SERIAL_BELOW):
        return correlate_kernel_serial, 1, False
    return correlate_kernel, nparts, True


def _correlate(xp: np.ndarray, w: np.ndarray, out: np.ndarray, num_threads: int, skip_zeros: bool = True) -> None:
    offs, ws = _taps(w, xp.shape, out.dtype, skip_zeros)
    kernel, nparts, parallel = _launch(out.shape, len(offs), num_threads)
    if not parallel:
        kernel(xp, out, offs, ws, _CHUNK, 1)
        return
    with numba_threads(num_threads):
        kernel(xp, out, offs, ws, _CHUNK, nparts)


def filter_direct(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Direct correlation of the padded (D, H, W) input with (KD, KH, KW) weights."""
    if out.size:
        _correlate(ops.x, ops.w, out, num_threads, spec.skip_zeros)


def prepare_filter_direct(spec, num_threads: int):
    """The direct runner for ``spec`` with its launch fixed and the taps of
    the last weights seen kept (a repeated call's: see ``Method.prepare``)."""
    out_shape = spec.lifted("out_shape")
    padded, dtype, skip = spec.lifted("padded"), spec.dtype, spec.skip_zeros
    kernel, nparts, parallel = _launch(out_shape, spec.taps, num_threads)
    empty = int(np.prod(out_shape)) == 0
    taps_of = ByValue(lambda w: _taps(w, padded, dtype, skip))  # (kept while the weights' values stay)

    def run(ops, out: np.ndarray) -> None:
        if empty:
            return
        taps = taps_of(ops.w)
        if parallel:
            with numba_threads(num_threads):
                kernel(ops.x, out, taps[0], taps[1], _CHUNK, nparts)
        else:
            kernel(ops.x, out, taps[0], taps[1], _CHUNK, 1)

    return run


def separable_factors(w: np.ndarray) -> list[np.ndarray]:
    """1-D factors f0, f1, f2 with w == f0 x f1 x f2 (w of rank 1, 3 axes)."""
    w64 = np.asarray(w, dtype=np.float64)
    peak = np.unravel_index(np.argmax(np.abs(w64)), w64.shape)
    factors = []
    for axis in range(3):
        index = list(peak)
        index[axis] = slice(None)
        factors.append(w64[tuple(index)].copy())
    factors[0] /= w64[peak] ** 2  # the peak entered each of the three factors
    return factors


def filter_separable(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """One 1-D pass per axis: W, then H, then D (on the shrinking padded array)."""
    if out.size == 0:
        return
    f0, f1, f2 = (f.astype(spec.dtype) for f in separable_factors(ops.w))
    x = ops.x
    for axis, f in ((2, f2), (1, f1), (0, f0)):
        if len(f) == 1 and f[0] == 1:
            continue
        shape = list(x.shape)
        shape[axis] -= len(f) - 1
        y = np.empty(shape, dtype=spec.dtype) if axis else out
        _correlate(x, f.reshape([len(f) if a == axis else 1 for a in range(3)]), y, num_threads)
        x = y
    if x is not out:
        out[...] = x


def _fft_axes(shape) -> tuple[int, ...]:
    """The lifted axes worth transforming: a length-1 axis would only cost a
    copy of the data per pass (the last axis is always the real one)."""
    return tuple(a for a in range(len(shape)) if shape[a] > 1 or a == len(shape) - 1)


_POOLS: dict = {}


def _threads(n: int):
    """A pool of ``n`` helper threads, started on first use and kept."""
    pool = _POOLS.get(n)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = _POOLS.setdefault(n, ThreadPoolExecutor(max_workers=n, thread_name_prefix="fastconv-fft"))
    return pool


def _concurrent_fft(dtype):
    """(rfft, irfft) whose calls overlap on Python threads for this dtype, or
    None.  Measured (220k points, two calls at once vs one after the other):
    scipy.fft float32 2.4 vs 4.0 ms; numpy.fft float64 overlaps (1.75x) and
    is faster than scipy.fft's float64 here; numpy.fft float32 is 2.7x slower
    than scipy's.  (scipy.fft's own ``workers`` gave nothing on one long
    transform or a batch of two: 5.9 vs 5.9 ms.)"""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return np.fft.rfft, np.fft.irfft
    if dtype == np.float32:
        return scipy.fft.rfft, scipy.fft.irfft
    return None


#: a 1-D convolution at least this long (output samples) is split across threads
_SPLIT_MIN = 1 << 15


def _split_1d(x: np.ndarray, v: np.ndarray, start: int, out: np.ndarray, workers: int, fft) -> None:
    """``out = (x * v)[start : start + out.size]`` (full linear convolution) with
    the longer operand cut into ``workers`` blocks, each transformed,
    multiplied and transformed back on its own thread (overlap-add), the
    other operand's transform on a helper thread meanwhile: a single long
    1-D FFT runs on one core."""
    rfft, irfft = fft
    if len(x) < len(v):
        x, v = v, x
    n, k = len(x), len(v)
    block = -(-n // workers)
    length = scipy.fft.next_fast_len(block + k - 1, real=True)
    pool = _threads(workers)
    vf = pool.submit(rfft, v, length)

    def part(b: int) -> np.ndarray:
        f = rfft(x[b * block : (b + 1) * block], length)
        f *= vf.result()
        return irfft(f, length)

    parts = [pool.submit(part, b) for b in range(1, -(-n // block))]
    y = np.zeros(n + k - 1, dtype=out.dtype)
    pieces = [part(0)] + [p.result() for p in parts]
    for b, yb in enumerate(pieces):
        lo = b * block
        m = min(len(y) - lo, min(block, n - lo) + k - 1)
        y[lo : lo + m] += yb[:m]
    out[...] = y[start : start + out.size].reshape(out.shape)


def _rfft_split(a: np.ndarray, shape, axes, workers: int) -> np.ndarray:
    """``rfftn(a, s=shape, axes=axes)`` one axis at a time, the real axis
    first: only the rows that hold data are transformed along it (rfftn pads
    the whole array first), and each pass runs on all the workers."""
    f = scipy.fft.rfft(a, n=shape[-1], axis=axes[-1], workers=workers)
    for ax, n in zip(axes[:-1], shape[:-1]):
        f = scipy.fft.fft(f, n=n, axis=ax, workers=workers, overwrite_x=True)
    return f


def fft_convolve_part(x: np.ndarray, v: np.ndarray, shape, axes, start, out: np.ndarray, workers: int) -> None:
    """``out = irfftn(rfftn(x) * rfftn(v))[start : start + out.shape]`` over
    ``axes`` with transform lengths ``shape``: split passes, and the inverse
    keeps only the wanted rows of each axis before transforming the next."""
    fft = _concurrent_fft(x.dtype)
    one_d = len(axes) == 1 and x.size == x.shape[axes[0]] and v.size == v.shape[axes[0]]
    if workers > 1 and one_d and fft is not None:
        if x.size + v.size > _SPLIT_MIN:
            _split_1d(x.reshape(-1), v.reshape(-1), start[axes[0]], out, workers, fft)
            return
        # transform the kernel on a helper thread meanwhile
        # (below the split, both transforms on this thread: handing one to a
        # helper thread cost more than it saved up to ~30k samples, 2-core Zen 4)
        f = fft[0](x, shape[-1], axes[-1])
        f *= fft[0](v, shape[-1], axes[-1])
    else:
        f = _rfft_split(x, shape, axes, workers)
        f *= _rfft_split(v, shape, axes, workers)
    done = set()
    for ax, n in zip(axes[:-1], shape[:-1]):
        f = scipy.fft.ifft(f, n=n, axis=ax, workers=workers, overwrite_x=True)
        keep = [slice(None)] * f.ndim
        keep[ax] = slice(start[ax], start[ax] + out.shape[ax])
        f = f[tuple(keep)]
        done.add(ax)
    y = scipy.fft.irfft(f, n=shape[-1], axis=axes[-1], workers=workers)
    out[...] = y[
        tuple(slice(None) if a in done else slice(s0, s0 + m) for a, (s0, m) in enumerate(zip(start, out.shape)))
    ]


def filter_fft(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Correlation as the "valid" part of a real-FFT convolution with the flipped weights."""
    if out.size == 0:
        return
    x, w = ops.x, ops.w
    # a circular transform as long as the padded input suffices: wrap-around
    # only reaches the first k-1 outputs of each axis, which are dropped
    axes = _fft_axes(x.shape)
    shape = [scipy.fft.next_fast_len(x.shape[a], real=True) for a in axes]
    start = [kk - 1 for kk in w.shape]
    fft_convolve_part(x, w[::-1, ::-1, ::-1], shape, axes, start, out, num_threads)


def _unpadded(spec, xp: np.ndarray) -> np.ndarray:
    """The signal inside the zero padding (signal specs only; the caller
    passes the signal unpadded when it knows an FFT path runs)."""
    n = spec.lifted("shape")
    if xp.shape == n:
        return xp
    lo = spec.lifted("pad_lo")
    return xp[tuple(slice(a, a + m) for a, m in zip(lo, n))]


def _zero_padded(spec) -> bool:
    return spec.mode == "constant" and spec.cval == 0


def signal_fft(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """The full linear convolution by real FFTs of fast lengths (no zero
    padding transformed), then the mode's part of it.  A wrap/symm boundary
    (convolve2d) is materialised in the padded input: then the FFT runs on it."""
    if out.size == 0:
        return
    if not _zero_padded(spec):
        filter_fft(spec, ops, out, num_threads)
        return
    x = _unpadded(spec, ops.x)
    v = ops.w[::-1, ::-1, ::-1]  # back to in2
    full = [a + b - 1 for a, b in zip(x.shape, v.shape)]
    axes = _fft_axes(full)
    shape = [scipy.fft.next_fast_len(full[a], real=True) for a in axes]
    start = [kk - 1 - lo for kk, lo in zip(v.shape, spec.lifted("pad_lo"))]
    fft_convolve_part(x, v, shape, axes, start, out, num_threads)


def signal_oa(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Overlap-add along the axis where the signal is longest relative to the
    kernel: the signal cut into blocks, each block convolved by FFT (all
    blocks in one batched transform), the blocks' tails added to the next."""
    if out.size == 0:
        return
    x = _unpadded(spec, ops.x)
    v = np.ascontiguousarray(ops.w[::-1, ::-1, ::-1])
    start = [kk - 1 - lo for kk, lo in zip(v.shape, spec.lifted("pad_lo"))]
    if max(k / n for n, k in zip(x.shape, v.shape)) > max(n / k for n, k in zip(x.shape, v.shape)):
        x, v = v, x  # the full convolution is symmetric: block the longer one
    axis = int(np.argmax([n / k for n, k in zip(x.shape, v.shape)]))
    n, k = x.shape[axis], v.shape[axis]
    block = oa_block(n, k, num_threads)
    nb = -(-n // block)
    xa = np.moveaxis(x, axis, -1)
    pad = [(0, 0)] * (xa.ndim - 1) + [(0, nb * block - n)]
    xb = np.pad(xa, pad).reshape(*xa.shape[:-1], nb, block)  # (..., nb, block)
    xb = np.moveaxis(xb, -2, 0)  # (nb, ..., block)
    va = np.moveaxis(v, axis, -1)
    other = [a + b - 1 for a, b in zip(xa.shape[:-1], va.shape[:-1])]
    lengths = [*other, block + k - 1]
    vaxes = _fft_axes(lengths)  # length-1 axes are not transformed (a copy each)
    shape = [scipy.fft.next_fast_len(lengths[a], real=True) for a in vaxes]
    axes = tuple(a + 1 for a in vaxes)
    xf = scipy.fft.rfftn(xb, s=shape, axes=axes, workers=num_threads)
    xf *= scipy.fft.rfftn(va, s=shape, axes=vaxes, workers=num_threads)
    yb = scipy.fft.irfftn(xf, s=shape, axes=axes, workers=num_threads)
    yb = yb[(slice(None), *(slice(0, m) for m in other), slice(0, 2 * block))]
    if yb.shape[-1] < 2 * block:
        yb = np.concatenate([yb, np.zeros((*yb.shape[:-1], 2 * block - yb.shape[-1]), yb.dtype)], axis=-1)
    # overlap-add: block b's first half lands at b*block, its tail on block b+1
    y = np.zeros((nb + 1, *yb.shape[1:-1], block), dtype=yb.dtype)
    y[:nb] += yb[..., :block]
    y[1:] += yb[..., block:]
    y = np.moveaxis(y, 0, -2).reshape(*yb.shape[1:-1], (nb + 1) * block)
    y = np.moveaxis(y, -1, axis)  # the full convolution (and zeros past its end)
    out[...] = y[tuple(slice(s0, s0 + m) for s0, m in zip(start, out.shape))]
