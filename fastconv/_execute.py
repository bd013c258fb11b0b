"""Plan -> kernel: allocate (or reuse) the result, run the chosen kernel, return
the array in the caller's shape.  Shared by every public op."""

from __future__ import annotations

import numpy as np

from .dispatch import select


def _direct_target(out: np.ndarray | None, *inputs: np.ndarray | None) -> bool:
    """Can the kernel write straight into the caller's ``out``?"""
    if out is None:
        return False
    if not (out.flags.c_contiguous and out.flags.aligned and out.dtype.isnative):
        return False
    return not any(a is not None and np.shares_memory(out, a) for a in inputs)


def run_conv(spec, ops, out: np.ndarray | None) -> np.ndarray:
    plan = select(spec, ops)
    shape5 = (spec.n, spec.c_out, *spec.lifted("out_spatial"))
    if _direct_target(out, ops.x, ops.w, ops.b):
        result = out.reshape(shape5)
    else:
        result = np.empty(shape5, dtype=spec.dtype)
    plan.run(ops, result)
    result = result.reshape(spec.out_shape)
    if out is None:
        return result
    if not np.shares_memory(result, out):
        out[...] = result
    return out


def run_pool(spec, planes: np.ndarray):
    """Pool (P, D, H, W) planes; values, or (values, indices) with ``return_indices``."""
    from ._config import get_config
    from .kernels.pool import run_pool as pool

    values, indices = pool(spec, planes, get_config().num_threads)
    return (values, indices) if spec.return_indices else values
