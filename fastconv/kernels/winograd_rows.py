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

The weight transform (:func:`make_weight_transform`) is the same idea for
U = G g G^T: a vector of (input row, output channel) pairs, its taps
transposed out of plain loads of each channel's consecutive taps by
shuffles, both stages on registers.

Only ``fmul``/``fadd``/``fsub``/``llvm.fmuladd``, shuffles, plain and masked
loads and stores are emitted (and, for a partial last vector of weights,
``llvm.masked.gather``): no calls, so the machine code stays cacheable on
disk like the micro-kernel's.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..plans.shape import lanes
from ..plans.winograd import BATCHED_TILES, batched_pitch, source_vectors  # noqa: F401  (re-exported)

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

    def choose(self, cond, then, otherwise):
        """``then() if cond else otherwise()``: each emits its branch's code
        and returns a vector, the value of the whole."""
        b = self.b
        yes, no, join = (b.append_basic_block(f"if.{name}") for name in ("then", "else", "join"))
        b.cbranch(cond, yes, no)
        values = []
        for block, emit in ((yes, then), (no, otherwise)):
            b.position_at_end(block)
            values.append((emit(), b.basic_block))
            b.branch(join)
        b.position_at_end(join)
        phi = b.phi(self.vty)
        for value, end in values:
            phi.add_incoming(value, end)
        return phi

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
            e = _Emit(context, builder, signature, args, dtype)

            def body(v, _):
                col = e.times(v, e.n)
                first = e.at(e.arg[1], col)
                ins = [e.load(0, e.at(first, e.times(e.arg[2], q))) for q in range(len(matrix[0]))]
                out = e.at(e.arg[5], col)
                for i, coeffs in enumerate(matrix):
                    e.store(4, e.at(out, e.times(e.arg[6], i)), _combine(builder, coeffs, ins, e.vty, e.fty))

            e.loop(3, body)
            return context.get_dummy_value()

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


#: G of F(2, 3) and F(4, 3)
G = {
    2: ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
    4: (
        (1 / 4, 0, 0),
        (-1 / 6, -1 / 6, -1 / 6),
        (-1 / 6, 1 / 6, -1 / 6),
        (1 / 24, 1 / 12, 1 / 6),
        (1 / 24, -1 / 12, 1 / 6),
        (0, 0, 1),
    ),
}


def _splat(vty, fty, c):
    return ir.Constant(vty, [ir.Constant(fty, float(c))] * vty.count)


def _fma(builder, a, b, c):
    """a * b + c (``llvm.fmuladd``: one FMA where the CPU has them)."""
    vty = a.type
    name = f"llvm.fmuladd.v{vty.count}{'f32' if isinstance(vty.element, ir.FloatType) else 'f64'}"
    fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(vty, [vty] * 3), name)
    return builder.call(fn, [a, b, c])


def _apply_g(builder, g, t, vty, fty):
    """[sum_q g[i][q] * t[q] for each row i] for three vectors ``t``: rows
    that differ only in the sign of the middle coefficient share their even
    part (e +- b*t1 as two FMAs), and t0 + t2 is shared by rows with equal
    outer coefficients -- F(4, 3)'s six rows in 9 operations."""
    out = [None] * len(g)
    s02 = None
    for i, (a, b, c) in enumerate(g):
        if out[i] is not None:
            continue
        if a == c and a != 0:
            if s02 is None:
                s02 = builder.fadd(t[0], t[2])
            even = s02 if a == 1 else builder.fmul(s02, _splat(vty, fty, a))
        elif a != 0:
            even = t[0] if a == 1 else builder.fmul(t[0], _splat(vty, fty, a))
            even = even if c == 0 else _fma(builder, t[2], _splat(vty, fty, c), even)
        else:
            even = None if c == 0 else t[2] if c == 1 else builder.fmul(t[2], _splat(vty, fty, c))
        if b == 0:
            out[i] = even
            continue
        twin = next((j for j in range(i + 1, len(g)) if g[j] == (a, -b, c)), None)
        for j, sign in ((i, 1), (twin, -1)):
            if j is None:
                continue
            if even is None:
                out[j] = builder.fmul(t[1], _splat(vty, fty, sign * b))
            else:
                out[j] = _fma(builder, t[1], _splat(vty, fty, sign * b), even)
    return out


def _transposed_taps(e, first, wstride, nvalid, R, ob, cpv):
    """The R tap vectors of one vector of (row, channel) pairs: lane
    ``h*ob + o`` of tap r = ``w[first + o*wstride + h*R + r]`` (o < ob, h <
    cpv), by plain loads of each channel's cpv*R consecutive taps and a
    tree of two-source shuffles (channels merged pairwise, each level
    halving the taps a vector carries; AVX-512 gathers of the taps took
    twice as long).  Channels past ``nvalid`` read w's first taps instead
    (the caller zeroes them): never past w, whatever ``first``."""
    b = e.b
    n = e.n
    run = cpv * R
    width = 1 << (min(n, run).bit_length() - 1)  # the widest load inside one channel's run
    i32 = ir.IntType(32)
    levels = ob.bit_length() - 1
    chan = []
    for o in range(ob):
        inside = b.icmp_signed("<", e.const(o), nvalid)
        chan.append(b.select(inside, b.add(first, e.times(wstride, o)), e.const(0)))
    loads = {}

    def load(o, off):
        if (o, off) not in loads:
            vty = ir.VectorType(e.fty, width)
            ptr = b.bitcast(b.gep(e.arg[0], [b.add(chan[o], e.const(off))]), vty.as_pointer())
            v = b.load(ptr, align=e.align)
            if width < n:
                v = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, n), [min(i, width - 1) for i in range(n)]))
            loads[(o, off)] = (v, [(o, off + i) if i < width else None for i in range(n)])
        return loads[(o, off)]

    def merged(left, right, want):
        mask = []
        for lab in want:
            if lab is None:
                mask.append(0)
            elif lab in left[1]:
                mask.append(left[1].index(lab))
            else:
                mask.append(n + right[1].index(lab))
        return b.shuffle_vector(left[0], right[0], ir.Constant(ir.VectorType(i32, n), mask)), list(want)

    def source(o, cols):
        """One vector holding channel o's ``cols`` (one load, or two merged)."""
        lo, hi = min(cols), max(cols)
        off = min(lo, run - width)
        if hi < off + width:
            return load(o, off)
        rest = [col for col in cols if col >= off + width]
        a, c = load(o, off), load(o, min(min(rest), run - width))
        assert all((o, col) in a[1] or (o, col) in c[1] for col in cols), "two loads cover a channel's taps"
        want = [(o, col) for col in cols] + [None] * (n - len(cols))
        return merged(a, c, want)

    def cols_of(targets):
        return [h * R + r for r in targets for h in range(cpv)]

    def chunks(k):
        per = n // ((1 << k) * cpv)
        return [list(range(q, min(R, q + per))) for q in range(0, R, per)]

    level = {}
    for k in range(1, levels + 1):
        size = 1 << k
        for g in range(ob // size):
            group = range(g * size, (g + 1) * size)
            for targets in chunks(k):
                want = [(o, h * R + r) for r in targets for h in range(cpv) for o in group]
                want += [None] * (n - len(want))
                if k == 1:
                    left, right = source(group[0], cols_of(targets)), source(group[1], cols_of(targets))
                else:
                    parent = next(t for t in chunks(k - 1) if targets[0] in t)
                    left = level[(k - 1, 2 * g, parent[0])]
                    right = level[(k - 1, 2 * g + 1, parent[0])]
                level[(k, g, targets[0])] = merged(left, right, want)
    return [level[(levels, 0, r)][0] for r in range(R)]


def make_weight_transform(mh: int, mw: int, ob: int):
    """``wt(w, wbase, wstride, nvalid, nvec, rem, uf, base, kstride)``: U =
    G_h g G_w^T for a block of ``ob`` output channels by consecutive input
    rows, ``lanes / ob`` rows per vector, written as U's packed rows: for
    the ``nvec * lanes/ob + rem`` rows c, transform point k (row-major
    (mh+2) x (mw+2)) and channel o < ob, ``uf[base + k*kstride + c*ob + o]``
    = U[k] of the 3 x 3 (mh = 1: 1 x 3) kernel at ``w[wbase + o*wstride +
    c*R ...]`` (R taps, row-major), zero for o >= ``nvalid`` (any value, a
    block wholly past w's channels too: nothing past w is read).  The taps of
    each vector of (row, channel) pairs come from plain loads and a
    shuffle tree (:func:`_transposed_taps`), both stages of the transform
    run on registers (:func:`_apply_g`), nothing is staged.  ``rem`` (<
    lanes/ob) last rows are a partial vector: gathered with a mask (read
    only inside the rows), and only those rows' elements stored.  Returns
    the sum of ``0 * tap`` over the taps read: 0, or NaN when one is NaN or
    infinite."""
    gw = G[mw]
    gh = G[mh] if mh > 1 else None
    R = 3 if mh == 1 else 9

    @intrinsic
    def wt(typingctx, w, wbase, wstride, nvalid, nvec, rem, uf, base, kstride):
        if not (isinstance(w, types.Array) and w.layout == "C"):
            return None
        dtype = _checked((uf,), w)
        if dtype is None or w.dtype != dtype:
            return None
        sig = dtype(w, wbase, wstride, nvalid, nvec, rem, uf, base, kstride)

        def codegen(context, builder, signature, args):
            e = _Emit(context, builder, signature, args, dtype)
            n = e.n
            cpv = n // ob
            i32 = ir.IntType(32)
            i64 = ir.IntType(64)
            ivec = ir.VectorType(i64, n)
            bvec = ir.VectorType(ir.IntType(1), n)
            pvec = ir.VectorType(e.fty.as_pointer(), n)
            o8 = ir.Constant(ivec, [i % ob for i in range(n)])
            h = ir.Constant(ivec, [i // ob for i in range(n)])
            isz = e.align

            def splat(x):
                v = builder.insert_element(ir.Constant(ivec, ir.Undefined), x, ir.Constant(i32, 0))
                return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, n), [0] * n))

            valid = builder.icmp_signed("<", o8, splat(e.arg[3]))

            def transform(v, taps, probe, nrows):
                for t in taps:  # 0 * x is 0 for finite x, NaN for NaN and +-inf
                    probe = _fma(builder, t, e.zero, probe)
                if gh is None:
                    outs = _apply_g(builder, gw, taps, e.vty, e.fty)
                else:
                    aw = len(gw)
                    s1 = [_apply_g(builder, gw, taps[3 * kh : 3 * kh + 3], e.vty, e.fty) for kh in range(3)]
                    outs = [None] * (len(gh) * aw)
                    for q in range(aw):
                        for i, u in enumerate(_apply_g(builder, gh, [s1[kh][q] for kh in range(3)], e.vty, e.fty)):
                            outs[i * aw + q] = u
                dst = e.at(e.arg[7], e.times(v, n))
                for k, u in enumerate(outs):
                    at = e.at(dst, e.times(e.arg[8], k))
                    if nrows == cpv:
                        e.store(6, at, u)
                    else:  # the first nrows rows of the vector
                        part = ir.VectorType(e.fty, nrows * ob)
                        keep = ir.Constant(ir.VectorType(i32, nrows * ob), list(range(nrows * ob)))
                        low = builder.shuffle_vector(u, u, keep)
                        builder.store(low, builder.bitcast(builder.gep(e.arg[6], [at]), part.as_pointer()), align=isz)
                return probe

            def loaded(v, probe, masked):
                first = e.at(e.arg[1], e.times(v, cpv * R))
                taps = _transposed_taps(e, first, e.arg[2], e.arg[3], R, ob, cpv)
                if masked:
                    taps = [builder.select(valid, t, e.zero) for t in taps]
                return transform(v, taps, probe, cpv)

            # all ob channels inside w, or the last block's zeroed
            probe = e.choose(
                builder.icmp_signed(">=", e.arg[3], e.const(ob)),
                lambda: e.loop(4, lambda v, p: loaded(v, p, False), carry=True),
                lambda: e.loop(4, lambda v, p: loaded(v, p, True), carry=True),
            )

            gty = ir.FunctionType(e.vty, [pvec, i32, bvec, e.vty])
            suffix = "f32" if isz == 4 else "f64"
            name = f"llvm.masked.gather.v{n}{suffix}.v{n}p0{suffix}"
            gather = builder.module.globals.get(name) or ir.Function(builder.module, gty, name)
            # each lane's first tap (bytes from w's data)
            lane_off = builder.add(builder.mul(o8, splat(e.arg[2])), builder.mul(h, ir.Constant(ivec, [R] * n)))
            lane_off = builder.mul(lane_off, ir.Constant(ivec, [isz] * n))
            wptr = builder.ptrtoint(e.arg[0], i64)

            def tail(nrows, probe):  # a partial last vector of nrows rows
                mask = builder.and_(valid, builder.icmp_signed("<", h, ir.Constant(ivec, [nrows] * n)))
                first = e.at(e.arg[1], e.times(e.arg[4], cpv * R))
                addr = builder.add(splat(builder.add(wptr, e.times(first, isz))), lane_off)
                taps = []
                for r in range(R):
                    ptrs = builder.inttoptr(builder.add(addr, ir.Constant(ivec, [r * isz] * n)), pvec)
                    taps.append(builder.call(gather, [ptrs, ir.Constant(i32, isz), mask, e.zero]))
                return transform(e.arg[4], taps, probe, nrows)

            for nrows in range(1, cpv):
                is_rem = builder.icmp_signed("==", e.arg[5], e.const(nrows))
                probe = e.choose(is_rem, lambda nrows=nrows, p=probe: tail(nrows, p), lambda p=probe: p)
            return e.lane_sum(probe)

        return sig, codegen

    return wt
