"""Planning of the register-blocked direct convolution
(:mod:`fastconv.kernels.blocked`): which variant runs, its geometry, work
items, workspace and cost features.  No Numba here."""

from __future__ import annotations

import functools

import numpy as np

from . import transpose_blocked
from ._method import CONV_OPS, Method, settings
from .shape import _ACC_BYTES, _CHUNK, _SPAN, OB, oc_blocks, positions, share_runs, vectors_for
from .transpose_blocked import conv_as_transposed, shifted_features

# problems of fewer FLOPs run on the calling thread alone: a parallel launch
# under Numba's workqueue layer costs 0.14-0.2 ms (measured, conv1d, 2
# threads: 0.8 MFLOP 0.40 -> 0.18 ms, 6 MFLOP 0.49 -> 0.29, 25 MFLOP
# 0.98 -> 0.80, 50 MFLOP 1.32 -> 1.84); an eighth of it under omp/tbb
# (see serial_below)
_SERIAL_FLOPS = 32e6


_WINDOW_RUNS = 8  # least runs per output plane for per-item windows (plane_windows)


# most bytes of one item's window, unless it holds a single run (3x3/2 128
# @56, 2 threads: 1.1 MB windows of 9 runs 0.87 of the time of 0.23 MB ones
# of 1 run, stem 0.93, others within 2%)
_WINDOW_BYTES = 2 << 20


def block_channels(spec) -> int:
    """Output channels per micro-kernel block of the convolution ``spec``:
    OB, or 4 for groups of at most 4 output channels (ResNeXt's 32x4d),
    where blocks of 8 would compute as many zeros as outputs."""
    return min(OB, 4) if spec.c_out // spec.groups <= 4 else OB


_SHIFTED = 1.08  # least ratio of computed work (phase-split / shifted) to run a stride-1 convolution shifted


def shifted(spec):
    """The stride-1 transposed convolution a stride-1 convolution runs as
    (:func:`.transpose_blocked.conv_stride1`), or None.  Its layout puts the
    images' rows side by side, sharing their padding, so small planes compute
    fewer padding columns and rounded-up runs (7x7: 8/7 instead of 9/7 of the
    work); it is used when that saves at least 1 - 1/_SHIFTED of the
    micro-kernel's work, because on planes where both compute about the
    same, it measured 4-9% slower (64 @56, 32 @32, conv1d; not understood)."""
    return _shifted(spec, _SHIFTED)


@functools.lru_cache(maxsize=256)
def _shifted(spec, least: float):
    if not all(s == 1 for s in spec.stride):
        return None
    t = conv_as_transposed(spec)
    if computed_flops(spec) < least * transpose_blocked.computed_flops(t, spec.n):
        return None
    return t


@functools.lru_cache(maxsize=256)
def geometry(spec) -> tuple[int, ...]:
    """(Dp, Hq, Wq, phases): padded depth, phase-plane height and width, and
    the number of (row, column) stride phases."""
    sd, sh, sw = spec.lifted("stride")
    dd, dh, dw = spec.lifted("dilation")
    kd, kh, kw = spec.lifted("kernel")
    od, oh, ow = spec.lifted("out_spatial")
    return (od - 1) * sd + (kd - 1) * dd + 1, oh + (kh - 1) * dh // sh, ow + (kw - 1) * dw // sw, sh * sw


@functools.lru_cache(maxsize=256)
def vectors(spec) -> int:
    """Vectors of positions per micro-kernel call for ``spec``'s planes."""
    oh = spec.lifted("out_spatial")[1]
    return vectors_for(oh * geometry(spec)[2], np.dtype(spec.dtype).itemsize)


@functools.lru_cache(maxsize=256)
def runs(spec) -> tuple[int, int]:
    """(tb, nrun): positions per micro-kernel call, and calls (runs) per output
    plane, the plane's positions (padding columns included) rounded up."""
    oh = spec.lifted("out_spatial")[1]
    tb = positions(np.dtype(spec.dtype).itemsize, vectors(spec))
    return tb, -(-(oh * geometry(spec)[2]) // tb)


def image_elements(spec) -> int:
    """Elements of one image's padded, phase-split copy."""
    dp, hq, wq, phases = geometry(spec)
    return spec.c_in * dp * phases * hq * wq


def slack(spec) -> int:
    """Elements after the last plane of the padded copy: the last run of a
    plane reads up to one run plus the plane's padding columns past its end
    (only for positions that are dropped; zeroed)."""
    return positions(np.dtype(spec.dtype).itemsize) + geometry(spec)[2]


def _channels(spec) -> int:
    """Output channels per group rounded up to whole micro-kernel blocks
    (:func:`block_channels`): the rows of the packed weights and of the
    partial sums."""
    ob = block_channels(spec)
    return oc_blocks(spec, ob) * ob


def _weight_bytes(spec) -> int:
    """Bytes of the packed weights."""
    return spec.groups * _channels(spec) * _taps(spec) * np.dtype(spec.dtype).itemsize


def _fixed_bytes(spec, threads: int) -> int:
    """Workspace besides the padded images: the packed weights, each thread's
    partial sums (at most _ACC_BYTES) and the slack after the last plane."""
    item = np.dtype(spec.dtype).itemsize
    acc = max(_ACC_BYTES, _channels(spec) * runs(spec)[0] * item)  # at least one run
    return _weight_bytes(spec) + threads * acc + slack(spec) * item


def images_per_block(spec, limit: int, threads: int, variant: str | None = None) -> int:
    """Images whose copy fits the workspace limit together (0: not even
    one).  The window variants copy no whole image: all of them, or 0 when
    the weights and windows do not fit."""
    variant = variant or choose_variant(spec)
    if variant == "windowed":
        return spec.n if _windowed_bytes(spec, threads) <= limit else 0
    if variant == "shifted":
        return transpose_blocked.images_per_block(conv_as_transposed(spec), limit, threads)
    if variant == "plane_windows":
        return spec.n if _plane_window_bytes(spec, threads) <= limit else 0
    per_image = image_elements(spec) * np.dtype(spec.dtype).itemsize
    room = limit - _fixed_bytes(spec, threads)
    return max(0, min(spec.n, room // max(per_image, 1)))


def workspace(spec, limit: int, threads: int, variant: str | None = None) -> int:
    variant = variant or choose_variant(spec)
    if variant == "windowed":
        return _windowed_bytes(spec, threads)
    if variant == "shifted":
        return transpose_blocked.workspace(conv_as_transposed(spec), limit, threads)
    if variant == "plane_windows":
        return _plane_window_bytes(spec, threads)
    nimg = max(1, images_per_block(spec, limit, threads, variant))
    return nimg * image_elements(spec) * np.dtype(spec.dtype).itemsize + _fixed_bytes(spec, threads)


def computed_flops(spec) -> int:
    """FLOPs the micro-kernel runs: whole blocks of output channels
    (:func:`block_channels`) and of positions, the plane's padding columns
    included."""
    tb, nrun = runs(spec)
    return 2 * spec.n * spec.lifted("out_spatial")[0] * nrun * tb * spec.groups * _channels(spec) * _taps(spec)


def calls(spec) -> int:
    """Micro-kernel calls: per run of a plane, group, block of output
    channels and chunk of taps (each call stores or adds its partial sums)."""
    planes = spec.n * spec.lifted("out_spatial")[0]
    chunks = -(-_taps(spec) // taps_per_chunk(spec))
    return planes * runs(spec)[1] * spec.groups * oc_blocks(spec, block_channels(spec)) * chunks


def _taps(spec) -> int:
    kd, kh, kw = spec.lifted("kernel")
    return spec.c_in // spec.groups * kd * kh * kw


def runs_per_item(spec, nimg: int, threads: int) -> int:
    """Runs of positions per work item for a block of ``nimg`` images."""
    tb, nrun = runs(spec)
    total = nimg * spec.lifted("out_spatial")[0] * nrun * spec.groups
    return share_runs(total, _channels(spec), tb, np.dtype(spec.dtype).itemsize, threads)


def taps_per_chunk(spec) -> int:
    """Taps (input channel x kernel tap) per micro-kernel call: whole input
    channels, about _CHUNK taps, so a run's input window stays in L1."""
    kd, kh, kw = spec.lifted("kernel")
    taps = kd * kh * kw
    return max(1, _CHUNK // taps) * taps


def windowed(spec) -> bool:
    """Whether ``spec`` runs on per-item input windows (:func:`_windowed_kernel`):
    conv1d, whose padded copy is only the rows (split by stride phase) with
    their padding."""
    sizes = (spec.n, spec.c_in, spec.c_out, spec.out_spatial[0]) if spec.nd == 1 else (0,)
    return min(sizes) > 0  # (empty problems: the general path's guards)


def _halo(spec) -> int:
    """Window elements per stride phase past the item's positions."""
    return (spec.kernel[0] - 1) * spec.dilation[0] // spec.stride[0]


def windowed_runs(spec, threads: int) -> tuple[int, int, int]:
    """(tb, nrun, rpi) of the windowed path: positions per micro-kernel call,
    runs per output row, runs per work item (items never cross rows)."""
    item = np.dtype(spec.dtype).itemsize
    ow = spec.out_spatial[0]
    tb = positions(item, vectors_for(ow, item))
    nrun = -(-ow // tb)
    return tb, nrun, share_runs(nrun, _channels(spec), tb, item, threads, rows=spec.n * spec.groups)


def _windowed_bytes(spec, threads: int) -> int:
    """Packed weights and, per thread, one item's input window and partial sums."""
    item = np.dtype(spec.dtype).itemsize
    tb, _, rpi = windowed_runs(spec, threads)
    window = spec.c_in // spec.groups * spec.stride[0] * (rpi * tb + _halo(spec))
    return _weight_bytes(spec) + threads * (window + _channels(spec) * rpi * tb) * item


def plane_windows(spec) -> bool:
    """Whether a 2-D/3-D ``spec`` runs on per-item windows of rows
    (:func:`_plane_window_kernel`) instead of one padded copy of the images
    (:func:`_pad_split`, then :func:`_blocked_kernel`): planes of at least
    _WINDOW_RUNS runs.  Measured (2 threads, 3x3/2 128 @56): the copy pass
    ran 2.4x slower followed by the kernel than alone, the kernel 1.4x (the
    copy written by one core, read by the other, 14 MB through L3, and two
    parallel launches)."""
    if spec.nd == 1 or min(spec.n, spec.c_in, spec.c_out, *spec.out_spatial) == 0:
        return False
    return runs(spec)[1] >= _WINDOW_RUNS


def window_geometry(spec) -> tuple[int, int, int, int]:
    """(tb, nrun, rpi, hw): positions per micro-kernel call, runs per output
    plane, runs per work item (items never cross planes), and rows of each
    phase plane an item's window holds (its runs, the first one's row from
    column 0, and the kernel's reach below)."""
    return _window_geometry(spec, _SPAN, _ACC_BYTES, _WINDOW_BYTES)


@functools.lru_cache(maxsize=256)
def _window_geometry(spec, span: int, acc_bytes: int, window_bytes: int) -> tuple[int, int, int, int]:
    item = np.dtype(spec.dtype).itemsize
    tb, nrun = runs(spec)
    # a plane's runs in the fewest items of at most _SPAN positions and
    # _ACC_BYTES of partial sums, split evenly (every item copies its rows
    # and the kernel's reach below them: one run per item, which
    # share_runs would pick for an odd run count, copied 2.3-3.4x the input);
    # and fewer runs while the window passes _WINDOW_BYTES
    _, sh, sw = spec.lifted("stride")
    _, dh, dw = spec.lifted("dilation")
    kd, kh, kw = spec.lifted("kernel")
    _, _, wq, phases = geometry(spec)
    reach = ((kh - 1) * dh // sh) * wq + (kw - 1) * dw // sw
    per_row = spec.c_in // spec.groups * kd * phases * wq * item  # window bytes per row
    most = max(1, min(span // tb, acc_bytes // (_channels(spec) * tb * item)))
    rpi, hw = window_runs(nrun, tb, wq, reach, per_row, most, window_bytes)
    return tb, nrun, rpi, hw


def window_runs(nrun: int, tb: int, wq: int, reach: int, per_row: int, most: int, window_bytes: int):
    """(rpi, hw) of :func:`window_geometry`: a plane's ``nrun`` runs in the
    fewest items of at most ``most`` runs, split evenly, fewer while an
    item's window (``hw`` rows of ``per_row`` bytes: its runs and the
    kernel's ``reach`` below) passes ``window_bytes``.  (Plain integer
    code: ``kernels.injit`` compiles this same function.)"""
    k = (nrun + most - 1) // most
    while (nrun + k - 1) // k > 1 and ((wq - 1 + (nrun + k - 1) // k * tb + reach) // wq + 1) * per_row > window_bytes:
        k += 1
    rpi = (nrun + k - 1) // k
    return rpi, (wq - 1 + rpi * tb + reach) // wq + 1


def _window_elements(spec) -> int:
    """Elements of one item's window: per input channel of a group, depth tap
    and stride phase, ``hw`` rows of ``Wq``."""
    kd = spec.lifted("kernel")[0]
    _, _, _, hw = window_geometry(spec)
    return spec.c_in // spec.groups * kd * geometry(spec)[3] * hw * geometry(spec)[2]


@functools.lru_cache(maxsize=256)
def used_phases(spec) -> np.ndarray:
    """used[a, b]: whether some tap reads stride phase (a, b) -- all of them
    unless the kernel is smaller than the stride (1x1/2: only (0, 0), a
    quarter of the window to copy).  Cached per shape: callers only read it."""
    _, sh, sw = spec.lifted("stride")
    _, dh, dw = spec.lifted("dilation")
    _, kh, kw = spec.lifted("kernel")
    return phases_read(sh, sw, kh, kw, dh, dw)


def phases_read(sh: int, sw: int, kh: int, kw: int, dh: int, dw: int) -> np.ndarray:
    """:func:`used_phases` from the plane's strides, kernel and dilations
    (plain loops: ``kernels.injit`` compiles this same function)."""
    used = np.zeros((sh, sw), np.bool_)
    for i in range(kh):
        for j in range(kw):
            used[(i * dh) % sh, (j * dw) % sw] = True
    return used


def splits_rows(spec) -> bool:
    """Whether the window kernel copies stride-2 input rows into both column
    phases in one pass (:func:`_split_row`): every input column has its
    place in a phase row of ``Wq``."""
    pw = spec.kernel_pad_lo[-1]
    return (spec.lifted("in_spatial")[2] - 1 + pw) // 2 < geometry(spec)[2]


def gathered_share(spec, variant: str | None = None) -> float:
    """The share of an item's copied window (:func:`plane_windows`; 0 on the
    other paths) that is gathered column by column at the stride (a row
    phase whose columns are not split in one pass: 1x1/2 reads one phase of
    every other row) -- measured: 1x1/2 256->512 @56 ran 1.3x the time of
    the same layer on a stride-1 copy of its input with the same FLOPs and
    copied elements."""
    sw = spec.lifted("stride")[2]
    if sw == 1 or (variant or choose_variant(spec)) != "plane_windows":
        return 0.0
    used = used_phases(spec)
    split = sw == 2 and splits_rows(spec)
    gathered = sum(int(row.sum()) for row in used if not (split and row.all()))
    return gathered / max(1, int(used.sum()))


def copied_elements(spec, threads: int, variant: str | None = None) -> tuple[int, int]:
    """Elements the method copies before its micro-kernel reads them: (into
    the padded copy of the images, into work items' windows) -- conv1d's
    (:func:`windowed`) and 2-D/3-D planes' (:func:`plane_windows`) windows
    hold each item's rows and the kernel's reach past them."""
    variant = variant or choose_variant(spec)
    if variant == "windowed":
        tb, nrun, rpi = windowed_runs(spec, threads)
        items = spec.groups * spec.n * -(-nrun // rpi)
        return 0, items * spec.c_in // spec.groups * spec.stride[0] * (rpi * tb + _halo(spec))
    if variant == "plane_windows":
        _, nrun, rpi, _ = window_geometry(spec)
        items = spec.groups * spec.n * spec.lifted("out_spatial")[0] * -(-nrun // rpi)
        used = used_phases(spec)
        return 0, items * _window_elements(spec) * int(used.sum()) // used.size
    return spec.n * image_elements(spec), 0


def _plane_window_bytes(spec, threads: int) -> int:
    """Packed weights and, per thread, one item's window and partial sums."""
    tb, _, rpi, _ = window_geometry(spec)
    per_thread = _window_elements(spec) + _channels(spec) * rpi * tb
    return _weight_bytes(spec) + threads * per_thread * np.dtype(spec.dtype).itemsize


# --- variants and the method --------------------------------------------------------

#: the code paths of the blocked kernel, each forced by ``method="blocked:<variant>"``
VARIANTS = ("shifted", "windowed", "plane_windows", "padded")


def choose_variant(spec) -> str:
    """What runs: "shifted" (a stride-1 convolution on the shifted layout of
    the transposed kernel, :func:`shifted`), "windowed" (conv1d: per-item
    windows of rows, :func:`windowed`), "plane_windows" (2-D/3-D planes of
    many runs: per-item windows, :func:`plane_windows`) or "padded" (one
    padded, phase-split copy of a block of images)."""
    if shifted(spec) is not None:
        return "shifted"
    if windowed(spec):
        return "windowed"
    if plane_windows(spec):
        return "plane_windows"
    return "padded"


def variants(spec) -> tuple[str, ...]:
    """The variants that can compute ``spec``."""
    empty = min(spec.n, spec.c_in, spec.c_out, *spec.out_spatial) == 0
    out = []
    if all(s == 1 for s in spec.stride) and not empty:
        out.append("shifted")
    if spec.nd == 1 and not empty:
        out.append("windowed")
    if spec.nd > 1 and not empty:
        out.append("plane_windows")
    out.append("padded")
    return tuple(out)


def features(spec, variant: str | None = None) -> dict[str, float]:
    """Register-blocked direct: a fixed cost, the FLOPs the micro-kernel runs
    (whole channel blocks and position runs, plane padding included), the
    elements copied into the padded input or into work items' windows (two
    terms: a window is written and read by one thread, in one launch; a
    third for the window elements gathered at the stride, see
    :func:`gathered_share`), and the micro-kernel calls (per run, block of
    channels and chunk of taps: each stores or adds its partial sums)."""
    variant = variant or choose_variant(spec)
    if variant == "shifted":  # stride 1 on small planes: run as a transposed convolution
        return shifted_features(conv_as_transposed(spec))
    copied, windows = copied_elements(spec, settings()[1], variant)
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(computed_flops(spec)),
        "s_per_copied": float(copied),
        "s_per_window_copied": float(windows),
        "s_per_window_gathered": windows * gathered_share(spec, variant),
        "s_per_call": float(calls(spec)),
    }


def supports(spec, variant: str | None = None) -> str | None:
    from .im2col import is_pointwise

    if variant is not None and variant not in variants(spec):
        return f"variant {variant!r} cannot compute this convolution (possible: {', '.join(variants(spec))})"
    if variant is None and is_pointwise(spec):
        # measured 1.2-1.3x slower than im2col, which runs it as one GEMM on
        # the input itself (no copy), BLAS at full width
        return "a 1x1 stride-1 unpadded convolution is a plain GEMM on the input (im2col, no copy)"
    variant = variant or choose_variant(spec)
    if images_per_block(spec, *settings(), variant) == 0:
        if variant in ("windowed", "plane_windows"):
            return "the packed weights and each thread's input window exceed workspace_limit"
        return "one image's padded copy exceeds workspace_limit"
    return None


METHODS = (
    Method("blocked", CONV_OPS, "fastconv.kernels.blocked:conv_blocked",
           supports, lambda spec, variant=None: workspace(spec, *settings(), variant),
           "register-blocked direct: padded phase-split input copy, 8 channels x 16-48 positions per " "micro-kernel call with the accumulators in vector registers, no BLAS",
           features=features, cost_key="blocked", float32_error=8.0e-7, variant=choose_variant, variants=variants,
           prepare="fastconv.kernels.blocked:prepare_blocked"),
)  # fmt: skip
