"""conv1d/2d/3d against the plain-NumPy reference, for every registered method."""

from __future__ import annotations

import collections
import itertools
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastconv
from fastconv.dispatch import methods_for

from . import arrays
from .reference import conv_nd, receptive_mask

FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}
#: every registered method (bias_only, the plan of a convolution without
#: input channels, has its own test: test_no_input_channels_gives_the_bias)
METHODS = sorted({name for op in ("conv1d", "conv2d", "conv3d") for name in methods_for(op)} - {"bias_only"})
#: float32: a few hundred ulps of the output's scale (Winograd F(4x4), the
#: least accurate method, measured up to ~6e-6 of it: bench/precision.py)
TOL = {np.float32: dict(rtol=3e-5, atol=3e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def check(got, want, dtype):
    tol = TOL[np.dtype(dtype).type]
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale)


#: what run_method actually ran (not refused), per method
RAN: collections.Counter = collections.Counter()


def run_method(f, method, *args, **kwargs):
    """f(..., method=method), or None after checking that a method that does
    not support this call is refused with a ValueError naming it (counted in
    :data:`RAN` only when it ran)."""
    if method in fastconv.available_methods(f, *args, **kwargs):
        RAN[method] += 1
        return f(*args, method=method, **kwargs)
    with pytest.raises(ValueError, match=method):
        f(*args, method=method, **kwargs)
    return None


def _case(rng, nd, n, cin, cout, groups, spatial, kernel, dtype):
    x = arrays.random(rng, (n, cin, *spatial), dtype)
    w = arrays.random(rng, (cout, cin // groups, *kernel), dtype)
    b = arrays.random(rng, (cout,), dtype)
    return x, w, b


# one table of cases (shape, parameters), shared with bench/ via the registry
GRID = [
    # nd, N, Cin, Cout, groups, spatial, kernel, stride, padding, dilation
    (1, 2, 3, 5, 1, (17,), (3,), 1, 1, 1),
    (1, 1, 4, 4, 4, (9,), (5,), 2, 2, 1),
    (1, 3, 6, 9, 3, (20,), (4,), 3, 0, 2),
    (1, 2, 2, 3, 1, (1,), (1,), 1, 0, 1),
    (1, 1, 1, 1, 1, (5,), (5,), 1, 0, 1),
    (1, 1, 16, 20, 2, (40,), (7,), 1, "same", 2),
    (2, 2, 3, 5, 1, (9, 11), (3, 3), 1, 1, 1),
    (2, 1, 8, 8, 8, (12, 10), (3, 3), 1, 1, 1),
    (2, 2, 4, 6, 2, (13, 9), (3, 2), (2, 1), (1, 0), (1, 2)),
    (2, 1, 3, 4, 1, (7, 7), (7, 7), 1, 3, 1),
    (2, 1, 3, 17, 1, (15, 16), (1, 1), 1, 0, 1),
    (2, 2, 5, 7, 1, (16, 15), (1, 1), 2, 0, 1),
    (2, 1, 3, 9, 1, (23, 21), (7, 7), 2, 3, 1),
    (2, 1, 12, 12, 3, (10, 10), (3, 3), 1, 4, 3),
    (2, 1, 2, 2, 1, (1, 1), (1, 1), 1, 0, 1),
    (2, 1, 2, 3, 1, (1, 6), (1, 3), 1, (0, 1), 1),
    (2, 1, 9, 10, 1, (6, 30), (3, 5), 1, "same", (2, 1)),
    (2, 1, 2, 3, 1, (8, 8), (4, 4), 1, "same", 1),
    (2, 2, 4, 4, 1, (5, 6), (2, 3), 3, 2, 1),
    (3, 1, 2, 3, 1, (5, 6, 7), (3, 3, 3), 1, 1, 1),
    (3, 2, 4, 4, 4, (4, 5, 6), (3, 2, 3), (2, 1, 2), (1, 0, 1), 1),
    (3, 1, 3, 5, 1, (6, 6, 6), (2, 2, 2), 1, 0, (2, 2, 2)),
    (3, 1, 2, 2, 1, (3, 1, 4), (1, 1, 1), 1, "same", 1),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_against_reference(method, dtype, rng):
    ran = 0
    for nd, n, cin, cout, groups, spatial, kernel, stride, padding, dilation in GRID:
        x, w, b = _case(rng, nd, n, cin, cout, groups, spatial, kernel, dtype)
        for bias in (None, b):
            got = run_method(FUNCS[nd], method, x, w, bias, stride, padding, dilation, groups)
            if got is None:
                continue
            ran += 1
            want = conv_nd(x, w, bias, stride, padding, dilation, groups)
            assert got.dtype == dtype
            check(got, want, dtype)
    assert ran >= 4  # every method supports some of the grid


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes(mode, rng):
    for nd, spatial, kernel, padding, stride in [
        (1, (9,), (3,), 2, 1),
        (2, (7, 8), (3, 3), (1, 2), (1, 2)),
        (2, (5, 6), (4, 3), "same", 1),
        (3, (4, 5, 6), (3, 3, 3), 1, 1),
    ]:
        x = rng.standard_normal((2, 4, *spatial))
        w = rng.standard_normal((6, 2, *kernel))
        got = FUNCS[nd](x, w, None, stride, padding, 1, 2, padding_mode=mode)
        want = conv_nd(x, w, None, stride, padding, 1, 2, padding_mode=mode)
        check(got, want, np.float64)


def test_same_padding_is_asymmetric_like_torch(rng):
    x = rng.standard_normal((1, 1, 10))
    w = rng.standard_normal((1, 1, 4))  # total padding 3: 1 left, 2 right
    got = fastconv.conv1d(x, w, padding="same")
    want = conv_nd(x, w, padding=((1, 2),))
    check(got, want, np.float64)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched(nd, rng):
    x = rng.standard_normal((3,) + (6,) * nd)
    w = rng.standard_normal((4, 3) + (3,) * nd)
    got = FUNCS[nd](x, w, padding=1)
    assert got.shape == (4,) + (6,) * nd
    check(got, conv_nd(x[None], w, padding=1)[0], np.float64)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pointwise_gemms_split_over_threads(threads, rng):
    """The 1x1 stride-1 path: one GEMM per image, group and block of output
    channels on Numba's threads; batches that do not divide among the threads
    split the channels (partial last block), a non-contiguous input."""
    from fastconv.kernels.im2col import channel_blocks

    assert channel_blocks(8, 256, 2) == 1 and channel_blocks(3, 128, 2) == 2 and channel_blocks(1, 4, 2) == 1
    assert channel_blocks(1, 64, 4) == 4 and channel_blocks(2, 64, 4) == 2
    for n, cin, cout, groups, dtype in [(1, 5, 17, 1, np.float64), (3, 6, 34, 2, np.float32), (2, 4, 3, 1, np.float32)]:
        x = arrays.random(rng, (n, cin, 9, 14), dtype)[:, :, :, ::2]
        w = arrays.random(rng, (cout, cin // groups, 1, 1), dtype)
        b = arrays.random(rng, (cout,), dtype)
        with fastconv.set_config(num_threads=threads):
            for bias in (None, b):
                got = fastconv.conv2d(x, w, bias, groups=groups, method="im2col")
                check(got, conv_nd(x, w, bias, groups=groups), dtype)


def test_im2col_tiles_whole_planes_and_pieces(rng):
    """im2col's tiles: an image's whole output plane (its GEMM written
    straight into the output, bias added in place), images folded into one
    GEMM and pieces of rows (through the result buffer) -- each with and
    without bias, with groups, float32 and float64, strided 1x1 and 3x3."""
    from fastconv._plan_api import _spec_of
    from fastconv.plans.im2col import plan_tiles, whole_planes

    cases = [
        # N, Cin, Cout, groups, spatial, kernel, stride, padding, the tiles wanted
        (2, 6, 10, 2, (13, 12), (1, 1), 2, 0, "whole"),
        (3, 4, 6, 1, (11, 11), (3, 3), 2, 1, "whole"),
        (8, 4, 6, 2, (6, 5), (3, 3), 1, 1, "folded"),
        (1, 4, 5, 1, (30, 21), (3, 3), 2, 1, "rows"),
    ]
    for n, cin, cout, groups, spatial, kernel, stride, padding, want in cases:
        for dtype in (np.float32, np.float64):
            x = arrays.random(rng, (n, cin, *spatial), dtype)
            w = arrays.random(rng, (cout, cin // groups, *kernel), dtype)
            b = arrays.random(rng, (cout,), dtype)
            kw = dict(stride=stride, padding=padding, groups=groups)
            spec = _spec_of(fastconv.conv2d, (x, w), kw)
            # columns + result of one output position; whole planes: room for
            # 1.5 planes a thread (too little to fold two images)
            per_col = (cin // groups * int(np.prod(kernel)) + cout // groups) * np.dtype(dtype).itemsize
            plane = int(np.prod(spec.out_spatial))
            limit = {"whole": 3 * plane * per_col, "folded": 64 << 20, "rows": 12 * spec.out_spatial[-1] * per_col}[
                want
            ]
            nimg, nrows = plan_tiles(spec, limit, 2)
            got_kind = "whole" if whole_planes(spec, nimg, nrows) else "folded" if nimg > 1 else "rows"
            assert got_kind == want, (spatial, nimg, nrows)
            with fastconv.set_config(num_threads=2, workspace_limit=limit):
                for bias in (None, b):
                    got = fastconv.conv2d(x, w, bias, method="im2col", **kw)
                    check(got, conv_nd(x, w, bias, **kw), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_row_taps(dtype, rng):
    """The depthwise kernel's unit-stride, undilated rows: three rows x four
    taps per pass (1-9 taps: whole and partial groups of taps; 1-7 rows:
    groups of three and single rows), output rows whose every input row is
    padding (bias only), a depth multiplier of 2."""
    for nd, spatial, kernel, padding in [
        (1, (23,), (1,), 0),
        (1, (23,), (2,), 1),
        (1, (30,), (7,), 3),
        (1, (9,), (9,), 4),
        (1, (12,), (4,), "same"),
        (2, (11, 13), (5, 5), 2),
        (2, (9, 10), (4, 6), (2, 3)),
        (2, (8, 12), (7, 7), 3),
        (2, (6, 9), (2, 4), (3, 1)),  # some output rows read only padding
        (2, (7, 8), (1, 6), (0, 2)),
        (3, (3, 5, 9), (2, 1, 5), (1, 0, 2)),
    ]:
        x = arrays.random(rng, (2, 3, *spatial), dtype)
        w = arrays.random(rng, (6, 1, *kernel), dtype)
        b = arrays.random(rng, (6,), dtype)
        for bias in (None, b):
            got = FUNCS[nd](x, w, bias, padding=padding, groups=3, method="depthwise")
            check(got, conv_nd(x, w, bias, padding=padding, groups=3), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_whole_planes(dtype, rng):
    """3x3 "same" depthwise planes run as one flat pass plus first/last rows
    and redone first/last columns: planes of one row or column, 2x2 up to
    odd sizes, a depth multiplier of 2, a non-contiguous input, (1, 3, 3)
    kernels with a depth stride, 3x3x3 and deeper kernels with depth
    strides, dilations and padding, and NaN/Inf in corners and on each edge
    (only the outputs whose window holds them change)."""
    from fastconv._spec import conv_spec
    from fastconv.kernels.depthwise import whole_planes

    for spatial in [(1, 1), (1, 6), (6, 1), (2, 2), (3, 2), (3, 3), (4, 17), (19, 5)]:
        x = arrays.random(rng, (2, 3, spatial[0], 2 * spatial[1]), dtype)[..., ::2]
        w = arrays.random(rng, (6, 1, 3, 3), dtype)
        b = arrays.random(rng, (6,), dtype)
        if min(spatial) >= 2:
            x[0, 0, 0, 0] = np.nan
            x[0, 1, -1, -1] = np.inf
            x[1, 0, spatial[0] // 2, 0] = np.nan
            x[1, 2, 0, spatial[1] // 2] = -np.inf
        for bias in (None, b):
            got = fastconv.conv2d(x, w, bias, padding=1, groups=3, method="depthwise")
            check(got, conv_nd(x, w, bias, padding=1, groups=3), dtype)
    x = arrays.random(rng, (2, 4, 5, 7, 9), dtype)
    w = arrays.random(rng, (4, 1, 1, 3, 3), dtype)
    got = fastconv.conv3d(x, w, padding=(0, 1, 1), stride=(2, 1, 1), groups=4, method="depthwise")
    check(got, conv_nd(x, w, padding=(0, 1, 1), stride=(2, 1, 1), groups=4), dtype)
    # 3-D kernels: each depth tap inside the volume is one more input plane;
    # depth padding wider than the kernel leaves planes that are all bias
    x = arrays.random(rng, (2, 4, 5, 7, 9), dtype)
    x[1, 2, 4, 0, 8] = np.nan
    for kd, cig, kw in [(3, 1, dict(padding=1)), (2, 1, dict(padding=(0, 1, 1), stride=(2, 1, 1))),
                        (3, 2, dict(padding=(2, 1, 1), dilation=(2, 1, 1))), (3, 1, dict(padding=(4, 1, 1))),
                        (5, 1, dict(padding=(1, 1, 1), stride=(3, 1, 1)))]:  # fmt: skip
        w = arrays.random(rng, (8 // cig, cig, kd, 3, 3), dtype)
        b = arrays.random(rng, (8 // cig,), dtype)
        got = fastconv.conv3d(x, w, b, groups=4 // cig, method="depthwise", **kw)
        check(got, conv_nd(x, w, b, groups=4 // cig, **kw), dtype)
    # groups of up to 8 input channels (ResNeXt): one flat pass per input plane
    for spatial, cig, cog, groups in [((6, 7), 4, 4, 2), ((1, 5), 2, 1, 3), ((9, 1), 8, 3, 2), ((2, 2), 3, 2, 3)]:
        x = arrays.random(rng, (2, cig * groups, *spatial), dtype)
        w = arrays.random(rng, (cog * groups, cig, 3, 3), dtype)
        b = arrays.random(rng, (cog * groups,), dtype)
        if min(spatial) >= 2:
            x[1, -1, 0, -1] = np.nan
        got = fastconv.conv2d(x, w, b, padding=1, groups=groups, method="depthwise")
        check(got, conv_nd(x, w, b, padding=1, groups=groups), dtype)
    # refused: 9 channels per group, a strided grouped layer, a dense layer of 4 channels
    for cin, cout, groups, stride in [(18, 2, 1, 1), (4, 2, 2, 2), (4, 4, 1, 1)]:
        x, w = np.zeros((1, cin, 6, 6), dtype), np.zeros((cout, cin // groups, 3, 3), dtype)
        with pytest.raises(ValueError, match="depthwise"):
            fastconv.conv2d(x, w, padding=1, stride=stride, groups=groups, method="depthwise")

    def planes(nd, kernel, **kw):
        xs, ws = np.zeros((1, 2) + (8,) * nd, dtype), np.zeros((2, 1, *kernel), dtype)
        return whole_planes(conv_spec(nd, xs, ws, None, kw.get("stride", 1), kw.get("padding", 1),
                                      kw.get("dilation", 1), 2, "zeros", "depthwise", None, None)[0])  # fmt: skip

    assert planes(2, (3, 3)) and planes(3, (1, 3, 3), padding=(0, 1, 1))
    assert not planes(2, (3, 3), stride=2) and not planes(2, (3, 3), dilation=2) and not planes(2, (3, 3), padding=2)
    assert planes(3, (3, 3, 3)) and planes(3, (2, 3, 3), padding=(0, 1, 1), stride=(2, 1, 1))
    assert not planes(2, (5, 5), padding=2) and not planes(3, (3, 3, 3), padding=(1, 0, 1))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_size_zero_batch_and_channels(nd):
    x = np.zeros((0, 3) + (5,) * nd, np.float32)
    w = np.ones((4, 3) + (3,) * nd, np.float32)
    y = FUNCS[nd](x, w)
    assert y.shape == (0, 4) + (3,) * nd and y.dtype == np.float32
    y = FUNCS[nd](np.ones((2, 3) + (5,) * nd), np.ones((0, 3) + (3,) * nd))
    assert y.shape == (2, 0) + (3,) * nd
    # no input channels: the sum is empty, only the bias remains
    y = FUNCS[nd](np.ones((2, 0) + (5,) * nd), np.ones((2, 0) + (3,) * nd), np.array([1.5, -2.0]))
    np.testing.assert_array_equal(y, np.broadcast_to(np.array([1.5, -2.0]).reshape((1, 2) + (1,) * nd), y.shape))
    # ... whatever method is asked for, padded, float32: the plan is bias_only
    # (depthwise's 3x3 planes once took it and left the output unwritten;
    # FFT raised), and explain says the forced method was replaced
    x, w, b = np.ones((2, 0) + (5,) * nd, np.float32), np.ones((2, 0) + (3,) * nd, np.float32), np.array([1.5, -2.0])
    assert fastconv.available_methods(FUNCS[nd], x, w, padding=1) == ["auto", "bias_only"]
    for method in ["auto", *METHODS]:
        plan = fastconv.explain(FUNCS[nd], x, w, padding=1, method=method)
        assert plan.method == "bias_only" and (method == "auto" or "replaced" in plan.reason), method
        for bias in (b.astype(np.float32), None):
            y = FUNCS[nd](x, w, bias, padding=1, method=method)
            want = 0 if bias is None else bias.reshape((1, 2) + (1,) * nd)
            np.testing.assert_array_equal(y, np.broadcast_to(want, y.shape), err_msg=method)


@pytest.mark.parametrize(
    "xdt, wdt, want",
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float64, np.float64),
        (np.float16, np.float16, np.float32),
        (np.float32, np.float64, np.float64),
        (np.int32, np.int32, np.float64),
        (np.uint8, np.float32, np.float32),
        (np.int64, np.float32, np.float64),
        (np.bool_, np.bool_, np.float64),
        (np.float16, np.float32, np.float32),
    ],
)
def test_dtype_rules(xdt, wdt, want, rng):
    x = arrays.random(rng, (2, 3, 8, 7), xdt)
    w = arrays.random(rng, (4, 3, 3, 3), wdt)
    got = fastconv.conv2d(x, w, padding=1)
    assert got.dtype == want
    check(got, conv_nd(x.astype(np.float64), w.astype(np.float64), padding=1), want)


def test_every_layout_equals_reference_and_inputs_untouched(rng):
    x0 = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w0 = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b0 = rng.standard_normal(6).astype(np.float32)
    want = conv_nd(x0, w0, b0, 1, 1, 1, 2)
    for (xn, x), (wn, w), (bn, b) in zip(arrays.layouts(x0), arrays.layouts(w0), itertools.cycle(arrays.layouts(b0))):
        before = (x.copy(), w.copy(), b.copy())
        got = fastconv.conv2d(x, w, b, padding=1, groups=2)
        check(got, want, np.float32)
        for arr, copy in zip((x, w, b), before):
            np.testing.assert_array_equal(arr, copy, err_msg=f"{xn}/{wn}/{bn} modified an input")


def test_list_inputs(rng):
    x = rng.standard_normal((1, 2, 6)).tolist()
    w = rng.standard_normal((3, 2, 2)).tolist()
    check(fastconv.conv1d(x, w), conv_nd(np.array(x), np.array(w)), np.float64)


@pytest.mark.parametrize("method", METHODS)
def test_out_argument(method, rng):
    # a grouped call with one input channel per group: every method supports it
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    want = conv_nd(x, w, padding=1, groups=3)
    for out in (
        np.full((2, 6, 10, 10), np.nan, np.float32),
        np.full((2, 6, 10, 10), np.nan, np.float32, order="F"),
        np.full((2, 6, 10, 20), np.nan, np.float32)[..., ::2],
    ):
        res = fastconv.conv2d(x, w, padding=1, groups=3, out=out, method=method)
        assert res is out
        check(out, want, np.float32)


def test_out_aliasing_input(rng):
    x = rng.standard_normal((1, 4, 6, 6))
    w = rng.standard_normal((4, 4, 3, 3))
    want = conv_nd(x, w, padding=1)
    fastconv.conv2d(x, w, padding=1, out=x)
    check(x, want, np.float64)


@pytest.mark.parametrize("method", [*METHODS, "auto"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_stays_local(method, value, rng):
    ran = 0
    for nd, spatial, kernel, kwargs in [
        (1, (30,), (5,), dict(padding=2, dilation=2)),
        (2, (12, 13), (3, 3), dict(padding=1)),
        (2, (12, 13), (3, 5), dict(padding=(2, 1), stride=(2, 3))),
        (3, (5, 6, 7), (2, 3, 3), dict(padding=1)),
        (2, (12, 13), (3, 3), dict(padding=1, groups=3)),  # depthwise (3x3 planes)
        (1, (30,), (5,), dict(padding=2, groups=3)),  # depthwise (rows)
    ]:
        x = rng.standard_normal((2, 3, *spatial))
        cig = 3 // kwargs.get("groups", 1)
        w = rng.uniform(0.5, 1.5, (3 if "groups" in kwargs else 4, cig, *kernel))  # nonzero weights
        index = (1, 2, *(s // 2 for s in spatial))
        x[index] = value
        if method != "auto" and method not in fastconv.available_methods(FUNCS[nd], x, w, **kwargs):
            continue
        ran += 1
        y = FUNCS[nd](x, w, method=method, **kwargs)
        mask = receptive_mask(x.shape, index, w.shape, **kwargs)
        assert mask.any() and not mask.all()
        np.testing.assert_array_equal(~np.isfinite(y), mask)
        clean = x.copy()
        clean[index] = 0.0
        check(y[~mask], conv_nd(clean, w, **kwargs)[~mask], np.float64)
    assert ran >= 2, method  # (every method takes some of these cases)


@st.composite
def conv_cases(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cig = draw(st.integers(1, 3))
    cog = draw(st.integers(1, 10))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 3)) for _ in range(nd))
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    spatial = tuple(
        draw(st.integers(max(1, sp - 2 * p), max(1, sp - 2 * p) + (9 if nd < 3 else 5)))
        for sp, p in zip(spans, padding)
    )
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    bias = draw(st.booleans())
    return nd, n, groups * cig, groups * cog, groups, spatial, kernel, stride, padding, dilation, dtype, bias


@given(conv_cases())
def test_property_against_reference(case):
    nd, n, cin, cout, groups, spatial, kernel, stride, padding, dilation, dtype, bias = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))  # (the same data in every process)
    x, w, b = _case(rng, nd, n, cin, cout, groups, spatial, kernel, dtype)
    b = b if bias else None
    want = conv_nd(x, w, b, stride, padding, dilation, groups)
    ran = []
    for method in METHODS:
        got = run_method(FUNCS[nd], method, x, w, b, stride, padding, dilation, groups)
        if got is not None:
            ran.append(method)
            check(got, want, dtype)
    assert {"direct", "numpy"} <= set(ran)  # (these take every call; the others where they apply)


def test_against_torch(torch):
    """conv1d/2d/3d agree with torch.nn.functional: float32 within 1e-4
    relative, float64 within 1e-9, across the parameter space."""
    import torch.nn.functional as F

    rng = np.random.default_rng(7)
    checked = 0
    for trial in range(120):
        nd = 1 + trial % 3
        groups = int(rng.choice([1, 2, 4]))
        cin, cout = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 6))
        kernel = tuple(int(v) for v in rng.integers(1, 5, nd))
        dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
        stride = tuple(int(v) for v in rng.integers(1, 3, nd))
        mode = ["zeros", "reflect", "replicate", "circular"][trial % 4]
        spatial = tuple(
            int(v) + d * (k - 1) for v, d, k in zip(rng.integers(4, 12 if nd < 3 else 7, nd), dilation, kernel)
        )
        same = trial % 5 == 0
        padding = "same" if same else tuple(int(v) for v in rng.integers(0, 3, nd))
        if same:
            stride = (1,) * nd
        for dtype, rtol in ((np.float32, 1e-4), (np.float64, 1e-9)):
            x, w, b = _case(rng, nd, 2, cin, cout, groups, spatial, kernel, dtype)
            got = FUNCS[nd](x, w, b, stride, padding, dilation, groups, padding_mode=mode)
            conv = getattr(torch.nn, f"Conv{nd}d")(
                cin, cout, kernel, stride, padding, dilation, groups, padding_mode=mode, dtype=torch.float64
            )
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(w.astype(np.float64)))
                conv.bias.copy_(torch.from_numpy(b.astype(np.float64)))
                want = conv(torch.from_numpy(x.astype(np.float64))).numpy()
            if mode == "zeros":  # the functional form too, in the input dtype
                fw = getattr(F, f"conv{nd}d")(
                    torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride, padding, dilation, groups
                ).numpy()
                assert fw.dtype == got.dtype
                np.testing.assert_allclose(got, fw, rtol=rtol, atol=rtol * np.abs(want).max())
            scale = np.abs(want).max()
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)
            checked += 1
    assert checked == 240


def test_auto_never_uses_fft_on_non_finite_input(rng):
    """A large kernel makes FFT the cheapest; a NaN in the input must steer
    "auto" away from it (FFT would turn every output into NaN)."""
    x = rng.standard_normal((1, 2, 300, 300))
    w = rng.standard_normal((2, 2, 63, 63))
    assert fastconv.explain(fastconv.conv2d, x, w).method == "fft"
    x[0, 1, 150, 150] = np.nan
    y = fastconv.conv2d(x, w)
    assert fastconv.explain(fastconv.conv2d, x, w).method == "fft"  # explain sees no data
    mask = receptive_mask(x.shape, (0, 1, 150, 150), w.shape)
    np.testing.assert_array_equal(np.isnan(y), mask)
    # forced too: the API promises locality whatever the method, so another method runs
    np.testing.assert_array_equal(np.isnan(fastconv.conv2d(x, w, method="fft")), mask)
