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

from .._config import numba_jit, numba_threads
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
    four taps per pass over the output chunk (one load and store of the
    output per four taps); an empty footprint gives zeros."""
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
            while t + 4 <= nt:
                _stream4(of, ob, xf, xb, offs, ws, t, n, t == 0)
                t += 4
            while t < nt:
                _stream1(of, ob, xf, xb, offs, ws, t, n, t == 0)
                t += 1


def _taps(w: np.ndarray, padded: tuple[int, ...], dtype) -> tuple[np.ndarray, np.ndarray]:
    """Flat offsets into the padded input and values of the footprint taps
    (weights above scipy's threshold), in row-major order."""
    _, hp, wp = padded
    idx = np.nonzero(np.abs(w) > _EPS)
    offs = (idx[0] * hp + idx[1]) * wp + idx[2]
    return offs.astype(np.int64), w[idx].astype(dtype)


#: the same kernel compiled without a parallel region: with one thread per
#: call, several Python threads run it at once (a parallel region would have
#: to be serialised under Numba's workqueue layer, which is not thread-safe)
correlate_kernel_serial = numba_jit()(correlate_kernel.py_func)


def _correlate(xp: np.ndarray, w: np.ndarray, out: np.ndarray, num_threads: int) -> None:
    items = out.shape[0] * out.shape[1] * -(-out.shape[2] // _CHUNK)
    nparts = max(1, min(items, num_threads))
    offs, ws = _taps(w, xp.shape, out.dtype)
    if nparts == 1:
        correlate_kernel_serial(xp, out, offs, ws, _CHUNK, 1)
        return
    with numba_threads(num_threads):
        correlate_kernel(xp, out, offs, ws, _CHUNK, nparts)


def filter_direct(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Direct correlation of the padded (D, H, W) input with (KD, KH, KW) weights."""
    if out.size:
        _correlate(ops.x, ops.w, out, num_threads)


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


def filter_fft(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Correlation as the "valid" part of a real-FFT convolution with the flipped weights."""
    if out.size == 0:
        return
    x, w = ops.x, ops.w
    # a circular transform as long as the padded input suffices: wrap-around
    # only reaches the first k-1 outputs of each axis, which are dropped
    shape = [scipy.fft.next_fast_len(n, real=True) for n in x.shape]
    axes = (0, 1, 2)
    wf = scipy.fft.rfftn(w[::-1, ::-1, ::-1], s=shape, axes=axes, workers=num_threads)
    xf = scipy.fft.rfftn(x, s=shape, axes=axes, workers=num_threads)
    xf *= wf
    y = scipy.fft.irfftn(xf, s=shape, axes=axes, workers=num_threads)
    k = w.shape
    out[...] = y[tuple(slice(kk - 1, kk - 1 + n) for kk, n in zip(k, out.shape))]


def correlate_nd(xp: np.ndarray, w: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Any number of axes (beyond the kernels' three): a sum of shifted slices
    over the footprint taps, in plain NumPy."""
    out = np.zeros(shape, dtype=xp.dtype)
    for tap in zip(*np.nonzero(np.abs(w) > _EPS)):
        out += w[tap] * xp[tuple(slice(t, t + n) for t, n in zip(tap, shape))]
    return out
