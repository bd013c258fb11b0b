"""Winograd's transforms along a row of tiles, vectorised over the tiles.

Along W, tile ``t`` of a row reads input columns ``m*t .. m*t + m+1`` (input
transform) or writes output columns ``m*t .. m*t + m-1`` (output transform):
strided by ``m``.  Numba leaves such loops scalar (measured: ~2 ns per tile
and row, the largest part of the input transform), and a gather per phase
is slower still.  These ``@intrinsic`` loops handle ``lanes`` tiles per step:
load the consecutive elements those tiles cover, split them into the tiles'
``m + 2`` phases with shuffles (``shufflevector``: in-register permutes), and
combine whole vectors with the transform's coefficients; the output
transform interleaves its ``m`` results back into consecutive columns the
same way.  Both run over whole vectors of tiles: the caller leaves room for
the overhang (reads past the row's data and writes past its tiles).

Only ``fmul``/``fadd``/``fsub`` and shuffles are emitted, so the machine code
stays cacheable on disk like the micro-kernel's.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .microkernel import lanes

#: B^T and A^T of F(2, 3) and F(4, 3)
BT = {
    2: ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
    4: (
        (4, 0, -5, 0, 1, 0),
        (0, -4, -4, 1, 1, 0),
        (0, 4, -4, -1, 1, 0),
        (0, -2, -1, 2, 1, 0),
        (0, 2, -1, -2, 1, 0),
        (0, 4, 0, -5, 0, 1),
    ),
}
AT = {
    2: ((1, 1, 1, 0), (0, 1, -1, -1)),
    4: ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
}


def source_vectors(m: int, itemsize: int) -> int:
    """Vectors of input one step of the input transform loads (its ``lanes``
    tiles cover ``m * (lanes - 1) + m + 2`` elements)."""
    n = lanes(itemsize)
    return -(-(m * (n - 1) + m + 2) // n)


def _combine(builder, coeffs, vecs, vty, fty):
    """sum_q coeffs[q] * vecs[q] (zero coefficients skipped, +-1 as add/sub)."""
    acc = None
    for c, v in zip(coeffs, vecs):
        if c == 0:
            continue
        if abs(c) != 1:
            v = builder.fmul(v, ir.Constant(vty, [ir.Constant(fty, float(abs(c)))] * vty.count))
        if acc is None:
            acc = v if c > 0 else builder.fsub(ir.Constant(vty, [ir.Constant(fty, 0.0)] * vty.count), v)
        else:
            acc = builder.fadd(acc, v) if c > 0 else builder.fsub(acc, v)
    return acc


def _concat(builder, vecs):
    """One vector of all of ``vecs`` (same type) end to end, padded to a
    power-of-two count with copies of the last."""
    vecs = list(vecs)
    while len(vecs) & (len(vecs) - 1):
        vecs.append(vecs[-1])
    while len(vecs) > 1:
        width = vecs[0].type.count
        mask = ir.Constant(ir.VectorType(ir.IntType(32), 2 * width), list(range(2 * width)))
        vecs = [builder.shuffle_vector(vecs[i], vecs[i + 1], mask) for i in range(0, len(vecs), 2)]
    return vecs[0]


def _checked(arrays, dtype_of):
    if not all(isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" for t in arrays):
        return None
    dtype = dtype_of.dtype
    if dtype not in (types.float32, types.float64) or any(t.dtype != dtype for t in arrays):
        return None
    return dtype


def make_input_rows(m: int):
    """``rows_in(row, rbase, nvec, dst, dbase, dstride)``: for tiles ``t <
    nvec * lanes``, ``dst[dbase + j*dstride + t] = sum_q BT[j][q] *
    row[rbase + m*t + q]`` (j < m + 2).  Reads ``source_vectors`` vectors per
    step (past the last tile's columns) and writes whole vectors.  Returns
    the sum of ``0 * element`` over what it read: 0, or NaN when any element
    was NaN or infinite (the caller's guard, at no extra pass)."""
    bt = BT[m]

    @intrinsic
    def rows_in(typingctx, row, rbase, nvec, dst, dbase, dstride):
        dtype = _checked((row, dst), row)
        if dtype is None:
            return None
        sig = dtype(row, rbase, nvec, dst, dbase, dstride)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)
            fty = context.get_value_type(dtype)
            n = lanes(dtype.bitwidth // 8)
            vty = ir.VectorType(fty, n)
            align = dtype.bitwidth // 8
            nsrc = source_vectors(m, align)
            ra = context.make_array(tys[0])(context, builder, args[0]).data
            da = context.make_array(tys[3])(context, builder, args[3]).data
            rbase_, nvec_, dbase_, dstride_ = (
                context.cast(builder, args[i], tys[i], types.int64) for i in (1, 2, 4, 5)
            )

            def const(v):
                return ir.Constant(i64, v)

            zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * n)
            pre = builder.basic_block
            loop = builder.append_basic_block("rows_in.loop")
            done = builder.append_basic_block("rows_in.done")
            builder.cbranch(builder.icmp_signed(">", nvec_, const(0)), loop, done)
            builder.position_at_end(loop)
            v = builder.phi(i64)
            v.add_incoming(const(0), pre)
            probe = builder.phi(vty)
            probe.add_incoming(zero, pre)
            src = builder.add(rbase_, builder.mul(v, const(m * n)))
            loaded = []
            for s in range(nsrc):
                ptr = builder.bitcast(builder.gep(ra, [builder.add(src, const(s * n))]), vty.as_pointer())
                loaded.append(builder.load(ptr, align=align))
            # 0 * x is 0 for finite x, NaN for NaN and +-inf
            seen = probe
            for vec in loaded:
                seen = builder.fadd(seen, builder.fmul(vec, zero))
            full = _concat(builder, loaded)
            phases = []
            for q in range(m + 2):
                mask = ir.Constant(ir.VectorType(ir.IntType(32), n), [m * i + q for i in range(n)])
                phases.append(builder.shuffle_vector(full, full, mask))
            out = builder.add(dbase_, builder.mul(v, const(n)))
            for j in range(m + 2):
                val = _combine(builder, bt[j], phases, vty, fty)
                at = builder.add(out, builder.mul(const(j), dstride_))
                builder.store(val, builder.bitcast(builder.gep(da, [at]), vty.as_pointer()), align=align)
            nxt = builder.add(v, const(1))
            body = builder.basic_block
            v.add_incoming(nxt, body)
            probe.add_incoming(seen, body)
            builder.cbranch(builder.icmp_signed("<", nxt, nvec_), loop, done)
            builder.position_at_end(done)
            final = builder.phi(vty)
            final.add_incoming(zero, pre)
            final.add_incoming(seen, body)
            total = ir.Constant(fty, 0.0)
            for i in range(n):
                total = builder.fadd(total, builder.extract_element(final, ir.Constant(ir.IntType(32), i)))
            return total

        return sig, codegen

    return rows_in


def make_output_rows(m: int):
    """``rows_out(src, sbase, sstride, nvec, row, obase)``: for tiles ``t <
    nvec * lanes`` and ``i < m``, ``row[obase + m*t + i] = sum_q AT[i][q] *
    src[sbase + q*sstride + t]`` (q < m + 2): the tiles' outputs side by side
    in consecutive columns, whole vectors."""
    at_ = AT[m]

    @intrinsic
    def rows_out(typingctx, src, sbase, sstride, nvec, row, obase):
        dtype = _checked((src, row), src)
        if dtype is None:
            return None
        sig = types.void(src, sbase, sstride, nvec, row, obase)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)
            fty = context.get_value_type(dtype)
            n = lanes(dtype.bitwidth // 8)
            vty = ir.VectorType(fty, n)
            align = dtype.bitwidth // 8
            sa = context.make_array(tys[0])(context, builder, args[0]).data
            oa = context.make_array(tys[4])(context, builder, args[4]).data
            sbase_, sstride_, nvec_, obase_ = (
                context.cast(builder, args[i], tys[i], types.int64) for i in (1, 2, 3, 5)
            )

            def const(v):
                return ir.Constant(i64, v)

            pre = builder.basic_block
            loop = builder.append_basic_block("rows_out.loop")
            done = builder.append_basic_block("rows_out.done")
            builder.cbranch(builder.icmp_signed(">", nvec_, const(0)), loop, done)
            builder.position_at_end(loop)
            v = builder.phi(i64)
            v.add_incoming(const(0), pre)
            first = builder.add(sbase_, builder.mul(v, const(n)))
            qs = []
            for q in range(m + 2):
                at = builder.add(first, builder.mul(const(q), sstride_))
                qs.append(builder.load(builder.bitcast(builder.gep(sa, [at]), vty.as_pointer()), align=align))
            ys = [_combine(builder, at_[i], qs, vty, fty) for i in range(m)]
            full = _concat(builder, ys)  # y_i's lane t at i*n + t
            mask = ir.Constant(ir.VectorType(ir.IntType(32), m * n), [(e % m) * n + e // m for e in range(m * n)])
            inter = builder.shuffle_vector(full, full, mask)
            dst = builder.add(obase_, builder.mul(v, const(m * n)))
            for s in range(m):
                piece = builder.shuffle_vector(
                    inter, inter, ir.Constant(ir.VectorType(ir.IntType(32), n), [s * n + i for i in range(n)])
                )
                ptr = builder.bitcast(builder.gep(oa, [builder.add(dst, const(s * n))]), vty.as_pointer())
                builder.store(piece, ptr, align=align)
            nxt = builder.add(v, const(1))
            v.add_incoming(nxt, builder.basic_block)
            builder.cbranch(builder.icmp_signed("<", nxt, nvec_), loop, done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return sig, codegen

    return rows_out


def make_combine(matrix):
    """``combine(src, sbase, sstride, nvec, dst, dbase, dstride)``: for ``t <
    nvec * lanes``, ``dst[dbase + i*dstride + t] = sum_q matrix[i][q] *
    src[sbase + q*sstride + t]``: the transform along H, rows of tiles
    combined as whole vectors."""

    @intrinsic
    def combine(typingctx, src, sbase, sstride, nvec, dst, dbase, dstride):
        dtype = _checked((src, dst), src)
        if dtype is None:
            return None
        sig = types.void(src, sbase, sstride, nvec, dst, dbase, dstride)

        def codegen(context, builder, signature, args):
            tys = signature.args
            i64 = ir.IntType(64)
            fty = context.get_value_type(dtype)
            n = lanes(dtype.bitwidth // 8)
            vty = ir.VectorType(fty, n)
            align = dtype.bitwidth // 8
            sa = context.make_array(tys[0])(context, builder, args[0]).data
            da = context.make_array(tys[4])(context, builder, args[4]).data
            sbase_, sstride_, nvec_, dbase_, dstride_ = (
                context.cast(builder, args[i], tys[i], types.int64) for i in (1, 2, 3, 5, 6)
            )

            def const(v):
                return ir.Constant(i64, v)

            pre = builder.basic_block
            loop = builder.append_basic_block("combine.loop")
            done = builder.append_basic_block("combine.done")
            builder.cbranch(builder.icmp_signed(">", nvec_, const(0)), loop, done)
            builder.position_at_end(loop)
            v = builder.phi(i64)
            v.add_incoming(const(0), pre)
            col = builder.mul(v, const(n))
            first = builder.add(sbase_, col)
            ins = []
            for q in range(len(matrix[0])):
                at = builder.add(first, builder.mul(const(q), sstride_))
                ins.append(builder.load(builder.bitcast(builder.gep(sa, [at]), vty.as_pointer()), align=align))
            out = builder.add(dbase_, col)
            for i, coeffs in enumerate(matrix):
                at = builder.add(out, builder.mul(const(i), dstride_))
                val = _combine(builder, coeffs, ins, vty, fty)
                builder.store(val, builder.bitcast(builder.gep(da, [at]), vty.as_pointer()), align=align)
            nxt = builder.add(v, const(1))
            v.add_incoming(nxt, builder.basic_block)
            builder.cbranch(builder.icmp_signed("<", nxt, nvec_), loop, done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return sig, codegen

    return combine


rows_in2 = make_input_rows(2)
rows_in4 = make_input_rows(4)
rows_out2 = make_output_rows(2)
rows_out4 = make_output_rows(4)
cols_in2 = make_combine(BT[2])
cols_in4 = make_combine(BT[4])
cols_out2 = make_combine(AT[2])
cols_out4 = make_combine(AT[4])
cols_copy = make_combine(((1,),))
