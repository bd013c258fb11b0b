"""A register-blocked multiply-accumulate micro-kernel, written in LLVM IR.

Numba cannot keep a block of accumulators in vector registers across a loop:
a scalar-per-lane formulation is either vectorised along the reduction loop
(wrong axis, spills) or left scalar (measured: 6-14 GFLOP/s on one Zen 4
core), and an accumulator array lives in memory (one load and store per FMA).
So the hot loop is an ``@intrinsic`` that emits the loop itself with explicit
``<VW x float>`` accumulators:

    for r in range(r0, r1):
        xv[v]   = x[xbase + xoff[r] + v*VW : ... + VW]      for v < NV
        acc[o][v] += broadcast(w[wbase + r*OB + o]) * xv[v]  for o < OB

then ``out[obase + o*ostride + v*VW ...] (+)= acc[o][v]``.  ``OB`` output
channels x ``NV*VW`` output positions per call; each x vector is used ``OB``
times, each weight ``NV`` times.  Measured (one Zen 4 core, float32, OB=8,
NV=3, 16 lanes): 113 GFLOP/s alone, 90-100 inside the convolution, about
single-threaded OpenBLAS SGEMM (~100); other shapes (6x4, 4x6, 8x2, 8x1)
within noise of 8x3, 12x2 / 3x8 / 16x1 slower.

The shape (OB, NV, VW) is chosen per CPU: AVX-512 has 32 vector registers
(8 x 3 accumulators + 3 inputs + 1 broadcast fit), AVX2 16 (4 x 3 + 3 + 1).
The IR calls only ``llvm.fmuladd``, so the compiled kernels stay cacheable on
disk (Numba keys its cache by CPU model and features).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..plans.shape import LANES32, NV, OB, lanes, positions  # noqa: F401  (re-exported)


def make_block_mac(OB: int, NV: int):
    """The micro-kernel for OB output channels x NV vectors of positions."""

    @intrinsic
    def block_mac(typingctx, x, xoff, xbase, wp, wbase, r0, r1, out, obase, ostride, accumulate):
        """``out[obase + o*ostride + p] (+)= sum_{r0 <= r < r1} wp[wbase + r*OB + o] *
        x[xbase + xoff[r] + p]`` for ``o < OB`` and ``p < NV * lanes`` (added to
        ``out`` when ``accumulate``).  ``x``, ``wp``, ``out`` are 1-D C-contiguous
        arrays of one float dtype, ``xoff`` 1-D int64; nothing is bounds-checked."""
        arrays = (x, wp, out)
        if not all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" for t in arrays):
            return None
        if not (x.dtype == wp.dtype == out.dtype) or x.dtype not in (types.float32, types.float64):
            return None
        if not (isinstance(xoff, types.Array) and xoff.dtype == types.int64 and xoff.ndim == 1):
            return None
        dtype = x.dtype
        vw = lanes(dtype.bitwidth // 8)
        sig = types.void(x, xoff, xbase, wp, wbase, r0, r1, out, obase, ostride, accumulate)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)
            fty = context.get_value_type(dtype)
            vty = ir.VectorType(fty, vw)
            align = dtype.bitwidth // 8

            def data(i):
                return context.make_array(tys[i])(context, builder, args[i]).data

            def as_i64(i):
                return context.cast(builder, args[i], tys[i], types.int64)

            def const(v):
                return ir.Constant(i64, v)

            xa, xoa, wa, oa = data(0), data(1), data(3), data(7)
            xbase_, wbase_, r_begin, r_end = as_i64(2), as_i64(4), as_i64(5), as_i64(6)
            obase_, ostride_ = as_i64(8), as_i64(9)
            add_old = context.cast(builder, args[10], tys[10], types.boolean)
            name = f"llvm.fmuladd.v{vw}f{dtype.bitwidth}"
            fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]), name)
            zero = ir.Constant(vty, [0.0] * vw)
            splat = ir.Constant(ir.VectorType(ir.IntType(32), vw), [0] * vw)

            pre = builder.basic_block
            loop = builder.append_basic_block("mac.loop")
            done = builder.append_basic_block("mac.done")
            builder.cbranch(builder.icmp_signed(">", r_end, r_begin), loop, done)

            builder.position_at_end(loop)
            r = builder.phi(i64)
            r.add_incoming(r_begin, pre)
            acc = [[builder.phi(vty) for _ in range(NV)] for _ in range(OB)]
            for row in acc:
                for a in row:
                    a.add_incoming(zero, pre)
            xb = builder.add(xbase_, builder.load(builder.gep(xoa, [r])))
            xv = []
            for v in range(NV):
                ptr = builder.bitcast(builder.gep(xa, [builder.add(xb, const(v * vw))]), vty.as_pointer())
                xv.append(builder.load(ptr, align=align))
            wrow = builder.add(wbase_, builder.mul(r, const(OB)))
            new = []
            for o in range(OB):
                ws = builder.load(builder.gep(wa, [builder.add(wrow, const(o))]))
                wv = builder.insert_element(ir.Constant(vty, ir.Undefined), ws, ir.Constant(ir.IntType(32), 0))
                wv = builder.shuffle_vector(wv, ir.Constant(vty, ir.Undefined), splat)
                new.append([builder.call(fmuladd, [wv, xv[v], acc[o][v]]) for v in range(NV)])
            r_next = builder.add(r, const(1))
            body = builder.basic_block
            r.add_incoming(r_next, body)
            for o in range(OB):
                for v in range(NV):
                    acc[o][v].add_incoming(new[o][v], body)
            builder.cbranch(builder.icmp_signed("<", r_next, r_end), loop, done)

            builder.position_at_end(done)
            final = []
            for o in range(OB):
                for v in range(NV):
                    phi = builder.phi(vty)
                    phi.add_incoming(zero, pre)
                    phi.add_incoming(new[o][v], body)
                    final.append(phi)
            for o in range(OB):
                row = builder.add(obase_, builder.mul(const(o), ostride_))
                for v in range(NV):
                    ptr = builder.bitcast(builder.gep(oa, [builder.add(row, const(v * vw))]), vty.as_pointer())
                    val = final[o * NV + v]
                    with builder.if_then(add_old):
                        builder.store(builder.fadd(builder.load(ptr, align=align), val), ptr, align=align)
                    with builder.if_then(builder.not_(add_old)):
                        builder.store(val, ptr, align=align)
            return context.get_dummy_value()

        return sig, codegen

    return block_mac


#: the micro-kernels for runs of 1, 2 and NV (= 3) vectors of positions:
#: the narrower ones waste less on small planes (on Zen 4 they run as fast)
block_mac1 = make_block_mac(OB, 1)
block_mac2 = make_block_mac(OB, 2)
block_mac = make_block_mac(OB, NV)
#: the same for blocks of 4 output channels (groups of at most 4 output
#: channels, where a block of 8 would compute half zeros)
quad_mac1 = make_block_mac(4, 1)
quad_mac2 = make_block_mac(4, 2)
quad_mac = make_block_mac(4, NV)
