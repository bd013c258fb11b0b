"""dask arrays in, lazy dask arrays out (imported only when a dask array is passed).

- ``fastconv.ndimage`` filters and ``fastconv.signal`` convolutions: the
  array is padded *once, at its true edges* by the boundary mode
  (``dask.array.pad``), then every chunk is filtered with the halo its window
  needs (``map_overlap``; chunks smaller than the halo are merged first) and
  the halo is trimmed, so the result equals the in-memory one.
- NN ops (convolution, transposed convolution, pooling): the batch axis
  keeps any chunking, the channel axis is one chunk, and every spatial axis is
  split into tiles whose boundaries fall where an output's window starts
  (multiples of the stride, for convolution), with the asymmetric halo its
  windows need (``overlap`` + ``map_blocks``); see :func:`_split_axis`.  Each
  tile computes exactly its own outputs, so no partial sums are added across
  tasks: convolution runs the normal dispatcher on its padded tile, transposed
  convolution gathers from a left halo, pooling runs the pooling kernel on the
  global window tables cut to the tile (divisors, ceil_mode edges and flat
  indices stay those of the whole input).

Weights are small: a dask weight is computed once, here, and every weight
enters the graph as one ``dask.delayed`` key (sent to each worker once, not
with every task).
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
    """Pad ``x`` at its true edges, run ``block_fn(chunk, w)`` on every chunk
    with the halo, trim, and crop the padding: the same-size correlation of x."""
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
    depth = dict(enumerate(depth))
    xo = da.overlap.overlap(xp, depth=depth, boundary="none")
    # the weights as one graph key: sent to each worker once, not with every task
    y = da.map_blocks(
        _under_settings(block_fn), xo, _delayed(w), dtype=out_dtype, meta=np.empty((0,) * x.ndim, out_dtype)
    )
    y = da.overlap.trim_internal(y, depth, boundary="none")
    return y[tuple(slice(d, d + n) for d, n in zip(depth.values(), x.shape))]


def _under_settings(fn):
    """``fn`` run, on whatever worker thread computes a chunk, with the
    settings of the thread that built the graph (settings are per thread)."""
    import functools

    from ._config import get_config, using

    cfg = get_config()

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with using(cfg):
            return fn(*args, **kwargs)

    return run


def _delayed(array: np.ndarray):
    import dask

    return dask.delayed(array, pure=True)


def _correlate_arg(wc: np.ndarray) -> np.ndarray:
    """The argument that makes ``ndimage.correlate`` use ``wc`` as it is (it
    conjugates complex weights, as scipy)."""
    return np.ascontiguousarray(np.conj(wc) if wc.dtype.kind == "c" else wc)


def _correlate(block: np.ndarray, wb: np.ndarray, out_dtype, origin, method: str) -> np.ndarray:
    """One chunk (with its halo): spec -> plan -> kernel, the same-size
    correlation with zeros beyond the chunk (the halo holds the real data)."""
    from ._execute import run_filter
    from ._spec import filter_spec

    spec, x, w, _ = filter_spec(block, wb, out_dtype, "constant", 0.0, origin, method, convolve=False)
    return run_filter(spec, x, w, None)


def ndimage_filter(convolve: bool, input, weights, output, mode, cval, origin, method):
    """``fastconv.ndimage.correlate``/``convolve`` on a dask array."""
    from ._spec import NDIMAGE_PAD, filter_spec

    w = _small(weights, "weights")
    meta = np.zeros((1,) * input.ndim, dtype=input.dtype)
    spec, _, wc, _ = filter_spec(meta, w, output, mode, cval, origin, method, convolve=convolve, new_array="dask")
    # the block function correlates with the final weights and origin; the
    # spec's pads say how far each output reaches
    origins = tuple(lo - k // 2 for k, lo in zip(wc.shape, spec.pad_lo))
    wb = _correlate_arg(wc)

    def block(b, wb):
        return _correlate(b, wb, spec.out_dtype, origins, method)

    return _halo_filter(input, wb, spec.pad_lo, spec.pad_hi, NDIMAGE_PAD[mode], spec.cval, spec.out_dtype, block)


def signal_convolve(kind: str, in1, in2, mode: str, *, method: str = "auto", boundary: str = "fill",
                    fillvalue: float = 0.0, same_start_high: bool = False, as_float: bool = False):  # fmt: skip
    """``fastconv.signal`` convolutions (``kind`` convolve or correlate) with a
    dask ``in1`` and a small ``in2``: the full result is a same-size
    correlation of in1 padded by ``k - 1``, cropped to ``mode``."""
    from ._spec import BOUNDARIES, NDIMAGE_PAD, unswapped_signal_weights

    b = _small(in2, "in2")
    mode, wc = unswapped_signal_weights(kind, in1.shape, b, mode, "dask")
    wb = _correlate_arg(wc)
    k = wc.shape
    out_dtype = np.result_type(in1.dtype, b.dtype)
    if as_float and out_dtype.kind in "biu":
        out_dtype = np.dtype(np.float64)  # fftconvolve/oaconvolve: a float result, as scipy
    pad = tuple(kk - 1 for kk in k)

    # full[i] = sum_j wc[j] * xpad[i + j] = the same-size correlation (origin 0) at i + k//2
    # each chunk is an image filter: overlap-add (for one long signal) is
    # the dispatcher's choice there, not a method of its own
    chunk_method = "auto" if method == "oa" else method

    def block(blk, wb):
        return _correlate(blk, wb, out_dtype, 0, chunk_method)

    import dask.array as da

    np_mode = NDIMAGE_PAD[BOUNDARIES[boundary]]
    widths = [(p, p) for p in pad]
    if np_mode == "constant":
        xp = da.pad(in1, widths, mode="constant", constant_values=fillvalue)
    else:
        xp = da.pad(in1, widths, mode=np_mode)
    same = _halo_filter(xp, wb, tuple(kk // 2 for kk in k), tuple((kk - 1) // 2 for kk in k), "constant", 0.0,
                        out_dtype, block)  # fmt: skip
    n_full = tuple(n + kk - 1 for n, kk in zip(in1.shape, k))
    full = same[tuple(slice(kk // 2, kk // 2 + m) for kk, m in zip(k, n_full))]
    if mode == "full":
        return full
    if mode == "same":
        start = [kk // 2 if same_start_high else (kk - 1) // 2 for kk in k]
        return full[tuple(slice(s0, s0 + n) for s0, n in zip(start, in1.shape))]
    return full[tuple(slice(kk - 1, n) for kk, n in zip(k, in1.shape))]


# --- NN ops: spatial tiles with halos -------------------------------------------------


def _split_axis(bounds: list[int], starts: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Tile one spatial axis of length ``bounds[-1]``.

    Output ``o`` reads the input range ``[lo[o], hi[o])`` and belongs to the
    tile holding ``starts[o]`` (non-decreasing).  The existing chunk
    boundaries ``bounds`` are moved to the next output start (the stride
    grid), then tiles too small for the halo are merged into their neighbour.
    Returns ``(tile_bounds, out_bounds, (halo_lo, halo_hi))``: tile ``j`` is
    ``[tile_bounds[j], tile_bounds[j+1])``, it computes outputs
    ``out_bounds[j] <= o < out_bounds[j+1]`` and reads ``halo_lo`` more
    inputs on its left and ``halo_hi`` on its right (none past the array's
    ends).
    """
    n = bounds[-1]
    reads = hi > lo  # windows with no tap inside the input read nothing
    inner = sorted({int(starts[min(np.searchsorted(starts, b), len(starts) - 1)]) for b in bounds[1:-1]})
    tiles = [0, *[b for b in inner if starts[0] < b < n], n]
    while True:
        outs = [int(np.searchsorted(starts, b)) for b in tiles[:-1]] + [len(starts)]
        h_lo = h_hi = 0
        for j in range(len(tiles) - 1):
            sel = reads[outs[j] : outs[j + 1]]
            if sel.any():
                if j > 0:
                    h_lo = max(h_lo, tiles[j] - int(lo[outs[j] : outs[j + 1]][sel].min()))
                if j < len(tiles) - 2:
                    h_hi = max(h_hi, int(hi[outs[j] : outs[j + 1]][sel].max()) - tiles[j + 1])
        sizes = np.diff(tiles)
        small = np.flatnonzero(sizes < max(h_lo, h_hi, 1))
        if len(tiles) <= 2 or small.size == 0:
            return tiles, outs, (h_lo, h_hi) if len(tiles) > 2 else (0, 0)
        j = int(small[np.argmin(sizes[small])])  # merge the smallest offender with a neighbour
        del tiles[j + 1 if j + 1 < len(tiles) - 1 else j]


def _bounds(chunks) -> list[int]:
    return [0, *np.cumsum(chunks).tolist()]


def _tiled(x, nd: int, axes_windows, block, out_channels: int, out_dtype, *operands):
    """The lazy result of ``block(tile, offsets, out_ranges, last, *operands)``
    over spatial tiles of the (N, C, *spatial) dask array ``x``:
    ``axes_windows[a]`` is ``(starts, lo, hi)`` of spatial axis ``a`` (see
    :func:`_split_axis`); ``offsets`` are the tile's first input positions,
    ``out_ranges`` its outputs, ``last`` whether it ends each axis."""
    import dask.array as da

    splits = [_split_axis(_bounds(x.chunks[2 + a]), *axes_windows[a]) for a in range(nd)]
    chunks = (x.chunks[0], (x.shape[1],), *[tuple(np.diff(t).tolist()) for t, _, _ in splits])
    if chunks != x.chunks:
        x = x.rechunk(chunks)
    if any(halo != (0, 0) for _, _, halo in splits):
        depth = {0: 0, 1: 0, **{2 + a: halo for a, (_, _, halo) in enumerate(splits)}}
        x = da.overlap.overlap(x, depth=depth, boundary="none")
    out_chunks = (x.chunks[0], (out_channels,), *[tuple(np.diff(o).tolist()) for _, o, _ in splits])

    @_under_settings
    def run(tile, *ops, block_id=None):
        offsets, ranges, last = [], [], []
        for a, (tiles, outs, (h_lo, _)) in enumerate(splits):
            j = block_id[2 + a]
            offsets.append(tiles[j] - (h_lo if j > 0 else 0))
            ranges.append((outs[j], outs[j + 1]))
            last.append(j == len(tiles) - 2)
        return block(tile, offsets, ranges, last, *ops)

    # small NumPy operands (weights) as one graph key each: sent to a worker once
    ops = [None if a is None else _delayed(a) for a in operands]
    return da.map_blocks(run, x, *ops, chunks=out_chunks, dtype=out_dtype, meta=np.empty((0,) * (nd + 2), out_dtype))


def _batched_input(nd: int, input, spec_of):
    """(N, C, *spatial) view of a batched or unbatched dask input, the op's
    spec from a zero-size probe (validates the call; no data is read), and
    whether the input was unbatched."""
    if input.ndim not in (nd + 1, nd + 2):
        spec_of(np.zeros((1,) * input.ndim, input.dtype))  # raises the op's own rank error
    unbatched = input.ndim == nd + 1
    x = input[None] if unbatched else input
    spec = spec_of(np.zeros((0, *x.shape[1:]), x.dtype))
    return x, spec, unbatched


def nn_conv(spec_builder, nd: int, args: dict, *, transposed: bool):
    """``conv{nd}d`` / ``conv_transpose{nd}d`` on a dask input, tiled over
    batch and space (``args``: the call's arguments by name); each tile runs
    spec -> plan -> kernel (the op's ``spec_builder``, not the public function)."""
    import dask.array as da

    from ._execute import run_conv

    if args["out"] is not None:
        raise TypeError("out= is not supported for a dask input (the result is a lazy dask array)")
    input = args["input"]
    w = _small(args["weight"], "weight")
    b = None if args["bias"] is None else _small(args["bias"], "bias")
    params = {k: v for k, v in args.items() if k not in ("input", "weight", "bias", "out")}
    x, spec, unbatched = _batched_input(
        nd, input, lambda probe: spec_builder(input=probe, weight=w, bias=b, out=None, **params)[0]
    )
    k = spec.kernel
    span = [d * (kk - 1) + 1 for d, kk in zip(spec.dilation, k)]
    s = spec.stride
    if transposed:
        axes_windows, full_lo = [], []
        for a in range(nd):
            n = x.shape[2 + a]
            q = spec.pad_lo[a] + np.arange(spec.out_spatial[a], dtype=np.int64)  # uncropped output coordinate
            starts = np.minimum(q // s[a], n - 1)
            lo = np.maximum(0, -((span[a] - 1 - q) // s[a]))  # ceil((q - (span - 1)) / s)
            axes_windows.append((starts, lo, np.minimum(n, q // s[a] + 1)))
            full_lo.append(spec.pad_lo[a])
        op = spec.output_padding

        def block(tile, offsets, ranges, last, w, b):
            tile_spec, ops, _ = spec_builder(
                input=tile, weight=w, bias=b, out=None, **(params | dict(padding=0, output_padding=tuple(
                    p if e else 0 for p, e in zip(op, last))))
            )  # fmt: skip
            y = run_conv(tile_spec, ops, None)
            # local uncropped coordinate of output o: pad_lo + o - offset * stride
            part = y[(slice(None), slice(None),
                      *[slice(p + r0 - o * st, p + r1 - o * st)
                        for p, (r0, r1), o, st in zip(full_lo, ranges, offsets, s)])]  # fmt: skip
            want = (*part.shape[:2], *(r1 - r0 for r0, r1 in ranges))
            if part.shape == want:
                return part
            # a kernel shorter than the stride leaves the tile's last outputs
            # untouched by its inputs: they hold the bias (or 0), as in memory
            res = np.zeros(want, part.dtype)
            if b is not None:
                res += b.reshape((1, -1) + (1,) * nd).astype(part.dtype)
            res[tuple(slice(0, m) for m in part.shape)] = part
            return res

    else:
        widths = [(0, 0), (0, 0), *zip(spec.pad_lo, spec.pad_hi)]
        if any(lo or hi for lo, hi in widths):
            np_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
            x = da.pad(x, widths, mode=np_mode[spec.padding_mode])
        axes_windows = []
        for a in range(nd):
            starts = np.arange(spec.out_spatial[a], dtype=np.int64) * s[a]
            axes_windows.append((starts, starts, starts + span[a]))

        def block(tile, offsets, ranges, last, w, b):
            sub = tile[(slice(None), slice(None),
                        *[slice(r0 * st - o, (r1 - 1) * st + sp - o)
                          for (r0, r1), o, st, sp in zip(ranges, offsets, s, span)])]  # fmt: skip
            tile_spec, ops, _ = spec_builder(input=sub, weight=w, bias=b, out=None, **(params | dict(padding=0)))
            return run_conv(tile_spec, ops, None)

    y = _tiled(x, nd, axes_windows, block, spec.c_out, spec.dtype, w, b)
    return y[0] if unbatched else y


def nn_pool(nd: int, input, spec_of):
    """A pooling op on a dask input: the pooling kernel on spatial tiles, with
    the whole input's window tables cut to each tile (``spec_of(x)`` builds
    the op's spec)."""
    import dataclasses

    from ._config import get_config
    from ._spec import kernel_ready
    from .kernels.pool import run_pool
    from .plans.pool import AxisWindows, windows

    x, spec, unbatched = _batched_input(nd, input, spec_of)
    wins = windows(spec)[3 - nd :]  # the real spatial axes of the lifted tables
    axes_windows = []
    for a, win in enumerate(wins):
        n = spec.in_spatial[a]
        if spec.adaptive:
            starts = win.lo
        else:
            starts = np.clip(np.arange(len(win.lo)) * spec.stride[a] - spec.padding[a], 0, n - 1)
        axes_windows.append((starts, win.lo, win.hi))
    fields = [("v", spec.dtype)] + ([("i", np.int64)] if spec.return_indices else [])
    out_dtype = np.dtype(fields)
    full = spec.in_spatial

    def cut(win: AxisWindows, r0: int, r1: int, off: int) -> AxisWindows:
        s, taps, start, g0, g1 = win.regular
        m = r1 - r0
        a0, a1 = min(max(g0 - r0, 0), m), min(max(g1 - r0, 0), m)
        regular = (s, taps, start + r0 * s - off, a0, a1) if a0 < a1 else (1, 1, 0, 0, 0)
        return AxisWindows(win.lo[r0:r1] - off, win.hi[r0:r1] - off, win.step, win.size[r0:r1], regular)

    def block(tile, offsets, ranges, last):
        local = tuple(cut(win, r0, r1, off) for win, (r0, r1), off in zip(wins, ranges, offsets))
        trivial = AxisWindows(np.zeros(1, np.int64), np.ones(1, np.int64), 1, np.ones(1, np.int64), (1, 1, 0, 0, 1))
        tspec = dataclasses.replace(spec, n=tile.shape[0], in_spatial=tile.shape[2:],
                                    out_spatial=tuple(r1 - r0 for r0, r1 in ranges))  # fmt: skip
        planes = kernel_ready(tile, spec.dtype).reshape((tspec.n * tspec.c, *tspec.lifted("in_spatial")))
        values, idx = run_pool(tspec, planes, get_config().num_threads, (trivial,) * (3 - nd) + local)
        res = np.empty(values.shape, out_dtype)
        res["v"] = values
        if idx is not None:
            res["i"] = _global_indices(values, idx, tile.shape[2:], offsets, full,
                                       [win.lo[r0:r1] for win, (r0, r1) in zip(wins, ranges)])  # fmt: skip
        return res

    y = _tiled(x, nd, axes_windows, block, spec.c, out_dtype)
    parts = [y["v"]] + ([y["i"]] if spec.return_indices else [])
    parts = [p[0] if unbatched else p for p in parts]
    return tuple(parts) if spec.return_indices else parts[0]


def _global_indices(values, idx, tile_shape, offsets, full, first_taps) -> np.ndarray:
    """Flat indices into the whole input plane from the kernel's flat indices
    into the tile.  A window whose maximum is -inf points, as torch, at its
    first tap inside the input (computed from the global tables: for a window
    with no tap inside, that tap lies past the edge)."""
    nd = len(full)
    neg_inf = values == -np.inf
    coords = np.unravel_index(np.where(neg_inf, 0, idx), tile_shape)
    flat = np.zeros(idx.shape, np.int64)
    first = np.zeros(idx.shape, np.int64)
    for a in range(nd):
        shape = [1] * idx.ndim
        shape[2 + a] = -1
        flat = flat * full[a] + coords[a] + offsets[a]
        first = first * full[a] + first_taps[a].reshape(shape)
    return np.where(neg_inf, first, flat)
