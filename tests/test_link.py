"""Calls between kernels by address (fastconv.kernels._link): the units the
parallel kernels call instead of linking (and recompiling) them."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import prange
from numba.core.errors import TypingError

from fastconv.kernels._link import Linkage, arrays, bias, ints, unit

#: out (C), x (any layout), a scale -> the sum written
AXPY = Linkage("test axpy", lambda dt: (dt, (*arrays(dt, 1), bias(dt), *ints(1))))
_call = AXPY.call


@unit
def _add(out, x, k):
    s = out.dtype.type(0)
    for i in range(out.shape[0]):
        out[i] += k * x[i]
        s += out[i]
    return s


@unit
def _sub(out, x, k):
    s = out.dtype.type(0)
    for i in range(out.shape[0]):
        out[i] -= k * x[i]
        s += out[i]
    return s


@unit
def _fails(out, x, k):
    if k < 0:
        raise ValueError("k is negative")
    return out.dtype.type(k)


@numba.njit(parallel=True)
def _rows(at, out, x, k):
    sums = np.zeros(out.shape[0], out.dtype)
    for r in prange(out.shape[0]):
        sums[r] = _call(at, (out[r], x[r], k))
    return sums


@numba.njit
def _once(at, out, x, k):
    return _call(at, (out, x, k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_units_called_by_address_from_a_parallel_loop(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7)).astype(dtype)
    base = rng.standard_normal((5, 7)).astype(dtype)
    for fn, sign in ((_add, 1), (_sub, -1)):
        out = base.copy()
        sums = _rows(AXPY.address(fn, dtype), out, x[:, ::-1], 3)  # (x rows: any layout)
        want = base + sign * 3 * x[:, ::-1]
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sums, want.sum(axis=1), rtol=1e-5)


def test_an_address_per_dtype_and_unit():
    a32 = AXPY.address(_add, np.float32)
    assert AXPY.address(_add, np.dtype("float32")) == a32  # (the type or the dtype)
    assert AXPY.address(_add, np.float64) != a32
    assert AXPY.address(_sub, np.float32) != a32


def test_a_units_error_reaches_the_caller():
    out = np.zeros(3)
    with pytest.raises(ValueError, match="k is negative"):
        _once(AXPY.address(_fails, np.float64), out, out.copy(), -1)
    assert _once(AXPY.address(_fails, np.float64), out, out.copy(), 2) == 2.0


def test_wrong_arguments_fail_at_compile_time_naming_them():
    @numba.njit
    def too_few(at, out):
        return _call(at, (out, out))

    with pytest.raises(TypingError, match="2 arguments given, 3 declared"):
        too_few(0, np.zeros(2))

    @numba.njit
    def wrong_type(at, out):
        return _call(at, (out, out, 1.5))

    with pytest.raises(TypingError, match="argument 2 is float64, declared int64"):
        wrong_type(0, np.zeros(2))

    @numba.njit
    def strided_out(at, out):
        return _call(at, (out[::2], out, 1))

    with pytest.raises(TypingError, match="argument 0 is array"):
        strided_out(0, np.zeros(4))

    @numba.njit
    def other_dtype(at, out):
        return _call(at, (out, out.astype(np.float32), 1))

    with pytest.raises(TypingError, match="argument 1"):
        other_dtype(0, np.zeros(2))


def test_units_declare_their_arrays_noalias():
    """What a parallel loop body had, which the units came out of (the flag
    Numba lowers to ``noalias`` on every pointer argument)."""
    from numba.core.compiler import Flags

    assert _add._compiler._customize_flags(Flags()).noalias
    assert not numba.njit(lambda a: a)._compiler._customize_flags(Flags()).noalias
