"""The small convolution and transposed convolution
(:mod:`fastconv.kernels.small`): a serial scalar loop for tiny problems.  No Numba here.

Its estimate is not fitted: a call's fixed cost plus the multiply-adds at a
scalar rate (measured on the 2-core Zen 4 machine: see ``_SECONDS``).  The
fitted methods' fixed costs were measured on layers (hundreds of
microseconds), so it estimates only up to :data:`MAX_MACS` multiply-adds,
where it is measured to beat them; above, it has no estimate (never the
cost model's pick) and runs only when forced by name."""

from __future__ import annotations

from ._method import CONV_OPS, TRANSPOSE_OPS, Method, always, no_workspace

#: the most multiply-adds the method takes (about 5 us of scalar work, where the direct kernel takes ~10 us)
MAX_MACS = 8192
#: (fixed seconds, seconds per multiply-add), serial
_SECONDS = (1.0e-6, 0.6e-9)


def estimate(spec, constants: dict) -> float | None:
    if spec.macs > MAX_MACS:
        return None
    fixed, per_mac = _SECONDS
    return fixed + per_mac * spec.macs


METHODS = (
    Method("small", CONV_OPS + TRANSPOSE_OPS, "fastconv.kernels.small:conv_small", always, no_workspace,
           "one serial scalar loop over the output: no thread start, no packing, no columns (tiny layers)",
           estimate=estimate, float32_error=3.8e-6, prepare="fastconv.kernels.small:prepare_small"),
)  # fmt: skip
