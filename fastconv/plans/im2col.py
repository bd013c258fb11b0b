"""Tiling of the im2col method: pure Python, no numba, so that planning and
``fastconv.explain`` never compile or import a kernel."""

from __future__ import annotations

import numpy as np

from ._method import CONV_OPS, Method, needs_threadpoolctl, settings

_MAX_COLS = 1024


def is_pointwise(spec) -> bool:
    """1x1 kernel, stride 1, no padding: the input plane is the column matrix."""
    return (
        all(k == 1 for k in spec.kernel)
        and all(s == 1 for s in spec.stride)
        and not any(spec.pad_lo)
        and not any(spec.pad_hi)
    )


def plan_tiles(spec, limit: int, threads: int = 1) -> tuple[int, int]:
    """(images per GEMM, output rows per GEMM) so that the column buffers and
    results of ``threads`` concurrent tiles stay within ``limit`` bytes, and
    there are at least ``threads`` tiles; (0, 0) if one output row does not fit."""
    limit = limit // max(1, threads)
    item = spec.dtype.itemsize
    taps = (spec.c_in // spec.groups) * int(np.prod(spec.kernel))
    cog = spec.c_out // spec.groups
    od, oh, ow = spec.lifted("out_spatial")
    rows, plane = od * oh, od * oh * ow
    if is_pointwise(spec):
        return 1, rows
    per_col = (taps + cog) * item  # a column of the gathered matrix and of the GEMM result
    if per_col * ow > limit:
        return 0, 0
    tiles_wanted = max(1, threads)
    # at most _MAX_COLS columns a GEMM: wide enough for BLAS, small enough that
    # the columns stay in cache (measured on the 1x32x256x256 3x3 layer)
    max_cols = max(ow, min(limit // per_col, _MAX_COLS))
    if plane <= max_cols:
        # fold images while columns + result fit and every thread still gets a tile
        nimg = max(1, min(spec.n, max_cols // plane))
        while nimg > 1 and -(-spec.n // nimg) * spec.groups < tiles_wanted:
            nimg = (nimg + 1) // 2
        nrows = rows
    else:
        nimg, nrows = 1, max(1, max_cols // ow)
    while nrows > 1 and -(-spec.n // nimg) * spec.groups * -(-rows // nrows) < tiles_wanted:
        nrows = (nrows + 1) // 2
    # balance: a multiple of the thread count when the tiles are few
    tiles = -(-spec.n // nimg) * spec.groups * -(-rows // nrows)
    if nimg == 1 and threads > 1 and tiles % threads and tiles < 8 * threads:
        per_image = -(-tiles // (spec.n * spec.groups))
        target = -(-per_image // threads) * threads if spec.n * spec.groups < threads else per_image
        nrows = max(1, -(-rows // target))
    return nimg, nrows


def whole_planes(spec, nimg: int, nrows: int) -> bool:
    """Whether every tile of :func:`plan_tiles`'s ``(nimg, nrows)`` is one
    image's whole output plane: its GEMM then writes into the output
    directly, with no result buffer."""
    od, oh = spec.lifted("out_spatial")[:2]
    return nimg == 1 and nrows >= od * oh


def workspace(spec, limit: int, threads: int = 1) -> int:
    """Bytes of temporary memory :func:`conv_im2col` allocates for ``spec``."""
    nimg, nrows = plan_tiles(spec, limit, threads)
    item = spec.dtype.itemsize
    taps = (spec.c_in // spec.groups) * int(np.prod(spec.kernel))
    per_col = (taps + spec.c_out // spec.groups) * item
    ow = spec.lifted("out_spatial")[2]
    if nimg == 0:
        return per_col * ow * max(1, threads)  # the least it would need: one row per thread
    if is_pointwise(spec):
        return 0
    if whole_planes(spec, nimg, nrows):
        per_col = taps * item
    return per_col * nimg * nrows * ow * max(1, threads)


def gemm_calls(spec, limit: int, threads: int = 1) -> int:
    """How many GEMMs (and gathers) :func:`conv_im2col` issues for ``spec``."""
    nimg, nrows = plan_tiles(spec, limit, threads)
    if nimg == 0:
        return 0
    rows = int(np.prod(spec.lifted("out_spatial")[:2]))
    return spec.groups * -(-spec.n // nimg) * -(-rows // nrows)


def gathered_bytes(spec) -> int:
    """Bytes the gather writes in total (0 for the copy-free pointwise case)."""
    if is_pointwise(spec):
        return 0
    taps = (spec.c_in // spec.groups) * int(np.prod(spec.kernel))
    return spec.n * spec.groups * taps * int(np.prod(spec.out_spatial)) * spec.dtype.itemsize


# --- the method -----------------------------------------------------------------------

#: bytes of columns + result per thread that still stay in this class of CPU's L2/L3 share
_CACHE_TILE = 4 << 20


def features(spec) -> dict[str, float]:
    """im2col: a fixed cost, the GEMM FLOPs, the bytes gathered into columns
    (again, separately, when a tile's columns cannot stay in cache: one output
    row is a tile, and a long 1-D signal makes it tens of megabytes), and the
    number of gather + GEMM calls."""
    limit, threads = settings()
    cog = spec.c_out // spec.groups
    gathered = float(gathered_bytes(spec))
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(spec.flops),
        # GEMMs with few rows (output channels) run below the BLAS peak
        "s_per_flop_thin": spec.flops * max(0.0, 64 / max(cog, 1) - 1),
        "s_per_byte": gathered,
        "s_per_spilled_byte": gathered if workspace(spec, limit, threads) > _CACHE_TILE * max(1, threads) else 0.0,
        "s_per_call": float(gemm_calls(spec, limit, threads)),
    }


METHODS = (
    Method("im2col", CONV_OPS, "fastconv.kernels.im2col:conv_im2col",
           needs_threadpoolctl, lambda spec: workspace(spec, *settings()),
           "windows gathered into columns (tiled to workspace_limit), one BLAS GEMM per tile",
           features=features, cost_key="im2col", float32_error=1.5e-6),
)  # fmt: skip
