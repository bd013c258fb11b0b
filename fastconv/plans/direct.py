"""The direct convolution (:mod:`fastconv.kernels.direct`): no workspace, no
guard, every convolution.  No Numba here."""

from __future__ import annotations

from ._method import CONV_OPS, Method, always, no_workspace


def features(spec) -> dict[str, float]:
    """What the direct kernel's time grows with: a fixed cost, FLOPs, the
    number of accumulator passes (short streams are overhead-bound), and the
    input elements staged into tiles (once per block of 8 output channels)."""
    ow = spec.out_spatial[-1]
    plane = 1
    for v in spec.out_spatial:
        plane *= v
    stream = max(1, min(1024, plane * max(1, min(spec.n, 1024 // max(1, plane)))))
    cog = spec.c_out // spec.groups
    staged = spec.n * spec.c_in * -(-cog // 8)
    for v in spec.in_spatial:
        staged *= v
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(spec.flops),
        # blocks of 8 output channels: a thinner group wastes part of each pass
        "s_per_flop_thin": spec.flops * max(0.0, 8 / max(cog, 1) - 1),
        "s_per_pass": spec.macs / 8 / stream + spec.n * spec.c_out * plane / max(ow, 1),
        "s_per_staged": float(staged),
    }


METHODS = (
    Method("direct", CONV_OPS, "fastconv.kernels.direct:conv_direct", always, no_workspace,
           "shifted-row streams over an L1-sized padded tile, 8 channels x 8 taps per pass, no workspace",
           features=features, cost_key="direct", float32_error=3.8e-6,
           prepare="fastconv.kernels.direct:prepare_direct"),
)  # fmt: skip
