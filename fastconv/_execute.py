"""Plan -> kernel: allocate (or reuse) the result, run the chosen kernel, return
the array in the caller's shape.  Shared by every public op."""

from __future__ import annotations

import dataclasses

import numpy as np

from .dispatch import select


def _direct_target(out: np.ndarray | None, *inputs: np.ndarray | None) -> bool:
    """Can the kernel write straight into the caller's ``out``?"""
    if out is None:
        return False
    if not (out.flags.c_contiguous and out.flags.aligned and out.dtype.isnative):
        return False
    return not any(a is not None and np.shares_memory(out, a) for a in inputs)


def run_conv(spec, ops, out: np.ndarray | None) -> np.ndarray:
    plan = select(spec, ops)
    shape5 = (spec.n, spec.c_out, *spec.lifted("out_spatial"))
    if _direct_target(out, ops.x, ops.w, ops.b):
        result = out.reshape(shape5)
    else:
        result = np.empty(shape5, dtype=spec.dtype)
    plan.run(ops, result)
    result = result.reshape(spec.out_shape)
    if out is None:
        return result
    if not np.shares_memory(result, out):
        out[...] = result
    return out


def run_pool(spec, planes: np.ndarray):
    """Pool (P, D, H, W) planes; values, or (values, indices) with ``return_indices``."""
    values, indices = select(spec).run(planes, None)
    return (values, indices) if spec.return_indices else values


def _pad(x: np.ndarray, spec, dtype) -> np.ndarray:
    """The input padded by scipy.ndimage's boundary mode (one NumPy pass)."""
    from ._spec import NDIMAGE_PAD

    widths = list(zip(spec.pad_lo, spec.pad_hi))
    mode = NDIMAGE_PAD[spec.mode]
    x = np.asarray(x, dtype=dtype)
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=spec.cval)
    return np.pad(x, widths, mode=mode)


def _real_filter(spec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Correlate one real input with one real weight array (computing dtype)."""
    from ._spec import FilterOperands, kernel_ready

    if spec.ndim > 3:
        from .kernels.tier0 import correlate_nd

        xp = _pad(x, spec, spec.dtype)
        return correlate_nd(xp, np.asarray(w, dtype=spec.dtype), spec.out_shape, spec.skip_zeros)
    wk = kernel_ready(w, spec.dtype).reshape(spec.lifted("kernel"))
    plan = select(spec, FilterOperands(x=np.asarray(x), w=wk))  # (the NaN/Inf guard reads x)
    if spec.op == "signal" and plan.method in ("fft", "oa") and spec.mode == "constant" and spec.cval == 0:
        # the FFT paths transform the signal itself: no zero padding to build
        xk = kernel_ready(x, spec.dtype).reshape(spec.lifted("shape"))
    else:
        xk = kernel_ready(_pad(x, spec, spec.dtype), spec.dtype).reshape(spec.lifted("padded"))
    ops = FilterOperands(x=xk, w=wk)
    out = np.empty(spec.lifted("out_shape"), dtype=spec.dtype)
    plan.run(ops, out)
    return out.reshape(spec.out_shape)


def run_filter(spec, x: np.ndarray, w: np.ndarray, output: np.ndarray | None) -> np.ndarray:
    """ndimage correlation (weights already flipped/conjugated by the spec):
    complex data as real passes, then the cast to the output dtype with
    scipy's rules (integers truncated toward zero and wrapped, bool = non-zero)."""
    if not spec.is_complex:
        y = _real_filter(spec, x, w)
    else:
        xr, xi = np.real(x), (np.imag(x) if x.dtype.kind == "c" else None)
        wr, wi = np.real(w), (np.imag(w) if w.dtype.kind == "c" else None)
        y = _real_filter(spec, xr, wr).astype(np.complex128 if spec.dtype == np.float64 else np.complex64)
        if wi is not None:
            y += 1j * _real_filter(spec, xr, wi)
        if xi is not None:
            # the imaginary part of the input is padded with cval's imaginary part (0)
            zero = dataclasses.replace(spec, cval=0.0)
            y += 1j * _real_filter(zero, xi, wr)
            if wi is not None:
                y -= _real_filter(zero, xi, wi)
    kind = spec.out_dtype.kind
    if kind == "b":
        result = y != 0
    elif kind in "iu":
        # ndimage truncates toward zero; signal's exact integer sums are rounded
        # (they are integers already unless an FFT path computed them)
        whole = np.rint(y) if spec.op == "signal" else np.trunc(y)
        result = whole.astype(np.int64).astype(spec.out_dtype)
    else:
        result = y.astype(spec.out_dtype, copy=False)
    if output is None:
        return result
    output[...] = result
    return output
