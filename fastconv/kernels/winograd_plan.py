"""Support and sizing of the Winograd methods: pure Python, no numba."""

from __future__ import annotations

import dataclasses

#: tiles per work item the blocks aim at: enough columns for efficient
#: BLAS calls, few enough that a thread's buffers stay near its L2 cache
_TARGET_TILES = 128


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
    import dataclasses

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


@dataclasses.dataclass(frozen=True)
class Layout:
    mh: int
    mw: int
    a2: int
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


def layout(spec, m: int, limit: int, threads: int) -> Layout:
    """Tile geometry, block sizes (to ``limit`` bytes of workspace) and the
    output-channel split that gives every thread work."""
    kd, kh, _ = spec.lifted("kernel")
    od, oh, ow = spec.lifted("out_spatial")
    mh, mw = (m if kh == 3 else 1), m
    ah, aw = (mh + 2 if kh == 3 else 1), mw + 2
    a2 = ah * aw
    cig, cog = spec.c_in // spec.groups, spec.c_out // spec.groups
    k = cig * kd
    item = spec.dtype.itemsize
    tiles_h, tiles_w = -(-oh // mh), -(-ow // mw)
    n_rows = spec.n * od * tiles_h
    threads = max(1, threads)
    # rows longer than the target (long 1-D signals, wide images) are cut in pieces
    nseg = max(1, round(tiles_w / _TARGET_TILES))
    seg = -(-tiles_w // nseg)
    nseg = -(-tiles_w // seg)
    rows_target = max(1, -(-_TARGET_TILES // seg)) if nseg == 1 else 1
    n_blocks = max(1, -(-n_rows // rows_target)) * nseg
    if n_blocks >= threads:
        n_oblocks = 1
    else:
        n_oblocks = min(-(-threads // n_blocks), max(1, cog // 8))
    o_block = max(1, -(-cog // n_oblocks))  # (no output channels: nothing runs)
    if n_oblocks > 1:
        o_block = -(-o_block // 8) * 8
    n_oblocks = -(-cog // o_block)

    def total(rows: int, seg: int) -> int:
        t = rows * seg
        per_thread = a2 * (k + o_block) * t + ah * aw * t + seg * mw + 64
        return (threads * per_thread + n_oblocks * a2 * o_block * k + 9 * cog * k) * item  # + U and its tap rows

    row_blocks = max(1, -(-n_rows // rows_target))
    if nseg == 1 and row_blocks >= threads:
        row_blocks = -(-row_blocks // threads) * threads  # even work for the threads
    rows = max(1, -(-n_rows // row_blocks))
    while total(rows, seg) > limit and (rows > 1 or seg > 1):
        if rows > 1:
            rows = max(1, rows // 2)
        else:
            seg = max(1, -(-seg // 2))
    nseg = -(-tiles_w // seg)
    n_blocks = -(-n_rows // rows) * nseg
    return Layout(
        mh, mw, a2, tiles_h, tiles_w, n_rows, rows, seg, n_blocks, o_block, n_oblocks, kd, threads, total(rows, seg)
    )


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
    lay = layout(spec, m, limit, threads)
    if lay.seg < lay.tiles_w:
        return None
    cig, cog = spec.c_in // spec.groups, spec.c_out // spec.groups
    ah, aw = lay.a2 // (lay.mw + 2), lay.mw + 2
    item = spec.dtype.itemsize
    threads = max(1, threads)
    rows = max(1, min(lay.tiles_h, -(-_TARGET_TILES // max(1, lay.tiles_w))))
    if 0 < spec.n < threads:  # blocks of rows before output-channel blocks to feed the threads
        rows = min(rows, max(1, -(-lay.tiles_h // -(-threads // spec.n))))
    while True:
        n_blocks = -(-lay.tiles_h // rows)
        items = max(1, spec.n * n_blocks)
        n_oblocks = 1 if items >= threads else min(-(-threads // items), max(1, cog // 8))
        o_block = max(1, -(-cog // n_oblocks))
        if n_oblocks > 1:
            o_block = -(-o_block // 8) * 8
        n_oblocks = -(-cog // o_block)
        t = rows * lay.tiles_w
        per_thread = lay.a2 * (2 * kd * cig + o_block) * t + ah * aw * t + lay.seg * lay.mw + 64
        total = (threads * per_thread + n_oblocks * lay.a2 * o_block * kd * cig + 9 * cog * kd * cig) * item
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
    kd, kh, _ = spec.lifted("kernel")
    od, oh, ow = spec.lifted("out_spatial")
    mh, mw = (m if kh == 3 else 1), m
    a2 = (mh + 2 if kh == 3 else 1) * (mw + 2)
    t = spec.n * od * -(-oh // mh) * -(-ow // mw)
    return t, a2 * t * (spec.c_in * (1 if ring else kd) + spec.c_out)
