"""Tier 0 (:mod:`fastconv.kernels.tier0`): NumPy paths with nothing to
compile, a method of every CPU operation ("numpy"), never picked by the cost
model; they run while a kernel compiles (:mod:`fastconv._warm`).  Also the
bias-only plan of a convolution without input channels."""

from __future__ import annotations

from ._method import (
    CONV_OPS,
    FILTER_OPS,
    POOL_OPS,
    SIGNAL_OPS,
    TIER0,
    TRANSPOSE_OPS,
    Method,
    always,
    no_workspace,
    prod,
    settings,
)


def _image_block(spec, per_image: int, limit: int) -> int:
    return max(1, min(spec.n, limit // max(1, per_image)))


def _conv_per_image(spec) -> int:
    """Bytes per image of a tap's gathered input and its GEMM result."""
    # (a transposed convolution's GEMMs run over the input positions)
    positions = prod(spec.in_spatial if spec.transposed else spec.out_spatial)
    return (spec.c_in + spec.c_out) * positions * spec.dtype.itemsize


def conv_workspace(spec, limit: int) -> int:
    """Temporary bytes of :func:`conv_numpy` / :func:`conv_transpose_numpy`."""
    per = _conv_per_image(spec)
    return per * _image_block(spec, per, limit)


def conv_supports(spec, limit: int) -> str | None:
    if _conv_per_image(spec) > limit:
        return "one image's shifted input and GEMM result exceed workspace_limit"
    return None


def _conv_supports(spec) -> str | None:
    return conv_supports(spec, settings()[0])


def _conv_workspace(spec) -> int:
    return conv_workspace(spec, settings()[0])


def _empty_supports(spec) -> str | None:
    return None if spec.c_in == 0 else "has input channels"


_TIER0 = "tier 0, no compilation (runs while a kernel compiles): "

METHODS = (
    *(Method(TIER0, ops, f"fastconv.kernels.tier0:{runner}", supports, workspace, _TIER0 + what, fallback=True)
    for ops, runner, supports, workspace, what in (
        (CONV_OPS, "conv_numpy", _conv_supports, _conv_workspace, "one BLAS GEMM per kernel tap on shifted views"),
        (TRANSPOSE_OPS, "conv_transpose_numpy", _conv_supports, _conv_workspace,
         "one BLAS GEMM per kernel tap, added to the outputs it reaches"),
        (FILTER_OPS + SIGNAL_OPS, "filter_numpy", always, no_workspace, "one shifted slice of the padded input per tap"),
        (POOL_OPS, "pool_numpy", always, no_workspace, "windows gathered from the window tables, reduced with NumPy"),
    )),
    Method("bias_only", CONV_OPS + TRANSPOSE_OPS, "fastconv.kernels.tier0:bias_only", _empty_supports, no_workspace,
           "no input channels: the sum is empty, every output is its bias", features=lambda spec: {},
           takes_over=True),
)  # fmt: skip
