"""Calls between kernels by address: a callee compiled once, not again in
every caller.

Numba links a called ``@njit`` function's LLVM module into its caller's and
optimises and compiles the whole again; a parallel kernel's loop body goes
through that three more times (the gufunc and its two wrappers).  For the
Winograd kernel that was the same ~30k LLVM instructions optimised and
compiled four times over: 17 of its 23 s of LLVM time on a first call
(2-core Zen 4).  A :class:`Linkage` instead passes the callee's machine-code
address to the caller as an ``int64`` argument and calls it through a
function pointer (Numba's own calling convention; a callee's error status
is propagated as a direct call would): each unit is compiled once, on its
own, and cached on disk like any kernel.  The caller holds no reference to
the callee's symbol, so its cached machine code stays valid whatever the
callee's build; the Python side takes the address from the callee's
compiled overload (:meth:`Linkage.address`) at every call.

The declared signature is fixed per dtype (:meth:`Linkage.signature`):
arguments are converted to it at the call (an ``int`` literal to int64, a
C-contiguous array where ``'A'`` is declared: :func:`_passes`), and a call
whose arguments cannot be fails at compile time, naming the argument.  A call
through an address of another signature is undefined: only
:meth:`Linkage.address` makes them, for the dtype the caller's arrays have.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic


def unit(func):
    """A unit (a ``numba_jit`` function called by address): compiled with its
    pointer arguments declared ``noalias``, as Numba declares a parallel
    loop body's when it finds no aliases among them, which the code in the
    units had where it ran before.  Every caller passes distinct buffers
    (an ``out=`` that shares memory with an input is not written by a
    kernel: the result goes through a fresh buffer, ``_execute``).

    A unit is optimised by LLVM once, where a linked function was optimised
    again in every module that linked it.  Mostly that costs nothing
    (single-threaded A/B, 2-core Zen 4: 0.91-1.05 on 24 layers); where it
    did -- the depthwise row path, 1.23x -- the unit calls its work as a
    linked function, optimised a second time inside the unit
    (``depthwise._row_items``).  The pooling kernels stayed whole: as units
    they ran 1.15-1.5x slower either way."""
    from .._config import numba_jit

    dispatcher = numba_jit()(func)
    compiler = dispatcher._compiler  # (Numba's per-dispatcher compiler; its flag hook)
    customize = compiler._customize_flags

    def flags_of(flags):
        flags = customize(flags)
        flags.noalias = True
        return flags

    compiler._customize_flags = flags_of
    return dispatcher


class Linkage:
    """One calling convention shared by interchangeable units (e.g. the input
    transform of F(4x4), F(2x2) and of a kernel one row high).

    ``signature_of(dtype)`` -> (return type, argument types) for the float
    numba type ``dtype``; ``call`` is the intrinsic a kernel uses,
    ``call(address, (arg0, arg1, ...))``, the dtype taken from the first
    array argument."""

    def __init__(self, name: str, signature_of: Callable) -> None:
        self.name = name
        self._signature_of = signature_of
        self._addresses: dict = {}
        self.call = self._make_call()

    def signature(self, dtype):
        """The declared Numba signature for ``dtype`` (a numba type)."""
        restype, args = self._signature_of(dtype)
        return restype(*args)

    def address(self, unit, dtype) -> int:
        """The machine-code address of ``unit`` (a ``numba_jit`` dispatcher
        with this linkage's signature) for NumPy ``dtype``: compiled (or
        loaded from the disk cache) on first need in this process."""
        given = (unit, dtype)
        found = self._addresses.get(given)  # (every call: one dict lookup)
        if found is None:
            from numba import from_dtype

            dtype = np.dtype(dtype)
            sig = self.signature(from_dtype(dtype))
            unit.compile(sig.args)
            cres = unit.overloads[sig.args]
            found = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
            if not found:  # pragma: no cover  (Numba defines every overload it returns)
                raise RuntimeError(f"{unit.py_func.__qualname__}: no machine code for {sig}")
            self._addresses[given] = self._addresses[(unit, dtype)] = found
        return found

    def _make_call(self):
        linkage = self

        @intrinsic
        def call(typingctx, address, args):
            if not isinstance(address, types.Integer) or not isinstance(args, types.BaseTuple):
                raise TypingError(f"{linkage.name}: call(address: int, args: tuple)")
            arrays = [t for t in args.types if isinstance(t, types.Array)]
            if not arrays:
                raise TypingError(f"{linkage.name}: no array argument to take the dtype from")
            sig = linkage.signature(arrays[0].dtype)
            if len(sig.args) != len(args.types):
                raise TypingError(f"{linkage.name}: {len(args.types)} arguments given, {len(sig.args)} declared")
            for i, (given, declared) in enumerate(zip(args.types, sig.args)):
                if not _passes(given, declared):
                    raise TypingError(f"{linkage.name}: argument {i} is {given}, declared {declared}")

            def codegen(context, builder, signature, llargs):
                address_value, packed = llargs
                given = cgutils.unpack_tuple(builder, packed, len(args.types))
                values = [context.cast(builder, v, t, d) for v, t, d in zip(given, args.types, sig.args)]
                call_conv = context.call_conv
                fnty = call_conv.get_function_type(sig.return_type, sig.args)
                target = context.cast(builder, address_value, address, types.int64)
                fnptr = builder.inttoptr(target, fnty.as_pointer())
                status, result = _call(call_conv, builder, fnptr, fnty, sig.return_type, sig.args, values)
                with cgutils.if_unlikely(builder, status.is_error):
                    call_conv.return_status_propagate(builder, status)
                return result

            return sig.return_type(address, args), codegen

        return call


def _passes(given, declared) -> bool:
    """Whether an argument of type ``given`` may be passed where ``declared``
    is: the same type; an array of the same dtype and dimensions where any
    layout is declared (``'A'``); an integer or boolean of another width or
    literal value where one is declared (cast); a tuple element by element.
    Nothing else -- a float where an int is declared, or a strided array
    where a C-contiguous one is, fails at compile time."""
    if given == declared:
        return True
    if isinstance(declared, types.Array):
        return (
            isinstance(given, types.Array)
            and given.dtype == declared.dtype
            and given.ndim == declared.ndim
            and declared.layout in (given.layout, "A")
        )
    if isinstance(declared, types.BaseTuple):
        return (
            isinstance(given, types.BaseTuple)
            and len(given) == len(declared)
            and all(_passes(g, d) for g, d in zip(given, declared))
        )
    given = types.unliteral(given)
    for kind in (types.Integer, types.Boolean, types.Float):
        if isinstance(declared, kind):
            return isinstance(given, kind) and (kind is not types.Float or given == declared)
    return False


def _call(call_conv, builder, fnptr, fnty, restype, argtypes, values):
    """``call_conv.call_function`` through a function pointer (it takes the
    callee's function type from an ``ir.Function``)."""
    retty = fnty.args[0].pointee
    retvaltmp = cgutils.alloca_once(builder, retty)
    builder.store(cgutils.get_null_value(retty), retvaltmp)
    excinfo = cgutils.alloca_once(builder, fnty.args[1].pointee, name="excinfo")
    packed = list(call_conv._get_arg_packer(argtypes).as_arguments(builder, values))
    code = builder.call(fnptr, [retvaltmp, excinfo, *packed])
    status = call_conv._get_return_status(builder, code, builder.load(excinfo))
    result = call_conv.context.get_returned_value(builder, restype, builder.load(retvaltmp))
    return status, result


# --- the pieces of declared signatures -----------------------------------------

#: a C-contiguous int64 vector (tap offsets, tables)
I64 = types.Array(types.int64, 1, "C")
#: a bool matrix (e.g. the stride phases a kernel reads)
BOOLS2 = types.Array(types.boolean, 2, "C")


def ints(n: int) -> tuple:
    """``n`` int64 arguments."""
    return (types.int64,) * n


def arrays(dt, *dims: int) -> tuple:
    """C-contiguous ``dt`` arrays of these dimensions."""
    return tuple(types.Array(dt, d, "C") for d in dims)


def bias(dt):
    """A bias vector: any layout (the user's, or zeros)."""
    return types.Array(dt, 1, "A")
