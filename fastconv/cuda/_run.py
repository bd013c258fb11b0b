"""Host side of the GPU path: operands to the device, plan, launch, result back.

Inputs that live on the GPU stay there: they are viewed through
``numba.cuda.as_cuda_array`` (no copy) and the result is handed back as an
array of the same library (CuPy, torch, numba).  NumPy inputs with
``device="cuda"`` are copied to the GPU and the result copied back.  A GPU
input of another dtype than the computing one (float32/float64), or one that
is not C-contiguous, is converted by its own library on the GPU (CuPy,
torch), or through the host for numba device arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._device import gpu_dtype, is_gpu_array
from ..plans.cuda import direct_tile
from . import _kernels, unavailable_reason


def _cuda():
    reason = unavailable_reason()
    if reason is not None:
        raise ValueError(f"device='cuda' cannot run: {reason}")
    from numba import cuda

    return cuda


def _contiguous(arr) -> bool:
    check = getattr(arr, "is_c_contiguous", None)
    if check is not None:
        return bool(check())
    return bool(np.asarray(arr).flags.c_contiguous)  # pragma: no cover - simulator arrays


def to_device(a: Any, dtype: np.dtype):
    """A C-contiguous device array of ``dtype`` holding ``a`` (no copy when
    ``a`` already is one on the GPU)."""
    cuda = _cuda()
    if is_gpu_array(a):
        arr = a if type(a).__name__ == "FakeCUDAArray" else cuda.as_cuda_array(a)
        if gpu_dtype(a) == dtype and _contiguous(arr):
            return arr
        native = _convert_on_device(a, dtype)
        if native is not None:
            return cuda.as_cuda_array(native)
        host = arr.copy_to_host()
        return cuda.to_device(np.ascontiguousarray(host, dtype=dtype))
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))  # (validated by the op's spec)


def _convert_on_device(a: Any, dtype: np.dtype):
    """A C-contiguous copy of ``dtype`` made by the array's own library on the
    GPU (CuPy, torch), or None (numba arrays: converted through the host)."""
    module = type(a).__module__
    if module.startswith("cupy"):
        import cupy

        return cupy.ascontiguousarray(a, dtype=dtype)
    if module.startswith("torch"):
        import torch

        return a.to(dtype=getattr(torch, np.dtype(dtype).name)).contiguous()
    return None


def to_host_small(a: Any) -> np.ndarray:
    """Weights of a filter (small): a host copy of a GPU array, or the array."""
    if is_gpu_array(a):
        arr = a if type(a).__name__ == "FakeCUDAArray" else _cuda().as_cuda_array(a)
        return arr.copy_to_host()
    return np.asarray(a)


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """``out=`` of a GPU call: a NumPy or GPU array of exactly the result's
    shape and dtype (checked before anything runs)."""
    if not (isinstance(out, np.ndarray) or is_gpu_array(out)):
        raise TypeError(f"out must be a numpy.ndarray or a GPU array, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {tuple(out.shape)}")
    got = gpu_dtype(out) if is_gpu_array(out) else out.dtype
    if got != dtype:
        raise ValueError(f"out must have dtype {dtype}, got {got}")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out must be writeable")


def hand_back(y, like: Any, out: Any = None):
    """The result as the caller expects it: the input's GPU library, or NumPy
    for a NumPy input (device="cuda"); written into ``out`` when given."""
    if out is not None:
        check_out(out, tuple(y.shape), np.dtype(y.dtype))
        if is_gpu_array(out):
            target = out if type(out).__name__ == "FakeCUDAArray" else _cuda().as_cuda_array(out)
            target.copy_to_device(y)
            return out
        out[...] = y.copy_to_host()
        return out
    if not is_gpu_array(like):
        return y.copy_to_host()
    module = type(like).__module__
    if module.startswith("cupy"):
        import cupy

        return cupy.asarray(y)
    if module.startswith("torch"):
        import torch

        return torch.as_tensor(y, device=like.device)
    return y


def _launch(total: int):
    """A 1-D launch over ``total`` items (the kernels' grid-stride loops
    take what a capped grid does not cover)."""
    threads = _kernels.THREADS
    return min(_kernels.MAX_GRID[0], max(1, math.ceil(total / threads))), threads


def _capped(grid) -> tuple[int, ...]:
    """``grid`` within the hardware's per-dimension limits (the kernels loop
    over their blocks in x, y and z)."""
    return tuple(max(1, min(int(g), limit)) for g, limit in zip(grid, _kernels.MAX_GRID))


#: kernel launches made by this process (what tests count per operation)
launches = 0


def _start(kernel, grid, block, *args) -> None:
    """Launch ``kernel``, refusing what the hardware would refuse (a grid
    dimension or a block over its limit: the simulator does not check)."""
    global launches
    grid = (grid,) if isinstance(grid, int) else tuple(grid)
    block = (block,) if isinstance(block, int) else tuple(block)
    if any(g > limit for g, limit in zip(grid, _kernels.MAX_GRID)) or math.prod(block) > _kernels.MAX_BLOCK_THREADS:
        raise ValueError(f"launch of {grid} blocks of {block} threads exceeds the GPU's limits")
    launches += 1
    kernel[grid, block](*args)


# --- convolution ----------------------------------------------------------------------


def _lift(arr, batched: bool, nd: int):
    shape = tuple(arr.shape)
    if not batched:
        shape = (1, *shape)
    return arr.reshape(shape[:2] + (1,) * (3 - nd) + shape[2:])


_no_bias_arrays: dict = {}


def _no_bias(dtype):
    """A one-element device array standing in for an absent bias (made once
    per dtype: no host-to-device copy per call)."""
    key = np.dtype(dtype).str
    if key not in _no_bias_arrays:
        _no_bias_arrays[key] = _cuda().to_device(np.zeros(1, dtype))
    return _no_bias_arrays[key]


class _Operands:
    """Device operands of a convolution: lifted x (padded for non-zero
    padding modes), w, b (a dummy when there is none) and the flag."""

    def __init__(self, spec, input, weight, bias):
        _cuda()  # (raises, naming why, where no GPU can run)
        x = _lift(to_device(input, spec.dtype), spec.batched, spec.nd)
        if spec.padding_mode != "zeros" and (any(spec.pad_lo) or any(spec.pad_hi)):
            x = _pad_device(x, spec)
        self.x = x
        w = to_device(weight, spec.dtype)
        self.w = w.reshape(tuple(w.shape[:2]) + (1,) * (3 - spec.nd) + tuple(w.shape[2:]))
        self.has_b = bias is not None
        self.b = to_device(bias, spec.dtype) if self.has_b else _no_bias(spec.dtype)

    def pads(self, spec) -> tuple[int, int, int]:
        return spec.kernel_pad_lo if not spec.transposed else spec.lifted("pad_lo")


def _pad_device(x, spec):
    """torch's reflect/replicate/circular padding, materialised on the GPU."""
    cuda = _cuda()
    mode = {"reflect": 3, "replicate": 1, "circular": 4}[spec.padding_mode]
    lo = spec.lifted("pad_lo")
    hi = spec.lifted("pad_hi")
    shape = tuple(x.shape[:2]) + tuple(s + a + b for s, a, b in zip(x.shape[2:], lo, hi))
    y = cuda.device_array(shape, dtype=spec.dtype)
    blocks, threads = _launch(int(np.prod(shape)))
    _start(_kernels.pad_kernel(spec.dtype.name), blocks, threads, x, y, lo[0], lo[1], lo[2], mode)
    return y


def _geometry(spec):
    sd, sh, sw = spec.lifted("stride")
    dd, dh, dw = spec.lifted("dilation")
    return sd, sh, sw, dd, dh, dw


def conv_direct(spec, ops: _Operands, y, num_threads: int = 1) -> None:
    th, tw = direct_tile(spec)
    sd, sh, sw, dd, dh, dw = _geometry(spec)
    pd, ph, pw = ops.pads(spec)
    n, co, od, oh, ow = y.shape
    cob = _kernels.COB
    nbg = math.ceil(co // spec.groups / cob)
    grid = _capped((math.ceil(oh / th) * math.ceil(ow / tw), od * spec.groups * nbg, n))
    kernel = _kernels.direct_kernel(spec.dtype.name, cob, _kernels.SHARED_ELEMS)
    _start(kernel, grid, (tw, th), ops.x, ops.w, ops.b, ops.has_b, y, sd, sh, sw, pd, ph, pw, dd, dh, dw,
           spec.groups, th, tw)  # fmt: skip


def conv_gemm(spec, ops: _Operands, y, num_threads: int = 1) -> None:
    bm, bn, bk, tm, tn = _kernels.GEMM
    sd, sh, sw, dd, dh, dw = _geometry(spec)
    pd, ph, pw = ops.pads(spec)
    w = ops.w
    kd, kh, kw = w.shape[2:]
    w2 = w.reshape(w.shape[0], int(np.prod(w.shape[1:])))
    n, co, od, oh, ow = y.shape
    grid = _capped((math.ceil(n * od * oh * ow / bn), math.ceil(co // spec.groups / bm), spec.groups))
    kernel = _kernels.gemm_kernel(spec.dtype.name, bm, bn, bk, tm, tn)
    _start(kernel, grid, (bn // tn, bm // tm), ops.x, w2, ops.b, ops.has_b, y, sd, sh, sw, pd, ph, pw, dd, dh, dw,
           spec.groups, kd, kh, kw)  # fmt: skip


def _per_output(factory, spec, ops: _Operands, y) -> None:
    """A one-thread-per-output convolution kernel over ``y``."""
    sd, sh, sw, dd, dh, dw = _geometry(spec)
    pd, ph, pw = ops.pads(spec)
    blocks, threads = _launch(int(np.prod(y.shape)))
    _start(factory(spec.dtype.name), blocks, threads,
           ops.x, ops.w, ops.b, ops.has_b, y, sd, sh, sw, pd, ph, pw, dd, dh, dw, spec.groups)  # fmt: skip


def conv_depthwise(spec, ops: _Operands, y, num_threads: int = 1) -> None:
    _per_output(_kernels.depthwise_kernel, spec, ops, y)


def conv_transpose_direct(spec, ops: _Operands, y, num_threads: int = 1) -> None:
    _per_output(_kernels.transpose_kernel, spec, ops, y)


def run_conv(plan, input, weight, bias, out):
    """A validated device="cuda" (or GPU-array) convolution or transposed
    convolution, as ``plan`` (the dispatcher's) says."""
    spec = plan.spec
    cuda = _cuda()
    if out is not None:
        check_out(out, spec.out_shape, spec.dtype)
    ops = _Operands(spec, input, weight, bias)
    y = cuda.device_array((spec.n, spec.c_out, *spec.lifted("out_spatial")), dtype=spec.dtype)
    if y.size:
        plan.run(ops, y)
    return hand_back(y.reshape(spec.out_shape), input, out)


# --- pooling --------------------------------------------------------------------------


def run_pool(spec, input):
    """A validated GPU pooling call: values, or (values, indices)."""
    from ..plans.pool import windows

    cuda = _cuda()
    x = to_device(input, spec.dtype)
    x = x.reshape((spec.n * spec.c, *spec.lifted("in_spatial")))
    wd, wh, ww = windows(spec)
    tables = [
        cuda.to_device(np.ascontiguousarray(t, dtype=np.int64)) for t in (wd.lo, wd.hi, wh.lo, wh.hi, ww.lo, ww.hi)
    ]
    sizes = [cuda.to_device(np.ascontiguousarray(t, dtype=np.int64)) for t in (wd.size, wh.size, ww.size)]
    steps = cuda.to_device(np.array([wd.step, wh.step, ww.step], dtype=np.int64))
    shape = (spec.n * spec.c, *spec.lifted("out_spatial"))
    y = cuda.device_array(shape, dtype=spec.dtype)
    idx = cuda.device_array(shape if spec.return_indices else (1, 1, 1, 1), dtype=np.int64)
    if y.size:
        blocks, threads = _launch(int(np.prod(shape)))
        _start(_kernels.pool_kernel(spec.dtype.name), blocks, threads,
               x, y, idx, spec.return_indices, spec.kind == "max", *tables, steps, *sizes,
               float(spec.divisor_override or 0))  # fmt: skip
    values = hand_back(y.reshape(spec.out_shape), input)
    if not spec.return_indices:
        return values
    return values, hand_back(idx.reshape(spec.out_shape), input)


# --- ndimage / signal filters ---------------------------------------------------------


def run_filter(spec, input, w: np.ndarray, like=None):
    """Correlate the GPU ``input`` with the host correlation weights ``w``
    as the FilterSpec says (boundary mode by index arithmetic: output ``o``
    reads ``o - pad_lo + j``); returns the result on ``like``'s (default: the
    input's) device library."""
    from .._spec import FOOTPRINT_EPS, NDIMAGE_PAD

    cuda = _cuda()
    if spec.is_complex:
        raise TypeError("complex data is not supported by the GPU filters; pass NumPy arrays")
    if spec.ndim > 3:
        raise ValueError(f"the GPU filters take up to 3 dimensions, got {spec.ndim}")
    if spec.out_dtype not in (np.float32, np.float64) or spec.out_dtype != spec.dtype:
        raise TypeError(f"the GPU filters compute float32/float64 (input and output), got {spec.out_dtype}")
    x = to_device(input, spec.dtype).reshape(spec.lifted("shape"))
    wk = cuda.to_device(np.ascontiguousarray(w, dtype=spec.dtype).reshape(spec.lifted("kernel")))
    out_shape = spec.lifted("out_shape")
    y = cuda.device_array(out_shape, dtype=spec.dtype)
    offs = (0,) * (3 - spec.ndim) + tuple(-p for p in spec.pad_lo)
    mode = _kernels.PAD_MODES[NDIMAGE_PAD[spec.mode]]
    modes = (0,) * (3 - spec.ndim) + (mode,) * spec.ndim
    if y.size:
        blocks, threads = _launch(int(np.prod(out_shape)))
        _start(_kernels.filter_kernel(spec.dtype.name), blocks, threads,
               x, wk, y, *offs, *modes, spec.cval, spec.skip_zeros, FOOTPRINT_EPS)  # fmt: skip
    return hand_back(y.reshape(spec.out_shape), input if like is None else like)


def run_signal(kind: str, in1, in2, mode: str, *, boundary: str = "fill", fillvalue: float = 0.0,
               same_start_high: bool = False, as_float: bool = False):  # fmt: skip
    """``fastconv.signal`` convolve/correlate (``kind``) of a GPU ``in1`` with
    a small ``in2`` (copied to the host for planning): the direct GPU filter
    over in1 extended by ``boundary``, cropped to ``mode``."""
    import dataclasses

    from .._spec import as_array, signal_spec, unswapped_signal_weights

    a = as_array(in1, "in1")  # a shape-and-dtype proxy of a GPU array
    b = as_array(to_host_small(in2), "in2")
    mode, wc = unswapped_signal_weights(kind, a.shape, b, mode, "GPU")
    if a.size == 0 or b.size == 0:
        raise ValueError("in1 and in2 must not be empty on the GPU path")
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        raise TypeError("complex data is not supported by the GPU filters; pass NumPy arrays")
    spec = signal_spec(a, wc, mode, "direct", boundary=boundary, fillvalue=fillvalue, same_start_high=same_start_high)
    if spec.out_dtype.kind in "biu":
        if not as_float:
            raise TypeError(
                "integer convolution is not supported on the GPU (exact integer results); pass NumPy arrays"
            )
        spec = dataclasses.replace(spec, out_dtype=np.dtype(np.float64), dtype=np.dtype(np.float64))
    like = in1 if is_gpu_array(in1) else in2
    return run_filter(spec, in1, wc, like=like)
