"""Depthwise convolution (:mod:`fastconv.kernels.depthwise`): which layers it
takes, its two paths, workspace and cost features.  No Numba here."""

from __future__ import annotations

import numpy as np

from ._method import CONV_OPS, Method, settings

#: most input channels per group the whole-plane path takes (ResNeXt's 4)
PLANE_CHANNELS = 8


def whole_planes(spec) -> bool:
    """Whether the kernel runs whole planes (:func:`_plane3`): a 3x3 kernel in
    the plane (any depth, depth stride, dilation and padding: each depth tap
    is one more input plane) at unit stride, padding 1 and no dilation in
    the plane, 1 to PLANE_CHANNELS input channels per group (a grouped
    layer: a dense one with a few channels is not "depthwise")."""
    _, kh, kw = spec.lifted("kernel")
    return (
        spec.groups <= spec.c_in <= PLANE_CHANNELS * spec.groups
        and (spec.groups > 1 or spec.c_in == 1)
        and (kh, kw) == (3, 3)
        and spec.lifted("stride")[1:] == (1, 1)
        and spec.lifted("dilation")[1:] == (1, 1)
        and tuple(spec.kernel_pad_lo[1:]) == (1, 1)
        and tuple(spec.lifted("out_spatial")[1:]) == tuple(spec.lifted("in_spatial")[1:])
    )


def pads_rows(spec) -> bool:
    """Whether the kernel copies each item's input rows with their padding
    columns first: unit stride and no dilation along the row, a kernel not 3
    wide and more than one row high (the scalar row ends cost 3x the rest of
    a 7x7 row at 56 pixels; for 3x3 kernels the copy measured 1.4-1.9x
    slower, for a long 1-D row 2x)."""
    kd, kh, kw = spec.lifted("kernel")
    return spec.lifted("stride")[2] == 1 and spec.lifted("dilation")[2] == 1 and kw != 3 and kd * kh > 1


def workspace(spec, threads: int) -> int:
    """Bytes of the padded input rows each thread copies for one item
    (:func:`pads_rows`; else none)."""
    if not pads_rows(spec):
        return 0
    kd, _, kw = spec.lifted("kernel")
    h = spec.lifted("in_spatial")[1]
    ow = spec.lifted("out_spatial")[2]
    return threads * kd * h * (ow + kw - 1) * np.dtype(spec.dtype).itemsize


def features(spec) -> dict[str, float]:
    """Depthwise: a fixed cost, the FLOPs, and the passes: one vectorised pass
    (plus the scalar ends of the row) per output row and depth tap (a 3-D
    kernel's depth taps are separate passes: before 3x3x3 kernels ran on
    whole planes, measured 2x the direct kernel's time).
    Whole 3x3 planes (:func:`whole_planes`, also 3x3x3: a plane per depth
    tap) are their own FLOP term (one flat pass per input plane) and count a
    row per output row, input channel and depth tap (its scalar first and
    last columns)."""
    rows = spec.n * spec.c_out * spec.lifted("kernel")[0]
    for v in spec.out_spatial[:-1]:
        rows *= v
    plane = whole_planes(spec)
    if plane:
        rows *= spec.c_in // spec.groups
    return {
        "overhead_s": 1.0,
        "s_per_flop": 0.0 if plane else float(spec.flops),
        "s_per_plane_flop": float(spec.flops) if plane else 0.0,
        "s_per_row": float(rows),
    }


def supports(spec) -> str | None:
    if spec.c_in != spec.groups and not whole_planes(spec):
        return (
            "depthwise needs groups == C_in (one input channel per output channel), or groups > 1 with a 3x3 "
            f"kernel (in the plane) at unit stride, padding 1 and at most {PLANE_CHANNELS} input channels per group"
        )
    return None


def variant(spec) -> str:
    """ "planes" (3x3 'same' planes, one flat pass per input plane), "padded
    rows" (rows copied with their padding first) or "rows"."""
    if whole_planes(spec):
        return "planes"
    return "padded rows" if pads_rows(spec) else "rows"


METHODS = (
    Method("depthwise", CONV_OPS, "fastconv.kernels.depthwise:conv_depthwise",
           supports, lambda spec: workspace(spec, settings()[1]),
           "groups == C_in: each output row in vectorised passes straight over its input rows " "(rows copied with their padding for kernels not 3 wide); 3x3 'same' planes (also grouped layers of " "a few input channels per group) as one flat pass per input plane",
           features=features, cost_key="depthwise", float32_error=1.5e-7, variant=variant,
           prepare="fastconv.kernels.depthwise:prepare_depthwise"),
)  # fmt: skip
