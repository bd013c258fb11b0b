"""conv_transpose1d/2d/3d against the plain-NumPy scatter reference, for
every registered method, and as the adjoint of convolution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv.dispatch import methods_for

from . import arrays
from .reference import conv_transpose_nd
from .test_conv import check, run_method

FUNCS = {1: fastconv.conv_transpose1d, 2: fastconv.conv_transpose2d, 3: fastconv.conv_transpose3d}
CONV = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}
METHODS = sorted(
    {name for op in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d") for name in methods_for(op)}
    - {"bias_only"}  # (the plan of a transposed convolution without input channels: tested with the others)
)

GRID = [
    # nd, N, Cin, Cout, groups, spatial, kernel, stride, padding, output_padding, dilation
    (1, 2, 3, 5, 1, (7,), (3,), 2, 1, 1, 1),
    (1, 1, 4, 6, 2, (9,), (5,), 3, 4, 1, 2),
    (1, 2, 2, 3, 1, (1,), (1,), 1, 0, 0, 1),
    (1, 1, 3, 2, 1, (6,), (4,), 2, 1, 0, 1),
    (2, 2, 4, 3, 1, (5, 6), (4, 4), 2, 1, 0, 1),
    (2, 1, 4, 6, 2, (5, 6), (3, 3), 2, 1, 1, 1),
    (2, 2, 3, 4, 1, (4, 4), (2, 2), 2, 0, 0, 1),
    (2, 1, 2, 3, 1, (5, 5), (3, 2), (3, 2), (2, 1), (1, 2), (2, 3)),
    (2, 1, 6, 6, 6, (7, 5), (3, 3), 1, 1, 0, 1),
    (2, 1, 2, 2, 1, (4, 4), (1, 1), 3, 0, 2, 1),
    (2, 1, 2, 2, 1, (1, 1), (3, 3), 1, 0, 0, 1),
    (2, 1, 3, 2, 1, (6, 7), (5, 5), 1, 4, 0, 1),
    (2, 2, 2, 3, 1, (3, 8), (1, 3), (1, 2), (0, 1), (0, 1), 1),
    (3, 1, 2, 2, 1, (3, 4, 3), (3, 2, 3), (2, 1, 3), (1, 0, 2), (1, 0, 0), 1),
    (3, 1, 4, 4, 2, (3, 3, 3), (2, 2, 2), 2, 0, 0, (1, 2, 1)),
]


def _case(rng, nd, n, cin, cout, groups, spatial, kernel, dtype):
    x = arrays.random(rng, (n, cin, *spatial), dtype)
    w = arrays.random(rng, (cin, cout // groups, *kernel), dtype)
    b = arrays.random(rng, (cout,), dtype)
    return x, w, b


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_against_reference(method, dtype, rng):
    for nd, n, cin, cout, groups, spatial, kernel, stride, padding, opad, dilation in GRID:
        x, w, b = _case(rng, nd, n, cin, cout, groups, spatial, kernel, dtype)
        kw = dict(stride=stride, padding=padding, output_padding=opad, groups=groups, dilation=dilation)
        want = conv_transpose_nd(x, w, b, **kw)
        got = run_method(FUNCS[nd], method, x, w, b, **kw)
        assert got is not None and got.dtype == dtype
        check(got, want, dtype)
        check(FUNCS[nd](x, w, None, method=method, **kw), conv_transpose_nd(x, w, None, **kw), dtype)


@pytest.mark.parametrize("method", METHODS)
def test_small_workspace_limit(method, rng):
    """The GEMM method splits its columns into row blocks under a tight limit."""
    x, w, b = _case(rng, 2, 2, 3, 4, 1, (9, 7), (4, 4), np.float64)
    want = conv_transpose_nd(x, w, b, stride=2, padding=1)
    with fastconv.set_config(workspace_limit=4 * 4 * 16 * 8 * 7 * 2):
        check(fastconv.conv_transpose2d(x, w, b, stride=2, padding=1, method=method), want, np.float64)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adjoint_of_convolution(method, nd, rng):
    """<conv(x, w), y> == <x, conv_transpose(y, w)> with the same parameters."""
    for stride, padding, dilation, groups in [(2, 1, 1, 1), (3, 2, 2, 2), (1, 0, 1, 1)]:
        spatial = (9, 8, 7)[:nd]
        x = rng.standard_normal((2, 4, *spatial))
        w = rng.standard_normal((6, 4 // groups, *(3,) * nd))
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        y_shape = CONV[nd](x, w, **kw).shape
        y = rng.standard_normal(y_shape)
        # the output_padding that gives back x's spatial size
        opad = tuple(s - ((o - 1) * stride - 2 * padding + dilation * 2 + 1) for s, o in zip(spatial, y_shape[2:]))
        xt = FUNCS[nd](y, w, stride=stride, padding=padding, output_padding=opad, groups=groups, dilation=dilation,
                       method=method)  # fmt: skip
        assert xt.shape == x.shape
        lhs = float(np.vdot(CONV[nd](x, w, **kw), y))
        rhs = float(np.vdot(x, xt))
        assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))


@pytest.mark.parametrize("method", [*METHODS, "auto"])
def test_non_finite_stays_local(method, rng):
    x = rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((2, 3, 3, 3))
    x[0, 1, 2, 4] = np.nan
    y = fastconv.conv_transpose2d(x, w, stride=2, padding=1, method=method)
    ind = np.zeros_like(x)
    ind[0, 1, 2, 4] = 1
    reach = conv_transpose_nd(ind, np.ones_like(w), stride=2, padding=1) > 0.5
    assert np.array_equal(np.isnan(y), reach)


@pytest.mark.parametrize("method", METHODS)
def test_out_layouts_unbatched(method, rng):
    x, w, b = _case(rng, 2, 1, 3, 4, 1, (5, 4), (3, 3), np.float32)
    want = conv_transpose_nd(x, w, b, stride=2, padding=1, output_padding=1)
    out = np.full(want.shape, 7.0, np.float32)
    got = fastconv.conv_transpose2d(x, w, b, 2, 1, 1, method=method, out=out)
    assert got is out
    check(out, want, np.float32)
    for name, arr in arrays.layouts(x):
        before = np.array(arr, copy=True)
        check(fastconv.conv_transpose2d(arr, w, b, 2, 1, 1, method=method), want, np.float32)
        np.testing.assert_array_equal(arr, before, err_msg=name)
    check(fastconv.conv_transpose2d(x[0], w, b, 2, 1, 1, method=method), want[0], np.float32)


def test_size_zero_and_dtypes(rng):
    w = np.ones((3, 2, 2, 2))
    assert fastconv.conv_transpose2d(np.zeros((0, 3, 4, 4)), w, stride=2).shape == (0, 2, 8, 8)
    y = fastconv.conv_transpose2d(np.zeros((1, 0, 4, 4)), np.zeros((0, 2, 2, 2)), np.array([1.0, 2.0]))
    assert y.shape == (1, 2, 5, 5) and y[0, 1].min() == 2.0
    xi = np.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4) % 5
    yi = fastconv.conv_transpose2d(xi, w.astype(np.int64), stride=2)
    assert yi.dtype == np.float64
    check(yi, conv_transpose_nd(xi, w, stride=2), np.float64)
    assert fastconv.conv_transpose2d(xi.astype(np.float16), w.astype(np.float16)).dtype == np.float32


@st.composite
def transpose_cases(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    opad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    spatial = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    padding = tuple(
        draw(st.integers(0, max(0, ((i - 1) * s + d * (k - 1) + op) // 2)))
        for i, s, d, k, op in zip(spatial, stride, dilation, kernel, opad)
    )
    return nd, groups, cin, cout, kernel, stride, dilation, opad, spatial, padding, draw(st.integers(0, 2**31))


@given(transpose_cases())
def test_property_against_reference(case):
    nd, groups, cin, cout, kernel, stride, dilation, opad, spatial, padding, seed = case
    rng = np.random.default_rng(seed)
    x, w, b = _case(rng, nd, 1, cin, cout, groups, spatial, kernel, np.float64)
    kw = dict(stride=stride, padding=padding, output_padding=opad, groups=groups, dilation=dilation)
    want = conv_transpose_nd(x, w, b, **kw)
    for method in METHODS:
        check(FUNCS[nd](x, w, b, method=method, **kw), want, np.float64)


def test_against_torch(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    for nd, n, cin, cout, groups, spatial, kernel, stride, padding, opad, dilation in GRID:
        x, w, b = _case(rng, nd, n, cin, cout, groups, spatial, kernel, np.float32)
        kw = dict(stride=stride, padding=padding, output_padding=opad, groups=groups, dilation=dilation)
        want = getattr(F, f"conv_transpose{nd}d")(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **kw)
        check(FUNCS[nd](x, w, b, **kw), want.numpy().astype(np.float64), np.float32)


def test_explain_and_available_methods():
    x, w = np.ones((2, 8, 7, 7), np.float32), np.ones((8, 4, 4, 4), np.float32)
    names = fastconv.available_methods(fastconv.conv_transpose2d, x, w, stride=2, padding=1)
    assert names[0] == "auto" and {"direct", "gemm", "subpixel"} <= set(names)
    plan = fastconv.explain(fastconv.conv_transpose2d, x, w, stride=2, padding=1)
    assert plan.method in names and "conv_transpose2d" in repr(plan)
    assert plan.flops == 2 * 2 * 8 * 4 * 16 * 49
    with pytest.raises(ValueError, match="subpixel"):
        fastconv.conv_transpose2d(x, w, method="winograd_f2")
