"""An edge-case array generator: the same values in every layout a user may pass."""

from __future__ import annotations

import numpy as np


def layouts(a: np.ndarray):
    """Yield (name, array) pairs holding the values of ``a`` in other layouts."""
    a = np.ascontiguousarray(a)
    yield "c_contiguous", a
    yield "fortran", np.asfortranarray(a)
    neg = np.flip(a).copy()
    yield "negative_strides", np.flip(neg)
    big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
    big[tuple(slice(None, None, 2) for _ in a.shape)] = a
    yield "strided_view", big[tuple(slice(None, None, 2) for _ in a.shape)]
    yield "byteswapped", a.astype(a.dtype.newbyteorder())
    ro = a.copy()
    ro.flags.writeable = False
    yield "read_only", ro
    if a.ndim >= 2:
        t = np.ascontiguousarray(np.swapaxes(a, -1, -2))
        yield "transposed_view", np.swapaxes(t, -1, -2)


def random(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        return rng.integers(0, 5, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)
