"""The ``small`` method of convolution and transposed convolution: one serial
scalar loop over the output,
for problems so small that any other method's setup -- a parallel region's
start, weight packing, tiles, a padded copy -- costs more than the
arithmetic (a 1x1x8x8 3x3 layer: 576 multiply-adds, a fraction of a
microsecond).  Every stride, dilation, group and zero padding; the taps that
fall in the padding are skipped, not multiplied by zeros (NaN/Inf stay in
their windows).  Releases the GIL; a small function: it compiles in about a
second per dtype.  The loop order (output element outermost, taps inside,
one accumulator) was measured only against the other methods on the
problems it is offered for (<= 8192 multiply-adds: 1x1x8x8 3x3 5.3 us
against depthwise 9, direct 13); it is not meant to be fast beyond them."""

from __future__ import annotations

import numpy as np

from .._config import numba_jit


@numba_jit()
def small_conv_kernel(x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, groups):
    """out[n, co] = b[co] + sum over (ci in co's group, kd, kh, kw) of w * x;
    x (N, C_in, D, H, W), w (C_out, C_in/groups, KD, KH, KW), out (N, C_out,
    OD, OH, OW); zero padding (pd, ph, pw) on the low side."""
    N, _, D, H, W = x.shape
    C_out, Cig, KD, KH, KW = w.shape
    OD, OH, OW = out.shape[2], out.shape[3], out.shape[4]
    cog = C_out // groups
    zero = np.zeros(1, x.dtype)[0]
    for n in range(N):
        for co in range(C_out):
            c0 = (co // cog) * Cig
            for od in range(OD):
                for oh in range(OH):
                    for ow in range(OW):
                        acc = b[co]
                        for c in range(Cig):
                            for kd in range(KD):
                                i_d = od * sd - pd + kd * dd
                                in_d = 0 <= i_d < D
                                for kh in range(KH):
                                    i_h = oh * sh - ph + kh * dh
                                    in_h = in_d and 0 <= i_h < H
                                    for kw in range(KW):
                                        i_w = ow * sw - pw + kw * dw
                                        if in_h and 0 <= i_w < W:
                                            acc += w[co, c, kd, kh, kw] * x[n, c0 + c, i_d, i_h, i_w]
                                        else:  # (a padding zero: a NaN/Inf weight still makes NaN, as torch)
                                            acc += w[co, c, kd, kh, kw] * zero
                        out[n, co, od, oh, ow] = acc


@numba_jit()
def small_transpose_kernel(x, w, b, out, sd, sh, sw, dd, dh, dw, pd, ph, pw, groups):
    """Transposed convolution in scatter form: out[n, co] = b[co], then every
    input x[n, ci, i] times every tap w[ci, co % (C_out/groups), k] of co's
    group is added at o = s*i - p + d*k when o is inside the output (one
    multiply-add per input and tap: no division); x (N, C_in, D, H, W), w
    (C_in, C_out/groups, KD, KH, KW)."""
    N, C_in, D, H, W = x.shape
    _, cog, KD, KH, KW = w.shape
    C_out, OD, OH, OW = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    cig = C_in // groups
    for n in range(N):
        for co in range(C_out):
            bv = b[co]
            for od in range(OD):
                for oh in range(OH):
                    for ow in range(OW):
                        out[n, co, od, oh, ow] = bv
        for ci in range(C_in):
            co0 = (ci // cig) * cog
            for j in range(cog):
                for i_d in range(D):
                    for kd in range(KD):
                        od = i_d * sd - pd + kd * dd
                        if od < 0 or od >= OD:
                            continue
                        for i_h in range(H):
                            for kh in range(KH):
                                oh = i_h * sh - ph + kh * dh
                                if oh < 0 or oh >= OH:
                                    continue
                                for i_w in range(W):
                                    v = x[n, ci, i_d, i_h, i_w]
                                    for kw in range(KW):
                                        ow = i_w * sw - pw + kw * dw
                                        if 0 <= ow < OW:
                                            out[n, co0 + j, od, oh, ow] += v * w[ci, j, kd, kh, kw]


def conv_small(spec, ops, out: np.ndarray, num_threads: int) -> None:
    """Run the small method for ``spec`` into the 5-D ``out``."""
    prepare_small(spec, num_threads)(ops, out)


def prepare_small(spec, num_threads: int):
    """The small runner for ``spec`` with its arguments fixed (a repeated call's)."""
    fixed = (*spec.lifted("stride"), *spec.lifted("dilation"), *spec.kernel_pad_lo, spec.groups)
    zeros = np.zeros(spec.c_out, dtype=spec.dtype)  # (no bias: shared by the calls, never written)
    kernel = small_transpose_kernel if spec.transposed else small_conv_kernel

    def run(ops, out: np.ndarray) -> None:
        kernel(ops.x, ops.w, ops.b if ops.b is not None else zeros, out, *fixed)

    if spec.padding_mode == "zeros":
        run.whole = _whole(spec, kernel, fixed, zeros)
    return run


def _whole(spec, kernel, fixed: tuple, zeros: np.ndarray):
    """``whole(x, w, b)``: the call on the caller's own arrays, the 5-D result
    (None where one is not kernel-ready as given: the operands path then
    runs).  A tiny call's Python is most of its time: this skips the
    operands, their checks' copies and the result's second reshape."""
    from .._spec import lifted_operand_shapes, ready_as_given

    dtype = spec.dtype
    x5, w5 = lifted_operand_shapes(spec)
    shape5 = (spec.n, spec.c_out, *spec.lifted("out_spatial"))
    empty = np.empty

    def whole(x, w, b):
        if not (ready_as_given(x, dtype) and ready_as_given(w, dtype)):
            return None
        if b is None:
            b = zeros
        elif not ready_as_given(b, dtype):
            return None
        out = empty(shape5, dtype)
        kernel(x.reshape(x5), w.reshape(w5), b, out, *fixed)
        return out

    return whole
