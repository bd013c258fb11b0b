"""The register-blocked transposed convolution: its shifted copy (images side
by side, rows sharing their padding), its phases (taps, bias-only phases,
phases with no outputs), its reads and its work split, against the
plain-NumPy reference.  (test_transpose.py runs it over the shared grid,
the adjoint identity and hypothesis cases too.)"""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv._spec import conv_transpose_spec
from fastconv.kernels import transpose_blocked as tb
from fastconv.plans import transpose_blocked as tplan
from fastconv.plans.shape import OB, positions

from .reference import conv_transpose_nd

FUNCS = {1: fastconv.conv_transpose1d, 2: fastconv.conv_transpose2d, 3: fastconv.conv_transpose3d}


def _spec(x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    nd = x.ndim - 2
    return conv_transpose_spec(nd, x, w, None, stride, padding, output_padding, groups, dilation, "blocked", None,
                               None)[0]  # fmt: skip


def _check(got, x, w, b, dtype, **kw):
    want = conv_transpose_nd(x.astype(np.float64), w.astype(np.float64), None if b is None else b.astype(np.float64),
                             **kw)  # fmt: skip
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))


def test_shifted_copy_puts_the_images_side_by_side(rng):
    # xp[c, z, y, n, j] = x[n, c, z + ed, y + eh, j + ew] for the columns that
    # hold input, zero elsewhere and on each plane's extra last row
    x = rng.standard_normal((3, 2, 3, 5, 6)).astype(np.float32)
    w = np.ones((2, 2, 3, 4, 3), np.float32)
    spec = _spec(x, w, stride=(1, 2, 2), padding=(1, 1, 2))
    lay = tplan.layout(spec)
    ed, eh, ew = lay.e_min
    lo, hi = lay.cols
    xp = np.full(3 * tplan.image_elements(spec) + tplan._slack(spec), np.nan, np.float32)
    tb._pad_shifted(x, xp, ed, eh, ew, lay.dp, lay.rows, lay.wp, lo, hi)
    want = np.zeros((2, lay.dp, lay.rows, 3, lay.wp), np.float32)
    for z in range(lay.dp):
        for y in range(lay.rows - 1):
            for j in range(lo, hi):
                if 0 <= z + ed < 3 and 0 <= y + eh < 5:
                    want[:, z, y, :, j] = x[:, :, z + ed, y + eh, j + ew].T
    got = xp[: want.size].reshape(want.shape)
    np.testing.assert_array_equal(got, want)
    assert not xp[want.size :].any()  # the slack after the last plane is zeroed


def test_rows_share_their_padding():
    # a 4x4 stride-2 layer on 14-wide input: phase planes 14 wide, the taps
    # reach one column either side, computed 15 wide (not 16)
    x = np.zeros((2, 4, 14, 14), np.float32)
    lay = tplan.layout(_spec(x, np.zeros((4, 4, 4, 4), np.float32), stride=2, padding=1))
    assert lay.q == (1, 14, 14) and lay.wp == 15 and lay.taps == 16
    assert len(lay.phases) == 4 and all(len(t) == 4 for _, t in lay.phases)
    # no left padding needed (every shift >= 0): the pitch keeps one zero column
    lay = tplan.layout(_spec(x, np.zeros((4, 4, 3, 3), np.float32), stride=2, padding=1, output_padding=1))
    assert lay.cols[0] == 0 and lay.wp == 15 and sorted(len(t) for _, t in lay.phases) == [1, 2, 2, 4]


def test_every_read_stays_inside_the_copy():
    # the last run of the last phase plane reads up to nrun*tb - 1 + the
    # largest tap offset past the last group's plane: inside images + slack
    for xs, ws, kw in [
        ((2, 3, 50), (3, 4, 5), dict(stride=3, padding=1, dilation=3)),
        ((3, 4, 7, 7), (4, 2, 4, 4), dict(stride=2, padding=1, groups=2)),
        ((1, 2, 9, 30), (2, 3, 2, 5), dict(stride=(1, 3), dilation=(2, 2), output_padding=(1, 2))),
        ((2, 2, 6, 5), (2, 2, 2, 2), dict(stride=1, padding=1)),
        ((2, 2, 3, 4, 5), (2, 3, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ]:
        x, w = np.zeros(xs, np.float32), np.zeros(ws, np.float32)
        spec = _spec(x, w, **kw)
        lay = tplan.layout(spec)
        step, nrun = tplan.runs(spec, spec.n)
        xoff, _ = tplan.tap_tables(spec, spec.n)
        cig = spec.c_in // spec.groups
        last = ((spec.groups - 1) * cig * lay.dp + lay.q[0] - 1) * lay.plane(spec.n)
        top = last + nrun * step - 1 + xoff.max()
        assert top < spec.n * tplan.image_elements(spec) + tplan._slack(spec), (xs, ws, kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_phases_taps_and_channel_blocks(dtype, rng):
    cases = [
        # bias-only phases (a 1-tap kernel, stride 3) and a phase with no outputs
        ((2, 3, 4), (3, 5, 1), dict(stride=3)),
        ((1, 2, 1), (2, 3, 1), dict(stride=3, output_padding=1)),
        # padding beyond the kernel's reach: every shift > 0, the copy starts inside the input
        ((2, 3, 6, 6), (3, 4, 2, 2), dict(padding=2)),
        # a partial last block of channels, groups, dilation, odd sizes
        ((2, 6, 7, 9), (6, OB + 1, 3, 3), dict(stride=2, padding=1, output_padding=1, groups=2)),
        ((1, 4, 5, 11), (4, 3, 3, 2), dict(stride=(3, 2), padding=(2, 1), dilation=(2, 3))),
        # more taps than one call takes: partial sums over chunks of channels
        ((2, 70, 5, 6), (70, 2 * OB + 3, 4, 4), dict(stride=2, padding=1)),
        ((3, 150, 9), (150, OB, 3), dict(stride=2, padding=1, output_padding=1)),
        ((1, 3, 3, 4, 5), (3, 5, 3, 2, 3), dict(stride=(2, 1, 2), padding=(1, 0, 1), dilation=(1, 2, 1))),
        # 1x1 stride 2 (every other output is bias), a 2x2 stride-2 layer
        ((2, 4, 5, 5), (4, 3, 1, 1), dict(stride=2)),
        ((2, 8, 7, 7), (8, OB, 2, 2), dict(stride=2)),
    ]
    for xs, ws, kw in cases:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[1] * kw.get("groups", 1)).astype(dtype)
        got = FUNCS[x.ndim - 2](x, w, b, method="blocked", **kw)
        assert got.dtype == dtype
        _check(got, x, w, b, dtype, **kw)


def test_every_micro_kernel_width(rng):
    # runs of 1, 2 and 3 vectors: the widest that does not round a plane's
    # positions (all images side by side) up by more than 3%
    lanes = positions(4, 1)
    seen = set()
    for xs in [(1, 3, lanes // 2, 8), (1, 3, 2 * lanes - 2), (2, 3, 6 * lanes - 2)]:  # (5, 2 and 12 vectors' worth)
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal((3, OB, *(3,) * (x.ndim - 2))).astype(np.float32)
        kw = dict(stride=1, padding=1)
        spec = _spec(x, w, **kw)
        seen.add(tplan.runs(spec, spec.n)[0] // lanes)
        _check(FUNCS[x.ndim - 2](x, w, method="blocked", **kw), x, w, None, np.float32, **kw)
    assert seen == {1, 2, 3}


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_and_image_blocks_under_a_small_workspace(threads, rng):
    x = rng.standard_normal((5, 4, 9, 10)).astype(np.float32)
    w = rng.standard_normal((4, 6, 4, 4)).astype(np.float32)
    kw = dict(stride=2, padding=1)
    spec = _spec(x, w, **kw)
    # the smallest limit that holds two images' copies (the partial sums get
    # a quarter of the limit, at least one run's)
    limit = next(lim for lim in range(1 << 10, 1 << 22, 256) if tplan.images_per_block(spec, lim, threads) >= 2)
    assert tplan.images_per_block(spec, limit, threads) == 2  # three blocks of images
    assert tplan.workspace(spec, limit, threads) <= limit
    with fastconv.set_config(num_threads=threads, workspace_limit=limit):
        got = fastconv.conv_transpose2d(x, w, method="blocked", **kw)
    _check(got, x, w, None, np.float32, **kw)


def test_refused_when_one_image_exceeds_the_workspace(rng):
    x = np.zeros((1, 64, 128, 128), np.float32)  # a 4.3 MB copy
    w = np.zeros((64, 8, 4, 4), np.float32)
    with fastconv.set_config(workspace_limit=1 << 20, num_threads=2):
        assert "blocked" not in fastconv.available_methods(fastconv.conv_transpose2d, x, w, stride=2, padding=1)
        with pytest.raises(ValueError, match="blocked"):
            fastconv.conv_transpose2d(x, w, stride=2, padding=1, method="blocked")
