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


class _Emit:
    """What one intrinsic's loop body needs: its arrays' data pointers and
    integer arguments (as int64) by position, the vector type, and vector
    loads and stores at element offsets."""

    def __init__(self, context, builder, signature, args, dtype):
        self.b = builder
        self.fty = context.get_value_type(dtype)
        self.n = lanes(dtype.bitwidth // 8)
        self.vty = ir.VectorType(self.fty, self.n)
        self.align = dtype.bitwidth // 8
        self.zero = ir.Constant(self.vty, [ir.Constant(self.fty, 0.0)] * self.n)
        self.arg = []
        for ty, val in zip(signature.args, args):
            if isinstance(ty, types.Array):
                self.arg.append(context.make_array(ty)(context, builder, val).data)
            else:
                self.arg.append(context.cast(builder, val, ty, types.int64))

    def const(self, v):
        return ir.Constant(ir.IntType(64), v)

    def at(self, *terms):
        """Sum of int64 values and Python ints (constants)."""
        total = None
        for t in terms:
            t = self.const(t) if isinstance(t, int) else t
            total = t if total is None else self.b.add(total, t)
        return total

    def times(self, value, k):
        return self.b.mul(value, self.const(k) if isinstance(k, int) else k)

    def load(self, array, offset):
        ptr = self.b.bitcast(self.b.gep(self.arg[array], [offset]), self.vty.as_pointer())
        return self.b.load(ptr, align=self.align)

    def store(self, array, offset, value):
        ptr = self.b.bitcast(self.b.gep(self.arg[array], [offset]), self.vty.as_pointer())
        self.b.store(value, ptr, align=self.align)

    def lane_sum(self, vec):
        """The sum of ``vec``'s lanes (a probe's verdict: 0, or NaN)."""
        total = ir.Constant(self.fty, 0.0)
        for i in range(self.n):
            total = self.b.fadd(total, self.b.extract_element(vec, ir.Constant(ir.IntType(32), i)))
        return total

    def loop(self, count, body, carry: bool = False):
        """``for v in range(count): carry = body(v, carry)``, ``count`` the
        int64 argument at that position; with ``carry`` a vector (from zero)
        threaded through the steps and returned."""
        b = self.b
        count = self.arg[count]
        pre = b.basic_block
        loop = b.append_basic_block("rows.loop")
        done = b.append_basic_block("rows.done")
        b.cbranch(b.icmp_signed(">", count, self.const(0)), loop, done)
        b.position_at_end(loop)
        v = b.phi(ir.IntType(64))
        v.add_incoming(self.const(0), pre)
        acc = b.phi(self.vty) if carry else None
        if carry:
            acc.add_incoming(self.zero, pre)
        new = body(v, acc)
        nxt = b.add(v, self.const(1))
        end = b.basic_block
        v.add_incoming(nxt, end)
        if carry:
            acc.add_incoming(new, end)
        b.cbranch(b.icmp_signed("<", nxt, count), loop, done)
        b.position_at_end(done)
        if not carry:
            return None
        final = b.phi(self.vty)
        final.add_incoming(self.zero, pre)
        final.add_incoming(new, end)
        return final


def batched_pitch(m: int, ntw: int) -> int:
    """Elements per staged row of :func:`make_input_rows` with ``ntw`` tiles
    per row: the row's span ``ntw*m + 2``."""
    return ntw * m + 2


#: tiles per row for which short rows are staged side by side, several per
#: vector of tiles (those that divide the lanes)
BATCHED_TILES = (2, 4, 8)


def _source(m: int, ntw: int | None, i: int, q: int) -> int:
    """Offset of phase ``q`` of lane ``i``'s tile from a step's first element."""
    if ntw is None:
        return m * i + q
    return (i // ntw) * batched_pitch(m, ntw) + m * (i % ntw) + q


def make_input_rows(m: int, ntw: int | None = None):
    """``rows_in(row, rbase, nvec, dst, dbase, dstride)``: for tiles ``t <
    nvec * lanes``, ``dst[dbase + j*dstride + t] = sum_q BT[j][q] *
    row[rbase + m*t + q]`` (j < m + 2).  Reads ``source_vectors`` vectors per
    step (past the last tile's columns) and writes whole vectors.  Returns
    the sum of ``0 * element`` over what it read: 0, or NaN when any element
    was NaN or infinite (the caller's guard, at no extra pass).

    With ``ntw`` (dividing the lanes): rows of ``ntw`` tiles staged side by
    side, each ``batched_pitch(m, ntw)`` elements (its span): tile ``t`` is
    tile ``t % ntw`` of row ``t // ntw``, read from ``row[rbase + (t // ntw)
    * pitch + m*(t % ntw) + q]`` -- one vector of tiles covers
    ``lanes / ntw`` short rows instead of a few tiles of one."""
    bt = BT[m]

    @intrinsic
    def rows_in(typingctx, row, rbase, nvec, dst, dbase, dstride):
        dtype = _checked((row, dst), row)
        if dtype is None:
            return None
        sig = dtype(row, rbase, nvec, dst, dbase, dstride)

        def codegen(context, builder, signature, args):
            e = _Emit(context, builder, signature, args, dtype)
            n = e.n
            # (rows that do not divide the lanes are never batched by the
            # caller; for such a dtype the loop compiles unbatched)
            tiles = ntw if ntw is not None and n % ntw == 0 else None
            nsrc = -(-(_source(m, tiles, n - 1, m + 1) + 1) // n)
            step = m * n if tiles is None else (n // tiles) * batched_pitch(m, tiles)

            def body(v, probe):
                src = e.at(e.arg[1], e.times(v, step))
                loaded = [e.load(0, e.at(src, s * n)) for s in range(nsrc)]
                for vec in loaded:  # 0 * x is 0 for finite x, NaN for NaN and +-inf
                    probe = builder.fadd(probe, builder.fmul(vec, e.zero))
                full = _concat(builder, loaded)
                phases = []
                for q in range(m + 2):
                    mask = ir.Constant(ir.VectorType(ir.IntType(32), n), [_source(m, tiles, i, q) for i in range(n)])
                    phases.append(builder.shuffle_vector(full, full, mask))
                out = e.at(e.arg[4], e.times(v, n))
                for j in range(m + 2):
                    e.store(3, e.at(out, e.times(e.arg[5], j)), _combine(builder, bt[j], phases, e.vty, e.fty))
                return probe

            return e.lane_sum(e.loop(2, body, carry=True))

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
            e = _Emit(context, builder, signature, args, dtype)
            n = e.n

            def body(v, _):
                first = e.at(e.arg[1], e.times(v, n))
                qs = [e.load(0, e.at(first, e.times(e.arg[2], q))) for q in range(m + 2)]
                full = _concat(builder, [_combine(builder, at_[i], qs, e.vty, e.fty) for i in range(m)])
                # y_i's lane t is at i*n + t: interleave to t*m + i, store n at a time
                for s in range(m):
                    mask = [((s * n + i) % m) * n + (s * n + i) // m for i in range(n)]
                    piece = builder.shuffle_vector(full, full, ir.Constant(ir.VectorType(ir.IntType(32), n), mask))
                    e.store(4, e.at(e.arg[5], e.times(v, m * n), s * n), piece)

            e.loop(3, body)
            return context.get_dummy_value()

        return sig, codegen

    return rows_out


def make_combine(matrix, probe: bool = False):
    """``combine(src, sbase, sstride, nvec, dst, dbase, dstride)``: for ``t <
    nvec * lanes``, ``dst[dbase + i*dstride + t] = sum_q matrix[i][q] *
    src[sbase + q*sstride + t]``: the transform along H, rows of tiles
    combined as whole vectors.  With ``probe``, returns the sum of ``0 *
    element`` over what it read (0, or NaN for NaN or Inf, as ``rows_in``)."""

    @intrinsic
    def combine(typingctx, src, sbase, sstride, nvec, dst, dbase, dstride):
        dtype = _checked((src, dst), src)
        if dtype is None:
            return None
        sig = (dtype if probe else types.void)(src, sbase, sstride, nvec, dst, dbase, dstride)

        def codegen(context, builder, signature, args):
            e = _Emit(context, builder, signature, args, dtype)

            def body(v, found):
                col = e.times(v, e.n)
                first = e.at(e.arg[1], col)
                ins = [e.load(0, e.at(first, e.times(e.arg[2], q))) for q in range(len(matrix[0]))]
                out = e.at(e.arg[5], col)
                for i, coeffs in enumerate(matrix):
                    e.store(4, e.at(out, e.times(e.arg[6], i)), _combine(builder, coeffs, ins, e.vty, e.fty))
                if probe:
                    for vec in ins:
                        found = builder.fadd(found, builder.fmul(vec, e.zero))
                return found

            final = e.loop(3, body, carry=probe)
            return e.lane_sum(final) if probe else context.get_dummy_value()

        return sig, codegen

    return combine


rows_in2 = make_input_rows(2)
rows_in4 = make_input_rows(4)
rows_in2_by2, rows_in2_by4, rows_in2_by8 = (make_input_rows(2, t) for t in BATCHED_TILES)
rows_in4_by2, rows_in4_by4, rows_in4_by8 = (make_input_rows(4, t) for t in BATCHED_TILES)
rows_out2 = make_output_rows(2)
rows_out4 = make_output_rows(4)
cols_in2 = make_combine(BT[2])
cols_in4 = make_combine(BT[4])
cols_out2 = make_combine(AT[2])
cols_out4 = make_combine(AT[4])
cols_copy = make_combine(((1,),))
