"""The register-blocked direct method: its padded phase-split copy, its work
split (channel blocks, runs of positions, image blocks under the workspace
limit) and threads, against the plain-NumPy reference.  (The shared grids in
test_conv.py run it over every parameter too.)"""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv._spec import conv_spec
from fastconv.kernels import blocked
from fastconv.plans import blocked as bplan
from fastconv.plans import shape
from fastconv.plans import transpose_blocked as tplan
from fastconv.plans.shape import OB, positions

from .reference import conv_nd

FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}


def _spec(x, w, **kwargs):
    args = dict(stride=1, padding=0, dilation=1, groups=1) | kwargs
    return conv_spec(x.ndim - 2, x, w, None, padding_mode="zeros", method="blocked", device=None, out=None, **args)[0]


def test_padded_phase_copy_matches_numpy_padding(rng):
    # xp[n, c, dz, a, b, i, j] = zero-padded x at (dz, i*sh + a, j*sw + b)
    x = rng.standard_normal((2, 3, 4, 7, 9)).astype(np.float32)
    w = np.ones((2, 3, 2, 3, 4), np.float32)
    stride, padding, dilation = (2, 2, 3), (1, 2, 1), (1, 2, 1)
    spec = _spec(x, w, stride=stride, padding=padding, dilation=dilation)
    dp, hq, wq, _ = bplan.geometry(spec)
    xp = np.full(2 * bplan.image_elements(spec) + bplan.slack(spec), np.nan, np.float32)
    blocked._pad_split(x, xp, *stride, *padding, dp, hq, wq)
    pad = np.zeros((2, 3, dp + 8, 2 * (hq + 8), 3 * (wq + 8)), np.float32)
    pad[:, :, 1 : 1 + 4, 2 : 2 + 7, 1 : 1 + 9] = x
    want = np.empty((2, 3, dp, 2, 3, hq, wq), np.float32)
    for a in range(2):
        for b in range(3):
            want[:, :, :, a, b] = pad[:, :, :dp, a::2, b::3][:, :, :, :hq, :wq]
    got = xp[: want.size].reshape(want.shape)
    np.testing.assert_array_equal(got, want)
    assert not xp[want.size :].any()  # the slack after the last plane is zeroed


def test_every_read_stays_inside_the_padded_copy():
    # the last run of the last plane of the last image reads up to
    # nrun * tb - 1 + the largest tap offset: inside images + slack
    for nd, xs, ws, kwargs in [
        (1, (2, 3, 50), (4, 3, 5), dict(padding=1, dilation=3)),
        # 48 padding columns and a run rounded up by 12: 60 past the plane
        (1, (1, 2, 100), (4, 2, 7), dict(dilation=8)),
        (2, (2, 4, 7, 7), (4, 2, 3, 3), dict(padding=1, groups=2)),
        (2, (1, 3, 20, 23), (4, 3, 7, 7), dict(stride=2, padding=3)),
        (2, (1, 2, 9, 30), (4, 2, 2, 5), dict(stride=(1, 3), dilation=(2, 2))),
        (3, (2, 2, 5, 6, 7), (4, 2, 3, 3, 3), dict(padding=1, stride=(2, 1, 1))),
    ]:
        x, w = np.zeros(xs, np.float32), np.zeros(ws, np.float32)
        spec = _spec(x, w, **kwargs)
        dp, hq, wq, phases = bplan.geometry(spec)
        od, oh, _ = spec.lifted("out_spatial")
        sd = spec.lifted("stride")[0]
        tb = positions(4, bplan.vectors(spec))
        nrun = -(-(oh * wq) // tb)
        cig = spec.c_in // spec.groups
        last = ((spec.n - 1) * spec.c_in + (spec.groups - 1) * cig) * dp + (od - 1) * sd
        top = last * phases * hq * wq + nrun * tb - 1 + blocked.tap_offsets(spec).max()
        assert top < spec.n * bplan.image_elements(spec) + bplan.slack(spec), (nd, xs, ws, kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_blocks_runs_and_strides(dtype, rng):
    tb = positions(np.dtype(dtype).itemsize)
    cases = [
        # a partial last block of output channels, rows longer than several runs
        (1, (2, 5, 3 * tb + 7), (OB + 5, 5, 3), dict(padding=1)),
        (1, (1, 4, 5 * tb), (2 * OB, 2, 4), dict(stride=2, padding=3, dilation=3, groups=2)),
        # a plane of short rows: one run spans rows, padding columns dropped
        (2, (3, 6, 7, 7), (OB + 1, 6, 3, 3), dict(padding=1)),
        (2, (2, 4, 19, 23), (12, 2, 5, 3), dict(stride=(2, 3), padding=(2, 0), dilation=(1, 2), groups=2)),
        (2, (1, 3, 40, 41), (OB, 3, 7, 7), dict(stride=2, padding=3)),
        (3, (2, 3, 5, 6, 9), (OB - 1, 3, 3, 3, 3), dict(padding=1)),
        # more taps than one call takes: partial sums added over chunks of channels
        (2, (2, 40, 9, 10), (2 * OB + 3, 40, 3, 3), dict(padding=1)),
        (1, (3, 300, 50), (3 * OB + 3, 100, 2), dict(padding=1, groups=3, dilation=3)),
        (3, (1, 4, 7, 5, 8), (6, 2, 2, 2, 3), dict(stride=(2, 1, 2), padding=(1, 1, 0), dilation=(2, 1, 1), groups=2)),
    ]
    chunked = 0
    for nd, xs, ws, kwargs in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        spec = _spec(x, w, **kwargs)
        chunked += bplan.taps_per_chunk(spec) < int(np.prod(ws[1:]))
        got = FUNCS[nd](x, w, b, method="blocked", **kwargs)
        want = conv_nd(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kwargs)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    assert chunked >= 3


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("block", [8, 4, 3])
def test_weight_packing_against_numpy(block, parallel, rng, monkeypatch):
    """pack_gather: every tap's block of output channels adjacent, zero past
    the group's channels (partial last block), for the transposed layout
    (input channel, output channel, tap) and the convolution's transposed
    view (output channel, input channel, tap), with taps reordered; on the
    calling thread (small weights) and on Numba's threads (large ones)."""
    from fastconv.kernels import direct
    from fastconv.kernels.direct import pack_gather

    monkeypatch.setattr(direct, "_PACK_SERIAL_BELOW", 0 if parallel else 1 << 40)

    for g, cig, cog, taps in [(1, 5, 17, 9), (2, 3, 8, 4), (3, 2, 5, 1), (1, 1, 1, 1)]:
        ci = np.repeat(np.arange(cig), taps)
        k = np.tile(np.arange(taps)[::-1], cig)
        nb = -(-cog // block)
        views = [
            rng.standard_normal((g * cig, cog, taps)).astype(np.float32).reshape(g, cig, cog, taps),
            rng.standard_normal((g * cog, cig, taps)).reshape(g, cog, cig, taps).transpose(0, 2, 1, 3),
        ]
        for w4 in views:
            out = np.full((g, nb, cig * taps, block), np.nan, w4.dtype)
            pack_gather(w4, ci, k, out)
            want = np.zeros((g, nb * block, cig * taps), w4.dtype)
            want[:, :cog] = w4[:, ci, :, k].transpose(1, 2, 0)
            np.testing.assert_array_equal(out, want.reshape(g, nb, block, -1).transpose(0, 1, 3, 2))


def test_runs_per_item_share_the_runs_evenly():
    x = np.zeros((8, 256, 14, 14), np.float32)
    w = np.zeros((256, 256, 3, 3), np.float32)
    spec = _spec(x, w, padding=1)
    runs = 8 * -(-(14 * 16) // positions(4, bplan.vectors(spec)))
    for threads in (1, 2, 3, 4):
        rpi = bplan.runs_per_item(spec, 8, threads)
        items = -(-runs // rpi)
        busiest = -(-items // threads) * rpi
        assert busiest <= -(-runs // threads) * 1.5  # no thread left with a much bigger share
        assert rpi * 256 * positions(4, bplan.vectors(spec)) * 4 <= bplan._ACC_BYTES
    # long items when they cost the busiest thread little: 1336 runs of a
    # conv1d on 2 threads (3-vector runs of 48 positions with 16 float32
    # lanes, 24 with 8), the most per item (_SPAN: 16 or 32; 84 or 42
    # items, 672 runs on the busiest thread) rather than 4 (334 items, 668)
    scale = 16 // positions(4, 1)
    spec1 = _spec(np.zeros((4, 32, 16008 // scale - 8), np.float32), np.zeros((32, 32, 9), np.float32), padding=4)
    tb, nrun = bplan.runs(spec1)
    most = bplan._SPAN // tb
    assert 4 * nrun == 1336 and most == 16 * scale
    assert bplan.runs_per_item(spec1, 4, 2) == most
    # but not 7 items of `most` on 2 threads (4 x most runs on the busiest):
    # 8 items (16 lanes: 14 per item, 56 runs; 8 lanes: 29, 116 <= 1.04 x 112)
    assert bplan.share_runs(7 * most, 8, tb, 4, 2) == {1: 14, 2: 29}[scale]


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_threads_and_image_blocks_under_a_small_workspace(threads, stride, rng, monkeypatch):
    monkeypatch.setattr(blocked, "_SERIAL_FLOPS", 0)  # parallel kernels even for this small problem
    x = rng.standard_normal((5, 4, 12, 13)).astype(np.float32)
    w = rng.standard_normal((10, 4, 3, 3)).astype(np.float32)
    spec = _spec(x, w, padding=1, stride=stride)
    # stride 1 on a small plane runs shifted (transpose_blocked), stride 2 phase-split
    assert (bplan.shifted(spec) is not None) == (stride == 1)
    # the smallest limit that holds two images' copies with the weights,
    # partial sums and slack
    limit = next(lim for lim in range(1 << 10, 1 << 22, 256) if bplan.images_per_block(spec, lim, threads) >= 2)
    assert bplan.images_per_block(spec, limit, threads) == 2  # three blocks of images
    assert bplan.workspace(spec, limit, threads) <= limit
    want = conv_nd(x, w, padding=1, stride=stride)
    with fastconv.set_config(num_threads=threads, workspace_limit=limit):
        got = fastconv.conv2d(x, w, padding=1, stride=stride, method="blocked")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_stride1_runs_shifted_only_where_it_saves_work():
    # 7x7 planes: phase-split computes 9/7 of the positions (padding columns)
    # rounded up per image, shifted 8/7 over all images side by side
    def spec(xs):
        return _spec(np.zeros(xs, np.float32), np.zeros((8, xs[1], 3, 3), np.float32), padding=1)

    small, large = spec((8, 16, 7, 7)), spec((2, 16, 56, 56))
    assert bplan.shifted(small) is not None and bplan.shifted(large) is None
    t = bplan.shifted(small)
    assert t.transposed and t.pad_lo == (1, 1) and t.stride == (1, 1)
    assert bplan.computed_flops(small) >= bplan._SHIFTED * tplan.computed_flops(t, 8)


def test_refused_when_one_image_exceeds_the_workspace(rng):
    # planes of few runs (8x9 positions at stride 2: 3 or 5 runs) copy whole images (0.66 MB)
    x = rng.standard_normal((1, 512, 16, 16)).astype(np.float32)
    w = rng.standard_normal((8, 512, 3, 3)).astype(np.float32)
    assert not bplan.plane_windows(_spec(x, w, padding=1, stride=2))
    with fastconv.set_config(workspace_limit=600 << 10, num_threads=2):
        assert "blocked" not in fastconv.available_methods(fastconv.conv2d, x, w, padding=1, stride=2)
        with pytest.raises(ValueError, match="blocked"):
            fastconv.conv2d(x, w, padding=1, stride=2, method="blocked")
    # larger planes copy per-item windows: a 64x64 image's padded copy (1.1
    # MB) does not fit the limit, the windows do
    x = rng.standard_normal((1, 64, 64, 64)).astype(np.float32)
    w = rng.standard_normal((8, 64, 3, 3)).astype(np.float32)
    assert bplan.plane_windows(_spec(x, w, padding=1)) and bplan.image_elements(_spec(x, w, padding=1)) * 4 > 1 << 20
    with fastconv.set_config(workspace_limit=600 << 10, num_threads=2):
        assert bplan.workspace(_spec(x, w, padding=1), 600 << 10, 2) <= 600 << 10
        got = fastconv.conv2d(x, w, padding=1, method="blocked")
    want = conv_nd(x.astype(np.float64), w.astype(np.float64), padding=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # conv1d copies no whole image, only per-thread windows: a long row fits a
    # small limit, weights and windows that do not are refused with that reason
    x1 = rng.standard_normal((1, 8, 1 << 16)).astype(np.float32)
    w1 = rng.standard_normal((8, 8, 3)).astype(np.float32)
    with fastconv.set_config(workspace_limit=600 << 10, num_threads=2):
        assert x1.nbytes > 600 << 10 and "blocked" in fastconv.available_methods(fastconv.conv1d, x1, w1, padding=1)
        np.testing.assert_allclose(
            fastconv.conv1d(x1, w1, padding=1, method="blocked"),
            conv_nd(x1.astype(np.float64), w1.astype(np.float64), padding=1),
            rtol=1e-4, atol=1e-4 * 10,
        )  # fmt: skip
    with fastconv.set_config(workspace_limit=64 << 10, num_threads=2):
        plan = fastconv.explain(fastconv.conv1d, x1, np.zeros((64, 8, 3), np.float32), padding=1)
        (cand,) = [c for c in plan.candidates if c.name == "blocked"]
        assert "input window exceed workspace_limit" in cand.rejected


def test_every_micro_kernel_width_is_used_and_correct(rng, monkeypatch):
    # the widest run that does not round a plane's positions up by more than
    # 3%: long rows take 3 vectors, a plane of 5 vectors' worth (lanes / 2
    # rows of 8 + 2 padding columns) 1, and a plane of 2 vectors' worth 2
    lanes = positions(4, 1)
    cases = {
        3: ((2, 3, 6 * lanes - 2), (OB, 3, 3), dict(padding=1)),
        1: ((2, 3, lanes // 2, 8), (OB, 3, 3, 3), dict(padding=1)),
        2: ((2, 3, 2 * lanes - 2), (OB, 3, 3), dict(padding=1)),
    }
    for nv, (xs, ws, kwargs) in cases.items():
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        assert bplan.vectors(_spec(x, w, **kwargs)) == nv
        got = FUNCS[x.ndim - 2](x, w, method="blocked:padded", **kwargs)
        want = conv_nd(x.astype(np.float64), w.astype(np.float64), **kwargs)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_groups_of_at_most_four_channels_run_blocks_of_four(dtype, rng, monkeypatch):
    # groups with 1-4 output channels pack and compute blocks of 4 (a block of
    # 8 would be half zeros), at each run width, with partial blocks, strides,
    # dilation, chunked taps and a bias; 5 channels per group stay on OB
    lanes = positions(np.dtype(dtype).itemsize, 1)
    cases = [
        (2, (2, 8, 9, 10), (16, 2, 3, 3), dict(padding=1, groups=4), 4),
        (2, (3, 6, 3, 3), (6, 2, 3, 3), dict(padding=1, groups=3), 4),  # 2 per group: a partial block, 1-vector runs
        (1, (2, 6, 2 * lanes - 2), (9, 2, 3), dict(padding=1, groups=3), 4),  # 3 per group, 2-vector runs
        (2, (2, 4, 17, 19), (4, 2, 3, 3), dict(stride=2, padding=2, dilation=2, groups=2), 4),
        (1, (2, 300, 40), (100, 3, 3), dict(padding=1, groups=100), 4),  # 1 per group
        (1, (1, 200, 6 * lanes), (4, 200, 3), dict(padding=1), 4),  # 600 taps: partial sums over chunks
        (2, (2, 4, 8, 8), (10, 2, 3, 3), dict(padding=1, groups=2), OB),  # 5 per group
    ]
    for nd, xs, ws, kwargs, ob in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        spec = _spec(x, w, **kwargs)
        assert bplan.block_channels(spec) == ob
        got = FUNCS[nd](x, w, b, method="blocked:padded", **kwargs)
        want = conv_nd(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kwargs)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    widths = {bplan.vectors(_spec(np.zeros(xs, dtype), np.zeros(ws, dtype), **kw)) for _, xs, ws, kw, _ in cases}
    assert widths == {1, 2, 3}


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_on_per_item_windows(dtype, threads, rng, monkeypatch):
    # conv1d copies each work item's input window (per stride phase, zero
    # outside the row) instead of the whole padded input: rows shorter than a
    # run, rows of many items (short items forced), padding wider than the
    # kernel's reach, none, strides 2-4 with dilation, groups of 4 and of 8+
    # channels, taps in chunks, a bias, a non-contiguous input and reflect padding
    for module in (shape, bplan):  # 2 runs per item at most
        monkeypatch.setattr(module, "_SPAN", 2 * positions(np.dtype(dtype).itemsize))
    if threads > 1:  # the parallel build (these small problems would otherwise run the serial one)
        monkeypatch.setattr(blocked, "_SERIAL_FLOPS", 0)
    lanes = positions(np.dtype(dtype).itemsize, 1)
    cases = [
        ((2, 3, 5), (OB + 1, 3, 3), dict(padding=1)),
        ((2, 4, 9 * lanes + 5), (OB, 4, 4), dict(padding=5)),
        ((1, 6, 7 * lanes), (12, 2, 5), dict(padding=4, dilation=3, groups=3)),
        ((3, 4, 4 * lanes), (3, 4, 2), dict()),
        ((1, 200, 3 * lanes + 1), (2 * OB, 200, 3), dict(padding=1)),
        ((2, 5, 6 * lanes), (9, 5, 7), dict(padding=3, padding_mode="reflect")),
        ((2, 4, 9 * lanes + 3), (OB + 3, 4, 4), dict(stride=2, padding=1)),
        ((1, 6, 5 * lanes + 2), (6, 3, 5), dict(stride=3, padding=4, dilation=2, groups=2)),
        ((2, 3, 11), (5, 3, 2), dict(stride=4, padding=3)),
    ]
    for xs, ws, kw in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        spec = _spec(x, w, **{k: v for k, v in kw.items() if k != "padding_mode"})
        assert bplan.windowed(spec)
        with fastconv.set_config(num_threads=threads):
            got = fastconv.conv1d(x, w, b, method="blocked", **kw)
        xr = x.astype(np.float64)
        if kw.get("padding_mode") == "reflect":
            p = kw["padding"]
            xr = np.pad(xr, ((0, 0), (0, 0), (p, p)), mode="reflect")
        want = conv_nd(xr, w.astype(np.float64), b.astype(np.float64),
                       **{k: v for k, v in kw.items() if k not in ("padding_mode",) and not (k == "padding" and "padding_mode" in kw)})  # fmt: skip
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    # a strided view of the input gives the same result as its copy
    x = rng.standard_normal((2, 8, 3 * lanes)).astype(dtype)[:, ::2, ::-1]
    w = rng.standard_normal((5, 4, 3)).astype(dtype)
    np.testing.assert_array_equal(
        fastconv.conv1d(x, w, padding=2, method="blocked"), fastconv.conv1d(x.copy(), w, padding=2, method="blocked")
    )
    # conv2d keeps the padded phase-split copy
    assert not bplan.windowed(_spec(np.zeros((1, 4, 3, 9), dtype), np.zeros((2, 4, 1, 3), dtype)))


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_3d_on_per_item_plane_windows(dtype, threads, rng, monkeypatch):
    # 2-D/3-D planes of enough runs copy each work item's rows (per input
    # channel, depth tap and stride phase) instead of the whole padded input:
    # strides and dilations per axis, groups of 2 and 4 channels, 3-D depth
    # taps with depth stride and dilation, asymmetric and "same" padding,
    # stride-2 rows split into both column phases in one pass (odd and even
    # padding) and, where a column has no place, gathered per phase, phases
    # no tap reads left out (1x1/2, 2x2/3),
    # several items per plane (a short span), one run per item (a small
    # window limit), a non-contiguous input, reflect padding, NaN/Inf
    # (the variant forced by name: windows even on these small planes)
    for module in (shape, bplan):
        monkeypatch.setattr(module, "_SPAN", 3 * positions(np.dtype(dtype).itemsize))
    if threads > 1:
        monkeypatch.setattr(blocked, "_SERIAL_FLOPS", 0)
    cases = [
        ((2, 4, 20, 21), (OB + 2, 2, 3, 3), dict(padding=1, groups=2)),
        ((2, 4, 25, 23), (5, 4, 3, 3), dict(stride=2, padding=1)),
        ((1, 3, 30, 26), (9, 3, 7, 7), dict(stride=2, padding=3)),
        ((2, 4, 26, 24), (4, 2, 3, 3), dict(padding=2, dilation=2, groups=2)),
        ((2, 3, 21, 40), (6, 3, 2, 5), dict(padding=(0, 2), stride=(1, 3))),
        ((1, 8, 30, 30), (8, 2, 3, 3), dict(padding=(2, 0), stride=(2, 1), dilation=(1, 2), groups=4)),
        ((2, 3, 17, 19), (4, 3, 4, 4), dict(padding="same")),
        ((2, 3, 18, 20), (5, 3, 3, 3), dict(padding=1, padding_mode="reflect")),
        ((1, 4, 5, 18, 18), (4, 1, 3, 3, 3), dict(padding=1, groups=4)),
        ((2, 3, 7, 16, 18), (6, 3, 2, 3, 3), dict(padding=(1, 1, 0), stride=(2, 1, 2), dilation=(2, 1, 1))),
        ((2, 3, 20, 23), (5, 3, 3, 2), dict(stride=2)),  # the last column has no place: per-phase gathers
        ((1, 4, 21, 33), (6, 4, 3, 5), dict(stride=2, padding=(1, 2))),  # even padding: pairs from column 0
        ((2, 4, 25, 30), (6, 4, 1, 1), dict(stride=2)),  # kernels smaller than the stride: unread phases
        ((1, 3, 31, 29), (4, 3, 2, 2), dict(stride=3, padding=1, dilation=(1, 2))),
    ]
    splits = set()  # stride-2 rows split in one pass, or not
    for i, (xs, ws, kw) in enumerate(cases):
        x = rng.standard_normal(xs).astype(dtype)
        if i == 1:
            x = rng.standard_normal((xs[0], 2 * xs[1], *xs[2:])).astype(dtype)[:, ::2]
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        if i == 2:
            x[0, 1, 7, 9] = np.nan
            x[0, 2, 20, 0] = np.inf
        geometric = {k: v for k, v in kw.items() if k != "padding_mode"}
        spec = _spec(x, w, **geometric)
        with monkeypatch.context() as m:
            if i == 3:  # one run per item
                m.setattr(bplan, "_WINDOW_BYTES", 1)
            assert "plane_windows" in bplan.variants(spec)
            tb, _, rpi, hw = bplan.window_geometry(spec)
            assert (rpi == 1) == (i == 3) and rpi * tb <= bplan._SPAN
            # the furthest read of an item (its first run starts at most
            # Wq - 1 into its first row) stays inside its window
            wq = bplan.geometry(spec)[2]
            if spec.lifted("stride")[2] == 2:
                splits.add((xs[-1] - 1 + spec.kernel_pad_lo[2]) // 2 < wq)
            top = wq - 1 + rpi * tb - 1 + blocked.tap_offsets(spec, hw).max()
            assert top < bplan._window_elements(spec)
            with fastconv.set_config(num_threads=threads):
                plan = fastconv.explain(FUNCS[x.ndim - 2], x, w, b, method="blocked:plane_windows", **kw)
                assert plan.variant == "plane_windows"
                got = FUNCS[x.ndim - 2](x, w, b, method="blocked:plane_windows", **kw)
        xr = x.astype(np.float64)
        if "padding_mode" in kw:
            xr = np.pad(xr, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
            geometric.pop("padding")
        want = conv_nd(xr, w.astype(np.float64), b.astype(np.float64), **geometric)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        scale = np.abs(want[np.isfinite(want)]).max()
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
    assert splits == {True, False}
    used = bplan.used_phases(_spec(np.zeros((1, 4, 25, 30), dtype), np.zeros((6, 4, 1, 1), dtype), stride=2))
    np.testing.assert_array_equal(used, [[True, False], [False, False]])
    used = bplan.used_phases(
        _spec(np.zeros((1, 3, 31, 29), dtype), np.zeros((4, 3, 2, 2), dtype), stride=3, dilation=(1, 2))
    )
    np.testing.assert_array_equal(used, [[True, False, True], [True, False, True], [False, False, False]])
    # planes of few runs keep the padded copy
    assert not bplan.plane_windows(_spec(np.zeros((1, 4, 3, 9), dtype), np.zeros((2, 4, 1, 3), dtype)))


def test_small_problems_run_the_serial_kernels(rng, monkeypatch):
    # below _SERIAL_FLOPS the padding and kernel run on the calling thread
    # (a parallel launch costs more than the work), above in parallel; both
    # builds agree with the reference
    small = _spec(np.zeros((2, 8, 20, 20), np.float32), np.zeros((8, 8, 3, 3), np.float32), stride=2, padding=1)
    large = _spec(np.zeros((8, 64, 56, 56), np.float32), np.zeros((64, 64, 3, 3), np.float32), stride=2, padding=1)
    assert small.flops < blocked._SERIAL_FLOPS < large.flops
    for kernel in (blocked._pad_split, blocked._blocked_kernel, blocked._windowed_kernel, blocked._plane_window_kernel):
        assert blocked._serial(small, kernel) is blocked._SERIAL[kernel] is not kernel
        assert blocked._serial(large, kernel) is kernel
    x = rng.standard_normal((2, 8, 20, 20)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    want = conv_nd(x.astype(np.float64), w.astype(np.float64), stride=2, padding=1)
    for threshold in (blocked._SERIAL_FLOPS, 0):
        monkeypatch.setattr(blocked, "_SERIAL_FLOPS", threshold)
        with fastconv.set_config(num_threads=2):
            got = fastconv.conv2d(x, w, stride=2, padding=1, method="blocked")
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_the_avx2_kernel_shape(tmp_path):
    # without AVX-512 the micro-kernel keeps 4 channels x 3 vectors of 8
    # float32 lanes (16 registers); this machine has AVX-512, so a child
    # process is told it has not (its own Numba cache: the kernels' cache key
    # does not include the block shape) and runs that shape against the reference
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = """
import sys
import llvmlite.binding as llvm
host = llvm.get_host_cpu_features
def no_avx512():
    features = host()
    for name in list(features):
        if name.startswith("avx512"):
            features[name] = False
    return features
llvm.get_host_cpu_features = no_avx512
import numpy as np
import fastconv
from fastconv.kernels import microkernel
from tests.reference import conv_nd
assert (microkernel.OB, microkernel.LANES32) == (4, 8), (microkernel.OB, microkernel.LANES32)
rng = np.random.default_rng(0)
for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
    for xs, ws, kw in [((2, 6, 70), (8, 3, 3), dict(padding=2, groups=2, stride=2)),
                       ((2, 5, 9, 11), (9, 5, 3, 3), dict(padding=1)),
                       ((1, 3, 4, 4), (5, 3, 3, 3), dict(padding=1))]:
        x = rng.standard_normal(xs).astype(dtype); w = rng.standard_normal(ws).astype(dtype)
        f = fastconv.conv1d if len(xs) == 3 else fastconv.conv2d
        got = f(x, w, method="blocked", **kw)
        want = conv_nd(x.astype(np.float64), w.astype(np.float64), **kw)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
print("ok")
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=root)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stride1_shifted_over_its_parameters(dtype, rng, monkeypatch):
    # every case forced onto the shifted variant by name: the flipped kernel
    # as a stride-1 transposed convolution, padding (K-1)*d - p
    cases = [
        (1, (3, 5, 9), (OB + 3, 5, 3), dict(padding=1)),
        (2, (2, 6, 5, 7), (6, 3, 3, 3), dict(padding=1, groups=2, dilation=(1, 2))),
        (2, (2, 3, 6, 6), (5, 3, 4, 2), dict(padding="same")),  # asymmetric padding
        (2, (2, 3, 5, 5), (4, 3, 2, 2), dict(padding=3)),  # padding beyond the kernel's reach
        (2, (2, 3, 6, 5), (4, 3, 3, 3), dict(padding=2, padding_mode="reflect")),  # input pre-padded
        (2, (1, 2, 4, 6), (3, 2, 3, 3), dict(padding=1, padding_mode="circular")),
        (2, (3, 40, 7, 7), (2 * OB + 1, 40, 3, 3), dict(padding=1)),  # chunks of taps
        (3, (2, 3, 4, 5, 6), (4, 3, 3, 2, 3), dict(padding=1)),
    ]
    for nd, xs, ws, kwargs in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        spec = conv_spec(nd, x, w, b, 1, kwargs.get("padding", 0), kwargs.get("dilation", 1), kwargs.get("groups", 1),
                         kwargs.get("padding_mode", "zeros"), "blocked", None, None)[0]  # fmt: skip
        assert "shifted" in bplan.variants(spec), (xs, ws, kwargs)
        got = FUNCS[nd](x, w, b, method="blocked:shifted", **kwargs)
        want = conv_nd(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kwargs)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
