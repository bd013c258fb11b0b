"""FFT convolution: real FFTs over the spatial axes, channel mixing as one
batched complex GEMM per frequency, inverse FFT, crop (and subsample for
strides).  Cheap for large kernels, where direct and im2col pay K^d per
output.  Accuracy: round-off grows with log(size) relative to the largest
output, not to each output, so tiny outputs next to large ones lose digits;
and a NaN/Inf anywhere spreads over the whole output, which is why the
dispatcher never picks this method for non-finite input.

Dilation is exact (the kernel is zero-stuffed); strides compute the stride-1
result and subsample it; groups run one after the other.  The transforms of
a block of images are kept at once, sized to ``workspace_limit``.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numba import prange

from .._config import numba_jit, numba_threads
from ..plans.fft import fft_shape, images_per_block

#: channel products up to this size mix spectra in a Numba loop; above it a
#: batched GEMM per frequency wins (numpy's per-matrix overhead dominates tiny
#: matrices: 8 ms vs <1 ms measured for 2x2 channels on a 256x256 transform)
_LOOP_MIX = 256


@numba_jit(parallel=True)
def mix_spectra(xf, wf, yf):
    """yf[n, o, f] = sum_c xf[n, c, f] * wf[o, c, f] (complex, f contiguous)."""
    N, C, F = xf.shape
    n_out = wf.shape[0]
    for item in prange(N * n_out):
        n = item // n_out
        o = item - n * n_out
        y = yf[n, o]
        for f in range(F):
            y[f] = 0
        for c in range(C):
            xr = xf[n, c]
            wr = wf[o, c]
            for f in range(F):
                y[f] += xr[f] * wr[f]


def conv_fft(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Run FFT convolution for ``spec`` into the C-contiguous 5-D ``out``."""
    from .._config import get_config

    if out.size == 0:
        return
    x, w = ops.x, ops.w  # (N, C, D, H, W) padded for non-zero modes; (O, C/g, KD, KH, KW)
    G = spec.groups
    cig, cog = spec.c_in // G, spec.c_out // G
    dil = spec.lifted("dilation")
    stride = spec.lifted("stride")
    pad_lo = spec.kernel_pad_lo
    pad_hi = spec.lifted("pad_hi") if spec.padding_mode == "zeros" else (0, 0, 0)
    # dilated, flipped kernel: cross-correlation as a convolution
    k = w.shape[2:]
    span = tuple(d * (kk - 1) + 1 for d, kk in zip(dil, k))
    wd = np.zeros(w.shape[:2] + span, dtype=w.dtype)
    wd[(slice(None), slice(None), *(slice(None, None, d) for d in dil))] = w
    wd = wd[:, :, ::-1, ::-1, ::-1]
    padded = tuple(s + lo + hi for s, lo, hi in zip(x.shape[2:], pad_lo, pad_hi))
    shape = fft_shape(padded, span)
    axes = (-3, -2, -1)
    complex_dtype = np.complex64 if spec.dtype == np.float32 else np.complex128
    limit = get_config().workspace_limit
    nimg = images_per_block(spec, limit)
    od, oh, ow = out.shape[2:]
    # output index o of the stride-1 "valid" result sits at full-convolution index o + span - 1
    crop = tuple(slice(sp - 1, sp - 1 + (o - 1) * st + 1, st) for sp, o, st in zip(span, (od, oh, ow), stride))
    loop = cig * cog <= _LOOP_MIX
    for g in range(G):
        wf = scipy.fft.rfftn(wd[g * cog : (g + 1) * cog], s=shape, axes=axes, workers=num_threads)
        wf = wf.reshape(cog, cig, -1).astype(complex_dtype, copy=False)
        if not loop:  # (O, C, F) -> (F, C, O) for a batched GEMM per frequency
            wf = np.ascontiguousarray(wf.transpose(2, 1, 0))
        for n0 in range(0, spec.n, nimg):
            xb = x[n0 : n0 + nimg, g * cig : (g + 1) * cig]
            if any(pad_lo) or any(pad_hi):
                xb = np.pad(xb, [(0, 0), (0, 0), *zip(pad_lo, pad_hi)])
            xf = scipy.fft.rfftn(xb, s=shape, axes=axes, workers=num_threads)
            nb = xb.shape[0]
            fshape = xf.shape[2:]
            xf = xf.reshape(nb, cig, -1)
            if loop:
                yf = np.empty((nb, cog, xf.shape[2]), dtype=complex_dtype)
                with numba_threads(num_threads):
                    mix_spectra(np.ascontiguousarray(xf, dtype=complex_dtype), wf, yf)
                yf = yf.reshape(nb, cog, *fshape)
            else:
                yf = np.matmul(xf.transpose(2, 0, 1), wf)  # (F, N, O)
                yf = np.ascontiguousarray(yf.transpose(1, 2, 0)).reshape(nb, cog, *fshape)
            y = scipy.fft.irfftn(yf, s=shape, axes=axes, workers=num_threads)
            out[n0 : n0 + nb, g * cog : (g + 1) * cog] = y[(slice(None), slice(None), *crop)]
    if ops.b is not None:
        out += ops.b.reshape(-1, 1, 1, 1)
