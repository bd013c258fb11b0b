"""Every malformed call raises ValueError/TypeError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv

X = np.ones((2, 4, 8, 8), np.float32)
W = np.ones((6, 2, 3, 3), np.float32)
GOOD = dict(input=X, weight=W, bias=None, stride=1, padding=1, dilation=1, groups=2)

CASES = [
    # (changes, exception, words the message must contain)
    (dict(input=np.ones((8, 8))), ValueError, ["input", "3-D", "4-D"]),
    (dict(input=np.ones((1, 1, 2, 8, 8))), ValueError, ["input"]),
    (dict(weight=np.ones((6, 2, 3))), ValueError, ["weight", "4-D"]),
    (dict(weight=np.ones((6, 3, 3, 3))), ValueError, ["weight.shape[1]", "C_in/groups"]),
    (dict(groups=3), ValueError, ["groups", "C_in"]),
    (dict(weight=np.ones((5, 2, 3, 3))), ValueError, ["groups", "output channels"]),
    (dict(groups=0), ValueError, ["groups", "positive"]),
    (dict(groups=-2), ValueError, ["groups"]),
    (dict(groups=2.0), TypeError, ["groups", "int"]),
    (dict(groups=True), TypeError, ["groups"]),
    (dict(stride=0), ValueError, ["stride", "positive"]),
    (dict(stride=(1, -1)), ValueError, ["stride"]),
    (dict(stride=(1, 1, 1)), ValueError, ["stride", "2 ints"]),
    (dict(stride="2"), TypeError, ["stride", "int"]),
    (dict(stride=1.5), TypeError, ["stride", "int"]),
    (dict(dilation=0), ValueError, ["dilation", "positive"]),
    (dict(dilation=(2, -1)), ValueError, ["dilation"]),
    (dict(padding=-1), ValueError, ["padding", ">= 0"]),
    (dict(padding=(1, -1)), ValueError, ["padding"]),
    (dict(padding="full"), ValueError, ["padding", "'valid'", "'same'"]),
    (dict(padding="same", stride=2), ValueError, ["same", "stride"]),
    (dict(padding=None), TypeError, ["padding"]),
    (dict(padding=0, input=np.ones((2, 4, 2, 8))), ValueError, ["kernel", "padded input"]),
    (dict(padding=0, dilation=4), ValueError, ["kernel", "dilation", "padded input"]),
    (dict(bias=np.ones(5)), ValueError, ["bias", "(6,)"]),
    (dict(bias=np.ones((6, 1))), ValueError, ["bias"]),
    (dict(bias="a"), TypeError, ["bias"]),
    (dict(input=np.ones((2, 4, 8, 8), dtype=object)), TypeError, ["input", "dtype"]),
    (dict(input=np.full((2, 4, 8, 8), "a")), TypeError, ["input", "dtype"]),
    (dict(input="abc"), TypeError, ["input"]),
    (dict(input=None), TypeError, ["input"]),
    (dict(weight={"a": 1}), TypeError, ["weight"]),
    (dict(input=np.ones((2, 4, 8, 8), complex)), TypeError, ["input", "complex"]),
    (dict(weight=np.ones((6, 2, 3, 3), "datetime64[s]")), TypeError, ["weight", "dtype"]),
    (dict(input=np.ones((2, 4, 0, 8))), ValueError, ["input", "spatial"]),
    (dict(weight=np.ones((6, 2, 0, 3))), ValueError, ["weight", "kernel size"]),
    (dict(padding_mode="mirror"), ValueError, ["padding_mode", "reflect"]),
    (dict(padding_mode="reflect", padding=3, input=np.ones((1, 4, 3, 8))), ValueError, ["reflect", "padding"]),
    (dict(padding_mode="circular", padding=4, input=np.ones((1, 4, 3, 8))), ValueError, ["circular", "padding"]),
    (dict(method="winograd_f99"), ValueError, ["method", "direct", "auto"]),
    (dict(method=3), TypeError, ["method", "str"]),
    (dict(out=np.empty((2, 6, 8, 7), np.float32)), ValueError, ["out", "shape", "(2, 6, 8, 8)"]),
    (dict(out=np.empty((2, 6, 8, 8), np.float64)), ValueError, ["out", "dtype", "float32"]),
    (dict(out=[0.0]), TypeError, ["out", "ndarray"]),
    (dict(device="tpu"), ValueError, ["device"]),
]


@pytest.mark.parametrize("changes, exc, words", CASES, ids=[repr(sorted(c[0])) for c in CASES])
def test_bad_input(changes, exc, words):
    kwargs = {**GOOD, **changes}
    with pytest.raises(exc) as info:
        fastconv.conv2d(**kwargs)
    msg = str(info.value)
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"
    # never a numba typing error leaking out
    assert "numba" not in msg.lower() and "typing" not in msg.lower()


def test_out_read_only_is_rejected_and_untouched():
    out = np.full((2, 6, 8, 8), 7.0, np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        fastconv.conv2d(X, W, padding=1, groups=2, out=out)
    assert (out == 7.0).all()


def test_failed_call_leaves_out_untouched():
    out = np.full((2, 6, 8, 8), 7.0, np.float32)
    with pytest.raises(ValueError):
        fastconv.conv2d(X, W, bias=np.ones(3), padding=1, groups=2, out=out)
    with pytest.raises(ValueError):
        fastconv.conv2d(X, W, padding=1, groups=2, out=out, method="nope")
    assert (out == 7.0).all()


@pytest.mark.parametrize("nd", [1, 3])
def test_other_ranks_name_their_shape(nd):
    f = {1: fastconv.conv1d, 3: fastconv.conv3d}[nd]
    with pytest.raises(ValueError, match="input must be"):
        f(np.ones((2,) * (nd + 3)), np.ones((1, 1) + (1,) * nd))


def test_bad_settings():
    with pytest.raises(TypeError, match="num_threads"):
        fastconv.set_config(num_threads="2")
    with pytest.raises(ValueError, match="num_threads"):
        fastconv.set_config(num_threads=0)
    with pytest.raises(ValueError, match="workspace_limit"):
        fastconv.set_config(workspace_limit=-5)
    with pytest.raises(TypeError, match="autotune"):
        fastconv.set_config(autotune="yes")
    with pytest.raises(TypeError, match="threads"):
        fastconv.set_config(threads=2)


def test_explain_rejects_non_fastconv_functions():
    with pytest.raises(TypeError, match="func"):
        fastconv.explain(np.convolve, X, W)
    with pytest.raises(TypeError):
        fastconv.explain(fastconv.conv2d, X, W, nonsense=1)


XP = np.ones((2, 3, 8, 8), np.float32)
POOL_CASES = [
    # (function, kwargs, exception, words)
    ("max_pool2d", dict(kernel_size=0), ValueError, ["kernel_size", "positive"]),
    ("max_pool2d", dict(kernel_size=(2, -1)), ValueError, ["kernel_size"]),
    ("max_pool2d", dict(kernel_size=2, stride=0), ValueError, ["stride", "positive"]),
    ("max_pool2d", dict(kernel_size=2, stride=-1), ValueError, ["stride"]),
    ("max_pool2d", dict(kernel_size=3, padding=2), ValueError, ["padding", "half"]),
    ("max_pool2d", dict(kernel_size=3, padding=-1), ValueError, ["padding"]),
    ("max_pool2d", dict(kernel_size=2, dilation=0), ValueError, ["dilation"]),
    ("max_pool2d", dict(kernel_size=(2, 2, 2)), ValueError, ["kernel_size", "2 ints"]),
    ("max_pool2d", dict(kernel_size=2.0), TypeError, ["kernel_size", "int"]),
    ("max_pool2d", dict(kernel_size=2, ceil_mode="yes"), TypeError, ["ceil_mode", "bool"]),
    ("max_pool2d", dict(kernel_size=2, return_indices=1), TypeError, ["return_indices", "bool"]),
    ("max_pool2d", dict(kernel_size=9), ValueError, ["output size", "too small"]),
    ("max_pool2d", dict(kernel_size=3, dilation=4), ValueError, ["output size"]),
    ("max_pool2d", dict(input=np.ones((8, 8)), kernel_size=2), ValueError, ["input", "3-D", "4-D"]),
    ("max_pool2d", dict(input=np.ones((2, 3, 0, 8)), kernel_size=2), ValueError, ["input", "spatial"]),
    ("max_pool2d", dict(input=np.ones((2, 3, 8, 8), complex), kernel_size=2), TypeError, ["input", "complex"]),
    ("max_pool2d", dict(input="abc", kernel_size=2), TypeError, ["input"]),
    ("avg_pool2d", dict(kernel_size=2, divisor_override=0), ValueError, ["divisor_override"]),
    ("avg_pool2d", dict(kernel_size=2, divisor_override=1.5), TypeError, ["divisor_override"]),
    ("avg_pool2d", dict(kernel_size=2, count_include_pad=None), TypeError, ["count_include_pad"]),
    ("avg_pool2d", dict(kernel_size=2, padding=2), ValueError, ["padding", "half"]),
    ("avg_pool1d", dict(input=np.ones((2, 3, 8, 8)), kernel_size=2), ValueError, ["input"]),
    ("adaptive_avg_pool2d", dict(output_size=0), ValueError, ["output_size", "positive"]),
    ("adaptive_avg_pool2d", dict(output_size=(2, -1)), ValueError, ["output_size"]),
    ("adaptive_avg_pool2d", dict(output_size=(2, 2, 2)), ValueError, ["output_size", "2"]),
    ("adaptive_avg_pool2d", dict(output_size=None), TypeError, ["output_size"]),
    ("adaptive_max_pool2d", dict(output_size="a"), TypeError, ["output_size"]),
    ("adaptive_max_pool3d", dict(input=np.ones((8, 8, 8)), output_size=1), ValueError, ["input", "4-D", "5-D"]),
]


@pytest.mark.parametrize("name,kwargs,exc,words", POOL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(POOL_CASES)])
def test_bad_pool_calls(name, kwargs, exc, words):
    kwargs = dict(kwargs)
    x = kwargs.pop("input", XP)
    before = np.array(x, copy=True) if isinstance(x, np.ndarray) else None
    with pytest.raises(exc) as info:
        getattr(fastconv, name)(x, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    if before is not None:
        np.testing.assert_array_equal(x, before)


XT = np.ones((2, 4, 5, 5), np.float32)
WT = np.ones((4, 3, 3, 3), np.float32)
TRANSPOSE_CASES = [
    (dict(stride=0), ValueError, ["stride", "positive"]),
    (dict(stride=2, output_padding=2), ValueError, ["output_padding", "stride", "dilation"]),
    (dict(stride=1, output_padding=1), ValueError, ["output_padding"]),
    (dict(output_padding=-1), ValueError, ["output_padding"]),
    (dict(padding=-1), ValueError, ["padding"]),
    (dict(padding="same"), ValueError, ["padding", "int"]),
    (dict(padding=4), ValueError, ["output size", "not positive"]),
    (dict(dilation=0), ValueError, ["dilation"]),
    (dict(groups=3), ValueError, ["groups", "C_in"]),
    (dict(groups=0), ValueError, ["groups"]),
    (dict(weight=np.ones((5, 3, 3, 3))), ValueError, ["weight.shape[0]", "C_in"]),
    (dict(weight=np.ones((4, 3, 3))), ValueError, ["weight", "4-D"]),
    (dict(weight=np.ones((4, 3, 0, 3))), ValueError, ["kernel size"]),
    (dict(input=np.ones((4, 5))), ValueError, ["input", "3-D", "4-D"]),
    (dict(bias=np.ones(4)), ValueError, ["bias", "(3,)"]),
    (dict(method="winograd_f2"), ValueError, ["method", "gemm", "subpixel"]),
    (dict(method=3), TypeError, ["method", "str"]),
    (dict(out=np.ones((2, 3, 7, 7), np.float64)), ValueError, ["out", "dtype"]),
    (dict(out=np.ones((2, 3, 8, 7), np.float32)), ValueError, ["out", "shape"]),
    (dict(input=np.ones((2, 4, 5, 5), complex)), TypeError, ["input", "complex"]),
]


@pytest.mark.parametrize("changes,exc,words", TRANSPOSE_CASES)
def test_bad_transpose_calls(changes, exc, words):
    kw = dict(changes)
    x = kw.pop("input", XT)
    w = kw.pop("weight", WT)
    with pytest.raises(exc) as info:
        fastconv.conv_transpose2d(x, w, **kw)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def _gpu() -> bool:
    import fastconv.cuda

    return fastconv.cuda.is_available()


@pytest.mark.parametrize(
    "call",
    [
        lambda: fastconv.conv2d(**{**GOOD, "device": "cuda"}),
        lambda: fastconv.max_pool2d(np.ones((2, 3, 8, 8), np.float32), 2, device="cuda"),
    ],
    ids=["conv2d", "max_pool2d"],
)
def test_device_cuda_runs_where_a_gpu_is_and_names_why_where_not(call):
    # correct on both kinds of machine: with a GPU the call computes (and
    # equals the CPU's); without one it is a ValueError saying why
    if _gpu():
        got = call()
        assert isinstance(got, np.ndarray) and np.isfinite(got).all()
    else:
        with pytest.raises(ValueError, match="device='cuda' cannot run"):
            call()
