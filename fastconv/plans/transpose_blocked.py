"""Planning of the register-blocked transposed convolution
(:mod:`fastconv.kernels.transpose_blocked`): the shifted layout, its tap
tables, work items and workspace.  No Numba here."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ._method import TRANSPOSE_OPS, Method, linear_cost, settings
from .shape import _ACC_BYTES, _CHUNK, OB, oc_blocks, positions, vectors_for
from .transpose import axis_phases


@dataclasses.dataclass(frozen=True)
class Layout:
    """The padded copy and the phases of one transposed convolution."""

    q: tuple[int, int, int]  # phase-plane extents (Qd, Qh, Qw) = ceil(O / s)
    e_min: tuple[int, int, int]  # the copy's element j holds input j + e_min (per axis)
    dp: int  # padded depth
    rows: int  # rows per plane (the extra zero row included)
    wp: int  # row pitch
    cols: tuple[int, int]  # columns [lo, hi) of a row that hold input
    phases: tuple  # per phase: ((rd, rh, rw), ((kd, kh, kw, dz, dy, dx), ...)): taps and their shifts

    def pitch(self, nimg: int) -> int:
        """Elements per row of the copy: the rows of ``nimg`` images side by side."""
        return nimg * self.wp

    def plane(self, nimg: int) -> int:
        return self.rows * self.pitch(nimg)

    def npos(self, nimg: int) -> int:
        """Positions per phase plane (of all ``nimg`` images, padding columns included)."""
        return self.q[1] * self.pitch(nimg)

    @property
    def taps(self) -> int:
        """Kernel taps over all phases (each tap belongs to exactly one)."""
        return sum(len(t) for _, t in self.phases)


def _axis(length: int, o: int, k: int, s: int, p: int, d: int):
    """(Q, [(r, [(k, e)])]): the phase extent and, for each phase with
    outputs, its taps with their input shift e in ascending order (the
    phases and taps of :func:`.transpose.axis_phases`)."""
    per = [
        (a.r, [(kk, (a.r + p - kk * d) // s) for kk in a.taps]) for a in axis_phases(length, o, k, s, p, d) if a.count
    ]
    return -(-o // s), per


@functools.lru_cache(maxsize=256)
def layout(spec) -> Layout:
    """The copy's geometry and the phases of the transposed convolution ``spec``."""
    axes = [
        _axis(i, o, k, s, p, d)
        for i, o, k, s, p, d in zip(
            spec.lifted("in_spatial"), spec.lifted("out_spatial"), spec.lifted("kernel"), spec.lifted("stride"),
            spec.lifted("pad_lo"), spec.lifted("dilation"),
        )
    ]  # fmt: skip
    q = tuple(a[0] for a in axes)
    e_min, e_max = [], []
    for _, per in axes:
        es = [e for _, taps in per for _, e in taps] or [0]
        e_min.append(min(es))
        e_max.append(max(es))
    reach = [hi - lo for lo, hi in zip(e_min, e_max)]
    iw = spec.lifted("in_spatial")[2]
    # columns of a row that hold input: j + e_min in [0, IW), and only those read
    lo = max(0, -e_min[2])
    hi = max(lo, min(iw - e_min[2], q[2] + reach[2]))
    # a row's reads past its pitch land in the next row's leading zeros
    wp = max(q[2], hi, q[2] + reach[2] - lo)
    phases = []
    for rd, td in axes[0][1]:
        for rh, th in axes[1][1]:
            for rw, tw in axes[2][1]:
                taps = tuple(
                    (kd, kh, kw, ed - e_min[0], eh - e_min[1], ew - e_min[2])
                    for kd, ed in td
                    for kh, eh in th
                    for kw, ew in tw
                )
                phases.append(((rd, rh, rw), taps))
    return Layout(
        q=q,
        e_min=tuple(e_min),
        dp=q[0] + reach[0],
        rows=q[1] + reach[1] + 1,
        wp=wp,
        cols=(lo, hi),
        phases=tuple(phases),
    )


@functools.lru_cache(maxsize=64)
def tap_tables(spec, nimg: int) -> tuple[np.ndarray, np.ndarray]:
    """``xoff``: where each tap reads relative to its position in a copy of
    ``nimg`` images, all phases' taps in turn (within a phase, input channel by
    input channel); ``meta``: per phase (first tap, taps, taps per chunk, rd,
    rh, rw)."""
    lay = layout(spec)
    cig = spec.c_in // spec.groups
    plane = lay.plane(nimg)
    channel = lay.dp * plane
    xoff = [np.zeros(0, np.int64)]
    meta = []
    t0 = 0
    for (rd, rh, rw), taps in lay.phases:
        nt = len(taps)
        if nt:
            off = np.array([dz * plane + dy * lay.pitch(nimg) + dx for *_, dz, dy, dx in taps], dtype=np.int64)
            xoff.append((np.arange(cig, dtype=np.int64)[:, None] * channel + off[None, :]).reshape(-1))
        meta.append((t0, cig * nt, max(1, _CHUNK // max(1, nt)) * max(1, nt), rd, rh, rw))
        t0 += cig * nt
    return np.ascontiguousarray(np.concatenate(xoff)), np.array(meta, dtype=np.int64).reshape(-1, 6)


@functools.lru_cache(maxsize=256)
def conv_as_transposed(spec):
    """A stride-1 convolution as the transposed convolution (stride 1) of its
    flipped kernel: tap k of the convolution reads input ``o + k*d - p``, as
    does tap ``K-1-k`` of a transposed convolution with padding
    ``(K-1)*d - p`` (negative when the padding exceeds the kernel's reach).
    The input the kernel sees is already padded for non-zero padding modes."""
    nd = spec.nd
    lo = spec.kernel_pad_lo[3 - nd :]
    extra = [0] * nd if spec.padding_mode == "zeros" else [a + b for a, b in zip(spec.pad_lo, spec.pad_hi)]
    pad = tuple((k - 1) * d - p for k, d, p in zip(spec.kernel, spec.dilation, lo))
    return dataclasses.replace(
        spec,
        op=f"conv_transpose{nd}d",
        in_spatial=tuple(i + e for i, e in zip(spec.in_spatial, extra)),
        pad_lo=pad,
        pad_hi=pad,
        padding_mode="zeros",
        output_padding=(0,) * nd,
    )


def _itemsize(spec) -> int:
    return np.dtype(spec.dtype).itemsize


def runs(spec, nimg: int) -> tuple[int, int]:
    """(tb, nrun): positions per micro-kernel call and runs per phase plane
    of a block of ``nimg`` images."""
    npos = layout(spec).npos(nimg)
    tb = positions(_itemsize(spec), vectors_for(npos, _itemsize(spec)))
    return tb, -(-npos // tb)


def image_elements(spec) -> int:
    """Elements of one image's padded copy."""
    lay = layout(spec)
    return spec.c_in * lay.dp * lay.plane(1)


def _slack(spec) -> int:
    """Elements after the last plane: dropped positions of a plane's last run
    read up to a run and two rows past it."""
    return positions(_itemsize(spec)) + 2 * layout(spec).wp


_BIG_WEIGHTS = 4 << 20  # packed weights that come from memory again for every work item


_BIG_ACC = 1 << 20  # partial sums of one work item when the weights are that big


def _weight_bytes(spec) -> int:
    """Bytes of the packed weights (whole blocks of OB channels)."""
    channels = oc_blocks(spec) * OB
    return spec.groups * channels * (spec.c_in // spec.groups) * layout(spec).taps * _itemsize(spec)


def _acc_bytes(spec, limit: int, threads: int) -> int:
    """Most bytes of one thread's partial sums: _ACC_BYTES, or _BIG_ACC when
    the packed weights exceed _BIG_WEIGHTS (every work item streams all the
    weights again: fewer, longer items; measured on 512 @7, 9.4 MB of
    weights: 0.88 of the time; with 1 MB as the bound, 2-2.4 MB layers
    moved by -6% to +9%, noise-level), less under a tight
    ``workspace_limit`` (a quarter of it over the threads), at least one
    run."""
    channels = oc_blocks(spec) * OB
    most = _BIG_ACC if _weight_bytes(spec) > _BIG_WEIGHTS else _ACC_BYTES
    return max(channels * positions(_itemsize(spec)) * _itemsize(spec), min(most, limit // (4 * threads)))


def _fixed_bytes(spec, limit: int, threads: int) -> int:
    """Workspace besides the padded images: the packed weights, each
    thread's partial sums and the slack after the last plane."""
    return _weight_bytes(spec) + threads * _acc_bytes(spec, limit, threads) + _slack(spec) * _itemsize(spec)


def images_per_block(spec, limit: int, threads: int) -> int:
    """Images whose padded copy fits the workspace limit together (0: not even one)."""
    room = limit - _fixed_bytes(spec, limit, threads)
    return max(0, min(spec.n, room // max(1, image_elements(spec) * _itemsize(spec))))


def workspace(spec, limit: int, threads: int) -> int:
    nimg = max(1, images_per_block(spec, limit, threads))
    return nimg * image_elements(spec) * _itemsize(spec) + _fixed_bytes(spec, limit, threads)


def _blocks(spec, nimg: int) -> list[int]:
    """Images per block of the batch, ``nimg`` at a time."""
    return [min(nimg, spec.n - n0) for n0 in range(0, spec.n, max(1, nimg))]


def computed_flops(spec, nimg: int) -> int:
    """FLOPs the micro-kernel runs in blocks of ``nimg`` images: every phase
    plane's runs (padding columns included) x whole blocks of OB channels x
    the phase's taps."""
    lay = layout(spec)
    blocks = spec.groups * oc_blocks(spec)
    taps = (spec.c_in // spec.groups) * lay.taps
    positions_run = sum(runs(spec, b)[0] * runs(spec, b)[1] for b in _blocks(spec, nimg))
    return 2 * lay.q[0] * positions_run * blocks * OB * taps


def calls(spec, nimg: int) -> int:
    """Micro-kernel calls: per run, block of channels and chunk of taps."""
    lay = layout(spec)
    _, meta = tap_tables(spec, 1)
    chunks = sum(-(-int(r) // int(c)) for _, r, c, *_ in meta)
    blocks = spec.groups * oc_blocks(spec)
    return lay.q[0] * sum(runs(spec, b)[1] for b in _blocks(spec, nimg)) * blocks * chunks


def _taps(spec) -> int:
    kd, kh, kw = spec.lifted("kernel")
    return kd * kh * kw


# --- the method -----------------------------------------------------------------------


def shifted_features(t) -> dict[str, float]:
    """The register-blocked kernel on the shifted layout for the transposed
    convolution ``t``: a fixed cost, the FLOPs the micro-kernel runs, the
    elements copied, the micro-kernel calls (charged at the convolution's
    ``blocked`` constants, wherever this layout runs)."""
    nimg = max(1, images_per_block(t, *settings()))
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(computed_flops(t, nimg)),
        "s_per_copied": float(t.n * image_elements(t)),
        "s_per_call": float(calls(t, nimg)),
    }


def features(spec) -> dict[str, float]:
    """Register-blocked transposed, beyond the micro-kernel's work: the
    strided store of every output element.  The micro-kernel's work (fixed
    cost, FLOPs, copy, calls: :func:`shifted_features`) is charged at the
    convolution's ``blocked`` constants, fitted on the many convolution
    layers that run the same kernel on the same layout (``base_cost``);
    fitted on the suite's few decoder layers alone, those constants were
    unstable and made auto pick ``gemm`` where ``blocked`` was faster."""
    out = spec.n * spec.c_out
    for v in spec.out_spatial:
        out *= v
    return {"s_per_output": float(out)}


def _shifted_blocked_cost(spec, constants) -> float:
    return linear_cost(shifted_features(spec), constants.get("blocked", {}))


def supports(spec) -> str | None:
    if images_per_block(spec, *settings()) == 0:
        return "one image's padded copy exceeds workspace_limit"
    return None


METHODS = (
    Method("blocked", TRANSPOSE_OPS, "fastconv.kernels.transpose_blocked:conv_transpose_blocked",
           supports, lambda spec: workspace(spec, *settings()),
           "register-blocked: every output phase a stride-1 sum over its own taps (no zeros, no col2im) " "from one padded input copy, 8 channels x 16-48 positions per micro-kernel call",
           features=features, cost_key="transpose_blocked", base_cost=_shifted_blocked_cost,
           prepare="fastconv.kernels.transpose_blocked:prepare"),
)  # fmt: skip
