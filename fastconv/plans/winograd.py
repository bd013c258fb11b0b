"""Support and sizing of the Winograd methods: pure Python, no numba."""

from __future__ import annotations

import dataclasses

from ._method import CONV_OPS, Method, settings
from .shape import OB, lanes, positions, vectors_for

#: tiles per work item the blocks aim at: enough columns for efficient
#: BLAS calls, few enough that a thread's buffers stay near its L2 cache
_TARGET_TILES = 128
#: fewer tiles than threads x _TARGET_TILES are still split into a block per
#: thread when each gets at least this many; below it, the threads split the
#: output channels, each transforming all of V (measured, 2 threads, 256
#: @14 F(4x4): 128 tiles as two blocks of 64, 0.90 of the time of one block
#: split by output channels)
_MIN_SPLIT_TILES = 48


def supports(spec) -> str | None:
    _, kh, kw = spec.lifted("kernel")
    _, sh, sw = spec.lifted("stride")
    _, dh, dw = spec.lifted("dilation")
    if kw != 3 or kh not in (1, 3):
        return "Winograd F(m, 3) needs a kernel 3 wide and 3 (or 1) high"
    if sh != 1 or sw != 1:
        return "Winograd needs stride 1 on the last two axes"
    if ((kh == 3 and dh != 1) or dw != 1) and not (spec.nd == 2 and kh == 3):
        return "Winograd needs dilation 1 on the last two axes (dilated 3x3 conv2d runs by input phases)"
    return None


def phase_spec(spec):
    """A dilated 3x3 conv2d as the undilated convolution of its input phases:
    output (row, col) = (a + dh*q, b + dw*r) reads only input rows and
    columns of the same phases (a, b), so the dh*dw phases of the padded
    input, stacked as a batch, are an ordinary 3x3 stride-1 convolution with
    no padding.  Returns the spec of that stacked convolution (``spec``
    itself when there is no dilation)."""
    if spec.nd != 2 or spec.dilation == (1, 1):
        return spec
    dh, dw = spec.dilation
    oh, ow = spec.out_spatial
    qh, qw = -(-oh // dh), -(-ow // dw)
    return dataclasses.replace(
        spec, n=spec.n * dh * dw, in_spatial=(qh + 2, qw + 2), dilation=(1, 1), pad_lo=(0, 0), pad_hi=(0, 0),
        padding_mode="zeros", out_spatial=(qh, qw),
    )  # fmt: skip


def phase_copy_bytes(spec) -> int:
    """Bytes of the phase split's copies (padded input, its phases, the
    phases' output): 0 without dilation."""
    sub = phase_spec(spec)
    if sub is spec:
        return 0
    dh, dw = spec.dilation
    qh, qw = sub.in_spatial
    per = spec.dtype.itemsize * spec.n
    return per * (2 * spec.c_in * qh * dh * qw * dw + spec.c_out * sub.out_spatial[0] * sub.out_spatial[1] * dh * dw)


def _geometry(spec, m: int) -> tuple[int, int, int, int, int, int]:
    """(mh, mw, ah, aw, tiles_h, tiles_w): output tile and transformed tile
    sizes (mh = ah = 1 for a kernel one row high) and tiles per plane."""
    kh = spec.lifted("kernel")[1]
    oh, ow = spec.lifted("out_spatial")[1:]
    mh, mw = (m if kh == 3 else 1), m
    ah, aw = (mh + 2 if kh == 3 else 1), mw + 2
    return mh, mw, ah, aw, -(-oh // mh), -(-ow // mw)


def _block() -> int:
    """Output channels per micro-kernel call (8 with AVX-512, 4 with AVX2)."""

    return OB


def _lanes(itemsize: int) -> int:

    return lanes(itemsize)


def tile_stride(tiles: int, itemsize: int) -> tuple[int, int, int]:
    """(stride, nv, step): V and M rows hold ``tiles`` columns rounded up to
    whole runs of the micro-kernel, ``nv`` vectors (``step`` tiles) each,
    chosen as the blocked method chooses its runs (``blocked.vectors_for``)."""

    nv = vectors_for(tiles, itemsize)
    step = positions(itemsize, nv)
    return -(-tiles // step) * step, nv, step


def skew(itemsize: int) -> int:
    """Elements (one cache line) between V's or M's a2 matrices past their
    rows (:func:`.winograd.conv_winograd`)."""
    return 64 // itemsize


def row_length(seg: int, mw: int, itemsize: int) -> int:
    """Elements of a thread's staging row: a row piece of ``seg`` tiles
    rounded up to whole vectors of tiles, the input transform's last loads
    past it, to whole cache lines plus one (:mod:`fastconv.kernels.winograd_rows`)."""

    vl = _lanes(itemsize)
    n = mw * vl * -(-seg // vl) + source_vectors(mw, itemsize) * vl
    return -(-n // 16) * 16 + 16


def staging_length(rows: int, seg: int, mw: int, itemsize: int) -> int:
    """Elements of a thread's staging row: one input row's span with the
    vector loads' overhang (:func:`row_length`); the output rows of all
    ``rows`` rows of ``seg`` tiles side by side (whole vectors of tiles);
    where short rows of ``seg`` tiles are staged side by side as input (``seg``
    in ``BATCHED_TILES`` dividing the lanes), ``rows`` of them with the last
    vector's overhang."""

    vl = _lanes(itemsize)
    n = max(row_length(seg, mw, itemsize), -(-(rows * seg) // vl) * vl * mw)
    if seg in BATCHED_TILES and seg < vl and vl % seg == 0:
        n = max(n, -(-(rows * seg) // vl) * (vl // seg) * batched_pitch(mw, seg) + vl)
    return n


def _split_outputs(items: int, threads: int, cog: int) -> tuple[int, int]:
    """(o_block, n_oblocks): output channels whole, or cut into blocks when
    there are fewer tile blocks than threads; a block is a multiple of the
    micro-kernel's output channels (channels past ``cog`` are zeros)."""
    ob = _block()
    n_oblocks = 1 if items >= threads else min(-(-threads // max(1, items)), max(1, cog // ob))
    o_block = max(1, -(-cog // n_oblocks))  # (no output channels: nothing runs)
    o_block = -(-o_block // ob) * ob
    return o_block, -(-cog // o_block)


#: a fused weight transform's piece of U (``winograd._fused_gemms``): output
#: channels (a multiple of OB) by input rows (even); F(4x4): 36 x 64 x 64
#: floats, 590 kB, held in L2 while its GEMMs run (measured, 512 @7 F(4x4),
#: five same-process runs: 64 x 64 and 32 x 128 pieces 0.86-0.94 of the time
#: of 32 x 256 and within 2% of each other, 64 x 32 1.15)
FUSED_OC = 64
FUSED_ROWS = 64
#: most tiles of a layout whose weights are transformed piece by piece (a U
#: element is used once per tile: with many tiles the transform's share is
#: small and the pieces' partial sums cost more than U's round trip through
#: memory; measured with 128 tiles, 256 @14 F(4x4): 0.99-1.07 of stored U)
FUSED_TILES = 64


def _fused(n_blocks: int, tiles: int) -> bool:
    return n_blocks == 1 and tiles <= FUSED_TILES


def u_pitch(o_block: int, rows: int, itemsize: int) -> int:
    """Elements from U[k] to U[k+1] of a block of ``o_block`` output channels
    by ``rows`` input rows (``winograd.transform_weights``): the packed
    matrices and a cache line, so the a2 rows its transform writes at once
    do not share L1 sets."""
    return o_block * rows + skew(itemsize)


def _fused_size(a2: int, itemsize: int) -> int:
    """Elements per thread of the fused weight transform's piece of U."""
    return a2 * u_pitch(FUSED_OC, FUSED_ROWS, itemsize)


def fused_piece(lay, itemsize: int) -> int:
    """:func:`_fused_size` for a fused layout, else 0."""
    return _fused_size(lay.a2, itemsize) if lay.fused else 0


def _workspace_bytes(spec, geo, tiles: int, seg: int, v_rows: int, o_block: int, n_oblocks: int, threads: int,
                     fused: bool = False) -> int:  # fmt: skip
    """Each thread's V (``v_rows`` x tiles per transform point), M, row
    transforms and staging row, plus U (or, ``fused``, each thread's piece of
    it)."""
    mw, ah, aw = geo[1:4]
    k = spec.c_in // spec.groups * spec.lifted("kernel")[0]
    stride = tile_stride(tiles, spec.dtype.itemsize)[0]
    rw = tiles + _lanes(spec.dtype.itemsize)
    per_thread = ah * aw * ((v_rows + o_block) * stride + rw + 2 * skew(spec.dtype.itemsize))
    per_thread += staging_length(tiles // max(1, seg), seg, mw, spec.dtype.itemsize)
    if fused:
        return threads * (per_thread + _fused_size(ah * aw, spec.dtype.itemsize)) * spec.dtype.itemsize
    return (threads * per_thread + n_oblocks * ah * aw * u_pitch(o_block, k, spec.dtype.itemsize)) * spec.dtype.itemsize


@dataclasses.dataclass(frozen=True)
class Layout:
    mh: int
    mw: int
    ah: int
    aw: int
    tiles_h: int
    tiles_w: int
    #: tile rows over (batch, output depth, tile row)
    n_rows: int
    rows_per_block: int
    #: tiles a block takes from each of its rows (< tiles_w: rows are cut in pieces)
    seg: int
    n_blocks: int
    o_block: int
    n_oblocks: int
    kdepth: int
    threads: int
    workspace: int

    @property
    def a2(self) -> int:
        return self.ah * self.aw

    @property
    def fused(self) -> bool:
        """One tile block of at most FUSED_TILES tiles: each item transforms
        its own output channels' weights piece by piece (U is used once,
        never stored whole)."""
        return _fused(self.n_blocks, self.rows_per_block * self.seg)


def layout(spec, m: int, limit: int, threads: int) -> Layout:
    """Tile geometry, block sizes (to ``limit`` bytes of workspace) and the
    output-channel split that gives every thread work."""
    geo = _geometry(spec, m)
    mh, mw, ah, aw, tiles_h, tiles_w = geo
    kd = spec.lifted("kernel")[0]
    k = spec.c_in // spec.groups * kd
    n_rows = spec.n * spec.lifted("out_spatial")[0] * tiles_h
    threads = max(1, threads)
    # rows longer than the target (long 1-D signals, wide images) are cut in pieces
    nseg = max(1, round(tiles_w / _TARGET_TILES))
    seg = -(-tiles_w // nseg)
    nseg = -(-tiles_w // seg)
    rows_target = max(1, -(-_TARGET_TILES // seg)) if nseg == 1 else 1
    row_blocks = max(1, -(-n_rows // rows_target))
    if nseg == 1 and row_blocks < threads <= n_rows and -(-n_rows // threads) * seg >= _MIN_SPLIT_TILES:
        row_blocks = threads  # blocks of rows for every thread rather than output channels: V transformed once
    o_block, n_oblocks = _split_outputs(row_blocks * nseg, threads, spec.c_out // spec.groups)
    if nseg == 1 and row_blocks >= threads:
        row_blocks = -(-row_blocks // threads) * threads  # even work for the threads
    rows = max(1, -(-n_rows // row_blocks))

    def total(rows: int, seg: int) -> int:
        fused = _fused(-(-n_rows // rows) * -(-tiles_w // seg), rows * seg)
        return _workspace_bytes(spec, geo, rows * seg, seg, k, o_block, n_oblocks, threads, fused)

    while total(rows, seg) > limit and (rows > 1 or seg > 1):
        if rows > 1:
            rows = max(1, rows // 2)
        else:
            seg = max(1, -(-seg // 2))
    n_blocks = -(-n_rows // rows) * -(-tiles_w // seg)
    return Layout(
        mh, mw, ah, aw, tiles_h, tiles_w, n_rows, rows, seg, n_blocks, o_block, n_oblocks, kd, threads,
        total(rows, seg),
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DepthRing:
    rows_per_block: int
    #: blocks of tile rows per image (work items: images x blocks x output-channel blocks)
    n_blocks: int
    o_block: int
    n_oblocks: int
    workspace: int


def depth_ring(spec, m: int, limit: int, threads: int) -> DepthRing | None:
    """The depth-ring schedule (``_winograd_depth_ring``) for conv3d with
    depth taps, depth stride 1 and dilation 1, when it fits in ``limit``;
    else None (the flat schedule stacks every tap's transform instead)."""
    kd = spec.lifted("kernel")[0]
    if spec.nd != 3 or kd < 2 or spec.stride[0] != 1 or spec.dilation[0] != 1:
        return None
    geo = _geometry(spec, m)
    tiles_h, tiles_w = geo[4:]
    if layout(spec, m, limit, threads).seg < tiles_w:
        return None
    threads = max(1, threads)
    rows = max(1, min(tiles_h, -(-_TARGET_TILES // max(1, tiles_w))))
    if 0 < spec.n < threads:  # blocks of rows before output-channel blocks to feed the threads
        rows = min(rows, max(1, -(-tiles_h // -(-threads // spec.n))))
    while True:
        n_blocks = -(-tiles_h // rows)
        o_block, n_oblocks = _split_outputs(spec.n * n_blocks, threads, spec.c_out // spec.groups)
        # the ring holds every slice twice: 2 * kd * C rows of V
        total = _workspace_bytes(spec, geo, rows * tiles_w, tiles_w, 2 * spec.c_in // spec.groups * kd, o_block,
                                 n_oblocks, threads)  # fmt: skip
        if total <= limit:
            return DepthRing(rows, n_blocks, o_block, n_oblocks, total)
        if rows == 1:
            return None
        rows = max(1, rows // 2)


def workspace(spec, m: int, limit: int, threads: int) -> int:
    extra = phase_copy_bytes(spec)
    if extra:
        return extra + workspace(phase_spec(spec), m, max(0, limit - extra), threads)
    ring = depth_ring(spec, m, limit, threads)
    return ring.workspace if ring is not None else layout(spec, m, limit, threads).workspace


def transform_units(spec, m: int, ring: bool = False) -> tuple[int, int]:
    """(tiles, transformed elements in and out) for the cost model; with the
    depth ring each input slice is transformed once, not once per depth tap."""
    _, _, ah, aw, tiles_h, tiles_w = _geometry(spec, m)
    kd = spec.lifted("kernel")[0]
    t = spec.n * spec.lifted("out_spatial")[0] * tiles_h * tiles_w
    return t, ah * aw * t * (spec.c_in * (1 if ring else kd) + spec.c_out)


def source_vectors(m: int, itemsize: int) -> int:
    """Vectors of input one step of the input transform loads (its ``lanes``
    tiles cover ``m * (lanes - 1) + m + 2`` elements)."""
    n = lanes(itemsize)
    return -(-(m * (n - 1) + m + 2) // n)


def batched_pitch(m: int, ntw: int) -> int:
    """Elements per staged row of :func:`make_input_rows` with ``ntw`` tiles
    per row: the row's span ``ntw*m + 2``."""
    return ntw * m + 2


#: tiles per row for which short rows are staged side by side, several per
#: vector of tiles (those that divide the lanes)
BATCHED_TILES = (2, 4, 8)


# --- the methods -----------------------------------------------------------------------


def _features(m: int):
    def features(spec) -> dict[str, float]:
        """Winograd F(m): a fixed cost, the channel GEMMs' FLOPs (over the
        padded tiles; again for GEMMs with few output channels, and for 1-D
        transforms), the transformed elements (input and output
        transforms), the GEMM calls, the weight transform's output, and the
        transformed weights each work item streams through its GEMMs (large
        when many items each read a U of many megabytes: deep layers on
        small images; none where each item transforms its own weights piece
        by piece, ``Layout.fused``, whose GEMMs are called once per piece of
        input rows instead)."""
        copied = phase_copy_bytes(spec)
        spec = phase_spec(spec)  # a dilated 3x3 conv2d: its stacked input phases
        lay = layout(spec, m, *settings())
        ring = depth_ring(spec, m, *settings())
        t, transformed = transform_units(spec, m, ring is not None)
        cig, cog = spec.c_in // spec.groups, spec.c_out // spec.groups
        k = cig * lay.kdepth
        if ring is None:
            calls, o_block, n_oblocks = lay.n_blocks * lay.n_oblocks, lay.o_block, lay.n_oblocks
        else:  # one GEMM batch per output depth of each item
            o_block, n_oblocks = ring.o_block, ring.n_oblocks
            calls = spec.n * ring.n_blocks * n_oblocks * spec.lifted("out_spatial")[0]
        calls *= spec.groups
        gemm_flops = 2.0 * lay.a2 * k * cog * t * spec.groups
        rows = lay.ah == 1
        fused = ring is None and lay.fused
        streamed = 0 if fused else calls * lay.a2 * o_block * k
        if fused:
            calls *= -(-k // FUSED_ROWS)
        return {
            "overhead_s": 1.0,
            "s_per_flop": 0.0 if rows else gemm_flops,
            # GEMMs with few rows (output channels): a term of its own (when
            # they ran on BLAS, 32- and 16-channel layers were 1.2-1.4x slower
            # than the register-blocked direct method; on the micro-kernel
            # the Intel fit gives it 3-6% of the FLOP term's weight)
            "s_per_flop_thin": gemm_flops * max(0.0, 64 / max(cog, 1) - 1),
            # 1-D transforms (a kernel one row high) in place of the above: a
            # rate of their own (the 2-D layers' rate put the 64-channel audio
            # layer at 1.47x its measured time: picked over Winograd, `blocked`
            # ran 1.43x slower)
            "s_per_flop_rows": gemm_flops if rows else 0.0,
            "s_per_transformed": float(transformed * n_oblocks),
            "s_per_block": float(calls * lay.a2),
            "s_per_weight": float(lay.a2 * k * cog * spec.groups),
            "s_per_u_stream": float(streamed),
            "s_per_copied_byte": float(copied),
        }

    return features


#: Winograd F(4x4, 3x3) in float32: measured relative error (see
#: tests/test_winograd.py) grows with the input channels; above this count it
#: is not offered for float32 (F(2x2) and float64 have no such limit)
WINOGRAD_F4_MAX_CIN_FLOAT32 = 4096


def _supports(m: int):
    def method_supports(spec) -> str | None:
        reason = supports(spec)  # (no BLAS: the GEMMs run on the micro-kernel)
        if reason is None and m == 4 and spec.dtype.itemsize == 4:
            if spec.c_in // spec.groups > WINOGRAD_F4_MAX_CIN_FLOAT32:
                reason = f"float32 error of F(4x4) too large for more than {WINOGRAD_F4_MAX_CIN_FLOAT32} input channels"
        return reason

    return method_supports


def _variant(m: int):
    def variant(spec) -> str:
        """ "dilated phases" (a dilated 3x3 conv2d as its stacked input
        phases), "depth ring" (3-D: a ring of transformed depth slices),
        "fused" (each item transforms its weights piece by piece) or "tiles"."""
        if phase_spec(spec) is not spec:
            return "dilated phases"
        if depth_ring(spec, m, *settings()) is not None:
            return "depth ring"
        return "fused" if layout(spec, m, *settings()).fused else "tiles"

    return variant


#: worst float32 error measured (bench/precision.py, fraction of the output's
#: scale): F(4x4) 1.4-14x direct summation's, 2-14x torch's; F(2x2) within 0.6x
_FLOAT32_ERROR = {2: 4.6e-7, 4: 5.6e-6}

METHODS = tuple(
    Method(f"winograd_f{m}", CONV_OPS, f"fastconv.kernels.winograd:conv_winograd_f{m}",
           _supports(m), lambda spec, m=m: workspace(spec, m, *settings()),
           f"Winograd F({m}x{m}, 3x3) (F({m}, 3) for kernels 1 high; depth taps stacked into the GEMMs): "
           "transformed tiles, one channel GEMM per transform point",
           features=_features(m), cost_key=f"winograd_f{m}", variant=_variant(m), finite_only=True,
           float32_error=_FLOAT32_ERROR[m], precise=m == 2,
           checks_input=True, checks_weights=True)
    for m in (2, 4)
)  # fmt: skip
