"""Winograd float32 accuracy, measured against the float64 reference.

The dispatcher only offers a Winograd variant where this error stays inside
the float32 tolerance of the other tests (2e-4 of the output scale)."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv.plans.winograd import WINOGRAD_F4_MAX_CIN_FLOAT32

from .reference import conv_nd, receptive_mask


@pytest.mark.parametrize("method, bound", [("winograd_f2", 2e-5), ("winograd_f4", 1e-4)])
@pytest.mark.parametrize("cin", [16, 256, 1024])
def test_float32_error_within_tolerance(method, bound, cin, rng):
    x = rng.standard_normal((1, cin, 20, 20)).astype(np.float32)
    w = (rng.standard_normal((8, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)
    want = conv_nd(x, w, padding=1)
    got = fastconv.conv2d(x, w, padding=1, method=method)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < bound, f"{method} C_in={cin}: relative error {err:.2e}"


def test_f4_not_offered_beyond_its_channel_limit():
    x = np.zeros((1, WINOGRAD_F4_MAX_CIN_FLOAT32 + 1, 6, 6), np.float32)
    w = np.zeros((2, WINOGRAD_F4_MAX_CIN_FLOAT32 + 1, 3, 3), np.float32)
    assert "winograd_f4" not in fastconv.available_methods(fastconv.conv2d, x, w, padding=1)
    assert "winograd_f4" in fastconv.available_methods(fastconv.conv2d, x.astype(np.float64), w, padding=1)


@pytest.mark.parametrize("m", [2, 4])
def test_partial_tiles_and_groups(m, rng):
    """Output sizes that are not multiples of the tile, grouped, with bias."""
    for h, w_ in [(1, 1), (3, 5), (7, 9), (13, 6)]:
        x = rng.standard_normal((3, 4, h, w_))
        w = rng.standard_normal((6, 2, 3, 3))
        b = rng.standard_normal(6)
        got = fastconv.conv2d(x, w, b, padding=1, groups=2, method=f"winograd_f{m}")
        np.testing.assert_allclose(got, conv_nd(x, w, b, padding=1, groups=2), rtol=1e-9, atol=1e-9)


def test_row_transforms_equal_the_matrices(rng):
    """The vector loops the kernel runs (:mod:`fastconv.kernels.winograd_rows`)
    are the textbook matrices: B^T on each tile's m+2 columns of a row (tiles
    m apart), A^T written back as m consecutive columns per tile, and the
    row-of-tiles combinations, from offsets and over several vectors, in
    both float dtypes; nothing outside the vectors they cover is written."""
    from numba import njit

    from fastconv.kernels import winograd as W
    from fastconv.kernels import winograd_rows as R
    from fastconv.plans.shape import lanes

    def six(f):  # (an intrinsic is called from compiled code only)
        return njit(lambda a, b, c, d, e, g: f(a, b, c, d, e, g))

    def seven(f):
        return njit(lambda a, b, c, d, e, g, h: f(a, b, c, d, e, g, h))

    for dt in (np.float32, np.float64):
        n = lanes(np.dtype(dt).itemsize)
        tol = dict(rtol=1e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-13, atol=1e-13)
        for m, f_in, f_out, f_cols in (
            (2, R.rows_in2, R.rows_out2, R.cols_in2),
            (4, R.rows_in4, R.rows_out4, R.cols_in4),
        ):
            run_in, run_out, run_cols = six(f_in), six(f_out), seven(f_cols)
            for nvec in (1, 3):
                nt = nvec * n
                row = rng.standard_normal(5 + m * nt + R.source_vectors(m, np.dtype(dt).itemsize) * n).astype(dt)
                dst = np.full(7 + (m + 2) * (nt + 9), np.nan, dt)
                run_in(row, 5, nvec, dst, 7, nt + 9)
                cols = np.stack([row[5 + m * t : 5 + m * t + m + 2] for t in range(nt)], axis=1)
                got = np.stack([dst[7 + j * (nt + 9) : 7 + j * (nt + 9) + nt] for j in range(m + 2)])
                np.testing.assert_allclose(got, W._BT[m] @ cols, **tol)
                assert np.isnan(dst[:7]).all() and np.isnan(dst[7 + nt : 7 + nt + 9]).all()

                src = rng.standard_normal(3 + (m + 2) * (nt + 5)).astype(dt)
                orow = np.full(2 + m * nt + 4, np.nan, dt)
                run_out(src, 3, nt + 5, nvec, orow, 2)
                q = np.stack([src[3 + i * (nt + 5) : 3 + i * (nt + 5) + nt] for i in range(m + 2)])
                np.testing.assert_allclose(orow[2 : 2 + m * nt], (W._AT[m] @ q).T.reshape(-1), **tol)
                assert np.isnan(orow[:2]).all() and np.isnan(orow[2 + m * nt :]).all()

                out = np.full(1 + (m + 2) * (nt + 2), np.nan, dt)
                run_cols(src, 3, nt + 5, nvec, out, 1, nt + 2)
                got = np.stack([out[1 + i * (nt + 2) : 1 + i * (nt + 2) + nt] for i in range(m + 2)])
                np.testing.assert_allclose(got, W._BT[m] @ q, **tol)
    # and the three matrices make a convolution: A^T [(G g) * (B^T d)] == correlate(d, g)
    for m in (2, 4):
        d = rng.standard_normal(m + 2)
        g = rng.standard_normal(3)
        want = np.correlate(d, g, mode="valid")
        np.testing.assert_allclose(W._AT[m] @ ((W._G[m] @ g) * (W._BT[m] @ d)), want, rtol=1e-12, atol=1e-12)


def test_batched_row_transform_equals_the_matrices(rng):
    """Short rows staged side by side (``make_input_rows(m, ntw)``): each
    vector of tiles covers lanes/ntw rows of ntw tiles, row r's tile t read
    from its own span at r * (ntw*m + 2); B^T on each tile's m+2 columns, in
    both dtypes, several vectors, nothing written past them."""
    from numba import njit

    from fastconv.kernels import winograd as W
    from fastconv.kernels import winograd_rows as R
    from fastconv.plans.shape import lanes

    def six(f):
        return njit(lambda a, b, c, d, e, g: f(a, b, c, d, e, g))

    for dt in (np.float32, np.float64):
        n = lanes(np.dtype(dt).itemsize)
        tol = dict(rtol=1e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-13, atol=1e-13)
        for m in (2, 4):
            for ntw in R.BATCHED_TILES:
                if ntw >= n or n % ntw:
                    continue
                run = six(getattr(R, f"rows_in{m}_by{ntw}"))
                pitch = R.batched_pitch(m, ntw)
                nvec = 2
                rows = nvec * n // ntw
                staged = rng.standard_normal(rows * pitch + 2 * n).astype(dt)
                dst = np.full((m + 2) * (nvec * n + 3), np.nan, dt)
                probe = run(staged, 0, nvec, dst, 0, nvec * n + 3)
                assert probe == 0
                cols = np.stack(
                    [staged[r * pitch + m * t : r * pitch + m * t + m + 2] for r in range(rows) for t in range(ntw)],
                    axis=1,
                )
                got = dst.reshape(m + 2, nvec * n + 3)
                np.testing.assert_allclose(got[:, : nvec * n], W._BT[m] @ cols, err_msg=str((dt, m, ntw)), **tol)
                assert np.isnan(got[:, nvec * n :]).all()
                staged[(rows - 1) * pitch + m * (ntw - 1) + m + 1] = np.inf  # the last tile's last column
                assert np.isnan(run(staged, 0, nvec, dst, 0, nvec * n + 3))


def _guarded(shape, dtype):
    """An array of zeros whose last element ends a page followed by an
    unreadable one: a read past its end faults."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    span = -(-nbytes // page) * page
    buf = mmap.mmap(-1, span + page)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    assert libc.mprotect(ctypes.c_void_p(addr + span), page, 0) == 0  # PROT_NONE
    arr = np.frombuffer(buf, dtype, count=int(np.prod(shape)), offset=span - nbytes).reshape(shape)
    _guarded.keep.append(buf)  # (the mapping must outlive the array)
    return arr


_guarded.keep = []


def test_weight_transform_block_against_numpy(rng):
    """``_transform_block`` (``make_weight_transform``'s loops): U[k] of each
    (input row, output channel) pair of a block, G_h g G_w^T against numpy
    in float64, for 3x3 and 1x3 kernels and both dtypes; rows in whole
    vectors and a partial last one (only its rows read and stored), a block
    with channels past w's (zeros) and one wholly past them, offsets into
    U; nothing written outside U's rows, nothing read past w (it ends at an
    unreadable page); a NaN or Inf in a main-loop or a tail row reported,
    none in the row past the block."""
    from fastconv.kernels import winograd as W
    from fastconv.plans.shape import OB, lanes

    n_out, K = OB + 3, 13
    for dt in (np.float32, np.float64):
        vl = lanes(np.dtype(dt).itemsize)
        tol = dict(rtol=1e-5, atol=1e-6) if dt == np.float32 else dict(rtol=1e-12, atol=1e-13)
        for mh, mw in ((1, 2), (1, 4), (2, 2), (4, 4)):
            R = 3 if mh == 1 else 9
            gh = W._G[mh] if mh > 1 else np.ones((1, 1))
            a2 = gh.shape[0] * (mw + 2)
            w = _guarded((n_out, K, R), dt)
            w[...] = rng.standard_normal(w.shape)
            want = np.einsum("iq,ocqr,jr->ocij", gh, w.astype(np.float64).reshape(n_out, K, -1, 3), W._G[mw])
            want = want.reshape(n_out, K, a2)
            for o0 in (0, OB, 2 * OB):
                for c0, c1 in ((2, 13), (4, 12), (0, 1), (5, 5)):
                    n = c1 - c0
                    base, kstride = 3, n * OB + 5
                    uf = np.full(base + a2 * kstride, np.nan, dt)
                    assert W._transform_block(w, o0, c0, c1, mh, mw, vl, uf, base, kstride) == 0
                    got = uf[base:].reshape(a2, kstride)
                    block = np.zeros((a2, n, OB))
                    o1 = min(n_out, o0 + OB)
                    if o1 > o0:
                        block[:, :, : o1 - o0] = want[o0:o1, c0:c1].transpose(2, 1, 0)
                    err = str((dt, mh, o0, c0))
                    np.testing.assert_allclose(got[:, : n * OB], block.reshape(a2, -1), err_msg=err, **tol)
                    assert np.isnan(got[:, n * OB :]).all() and np.isnan(uf[:base]).all()
            uf = np.zeros(a2 * 11 * OB, dt)
            for c in (3, 12):  # a row of a whole vector, the partial last one
                bad = w.copy()
                bad[OB + 1, c, R - 1] = np.inf
                assert np.isnan(W._transform_block(bad, OB, 2, 13, mh, mw, vl, uf, 0, 11 * OB))
            bad = w.copy()
            bad[OB + 1, 11, 0] = np.nan  # past the last row of the block of rows 2..10: not read
            assert W._transform_block(bad, OB, 2, 11, mh, mw, vl, uf, 0, 9 * OB) == 0


@pytest.mark.parametrize("m", [2, 4])
def test_short_rows_against_reference(m, rng):
    """Output rows of 2, 4 and 8 tiles, whose input rows are staged side by
    side and transformed several rows per vector (and whose outputs are
    written back the same way): both dtypes, rows in several blocks, column
    padding on either side, rows in the padding, groups and bias, a depth
    kernel (the depth-ring schedule) and a plain one."""
    cases = [
        (2, (3, 3, 6, 8), (4, 3, 3, 3), dict(padding=1)),
        (2, (2, 2, 14, 14), (3, 2, 3, 3), dict(padding=1)),
        (2, (1, 2, 9, 30), (2, 2, 3, 3), dict(padding=(0, 1))),
        (2, (2, 2, 9, 16), (3, 2, 3, 3), dict(padding=1)),
        (2, (1, 2, 7, 4), (2, 2, 3, 3), dict(padding=(3, 2))),
        (2, (40, 4, 8, 8), (4, 2, 3, 3), dict(padding=1, groups=2)),
        (3, (1, 2, 4, 6, 8), (3, 2, 2, 3, 3), dict(padding=1)),
    ]
    for dt, tol in ((np.float64, 1e-10), (np.float32, 2e-5)):
        for nd, xs, ws, kw in cases:
            x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
            got = FUNCS[nd](x.astype(dt), w.astype(dt), b.astype(dt), method=f"winograd_f{m}", **kw)
            want = conv_nd(x, w, b, **kw)
            err = np.abs(got - want).max() / np.abs(want).max()
            assert err < tol, (dt, xs, kw, err)


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_weight_transform_pieces(threads, rng):
    """A single tile block transforms its weights itself, piece by piece
    (FUSED_OC output channels by FUSED_ROWS input rows, GEMMs adding to M
    after the first piece): more output channels than a piece with a partial
    last one past C_out, input rows in three pieces with an odd last one (its
    scalar tail), a kernel one row high, a 3-D kernel flattened into the
    rows; both dtypes, one and two threads (output channels split)."""
    from fastconv._spec import conv_spec
    from fastconv.plans.winograd import FUSED_OC, FUSED_ROWS, layout

    cin, cout = 2 * FUSED_ROWS + 3, 2 * FUSED_OC + 22
    cases = [
        (2, (2, cin, 6, 7), (cout, cin, 3, 3), dict(padding=1)),
        (2, (1, cin, 3, 9), (cout, cin, 1, 3), dict(padding=(0, 1))),
        (3, (1, 35, 3, 5, 6), (cout, 35, 2, 3, 3), dict(padding=1, stride=(2, 1, 1))),
    ]
    with fastconv.set_config(num_threads=threads):
        for dt, tol in ((np.float64, 1e-10), (np.float32, 5e-5)):
            for nd, xs, ws, kw in cases:
                x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
                for m in (2, 4):
                    spec = conv_spec(nd, x, w, None, kw.get("stride", 1), kw["padding"], 1, 1, "zeros", "auto", None,
                                     None)[0]  # fmt: skip
                    assert layout(spec, m, 64 << 20, threads).fused, (xs, m)
                    got = FUNCS[nd](x.astype(dt), w.astype(dt), b.astype(dt), method=f"winograd_f{m}", **kw)
                    want = conv_nd(x, w, b, **kw)
                    err = np.abs(got - want).max() / np.abs(want).max()
                    assert err < tol, (dt, xs, m, err)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("m", [2, 4])
def test_weight_transform_against_numpy(m, parallel, rng, monkeypatch):
    """U = G g G^T per (o, c, depth tap), blocks of output channels, zero rows
    past O; on the calling thread (small U) and on Numba's threads (large)."""
    from fastconv.kernels import winograd as W

    monkeypatch.setattr(W, "_SERIAL_U_BELOW", 0 if parallel else 1 << 40)

    from fastconv.plans.shape import OB
    from fastconv.plans.winograd import u_pitch

    w = rng.standard_normal((OB + 3, 3, 2, 3, 3))
    u = W.transform_weights(w, m, m, o_block=OB).copy()
    g = W._G[m]
    a2 = (m + 2) ** 2
    want = np.einsum("ik,ocdkl,jl->ijocd", g, w, g).reshape(a2, OB + 3, 3 * 2)
    # packed for the micro-kernel: per block of OB output channels, (C*KD, OB)
    assert u.shape == (2, a2, u_pitch(OB, 6, 8))
    full = W.unpacked(u, OB, 6)  # (blocks, a2, OB, C*KD)
    np.testing.assert_allclose(
        full.transpose(1, 0, 2, 3).reshape(a2, 2 * OB, 6)[:, : OB + 3], want, rtol=1e-12, atol=1e-14
    )
    assert not full[1, :, 3:].any()  # rows past O are zero
    with pytest.raises(ValueError, match="multiple"):
        W.transform_weights(w, m, m, o_block=OB + 1)
    # a kernel one row high: F(m, 3) along W only
    w1 = rng.standard_normal((4, 2, 1, 1, 3))
    u1 = W.unpacked(W.transform_weights(w1, 1, m, o_block=OB), OB, 2)
    np.testing.assert_allclose(u1[0, :, :4], np.einsum("jl,ocl->joc", g, w1[:, :, 0, 0]), rtol=1e-12)


# (nd, x shape, w shape, keyword arguments): partial tiles, 1-wide inputs,
# depth stride/dilation/padding (stacked into the GEMMs), 1-high kernels
WINOGRAD_CASES = [
    (1, (2, 3, 17), (4, 3, 3), dict(padding=1)),
    (1, (1, 2, 1), (3, 2, 3), dict(padding=2)),
    (1, (3, 4, 9), (6, 2, 3), dict(padding="same", groups=2)),
    (1, (2, 3, 1001), (4, 3, 3), dict(padding=1)),  # rows of tiles cut in pieces
    (2, (1, 2, 3, 1400), (3, 2, 3, 3), dict(padding=(1, 0))),
    (2, (2, 3, 7, 9), (5, 3, 3, 3), dict(padding=1)),
    (2, (1, 3, 8, 9), (4, 3, 1, 3), dict(padding=(2, 1))),
    (2, (2, 2, 5, 3), (3, 2, 3, 3), dict(padding=(0, 2))),
    (3, (2, 3, 5, 6, 7), (4, 3, 3, 3, 3), dict(padding=1)),
    (3, (1, 2, 7, 5, 9), (3, 2, 2, 3, 3), dict(padding=(1, 1, 0), stride=(2, 1, 1), dilation=(2, 1, 1))),
    (3, (1, 2, 4, 6, 6), (3, 2, 1, 3, 3), dict(padding=(0, 1, 1))),
    # one row high with depth taps: the row transform writes V itself, zero
    # rows for the depth padding; many short rows per block
    (3, (1, 2, 5, 4, 9), (3, 2, 3, 1, 3), dict(padding=(1, 0, 1))),
    (1, (40, 3, 5), (4, 3, 3), dict(padding=1)),
]
FUNCS = {1: fastconv.conv1d, 2: fastconv.conv2d, 3: fastconv.conv3d}


@pytest.mark.parametrize("m", [2, 4])
def test_one_and_three_dimensional_against_reference(m, rng):
    for nd, xs, ws, kw in WINOGRAD_CASES:
        x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
        method = f"winograd_f{m}"
        assert method in fastconv.available_methods(FUNCS[nd], x, w, **kw), (xs, ws, kw)
        got = FUNCS[nd](x, w, b, method=method, **kw)
        np.testing.assert_allclose(got, conv_nd(x, w, b, **kw), rtol=1e-10, atol=1e-10, err_msg=str((xs, ws, kw)))


def test_not_offered_where_the_tiles_do_not_apply():
    x = np.zeros((1, 2, 9, 9), np.float32)
    for w_shape, kw in [((2, 2, 3, 3), dict(stride=2)), ((2, 2, 5, 5), {}), ((2, 2, 3, 1), {}), ((2, 2, 2, 3), {}),
                        ((2, 2, 1, 3), dict(dilation=2))]:  # fmt: skip
        methods = fastconv.available_methods(fastconv.conv2d, x, np.zeros(w_shape, np.float32), **kw)
        assert "winograd_f4" not in methods and "winograd_f2" not in methods, (w_shape, kw)
    w1 = np.zeros((2, 2, 3), np.float32)
    assert "winograd_f4" not in fastconv.available_methods(fastconv.conv1d, x[:, :, 0], w1, dilation=2)
    x3, w3 = np.zeros((1, 2, 4, 9, 9), np.float32), np.zeros((2, 2, 3, 3, 3), np.float32)
    assert "winograd_f4" not in fastconv.available_methods(fastconv.conv3d, x3, w3, dilation=(1, 2, 2))
    assert "winograd_f4" in fastconv.available_methods(fastconv.conv2d, x, np.zeros((2, 2, 3, 3)), dilation=2)


@pytest.mark.parametrize("m", [2, 4])
def test_dilated_by_input_phases(m, rng):
    """A dilated 3x3 conv2d runs as the undilated convolution of its input
    phases: dilations that do / do not divide the size, unequal per axis,
    padding wider and narrower than the dilation, 'same', reflect padding,
    groups and bias; the phase spec's shapes."""
    from fastconv._spec import conv_spec
    from fastconv.plans.winograd import phase_spec

    cases = [
        ((2, 3, 28, 28), dict(padding=2, dilation=2)),
        ((1, 2, 9, 11), dict(padding=(1, 3), dilation=(2, 3))),
        ((2, 2, 5, 6), dict(padding=0, dilation=2)),
        ((1, 2, 13, 10), dict(padding="same", dilation=(3, 2))),
        ((1, 2, 9, 9), dict(padding=2, dilation=2, padding_mode="reflect")),
        ((2, 4, 9, 9), dict(padding=2, dilation=2, groups=2)),
        ((1, 2, 2, 3), dict(padding=3, dilation=3)),  # phases with no input row or column
        ((1, 2, 4, 7), dict(padding=(0, 4), dilation=(1, 4))),
    ]
    for xs, kw in cases:
        x = rng.standard_normal(xs)
        w = rng.standard_normal((4, xs[1] // kw.get("groups", 1), 3, 3))
        b = rng.standard_normal(4)
        got = fastconv.conv2d(x, w, b, method=f"winograd_f{m}", **kw)
        np.testing.assert_allclose(got, conv_nd(x, w, b, **kw), rtol=1e-10, atol=1e-10, err_msg=str((xs, kw)))
    spec = conv_spec(
        2, np.zeros((2, 3, 28, 27)), np.zeros((4, 3, 3, 3)), None, 1, 2, 2, 1, "zeros", "auto", None, None
    )[0]
    sub = phase_spec(spec)
    assert sub.n == 8 and sub.out_spatial == (14, 14) and sub.in_spatial == (16, 16) and sub.dilation == (1, 1)


@pytest.mark.parametrize("m", [2, 4])
def test_output_channel_split_and_small_workspace(m, rng):
    """Few tiles and many output channels: work items split the output
    channels (the last block partial); a tight workspace_limit: fewer tile
    rows a block.  Same answers, and the planned workspace stays in the limit."""
    from fastconv._spec import conv_spec
    from fastconv.plans.winograd import layout

    x = rng.standard_normal((1, 6, 4, 4)).astype(np.float32)
    w = rng.standard_normal((37, 6, 3, 3)).astype(np.float32)
    spec = conv_spec(2, x, w, None, 1, 1, 1, 1, "zeros", "auto", None, None)[0]
    lay = layout(spec, m, 1 << 26, 4)
    assert lay.n_oblocks > 1 and lay.n_oblocks * lay.o_block > 37
    want = conv_nd(x, w, padding=1)
    with fastconv.set_config(num_threads=4):
        check32(fastconv.conv2d(x, w, padding=1, method=f"winograd_f{m}"), want)
    xl = rng.standard_normal((2, 8, 30, 30)).astype(np.float32)
    wl = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    spec = conv_spec(2, xl, wl, None, 1, 1, 1, 1, "zeros", "auto", None, None)[0]
    limit = 200_000
    lay = layout(spec, m, limit, 2)
    assert lay.rows_per_block < layout(spec, m, 1 << 26, 2).rows_per_block
    assert lay.workspace <= limit
    with fastconv.set_config(workspace_limit=limit):
        check32(fastconv.conv2d(xl, wl, padding=1, method=f"winograd_f{m}"), conv_nd(xl, wl, padding=1))
    # one tile row over the limit: the row is cut in pieces
    x1 = rng.standard_normal((1, 8, 3000)).astype(np.float32)
    w1 = rng.standard_normal((8, 8, 3)).astype(np.float32)
    spec = conv_spec(1, x1, w1, None, 1, 1, 1, 1, "zeros", "auto", None, None)[0]
    lay = layout(spec, m, 40_000, 2)
    assert lay.seg < layout(spec, m, 1 << 26, 2).seg and lay.workspace <= 40_000
    with fastconv.set_config(workspace_limit=40_000):
        check32(fastconv.conv1d(x1, w1, padding=1, method=f"winograd_f{m}"), conv_nd(x1, w1, padding=1))


def check32(got, want):
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * scale)


def test_kept_buffers_do_not_leak_between_calls(rng):
    """Work buffers are reused across calls: a wide padded call, then a narrow
    unpadded one, then float64 (its own buffers) must each be exact."""
    for xs, pad, dt in [((1, 3, 9, 40), 1, np.float64), ((2, 3, 6, 7), 0, np.float64), ((1, 2, 5, 11), 1, np.float32)]:
        x = rng.standard_normal(xs).astype(dt)
        w = rng.standard_normal((4, xs[1], 3, 3)).astype(dt)
        got = fastconv.conv2d(x, w, padding=pad, method="winograd_f4")
        want = conv_nd(x, w, padding=pad)
        if dt == np.float64:
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        else:
            check32(got, want)


@pytest.mark.parametrize("nd, cin", [(1, 256), (3, 64)])
def test_float32_error_one_and_three_dimensional(nd, cin, rng):
    """F(4) along W only (1-D) and depth taps stacked into the GEMM (3-D,
    inner dimension 3 x C_in): inside the float32 tolerance too."""
    spatial = (40,) if nd == 1 else (5, 12, 12)
    x = rng.standard_normal((1, cin, *spatial)).astype(np.float32)
    w = (rng.standard_normal((8, cin) + (3,) * nd) / np.sqrt(3**nd * cin)).astype(np.float32)
    want = conv_nd(x, w, padding=1)
    got = FUNCS[nd](x, w, padding=1, method="winograd_f4")
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < 1e-4, err


@pytest.mark.parametrize("m", [2, 4])
def test_depth_ring_against_reference(m, rng):
    """conv3d with depth stride/dilation 1 keeps the last kd slices' transforms
    in a ring: depth taps 2..5, depth padding wider than the taps reach, a
    depth of 1, output channels split across threads, rows cut by a tight
    workspace, and the fallback to the flat schedule when even one tile row
    does not fit."""
    from fastconv._spec import conv_spec
    from fastconv.plans.winograd import depth_ring

    cases = [
        ((2, 3, 6, 5, 7), (4, 3, 2, 3, 3), dict(padding=(0, 1, 1))),
        ((1, 2, 7, 6, 5), (3, 2, 3, 3, 3), dict(padding=1)),
        ((1, 2, 4, 5, 5), (3, 2, 3, 3, 3), dict(padding=(3, 1, 0))),
        ((1, 3, 1, 4, 6), (2, 3, 5, 3, 3), dict(padding=(2, 1, 1))),
        ((1, 2, 9, 3, 3), (21, 2, 5, 3, 3), dict(padding=(1, 1, 1))),
    ]
    for xs, ws, kw in cases:
        x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
        spec = conv_spec(3, x, w, b, 1, kw["padding"], 1, 1, "zeros", "auto", None, None)[0]
        assert depth_ring(spec, m, 1 << 26, 2) is not None
        got = fastconv.conv3d(x, w, b, method=f"winograd_f{m}", **kw)
        np.testing.assert_allclose(got, conv_nd(x, w, b, **kw), rtol=1e-10, atol=1e-10, err_msg=str((xs, ws, kw)))
    x = rng.standard_normal((1, 4, 6, 40, 40))
    w = rng.standard_normal((5, 4, 3, 3, 3))
    spec = conv_spec(3, x, w, None, 1, 1, 1, 1, "zeros", "auto", None, None)[0]
    big = depth_ring(spec, m, 1 << 26, 2)
    assert big.n_blocks >= 2  # one image: the rows are split so that both threads work
    tight = depth_ring(spec, m, big.workspace // 2, 2)
    assert tight is not None and tight.rows_per_block < big.rows_per_block and tight.workspace <= big.workspace // 2
    from fastconv.plans.winograd import layout

    # a limit that even one tile row of the ring exceeds, while the flat schedule fits
    flat_only = next(
        lim for lim in range(big.workspace // 4, 0, -1000)
        if depth_ring(spec, m, lim, 2) is None and layout(spec, m, lim, 2).workspace <= lim
    )  # fmt: skip
    for limit in (big.workspace // 2, flat_only):
        with fastconv.set_config(workspace_limit=limit):
            got = fastconv.conv3d(x, w, padding=1, method=f"winograd_f{m}")
        np.testing.assert_allclose(got, conv_nd(x, w, padding=1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("threads", [1, 3])
def test_thread_counts(threads, rng):
    """Work items are dealt to however many threads run (fewer items than
    threads, a count that does not divide them)."""
    cases = [
        (fastconv.conv2d, (3, 5, 11, 13), (7, 5, 3, 3), dict(padding=1)),
        (fastconv.conv3d, (1, 3, 5, 6, 7), (4, 3, 3, 3, 3), dict(padding=1)),
        (fastconv.conv1d, (2, 3, 600), (4, 3, 3), dict(padding=1)),
    ]
    with fastconv.set_config(num_threads=threads):
        for f, xs, ws, kw in cases:
            x, w = rng.standard_normal(xs), rng.standard_normal(ws)
            for m in ("winograd_f2", "winograd_f4"):
                np.testing.assert_allclose(f(x, w, method=m, **kw), conv_nd(x, w, **kw), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_kernel_reports_non_finite_input(value, rng, tmp_path):
    """The input is not scanned before a Winograd run: the kernel's loads
    probe it and raise NonFiniteInput (1-D, 2-D, dilated and depth-ring 3-D
    paths, an element at the right edge of a row's last whole vector of
    tiles), and the plan then runs a method that keeps NaN/Inf local.  The
    weights are not scanned either: the weight transform probes what it
    reads (U stored; U made piece by piece in the fused layout; a kernel
    one row high whose odd last input row is a scalar tail), both dtypes.
    Autotune times the candidates on finite operands instead of stopping."""
    from fastconv._spec import ConvOperands, conv_spec
    from fastconv.dispatch.selector import select
    from fastconv.kernels import NonFiniteInput
    from fastconv.kernels import winograd as W

    cases = [
        (1, (2, 3, 70), (4, 3, 3), dict(padding=1), (1, 2, 69)),
        (2, (2, 3, 9, 66), (4, 3, 3, 3), dict(padding=1), (0, 1, 4, 65)),
        (2, (1, 2, 11, 12), (3, 2, 3, 3), dict(padding=2, dilation=2), (0, 1, 10, 0)),
        (3, (1, 2, 5, 6, 7), (3, 2, 3, 3, 3), dict(padding=1), (0, 0, 4, 5, 6)),
    ]
    for nd, xs, ws, kw, index in cases:
        x, w = rng.standard_normal(xs), rng.uniform(0.5, 1.5, ws)
        x[index] = value
        spec, ops, _ = conv_spec(nd, x, w, None, 1, kw["padding"], kw.get("dilation", 1), 1, "zeros", "winograd_f4",
                                 None, None)  # fmt: skip
        out = np.empty((spec.n, spec.c_out, *spec.lifted("out_spatial")))
        with pytest.raises(NonFiniteInput):
            W.conv_winograd_f4(spec, ConvOperands(x=ops.x, w=ops.w, b=None), out, 2)
        plan = select(spec, ops)
        assert plan.method == "winograd_f4"  # only the weights were looked at
        mask = receptive_mask(x.shape, index, w.shape, **kw)
        for method in ("winograd_f2", "winograd_f4", "auto"):
            y = FUNCS[nd](x, w, method=method, **kw)
            np.testing.assert_array_equal(~np.isfinite(y), mask, err_msg=str((xs, method)))
    wcases = [
        ((1, 2, 8, 8), (3, 2, 3, 3), dict(padding=1), (1, 0, 1, 1)),  # fused
        ((1, 2, 8, 8), (3, 2, 3, 3), dict(padding=1), (2, 1, 2, 0)),
        ((40, 2, 8, 8), (3, 2, 3, 3), dict(padding=1), (1, 1, 0, 0)),  # U stored (several tile blocks)
        ((1, 3, 4, 9), (2, 3, 1, 3), dict(padding=(0, 1)), (1, 2, 0, 2)),  # one row high, the last input row
    ]
    for dt in (np.float64, np.float32):
        for xs, ws, kw, index in wcases:
            x, w = rng.standard_normal(xs).astype(dt), rng.standard_normal(ws).astype(dt)
            w[index] = value
            spec, ops, _ = conv_spec(2, x, w, None, 1, kw["padding"], 1, 1, "zeros", "winograd_f4", None, None)
            assert select(spec, ops).method == "winograd_f4"  # the weights were not looked at
            out = np.empty((spec.n, spec.c_out, *spec.lifted("out_spatial")), dt)
            for run in (W.conv_winograd_f2, W.conv_winograd_f4):
                with pytest.raises(NonFiniteInput):
                    run(spec, ConvOperands(x=ops.x, w=ops.w, b=None), out, 2)
            with np.errstate(invalid="ignore"):
                want = ~np.isfinite(conv_nd(x.astype(np.float64), w.astype(np.float64), **kw))
            assert want[:, index[0]].all() and not want[:, [o for o in range(ws[0]) if o != index[0]]].any()
            for method in ("winograd_f2", "winograd_f4", "auto"):
                y = fastconv.conv2d(x, w, method=method, **kw)
                np.testing.assert_array_equal(~np.isfinite(y), want, err_msg=str((dt, xs, index, method)))
    x, w = rng.standard_normal((1, 2, 8, 8)), rng.standard_normal((3, 2, 3, 3))
    x[0, 1, 3, 3] = value
    with fastconv.set_config(autotune=True, cache_dir=str(tmp_path)):
        y = fastconv.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(~np.isfinite(y), receptive_mask(x.shape, (0, 1, 3, 3), w.shape, padding=1))
