"""dask arrays in, lazy dask arrays out (imported only when a dask array is passed).

- ``fastconv.ndimage`` filters and ``fastconv.signal`` convolutions: the
  array is padded *once, at its true edges* by the boundary mode
  (``dask.array.pad``), then every chunk is filtered with the halo its window
  needs (``map_overlap``; chunks smaller than the halo are merged first) and
  the halo is trimmed, so the result equals the in-memory one.  The weights
  are small NumPy arrays, passed to every task as they are.
- NN ops: the batch axis keeps any chunking; the channel and spatial axes are
  merged into one chunk per image block (``map_blocks``), so each task runs the
  normal dispatcher on whole images.  (Spatial chunking with halos for the NN
  ops is not done yet: large images belong to ``fastconv.ndimage`` /
  ``fastconv.signal`` here.)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_dask(x: Any) -> bool:
    """A dask array (checked without importing dask)."""
    return type(x).__module__.startswith("dask.") and hasattr(x, "map_overlap") and hasattr(x, "chunks")


def _small(value: Any, name: str) -> np.ndarray:
    """Weights and kernels are small: a dask one is computed once, here."""
    if is_dask(value):
        value = value.compute()
    from ._spec import as_array

    return as_array(value, name)


def _halo_filter(x, w: np.ndarray, pad_lo, pad_hi, np_mode: str, cval: float, out_dtype, block_fn):
    """Pad ``x`` at its true edges, run ``block_fn`` on every chunk with the
    halo, trim, and crop the padding: the same-size correlation of x."""
    import dask.array as da
    from dask.array.overlap import ensure_minimum_chunksize

    depth = tuple(max(a, b) for a, b in zip(pad_lo, pad_hi))
    widths = [(d, d) for d in depth]
    if np_mode == "constant":
        xp = da.pad(x, widths, mode="constant", constant_values=cval)
    else:
        xp = da.pad(x, widths, mode=np_mode)
    chunks = tuple(ensure_minimum_chunksize(max(d, 1), c) for d, c in zip(depth, xp.chunks))
    xp = xp.rechunk(chunks)
    y = xp.map_overlap(
        block_fn, depth=depth, boundary="none", trim=True, dtype=out_dtype, meta=np.empty((0,) * x.ndim, out_dtype)
    )
    return y[tuple(slice(d, d + n) for d, n in zip(depth, x.shape))]


def _correlate_arg(wc: np.ndarray) -> np.ndarray:
    """The argument that makes ``ndimage.correlate`` use ``wc`` as it is (it
    conjugates complex weights, as scipy)."""
    return np.ascontiguousarray(np.conj(wc) if wc.dtype.kind == "c" else wc)


def ndimage_filter(convolve: bool, input, weights, output, mode, cval, origin, method):
    """``fastconv.ndimage.correlate``/``convolve`` on a dask array."""
    from . import ndimage
    from ._spec import NDIMAGE_PAD, filter_spec

    w = _small(weights, "weights")
    if output is not None and isinstance(output, np.ndarray):
        raise TypeError("output must be None or a dtype for a dask input (the result is a lazy dask array)")
    meta = np.zeros((1,) * input.ndim, dtype=input.dtype)
    spec, _, wc, _ = filter_spec(meta, w, output, mode, cval, origin, method, convolve=convolve)
    # the block function correlates with the final weights and origin; the
    # spec's pads say how far each output reaches
    origins = tuple(lo - k // 2 for k, lo in zip(wc.shape, spec.pad_lo))
    wb = _correlate_arg(wc)

    def block(b):
        return ndimage.correlate(b, wb, spec.out_dtype, mode="constant", cval=0.0, origin=origins, method=method)

    return _halo_filter(input, wc, spec.pad_lo, spec.pad_hi, NDIMAGE_PAD[mode], spec.cval, spec.out_dtype, block)


def signal_convolve(kind: str, in1, in2, mode: str, *, boundary: str = "fill", fillvalue: float = 0.0,
                    same_start_high: bool = False, as_float: bool = False):  # fmt: skip
    """``fastconv.signal`` convolutions (``kind`` convolve or correlate) with a
    dask ``in1`` and a small ``in2``: the full result is a same-size
    correlation of in1 padded by ``k - 1``, cropped to ``mode``."""
    from . import ndimage
    from ._spec import BOUNDARIES, NDIMAGE_PAD, check_signal_mode

    b = _small(in2, "in2")
    mode = check_signal_mode(mode)
    if b.ndim != in1.ndim:
        raise ValueError(f"in1 and in2 should have the same dimensionality, got {in1.ndim} and {b.ndim}")
    if mode == "valid" and not all(n >= k for n, k in zip(in1.shape, b.shape)):
        raise ValueError("for a dask in1 in 'valid' mode, in1 must be at least as large as in2 in every dimension")
    if kind == "correlate":
        b = np.conj(b) if b.dtype.kind == "c" else b
        wc = b  # correlation weights as they are
    else:
        wc = b[tuple(slice(None, None, -1) for _ in range(b.ndim))]
    wb = _correlate_arg(wc)
    k = wc.shape
    out_dtype = np.result_type(in1.dtype, b.dtype)
    if as_float and out_dtype.kind in "biu":
        out_dtype = np.dtype(np.float64)  # fftconvolve/oaconvolve: a float result, as scipy
    pad = tuple(kk - 1 for kk in k)

    # full[i] = sum_j wc[j] * xpad[i + j] = the same-size correlation (origin 0) at i + k//2
    def block(blk):
        return ndimage.correlate(blk, wb, out_dtype, mode="constant")

    import dask.array as da

    np_mode = NDIMAGE_PAD[BOUNDARIES[boundary]]
    widths = [(p, p) for p in pad]
    if np_mode == "constant":
        xp = da.pad(in1, widths, mode="constant", constant_values=fillvalue)
    else:
        xp = da.pad(in1, widths, mode=np_mode)
    same = _halo_filter(xp, wc, tuple(kk // 2 for kk in k), tuple((kk - 1) // 2 for kk in k), "constant", 0.0,
                        out_dtype, block)  # fmt: skip
    n_full = tuple(n + kk - 1 for n, kk in zip(in1.shape, k))
    full = same[tuple(slice(kk // 2, kk // 2 + m) for kk, m in zip(k, n_full))]
    if mode == "full":
        return full
    if mode == "same":
        start = [kk // 2 if same_start_high else (kk - 1) // 2 for kk in k]
        return full[tuple(slice(s0, s0 + n) for s0, n in zip(start, in1.shape))]
    return full[tuple(slice(kk - 1, n) for kk, n in zip(k, in1.shape))]


def nn_call(func, input, *args, **kwargs):
    """An NN op on a dask input: image blocks along the batch axis, whole
    images (channels and spatial axes in one chunk) per task."""
    import dask.array as da

    args = tuple(_small(a, "weight") if is_dask(a) else a for a in args)
    kwargs = {k: (_small(v, k) if is_dask(v) else v) for k, v in kwargs.items()}
    if kwargs.get("out") is not None:
        raise TypeError("out= is not supported for a dask input (the result is a lazy dask array)")
    kwargs.pop("out", None)
    batched = input.ndim >= 3 and _is_batched(func, input)
    x = input.rechunk({a: -1 for a in range(1 if batched else 0, input.ndim)})
    probe_shape = (0, *x.shape[1:]) if batched else x.shape
    probe = func(np.zeros(probe_shape, dtype=x.dtype), *args, **kwargs)  # validates; gives shapes and dtypes
    outs = probe if isinstance(probe, tuple) else (probe,)

    def run(block, index):
        res = func(block, *args, **kwargs)
        return res[index] if isinstance(res, tuple) else res

    results = []
    for i, o in enumerate(outs):
        if batched:
            chunks = (x.chunks[0], *((s,) for s in o.shape[1:]))
        else:
            chunks = tuple((s,) for s in o.shape)
        results.append(da.map_blocks(run, x, i, dtype=o.dtype, chunks=chunks, meta=np.empty((0,) * o.ndim, o.dtype)))
    return tuple(results) if isinstance(probe, tuple) else results[0]


def _is_batched(func, x) -> bool:
    """(N, C, *spatial) rather than unbatched (C, *spatial), from the op's rank."""
    nd = int(func.__name__.rstrip("d")[-1])
    return x.ndim == nd + 2
