"""The register-blocked micro-kernel's shape on this CPU (see
:mod:`fastconv.kernels.microkernel`): what planning needs of it, without
importing Numba."""

from __future__ import annotations


def _host_has_avx512() -> bool:
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
    except Exception:  # pragma: no cover - exotic hosts
        return False
    return bool(features.get("avx512f", False))


#: float32 lanes per vector; float64 has half as many
LANES32 = 16 if _host_has_avx512() else 8
#: output channels per call and vectors of output positions per channel
OB = 8 if LANES32 == 16 else 4
NV = 3


def lanes(itemsize: int) -> int:
    return LANES32 * 4 // itemsize


def positions(itemsize: int, nv: int = NV) -> int:
    """Output positions one call of the ``nv``-vector micro-kernel computes
    (per output channel)."""
    return nv * lanes(itemsize)


_SPAN = 768  # most output positions (of one channel) per work item


_ACC_BYTES = 256 << 10  # most partial sums per work item (all channel blocks)


_CHUNK = 128  # about this many taps per micro-kernel call


# longest work items whose busiest thread has at most this many times the
# fewest runs any item length gives it (measured, 2 threads: 4 -> 16 runs per
# item on conv1d 32 k9 (0.6% more runs on one thread) 0.76-0.87 of the time)
_BALANCE = 1.04


def oc_blocks(spec, ob: int = OB) -> int:
    """Blocks of ``ob`` output channels per group (the last one partial when
    ``ob`` does not divide the group's channels)."""
    return -(-(spec.c_out // spec.groups) // ob)


def vectors_for(npos: int, itemsize: int) -> int:
    """Vectors of positions per micro-kernel call (1..NV) on a plane of
    ``npos`` positions: the widest whose runs, rounded up per plane, cover at
    most 3% more positions than the narrowest (a 7x7 plane is 63 positions
    with its padding columns: one 16-wide vector per run computes 64, three
    compute 96).
    (Plain integer loops: ``kernels.injit`` compiles this same function.)"""
    step = LANES32 * 4 // itemsize
    least = -1
    for nv in range(1, NV + 1):
        covered = (npos + nv * step - 1) // (nv * step) * nv * step
        least = covered if least < 0 else min(least, covered)
    best = 1
    for nv in range(1, NV + 1):
        if (npos + nv * step - 1) // (nv * step) * nv * step <= 1.03 * least:
            best = nv
    return best


def share_runs(
    total: int, channels: int, tb: int, itemsize: int, threads: int, acc_bytes: int | None = None, rows: int = 1
) -> int:
    """Runs (of ``tb`` positions) per work item out of ``total`` (in each of
    ``rows`` rows that no item crosses): at most _SPAN positions, few enough
    that the partial sums of ``channels`` stay within ``acc_bytes`` (default
    _ACC_BYTES), and dividing the runs about evenly among the threads (the
    longest items within _BALANCE)."""
    acc_bytes = _ACC_BYTES if acc_bytes is None else acc_bytes
    most = max(1, min(_SPAN // tb, acc_bytes // (channels * tb * itemsize), total))
    # items are split into equal contiguous shares: the largest run count
    # whose busiest thread has at most _BALANCE times the runs of the best
    # choice (longer items reuse each chunk of weights over more runs; but
    # measured: 7 items on 2 threads cost 12% on a 256-channel 14x14 layer)
    share = {}
    for rpi in range(1, most + 1):
        items = rows * -(-total // rpi)
        share[rpi] = -(-items // threads) * rpi  # runs of the busiest thread
    least = min(share.values())
    return max(rpi for rpi, v in share.items() if v <= _BALANCE * least)
