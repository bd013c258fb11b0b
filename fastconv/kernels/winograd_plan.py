"""Support and sizing of the Winograd methods: pure Python, no numba."""

from __future__ import annotations


def supports(spec) -> str | None:
    if spec.nd != 2:
        return "Winograd is implemented for conv2d only"
    if spec.kernel != (3, 3):
        return "Winograd F(m, 3x3) needs a 3x3 kernel"
    if spec.stride != (1, 1) or spec.dilation != (1, 1):
        return "Winograd needs stride 1 and dilation 1"
    return None


def tiles_per_block(spec, m: int, limit: int) -> int:
    """Tiles transformed at once so that V and M (a*a x channels x tiles) fit."""
    a2 = (m + 2) ** 2
    cig, cog = spec.c_in // spec.groups, spec.c_out // spec.groups
    per_tile = a2 * (cig + cog) * spec.dtype.itemsize
    kernel = a2 * cig * cog * spec.dtype.itemsize
    oh, ow = spec.out_spatial
    total = spec.n * -(-oh // m) * -(-ow // m)
    return max(1, min(total, (limit - kernel) // max(1, per_tile)))


def workspace(spec, m: int, limit: int) -> int:
    a2 = (m + 2) ** 2
    cig, cog = spec.c_in // spec.groups, spec.c_out // spec.groups
    return (
        a2 * (cig + cog) * spec.dtype.itemsize * tiles_per_block(spec, m, limit) + a2 * cig * cog * spec.dtype.itemsize
    )


def tiles(spec, m: int) -> int:
    oh, ow = spec.out_spatial
    return spec.n * -(-oh // m) * -(-ow // m)
