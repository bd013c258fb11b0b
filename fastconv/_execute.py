"""Plan -> kernel: allocate (or reuse) the result, run the chosen kernel, return
the array in the caller's shape.  Shared by every public op.

The ``*_executor`` functions make the repeated-call executors of the call
cache (:mod:`fastconv._ops`): the same steps with the spec, the plan and
the kernel's launch parameters fixed; what depends on the arrays
themselves (layout, NaN/Inf where the method cares, weights whose values
the plan read) is handled on every call, or the executor returns ``MISS``
and the full path runs."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from . import _warm
from ._calls import MISS
from .dispatch import select
from .dispatch.selector import all_finite
from .kernels import NonFiniteInput


def _direct_target(out: np.ndarray | None, *inputs: np.ndarray | None) -> bool:
    """Can the kernel write straight into the caller's ``out``?"""
    if out is None:
        return False
    if not (out.flags.c_contiguous and out.flags.aligned and out.dtype.isnative):
        return False
    return not any(a is not None and np.shares_memory(out, a) for a in inputs)


def run_conv(spec, ops, out: np.ndarray | None) -> np.ndarray:
    plan = select(spec, ops)
    shape5 = (spec.n, spec.c_out, *spec.lifted("out_spatial"))
    if _direct_target(out, ops.x, ops.w, ops.b):
        result = out.reshape(shape5)
    else:
        result = np.empty(shape5, dtype=spec.dtype)
    plan.run(ops, result)
    result = result.reshape(spec.out_shape)
    if out is None:
        return result
    if not np.shares_memory(result, out):
        out[...] = result
    return out


def conv_executor(spec, plan):
    """The repeated-call executor of a CPU convolution (direct or transposed):
    ``executor(input, weight, bias, ..., out)``; None while the plan's kernel
    is not ready."""
    from ._spec import operands_maker

    prepared = plan.prepared()
    run = _learning(plan, prepared)
    if run is None:
        return None
    guard = plan.finite_guard()
    shape5 = (spec.n, spec.c_out, *spec.lifted("out_spatial"))
    out_shape, dtype = spec.out_shape, spec.dtype
    local = _warm._local
    operands = operands_maker(spec)
    whole = getattr(prepared, "whole", None) if run is prepared and guard is None else None

    def executor(x, w, b, *rest):
        if whole is not None and rest[-1] is None:  # (a tiny call: the kernel on the caller's arrays)
            result = whole(x, w, b)
            if result is not None:
                local.tier = "kernel"
                return result.reshape(out_shape)
        ops = operands(x, w, b)
        if guard is not None and not all_finite(ops, *guard):
            return MISS
        out = rest[-1]
        into = out is not None and _direct_target(out, ops.x, ops.w, ops.b)
        if out is not None and not out.flags.writeable:
            return MISS  # (the full path says why)
        result = out.reshape(shape5) if into else np.empty(shape5, dtype)
        try:
            run(ops, result)
        except NonFiniteInput:
            return MISS
        local.tier = "kernel"
        if out is None:
            return result.reshape(out_shape)
        if not into:
            out[...] = result.reshape(out_shape)
        return out

    return executor


def _learning(plan, run):
    """``run``, timed for the corrections when the plan learns from its calls
    (:meth:`~fastconv.dispatch.selector.Plan.learner`)."""
    learn = None if run is None else plan.learner()
    if learn is None:
        return run
    clock = time.perf_counter

    def timed(ops, out):
        t0 = clock()
        result = run(ops, out)
        learn(clock() - t0)
        return result

    return timed


def pool_executor(spec, plan):
    """The repeated-call executor of a CPU pooling op: ``executor(input, ...)``."""
    from ._spec import kernel_ready, planes_shape

    run = plan.prepared()
    if run is None:
        return None
    indices, dtype = spec.return_indices, spec.dtype
    planes = planes_shape(spec)
    local = _warm._local
    whole = getattr(run, "whole", None)

    def executor(x, *rest):
        if whole is not None:  # (a tiny pool: the kernel on the caller's array)
            values = whole(x)
            if values is not None:
                local.tier = "kernel"
                return values
        values, idx = run(kernel_ready(x, dtype).reshape(planes), None)
        local.tier = "kernel"
        return (values, idx) if indices else values

    return executor


def run_pool(spec, planes: np.ndarray):
    """Pool (P, D, H, W) planes; values, or (values, indices) with ``return_indices``."""
    values, indices = select(spec).run(planes, None)
    return (values, indices) if spec.return_indices else values


def _pad(x: np.ndarray, spec, dtype) -> np.ndarray:
    """The input padded by scipy.ndimage's boundary mode (one NumPy pass)."""
    from ._spec import NDIMAGE_PAD

    widths = list(zip(spec.pad_lo, spec.pad_hi))
    mode = NDIMAGE_PAD[spec.mode]
    x = np.asarray(x, dtype=dtype)
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=spec.cval)
    return np.pad(x, widths, mode=mode)


def _bare(spec, method: str) -> bool:
    """Whether ``method`` reads the signal itself rather than its padding:
    the FFT paths of a zero-filled signal spec transform the bare signal."""
    return spec.op == "signal" and method in ("fft", "oa") and spec.mode == "constant" and spec.cval == 0


def _real_filter(spec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Correlate one real input with one real weight array (computing dtype)."""
    from ._spec import FilterOperands, kernel_ready

    if spec.ndim > 3:
        from .kernels.tier0 import correlate_nd

        xp = _pad(x, spec, spec.dtype)
        return correlate_nd(xp, np.asarray(w, dtype=spec.dtype), spec.out_shape, spec.skip_zeros)
    wk = kernel_ready(w, spec.dtype).reshape(spec.lifted("kernel"))
    plan = select(spec, FilterOperands(x=np.asarray(x), w=wk))  # (the NaN/Inf guard reads x)
    if _bare(spec, plan.method):
        xk = kernel_ready(x, spec.dtype).reshape(spec.lifted("shape"))
    else:
        xk = _padder(spec)(x)
    ops = FilterOperands(x=xk, w=wk)
    out = np.empty(spec.lifted("out_shape"), dtype=spec.dtype)
    plan.run(ops, out)
    return out.reshape(spec.out_shape)


#: the padded copy of a large input is written into a buffer kept per
#: thread (the last shape and dtype padded; at most this many bytes): the
#: copy lives only while the kernel runs, and a fresh array of a few MB pays
#: its page faults on every call -- glibc hands large blocks back to the
#: system when they are freed (a 512x512 float64 Sobel, 2-core Zen 4: 2.7 ms,
#: 0.66 ms with malloc told to keep its memory)
SCRATCH_BYTES = 64 << 20
_scratch = threading.local()


def scratch(shape: tuple[int, ...], dtype: np.dtype, slot: str = "pad") -> np.ndarray:
    """A C-contiguous ``shape`` array of ``dtype`` for temporary use on this
    thread (its contents undefined; valid until this thread's next call of
    ``scratch`` with the same ``slot``: "pad" for a padded copy, "pass0" and
    "pass1" for a multi-pass filter's intermediates)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buf = buffers.get(slot)  # (raw bytes: one buffer serves every shape that fits)
    if buf is None or buf.nbytes < nbytes:
        if nbytes > min(SCRATCH_BYTES, _current_limit()):
            return np.empty(shape, dtype)
        buf = buffers[slot] = np.empty(nbytes, np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def _current_limit() -> int:
    from ._config import get_config

    return get_config().workspace_limit


def _fits_in_place(spec) -> bool:
    """Whether :func:`_pad_into` can pad for ``spec``: a mode it knows, and
    widths no longer than the axis (mirror: shorter) -- np.pad repeats the
    reflection beyond that."""
    from ._spec import NDIMAGE_PAD

    mode = NDIMAGE_PAD[spec.mode]
    if mode not in ("constant", "edge", "symmetric", "reflect", "wrap"):
        return False
    most = {"reflect": -1}.get(mode, 0)
    return all(max(lo, hi) <= n + most for lo, hi, n in zip(spec.pad_lo, spec.pad_hi, spec.shape)) and all(
        n > 0 for n in spec.shape
    )


def _pad_into(x: np.ndarray, spec, xp: np.ndarray) -> None:
    """``x`` padded by the spec's boundary mode into ``xp`` (the padded
    shape): the interior copied, then each axis's bands from the array
    itself, axis after axis (corners filled by the later axes, as np.pad)."""
    from ._spec import NDIMAGE_PAD

    mode, nd = NDIMAGE_PAD[spec.mode], len(spec.shape)
    inner = tuple(slice(lo, lo + n) for lo, n in zip(spec.pad_lo, spec.shape))
    xp[inner] = x

    def along(a: int, start: int, stop: int, step: int = 1):
        index = [slice(None)] * nd
        index[a] = slice(start, stop if stop >= 0 else None, step)
        return tuple(index)

    for a, (lo, hi, n) in enumerate(zip(spec.pad_lo, spec.pad_hi, spec.shape)):
        end = lo + n
        if lo:  # (an empty band is skipped: its source slices would wrap round)
            _band_lo(xp, mode, along, a, lo, n, end, spec.cval)
        if hi:
            _band_hi(xp, mode, along, a, lo, hi, end, spec.cval)


def _band_lo(xp, mode, along, a, lo, n, end, cval) -> None:
    """Axis ``a``'s low band of ``lo`` samples (the interior is [lo, end) of length ``n``)."""
    if mode == "constant":
        xp[along(a, 0, lo)] = cval
    elif mode == "edge":
        xp[along(a, 0, lo)] = xp[along(a, lo, lo + 1)]
    elif mode == "symmetric":  # (scipy's reflect: the edge sample repeated)
        xp[along(a, 0, lo)] = xp[along(a, 2 * lo - 1, lo - 1, -1)]
    elif mode == "reflect":  # (scipy's mirror: about the edge sample)
        xp[along(a, 0, lo)] = xp[along(a, 2 * lo, lo, -1)]
    else:  # wrap
        xp[along(a, 0, lo)] = xp[along(a, n, end)]


def _band_hi(xp, mode, along, a, lo, hi, end, cval) -> None:
    """Axis ``a``'s high band of ``hi`` samples."""
    if mode == "constant":
        xp[along(a, end, end + hi)] = cval
    elif mode == "edge":
        xp[along(a, end, end + hi)] = xp[along(a, end - 1, end)]
    elif mode == "symmetric":
        xp[along(a, end, end + hi)] = xp[along(a, end - 1, end - 1 - hi, -1)]
    elif mode == "reflect":
        xp[along(a, end, end + hi)] = xp[along(a, end - 2, end - 2 - hi, -1)]
    else:
        xp[along(a, end, end + hi)] = xp[along(a, lo, lo + hi)]


#: inputs padded to at most this many elements are padded by one ``take``
#: through a flat index map made once per executor (np.pad costs 20-50 us of
#: Python on any size, a 18x18 take 0.9 us; the map is 8 bytes an element)
_GATHER_PAD_BELOW = 1 << 15


def _padder(spec):
    """``pad(x)``: the input padded by the spec's boundary mode, C-contiguous
    in the computing dtype, in the kernels' lifted (3-axis) shape -- ``_pad``,
    with what depends only on the spec made once."""
    from ._spec import NDIMAGE_PAD, kernel_ready

    padded, dtype = spec.lifted("padded"), spec.dtype
    if int(np.prod(padded)) > _GATHER_PAD_BELOW:
        if not _fits_in_place(spec):  # (np.pad keeps a Fortran-ordered input's order)
            return lambda x: kernel_ready(_pad(x, spec, dtype), dtype).reshape(padded)

        def pad_large(x):
            xp = scratch(padded, dtype)
            _pad_into(x, spec, xp.reshape(spec.padded))
            return xp

        return pad_large
    mode = NDIMAGE_PAD[spec.mode]
    if mode == "constant":
        inner = tuple(slice(lo, lo + n) for lo, n in zip(spec.lifted("pad_lo"), spec.lifted("shape")))
        shape, cval = spec.lifted("shape"), spec.cval

        def pad(x):
            xp = np.full(padded, cval, dtype)
            xp[inner] = x.reshape(shape)
            return xp

        return pad
    index = np.pad(np.arange(int(np.prod(spec.shape))).reshape(spec.shape), list(zip(spec.pad_lo, spec.pad_hi)),
                   mode=mode).reshape(padded)  # fmt: skip

    def gather(x):
        xp = x.reshape(-1).take(index)  # (C-contiguous, in the lifted shape)
        return xp if xp.dtype == dtype else xp.astype(dtype)

    return gather


def filter_executor(spec, same_spec=None, shape=None, flip: bool = False):
    """``execute(x, w)``: the real correlation ``_real_filter`` computes (the
    computing dtype, ``shape`` or else ``spec.out_shape``; ``w`` reversed
    along every axis first with ``flip``: a convolution's weights), with the
    spec, the plan, the padding's index maps and the kernel-ready weights
    made once (the weights' values compared as given, so a repeated call
    reverses nothing); or
    :data:`MISS` (the full path runs) when the input holds NaN/Inf and the
    plan's method cares, or when the weights' values changed and
    ``same_spec(w)`` (None: the spec does not depend on them) says the spec
    would change.  None while the plan's kernel is not ready."""
    from ._memo import ByValue
    from ._spec import FilterOperands, correlation_weights, kernel_ready

    plan = select(spec)
    run = _learning(plan, plan.prepared())
    if run is None:
        return None
    guard = plan.finite_guard()
    bare = _bare(spec, plan.method)
    pad = None if bare else _padder(spec)
    dtype, kernel = spec.dtype, spec.lifted("kernel")
    x_shape = spec.lifted("shape")
    out_lifted, out_shape = spec.lifted("out_shape"), spec.out_shape if shape is None else shape
    reshape = None if tuple(out_shape) == tuple(out_lifted) else out_shape

    tiny = _tiny_form(spec, plan)

    def ready(w):  # (a copy: the kept weights must not alias the caller's buffer)
        if flip:
            w = correlation_weights(w, convolve=True)
        if same_spec is not None and not same_spec(w):
            return MISS
        wk = np.array(kernel_ready(w, dtype).reshape(kernel))
        return wk if tiny is None else tiny(wk)

    weights = ByValue(ready, entries=4)
    local = _warm._local
    if tiny is not None:
        from .kernels.gather import gathered_correlate

        cval = dtype.type(spec.cval)
        size, flat = int(np.prod(out_shape)), len(out_shape) == 1

        def execute_tiny(x: np.ndarray, w: np.ndarray, into: np.ndarray | None = None):  # (``into``: not used)
            taps = weights(w)
            if taps is MISS:
                return MISS
            out = np.empty(size, dtype)  # (flat: one compiled signature per input rank)
            gathered_correlate(kernel_ready(x, dtype), taps[0], taps[1], cval, out)
            local.tier = "kernel"
            return out if flat else out.reshape(out_shape)

        return execute_tiny

    def execute(x: np.ndarray, w: np.ndarray, into: np.ndarray | None = None):
        wk = weights(w)
        if wk is MISS:
            return MISS
        xk = kernel_ready(x, dtype).reshape(x_shape) if bare else pad(x)
        ops = FilterOperands(x=xk, w=wk)
        if guard is not None and not all_finite(ops, *guard):
            return MISS
        # ``into``: the caller's C-contiguous array of the computing dtype and
        # the result's size, written in place -- safe to alias ``x``: the
        # kernel reads the padded copy (the bare FFT paths read ``x``: not them)
        mine = into is None or bare
        out = np.empty(out_lifted, dtype) if mine else into.reshape(out_lifted)
        try:
            run(ops, out)
        except NonFiniteInput:
            return MISS
        local.tier = "kernel"
        if not mine:
            return into
        return out if reshape is None else out.reshape(reshape)

    return execute


def _tiny_form(spec, plan):
    """``taps(wk)`` -> (index, values) of :func:`~fastconv.kernels.gather.gathered_correlate`
    when ``plan`` runs the direct method on a filter small enough for its
    tiny form (the padding folded into the taps' index table), else None."""
    from .kernels.gather import TINY_MACS, tap_index

    out_lifted = spec.lifted("out_shape")
    if plan.method != "direct" or spec.taps * int(np.prod(out_lifted)) > TINY_MACS or spec.taps == 0:
        return None
    from ._spec import NDIMAGE_PAD
    from .kernels.filter import _taps

    padded, mode = spec.lifted("padded"), NDIMAGE_PAD[spec.mode]
    flat = np.arange(int(np.prod(spec.shape))).reshape(spec.shape)
    widths = list(zip(spec.pad_lo, spec.pad_hi))
    if mode == "constant":
        positions = np.pad(flat, widths, mode="constant", constant_values=-1)
    else:
        positions = np.pad(flat, widths, mode=mode)
    positions = positions.reshape(padded)

    def taps(wk: np.ndarray):
        offsets, values = _taps(wk, padded, spec.dtype, spec.skip_zeros)
        return tap_index(positions, out_lifted, padded, offsets), values

    return taps


def warm_tiny(spec) -> None:
    """Compile the tiny form for ``spec`` when its plan would use it (the
    background build's job, so that a repeated call never compiles)."""
    from .dispatch import select

    if getattr(spec, "op", None) not in ("ndimage", "signal") or spec.is_complex or spec.ndim > 3:
        return
    plan = select(spec)
    tiny = _tiny_form(spec, plan)
    if tiny is None:
        return
    from .kernels.gather import gathered_correlate

    index, values = tiny(np.ones(spec.lifted("kernel"), spec.dtype))
    out = np.empty(index.shape[1], spec.dtype)
    gathered_correlate(np.zeros(spec.shape, spec.dtype), index, values, spec.dtype.type(0), out)


def in_dtype(y, dtype: np.dtype, rounded: bool = False):
    """Float results ``y`` in ``dtype`` with scipy's rules: integers
    truncated toward zero (``rounded``: to the nearest, signal's exact sums,
    integers already unless an FFT path computed them) and wrapped; bool:
    signal's non-zero, ndimage's a non-zero low byte of the truncated value
    (scipy's C cast to ``npy_bool``: 0.5 and 256 are False, -1 True)."""
    if dtype.kind == "b":
        return y != 0 if rounded else np.trunc(y).astype(np.int64).astype(np.uint8) != 0
    if dtype.kind in "iu":
        return (np.rint(y) if rounded else np.trunc(y)).astype(np.int64).astype(dtype)
    return y.astype(dtype, copy=False)


def cast_filtered(spec, y: np.ndarray, output: np.ndarray | None) -> np.ndarray:
    """The filtered array in the result dtype with scipy's rules (integers
    truncated toward zero -- signal's rounded -- and wrapped, bool =
    non-zero), written into ``output`` when given."""
    result = in_dtype(y, spec.out_dtype, rounded=spec.op == "signal")
    if output is None:
        return result
    output[...] = result
    return output


def run_filter(spec, x: np.ndarray, w: np.ndarray, output: np.ndarray | None) -> np.ndarray:
    """ndimage correlation (weights already flipped/conjugated by the spec):
    complex data as real passes, then the cast to the output dtype with
    scipy's rules (integers truncated toward zero and wrapped, bool = non-zero)."""
    if 0 in spec.shape:  # (an empty input: nothing to extend or sum, any mode -- as scipy)
        y = np.zeros(spec.out_shape, np.complex128 if spec.is_complex else spec.dtype)
    elif not spec.is_complex:
        y = _real_filter(spec, x, w)
    else:
        xr, xi = np.real(x), (np.imag(x) if x.dtype.kind == "c" else None)
        wr, wi = np.real(w), (np.imag(w) if w.dtype.kind == "c" else None)
        y = _real_filter(spec, xr, wr).astype(np.complex128 if spec.dtype == np.float64 else np.complex64)
        if wi is not None:
            y += 1j * _real_filter(spec, xr, wi)
        if xi is not None:
            # the imaginary part of the input is padded with cval's imaginary part
            zero = dataclasses.replace(spec, cval=spec.cval_imag, cval_imag=0.0)
            y += 1j * _real_filter(zero, xi, wr)
            if wi is not None:
                y -= _real_filter(zero, xi, wi)
    return cast_filtered(spec, y, output)
