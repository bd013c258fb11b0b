"""Arguments -> frozen specs.

Every shape rule, default, dtype rule and error message of the public
functions lives here, once.  Public functions call :func:`conv_spec` and get
back a :class:`ConvSpec` (what to compute) and :class:`ConvOperands` (the
arrays, converted to the computing dtype, C-contiguous, native byte order,
lifted to three spatial axes so one kernel serves conv1d/2d/3d).
"""

from __future__ import annotations

import dataclasses
import numbers
import operator
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ._device import check_device, is_gpu_array, proxy

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A validated convolution call.  Spatial tuples have ``nd`` entries;
    the ``k*`` properties give them lifted to three axes (leading 1s/0s)."""

    op: str
    nd: int
    batched: bool
    n: int
    c_in: int
    c_out: int
    groups: int
    in_spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    padding_mode: str
    out_spatial: tuple[int, ...]
    dtype: np.dtype
    has_bias: bool
    method: str
    #: transposed convolution only: extra size on one side of each output axis
    output_padding: tuple[int, ...] = ()
    #: "cpu" or "cuda" (then ``op`` ends in "@cuda": the GPU methods' table)
    device: str = "cpu"
    #: bytes copied host <-> GPU (NumPy operands with device="cuda")
    transfer_bytes: int = 0

    @property
    def transposed(self) -> bool:
        return self.op.startswith("conv_transpose")

    @property
    def out_shape(self) -> tuple[int, ...]:
        if self.batched:
            return (self.n, self.c_out, *self.out_spatial)
        return (self.c_out, *self.out_spatial)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the dense computation (no zero skipping;
        transposed: every input element times its kernel)."""
        if self.transposed:
            return self.n * self.c_in * (self.c_out // self.groups) * _prod(self.kernel) * _prod(self.in_spatial)
        return self.n * self.c_out * (self.c_in // self.groups) * _prod(self.kernel) * _prod(self.out_spatial)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def lifted(self, name: str) -> tuple[int, ...]:
        """A spatial tuple lifted to 3 axes, for the kernels."""
        value = getattr(self, name)
        fill = 0 if name in ("pad_lo", "pad_hi", "output_padding") else 1
        return (fill,) * (3 - self.nd) + tuple(value)

    @property
    def kernel_pad_lo(self) -> tuple[int, ...]:
        """Padding the kernel handles itself (zeros mode only; other modes are
        materialised before the kernel runs)."""
        if self.padding_mode == "zeros":
            return self.lifted("pad_lo")
        return (0, 0, 0)

    def key(self) -> tuple[Any, ...]:
        """What changes the answer or the speed: the tuning-cache key."""
        return (
            self.op,
            self.nd,
            self.n,
            self.c_in,
            self.c_out,
            self.groups,
            self.in_spatial,
            self.kernel,
            self.stride,
            self.dilation,
            self.pad_lo,
            self.pad_hi,
            self.padding_mode,
            self.dtype.str,
            self.has_bias,
            self.output_padding,
            self.transfer_bytes,
        )


class ConvOperands(NamedTuple):
    """Kernel-ready arrays: x (N, C_in, D, H, W) already padded for non-zero
    padding modes, w (C_out, C_in/groups, KD, KH, KW), b (C_out,) or None.
    (A named tuple: made on every call, twice as fast as a frozen dataclass.)"""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int, got {type(value).__name__} ({type(value).__name__!r} object cannot be interpreted "
            "as an integer)"
        ) from None


def _tuple(value: Any, nd: int, name: str, *, minimum: int) -> tuple[int, ...]:
    """An int or a tuple of ``nd`` ints, each >= minimum."""
    if isinstance(value, (list, tuple)):
        if len(value) != nd:
            raise ValueError(f"{name} must be an int or a tuple of {nd} ints, got {tuple(value)!r}")
        items = tuple(_int(v, name) for v in value)
    elif isinstance(value, np.ndarray) and value.ndim == 1:
        return _tuple(value.tolist(), nd, name, minimum=minimum)
    else:
        items = (_int(value, name),) * nd
    for v in items:
        if v < minimum:
            expected = "positive" if minimum == 1 else f">= {minimum}"
            raise ValueError(f"{name} must be {expected}, got {value!r}")
    return items


def compute_dtype(*dtypes: np.dtype, names: tuple[str, ...]) -> np.dtype:
    """The API's dtype rule: float32/float64 kept, float16 -> float32, other
    real dtypes (bool, ints) -> float64, mixed dtypes via numpy.result_type."""
    for dt, name in zip(dtypes, names):
        if dt.kind == "c":
            raise TypeError(f"{name} is complex ({dt}); fastconv's NN ops take real arrays only")
        if dt.kind not in "biuf":
            raise TypeError(f"{name} must be a real numeric array, got dtype {dt}")
    rt = np.result_type(*dtypes)
    if rt == np.float32 or rt == np.float16:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_array(value: Any, name: str) -> np.ndarray:
    """Accept ndarrays and array-likes; reject what is not numeric data
    (bool, int, float, complex: the ops narrow this further)."""
    if isinstance(value, np.ndarray):
        arr = value
    elif value is None or isinstance(value, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}")
    elif is_gpu_array(value):
        arr = proxy(value)  # validated by shape and dtype; the data stays on the GPU
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def ready_as_given(arr: np.ndarray, dtype: np.dtype) -> bool:
    """Whether ``arr`` is what the kernels take as it stands: ``dtype``
    (native order), C-contiguous, aligned and writeable (numba compiles a
    separate signature for read-only arrays)."""
    if arr.dtype is not dtype and arr.dtype != dtype:
        return False
    flags = arr.flags
    return flags.c_contiguous and flags.aligned and flags.writeable


def kernel_ready(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``arr`` as the kernels take it (:func:`ready_as_given`); copies only if needed."""
    if ready_as_given(arr, dtype):
        return arr  # (every repeated small call: np.require costs more than the kernel)
    out = np.require(arr, dtype=dtype, requirements=("C", "A"))
    if not out.flags.writeable:
        out = out.copy()
    return out


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"out must have dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    return out


def _nn_arrays(nd: int, fname: str, input: Any, weight: Any, bias: Any, weight_axes: str):
    """The arrays of an NN op (conv or transposed conv): types, the dtype rule,
    the input's rank (batched or not) and the weight's rank, checked once."""
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    dtype = compute_dtype(x.dtype, w.dtype, names=("input", "weight"))
    if b is not None:
        compute_dtype(b.dtype, names=("bias",))
    _check_input_rank(nd, fname, x)
    if w.ndim != nd + 2:
        raise ValueError(f"{fname}: weight must be {nd + 2}-D ({weight_axes}, {_axes(nd, 'k')}), got shape {w.shape}")
    return x, w, b, dtype, x.ndim == nd + 2


def _check_input_rank(nd: int, fname: str, x: np.ndarray) -> None:
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"{fname}: input must be {nd + 1}-D (C, {_axes(nd)}) or {nd + 2}-D (N, C, {_axes(nd)}), got shape {x.shape}"
        )


def conv_spec(
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    padding_mode: Any,
    method: Any,
    device: Any,
    out: Any,
) -> tuple[ConvSpec, ConvOperands, np.ndarray | None]:
    """Validate a ``conv{nd}d`` call; return its spec, kernel-ready operands and ``out``."""
    fname = f"conv{nd}d"
    dev = check_device(device, input, weight, bias)
    x, w, b, dtype, batched = _nn_arrays(nd, fname, input, weight, bias, "C_out, C_in/groups")
    n = x.shape[0] if batched else 1
    c_in = x.shape[1 if batched else 0]
    in_spatial = tuple(int(s) for s in x.shape[-nd:])
    c_out = int(w.shape[0])
    kernel = tuple(int(s) for s in w.shape[2:])

    groups = _int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels C_in={c_in}")
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the output channels weight.shape[0]={c_out}")
    if w.shape[1] * groups != c_in:
        raise ValueError(
            f"weight.shape[1] must be C_in/groups = {c_in}/{groups} = {c_in // groups}, "
            f"got weight of shape {w.shape} for input of shape {x.shape}"
        )
    if any(k == 0 for k in kernel):
        raise ValueError(f"weight's kernel size must be positive on every axis, got {kernel}")
    if any(s == 0 for s in in_spatial):
        raise ValueError(f"input's spatial axes must be non-empty, got input of shape {x.shape}")

    stride = _tuple(stride, nd, "stride", minimum=1)
    dilation = _tuple(dilation, nd, "dilation", minimum=1)
    span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
    if isinstance(padding, str):
        if padding == "valid":
            pad_lo = pad_hi = (0,) * nd
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' requires stride 1 on every axis, got stride={stride}")
            pad_lo = tuple((s - 1) // 2 for s in span)
            pad_hi = tuple((s - 1) - lo for s, lo in zip(span, pad_lo))
        else:
            raise ValueError(f"padding must be an int, a tuple of {nd} ints, 'valid' or 'same', got {padding!r}")
    else:
        pad_lo = pad_hi = _tuple(padding, nd, "padding", minimum=0)

    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if padding_mode == "reflect":
        for size, lo, hi in zip(in_spatial, pad_lo, pad_hi):
            if max(lo, hi) >= size:
                raise ValueError(
                    f"padding_mode='reflect' needs padding < the input size on each axis, "
                    f"got padding {max(lo, hi)} for size {size}"
                )
    if padding_mode == "circular":
        for size, lo, hi in zip(in_spatial, pad_lo, pad_hi):
            if max(lo, hi) > size:
                raise ValueError(
                    f"padding_mode='circular' needs padding <= the input size on each axis, "
                    f"got padding {max(lo, hi)} for size {size}"
                )

    out_spatial = []
    for size, lo, hi, sp, st in zip(in_spatial, pad_lo, pad_hi, span, stride):
        padded = size + lo + hi
        if sp > padded:
            raise ValueError(
                f"{fname}: the (dilated) kernel {kernel} with dilation {dilation} spans {span}, "
                f"larger than the padded input {tuple(i + a + c for i, a, c in zip(in_spatial, pad_lo, pad_hi))}"
            )
        out_spatial.append((padded - sp) // st + 1)

    if b is not None and b.shape != (c_out,):
        raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {b.shape}")
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")

    spec = ConvSpec(
        op=fname + ("@cuda" if dev == "cuda" else ""),
        nd=nd,
        batched=batched,
        n=int(n),
        c_in=int(c_in),
        c_out=c_out,
        groups=groups,
        in_spatial=in_spatial,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        pad_lo=pad_lo,
        pad_hi=pad_hi,
        padding_mode=padding_mode,
        out_spatial=tuple(out_spatial),
        dtype=dtype,
        has_bias=b is not None,
        method=method,
        device=dev,
        transfer_bytes=_transfer_bytes(dev, (input, weight, bias), out_spatial, c_out, n, dtype),
    )
    return _finish(spec, x, w, b, out)


def _transfer_bytes(dev: str, arrays, out_spatial, c_out: int, n: int, dtype: np.dtype) -> int:
    """Host<->GPU traffic of a device="cuda" call with NumPy operands (0 when
    the data already lives on the GPU, or on the CPU)."""
    if dev != "cuda":
        return 0
    moved = sum(np.asarray(a).nbytes for a in arrays if a is not None and not is_gpu_array(a))
    if not is_gpu_array(arrays[0]):
        moved += n * c_out * _prod(out_spatial) * dtype.itemsize  # the result comes back
    return int(moved)


def _finish(spec: ConvSpec, x, w, b, out):
    """(spec, operands, out): CPU operands are made kernel-ready; a GPU call
    keeps its arrays where they are (the GPU runner moves them)."""
    if spec.device == "cuda":
        return spec, None, out
    out = check_out(out, spec.out_shape, spec.dtype)
    return spec, _operands(spec, x, w, b), out


def _axes(nd: int, prefix: str = "") -> str:
    names = ("D", "H", "W")[3 - nd :]
    return ", ".join(prefix + a for a in names)


def _operands(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> ConvOperands:
    nd = spec.nd
    if not spec.batched:
        x = x[None]
    if spec.padding_mode != "zeros" and (any(spec.pad_lo) or any(spec.pad_hi)) and x.size:
        widths = [(0, 0), (0, 0), *zip(spec.pad_lo, spec.pad_hi)]
        x = np.pad(x.astype(spec.dtype, copy=False), widths, mode=_NP_PAD_MODE[spec.padding_mode])
    lift = (1,) * (3 - nd)
    x = kernel_ready(x, spec.dtype)
    x = x.reshape(x.shape[:2] + lift + x.shape[2:])
    w = kernel_ready(w, spec.dtype)
    w = w.reshape(w.shape[:2] + lift + w.shape[2:])
    if b is not None:
        b = kernel_ready(b, spec.dtype)
    return ConvOperands(x=x, w=w, b=b)


def lifted_operand_shapes(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The kernels' 5-D shapes of a convolution's input (N, C_in, D, H, W)
    and weight (C_out or C_in, C/groups, KD, KH, KW), unpadded."""
    lift = (1,) * (3 - spec.nd)
    x5 = (spec.n, spec.c_in, *lift, *spec.in_spatial)
    w5 = (spec.c_in if spec.transposed else spec.c_out,
          (spec.c_out if spec.transposed else spec.c_in) // spec.groups, *lift, *spec.kernel)  # fmt: skip
    return x5, w5


def operands_maker(spec: ConvSpec):
    """``make(x, w, b) -> ConvOperands``: :func:`_operands` for repeated calls
    of ``spec``, the lifted shapes computed once (zero padding: the kernels
    pad; the other modes pad here, as :func:`_operands`)."""
    if spec.padding_mode != "zeros":
        return lambda x, w, b: _operands(spec, x, w, b)
    x5, w5 = lifted_operand_shapes(spec)
    dtype = spec.dtype

    def make(x, w, b):
        return ConvOperands(
            x=kernel_ready(x, dtype).reshape(x5),
            w=kernel_ready(w, dtype).reshape(w5),
            b=None if b is None else kernel_ready(b, dtype),
        )

    return make


def synthetic_operands(spec):
    """Random operands with ``spec``'s shapes and dtype (for measuring kernels)."""
    rng = np.random.default_rng(0)
    if isinstance(spec, FilterSpec):
        xp = rng.standard_normal(spec.lifted("padded")).astype(spec.dtype)
        return FilterOperands(x=xp, w=rng.standard_normal(spec.lifted("kernel")).astype(spec.dtype))
    x = rng.standard_normal((spec.n, spec.c_in, *spec.in_spatial)).astype(spec.dtype)
    wshape = (spec.c_out, spec.c_in // spec.groups)
    if spec.transposed:
        wshape = (spec.c_in, spec.c_out // spec.groups)
    w = rng.standard_normal((*wshape, *spec.kernel)).astype(spec.dtype)
    b = rng.standard_normal(spec.c_out).astype(spec.dtype) if spec.has_bias else None
    if not spec.batched:
        x = x[0]
    return _operands(spec, x, w, b)


def synthetic_output(spec) -> np.ndarray:
    """An uninitialised result buffer a method's runner writes for ``spec``
    (a filter's kernel shape, else the 5-D convolution output)."""
    shape = getattr(spec, "scratch_shape", None) or (spec.n, spec.c_out, *spec.lifted("out_spatial"))
    return np.empty(shape, dtype=spec.dtype)


# --- transposed convolution -------------------------------------------------------


def conv_transpose_spec(
    nd: int,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: Any,
    dilation: Any,
    method: Any,
    device: Any,
    out: Any,
) -> tuple[ConvSpec, ConvOperands, np.ndarray | None]:
    """Validate a ``conv_transpose{nd}d`` call (torch's rules); weight is
    ``(C_in, C_out/groups, *kernel)``."""
    fname = f"conv_transpose{nd}d"
    dev = check_device(device, input, weight, bias)
    x, w, b, dtype, batched = _nn_arrays(nd, fname, input, weight, bias, "C_in, C_out/groups")
    c_in = int(x.shape[1 if batched else 0])
    groups = _int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups}")
    if w.shape[0] != c_in:
        raise ValueError(
            f"weight.shape[0] must be the input channels C_in={c_in} (weight is (C_in, C_out/groups, ...)), "
            f"got weight of shape {w.shape}"
        )
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels C_in={c_in}")
    kernel = tuple(int(s) for s in w.shape[2:])
    if any(k == 0 for k in kernel):
        raise ValueError(f"weight's kernel size must be positive on every axis, got {kernel}")
    in_spatial = tuple(int(s) for s in x.shape[-nd:])
    if any(s == 0 for s in in_spatial):
        raise ValueError(f"input's spatial axes must be non-empty, got input of shape {x.shape}")
    c_out = int(w.shape[1]) * groups
    stride = _tuple(stride, nd, "stride", minimum=1)
    dilation = _tuple(dilation, nd, "dilation", minimum=1)
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int or a tuple of {nd} ints for {fname}, got {padding!r}")
    padding = _tuple(padding, nd, "padding", minimum=0)
    output_padding = _tuple(output_padding, nd, "output_padding", minimum=0)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation, got output_padding={output_padding}, "
                f"stride={stride}, dilation={dilation}"
            )
    out_spatial = tuple(
        (i - 1) * s - 2 * p + d * (k - 1) + op + 1
        for i, s, p, d, k, op in zip(in_spatial, stride, padding, dilation, kernel, output_padding)
    )
    if any(o < 1 for o in out_spatial):
        raise ValueError(
            f"{fname}: output size {out_spatial} is not positive (input {in_spatial}, kernel {kernel}, "
            f"stride={stride}, padding={padding}, dilation={dilation}, output_padding={output_padding})"
        )
    if b is not None and b.shape != (c_out,):
        raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {b.shape}")
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    spec = ConvSpec(
        op=fname + ("@cuda" if dev == "cuda" else ""),
        nd=nd,
        batched=batched,
        n=int(x.shape[0]) if batched else 1,
        c_in=c_in,
        c_out=c_out,
        groups=groups,
        in_spatial=in_spatial,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        pad_lo=padding,
        pad_hi=padding,
        padding_mode="zeros",
        out_spatial=out_spatial,
        dtype=dtype,
        has_bias=b is not None,
        method=method,
        output_padding=output_padding,
        device=dev,
        transfer_bytes=_transfer_bytes(
            dev, (input, weight, bias), out_spatial, c_out, int(x.shape[0]) if batched else 1, dtype
        ),
    )
    return _finish(spec, x, w, b, out)


# --- pooling -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """A validated pooling call (max, avg, adaptive max, adaptive avg).

    For the adaptive ops ``kernel``/``stride``/``padding``/``dilation`` are
    empty; the windows follow torch's adaptive start/end formulas."""

    op: str
    kind: str  # "max" or "avg"
    adaptive: bool
    nd: int
    batched: bool
    n: int
    c: int
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int | None
    return_indices: bool
    dtype: np.dtype
    device: str = "cpu"
    #: the pooling functions take no ``method=``; a plan may force one by name
    method: str = "auto"

    @property
    def out_shape(self) -> tuple[int, ...]:
        lead = (self.n, self.c) if self.batched else (self.c,)
        return (*lead, *self.out_spatial)

    @property
    def flops(self) -> int:
        """One comparison or addition per window tap and output."""
        taps = _prod(self.kernel) if self.kernel else max(1, _prod(self.in_spatial) // max(1, _prod(self.out_spatial)))
        return self.n * self.c * _prod(self.out_spatial) * taps

    def key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "method")

    def describe(self) -> list[str]:
        lead = (self.n, self.c) if self.batched else (self.c,)
        window = (
            "adaptive"
            if self.adaptive
            else (
                f"kernel {self.kernel}, stride {self.stride}, padding {self.padding}, dilation {self.dilation}"
                + (", ceil_mode" if self.ceil_mode else "")
            )
        )
        return [
            f"  input {(*lead, *self.in_spatial)} {self.dtype}, {self.kind} pooling, {window}",
            f"  output {self.out_shape}" + (" with indices" if self.return_indices else ""),
        ]

    def lifted(self, name: str) -> tuple[int, ...]:
        value = getattr(self, name)
        fill = 0 if name == "padding" else 1
        return (fill,) * (3 - self.nd) + tuple(value)


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling output length (``pooling_output_shape``): with
    ``ceil_mode`` the last window must start inside the input or left padding."""
    span = d * (k - 1) + 1
    num = size + 2 * p - span + (s - 1 if ceil_mode else 0)
    out = num // s + 1  # floor division, as torch's div_rtn
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _pool_input(nd: int, fname: str, input: Any) -> tuple[np.ndarray, np.dtype, bool]:
    x = as_array(input, "input")
    dtype = compute_dtype(x.dtype, names=("input",))
    _check_input_rank(nd, fname, x)
    batched = x.ndim == nd + 2
    if any(s == 0 for s in x.shape[-nd:]):
        raise ValueError(f"{fname}: input's spatial axes must be non-empty, got input of shape {x.shape}")
    return x, dtype, batched


def pool_spec(
    kind: str,
    nd: int,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
    return_indices: Any,
    count_include_pad: Any,
    divisor_override: Any,
    device: Any,
) -> tuple[PoolSpec, np.ndarray]:
    """Validate a ``max_pool{nd}d`` / ``avg_pool{nd}d`` call; return its spec
    and the input as a kernel-ready (P, D, H, W) array of planes."""
    fname = f"{kind}_pool{nd}d"
    dev = check_device(device, input)
    x, dtype, batched = _pool_input(nd, fname, input)
    kernel = _tuple(kernel_size, nd, "kernel_size", minimum=1)
    stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else stride
    stride = _tuple(stride, nd, "stride", minimum=1)
    padding = _tuple(padding, nd, "padding", minimum=0)
    dilation = _tuple(dilation, nd, "dilation", minimum=1)
    ceil_mode = _bool(ceil_mode, "ceil_mode")
    return_indices = _bool(return_indices, "return_indices")
    count_include_pad = _bool(count_include_pad, "count_include_pad")
    if divisor_override is not None:
        divisor_override = _int(divisor_override, "divisor_override")
        if divisor_override == 0:
            raise ValueError("divisor_override must be a non-zero int or None, got 0")
    for k, p in zip(kernel, padding):
        if p > k // 2:
            raise ValueError(
                f"{fname}: padding must be at most half of kernel_size, got padding={padding} for kernel_size={kernel}"
            )
    in_spatial = tuple(int(s) for s in x.shape[-nd:])
    out_spatial = tuple(
        pool_output_size(size, k, s, p, d, ceil_mode)
        for size, k, s, p, d in zip(in_spatial, kernel, stride, padding, dilation)
    )
    if any(o < 1 for o in out_spatial):
        raise ValueError(
            f"{fname}: output size {out_spatial} is too small for input of spatial size {in_spatial} with "
            f"kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation}"
        )
    spec = PoolSpec(
        op=fname,
        kind=kind,
        adaptive=False,
        nd=nd,
        batched=batched,
        n=int(x.shape[0]) if batched else 1,
        c=int(x.shape[-nd - 1]),
        in_spatial=in_spatial,
        out_spatial=out_spatial,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
        return_indices=return_indices,
        dtype=dtype,
        device=dev,
    )
    return spec, _planes(spec, x)


def adaptive_pool_spec(
    kind: str, nd: int, input: Any, output_size: Any, return_indices: Any, device: Any
) -> tuple[PoolSpec, np.ndarray]:
    """Validate an ``adaptive_{kind}_pool{nd}d`` call (``None`` entries of
    ``output_size`` keep that input size)."""
    fname = f"adaptive_{kind}_pool{nd}d"
    dev = check_device(device, input)
    x, dtype, batched = _pool_input(nd, fname, input)
    in_spatial = tuple(int(s) for s in x.shape[-nd:])
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != nd:
            raise ValueError(f"output_size must be an int or a tuple of {nd} ints/None, got {tuple(output_size)!r}")
        sizes = tuple(size if o is None else _int(o, "output_size") for o, size in zip(output_size, in_spatial))
    elif output_size is None:
        raise TypeError("output_size must be an int or a tuple of ints/None, got None")
    else:
        sizes = (_int(output_size, "output_size"),) * nd
    if any(o < 1 for o in sizes):
        raise ValueError(f"output_size must be positive, got {output_size!r}")
    spec = PoolSpec(
        op=fname,
        kind=kind,
        adaptive=True,
        nd=nd,
        batched=batched,
        n=int(x.shape[0]) if batched else 1,
        c=int(x.shape[-nd - 1]),
        in_spatial=in_spatial,
        out_spatial=sizes,
        kernel=(),
        stride=(),
        padding=(),
        dilation=(),
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
        return_indices=_bool(return_indices, "return_indices"),
        dtype=dtype,
        device=dev,
    )
    return spec, _planes(spec, x)


def planes_shape(spec) -> tuple[int, ...]:
    """The (N*C, D, H, W) shape the pooling kernels read the input as."""
    return (spec.n * spec.c, *spec.lifted("in_spatial"))


def _planes(spec, x: np.ndarray) -> np.ndarray | None:
    """The input as a kernel-ready (N*C, D, H, W) array (None for a GPU call:
    the data stays where it is)."""
    if spec.device == "cuda":
        return None
    return kernel_ready(x, spec.dtype).reshape(planes_shape(spec))


# --- image filters (scipy.ndimage) ---------------------------------------------------

NDIMAGE_MODES = ("reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror", "grid-wrap")
#: scipy.ndimage boundary mode -> numpy.pad mode (for filters the grid-* modes
#: equal their plain counterparts; scipy's "reflect" repeats the edge sample)
NDIMAGE_PAD = {
    "reflect": "symmetric",
    "grid-mirror": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
    "wrap": "wrap",
    "grid-wrap": "wrap",
    "constant": "constant",
    "grid-constant": "constant",
}
#: scipy.ndimage ignores weights whose magnitude is at most this (its
#: footprint), so a NaN under a zero weight does not reach the output
FOOTPRINT_EPS = float(np.finfo(np.float64).eps)


@dataclasses.dataclass(frozen=True)
class FilterSpec:
    """A validated ``fastconv.ndimage`` correlation (convolutions are turned
    into correlations with flipped weights here).  Arrays are lifted to three
    axes for the kernels when ``ndim <= 3``."""

    op: str  # "ndimage"
    ndim: int
    shape: tuple[int, ...]
    kernel: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    mode: str
    cval: float
    dtype: np.dtype  # computing dtype (float32 or float64)
    is_complex: bool
    out_dtype: np.dtype
    taps: int  # weights above the footprint threshold
    rank1: bool  # weights are an outer product of 1-D kernels
    method: str
    #: ndimage leaves weights <= 2.2e-16 out (its footprint); signal multiplies every tap
    skip_zeros: bool = True
    #: a complex cval's imaginary part: the value beyond the edges of a complex input's imaginary part
    cval_imag: float = 0.0
    #: a line ``explain`` adds (a filter's passes that run as one sweep)
    note: str = ""

    @property
    def flops(self) -> int:
        return 2 * self.taps * _prod(self.out_shape) * (4 if self.is_complex else 1)

    @property
    def padded(self) -> tuple[int, ...]:
        return tuple(s + a + b for s, a, b in zip(self.shape, self.pad_lo, self.pad_hi))

    def lifted(self, name: str) -> tuple[int, ...]:
        value = getattr(self, name)
        fill = 0 if name in ("pad_lo", "pad_hi") else 1
        return (fill,) * (3 - len(value)) + tuple(value)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The "valid" correlation of the padded input (the input's shape for ndimage)."""
        return tuple(p - k + 1 for p, k in zip(self.padded, self.kernel))

    @property
    def scratch_shape(self) -> tuple[int, ...]:
        """The kernels' (lifted) output array."""
        return self.lifted("out_shape")

    def key(self) -> tuple[Any, ...]:
        """What changes the answer or the speed (the plan cache's key: a plan
        runs its own spec, so every field a kernel reads is here -- ``cval``
        too: the FFT paths transform the bare signal when it is 0)."""
        return (self.op, self.shape, self.kernel, self.pad_lo, self.pad_hi, self.mode, self.cval, self.dtype.str,
                self.is_complex, self.taps, self.rank1, self.skip_zeros, self.cval_imag, self.note)  # fmt: skip

    def describe(self) -> list[str]:
        return [
            f"  input {self.shape} {self.dtype}{' (complex: 4 real passes)' if self.is_complex else ''}, "
            f"weights {self.kernel} ({self.taps} non-zero{', separable' if self.rank1 else ''}), mode {self.mode!r}",
            *([f"  {self.note}"] if self.note else []),
            f"  output {self.out_shape} {self.out_dtype}, {self.flops / 1e9:.3f} GFLOP",
        ]


class FilterOperands(NamedTuple):
    """x: the input padded by the boundary mode (real; complex inputs are
    split by the caller), w: the weights ready for correlation."""

    x: np.ndarray
    w: np.ndarray


def _origins(origin: Any, ndim: int, kernel: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(origin, (list, tuple, np.ndarray)):
        origins = tuple(_int(o, "origin") for o in np.asarray(origin).reshape(-1).tolist())
        if len(origins) != ndim:
            raise ValueError(f"origin must be an int or a sequence of {ndim} ints (one per axis), got {origin!r}")
    else:
        origins = (_int(origin, "origin"),) * ndim
    for o, k in zip(origins, kernel):
        if not -(k // 2) <= o <= (k - 1) // 2:
            raise ValueError(
                f"origin {origins} is out of range for weights of shape {kernel}: each origin[k] must satisfy "
                f"-(weights.shape[k] // 2) <= origin[k] <= (weights.shape[k] - 1) // 2"
            )
    return origins


def filter_spec(
    input: Any,
    weights: Any,
    output: Any,
    mode: Any,
    cval: Any,
    origin: Any,
    method: Any,
    *,
    convolve: bool,
    new_array: str | None = None,
    every_tap: bool = False,
    axes: Any = None,
) -> tuple[FilterSpec, np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate an ndimage correlate/convolve call.  Returns the spec, the
    input, the correlation weights (flipped for convolve, conjugated for
    complex correlate, as scipy) and the ``output`` array (or None).
    ``new_array`` names the kind of input ("dask", "GPU") whose result is a
    new array of its own kind: ``output`` may then only be a dtype.
    ``every_tap``: every weight is multiplied, zeros too (scipy's
    correlate1d: a NaN under a zero weight spreads), not the footprint."""
    if new_array is not None and (isinstance(output, np.ndarray) or is_gpu_array(output)):
        raise TypeError(
            f"output must be None or a dtype for a {new_array} input (the result is a new {new_array} array)"
        )
    if axes is not None:
        weights, origin = expand_axes(input, weights, origin, axes)
    x = as_array(input, "input")
    w = as_array(weights, "weights")
    if w.ndim != x.ndim:
        raise ValueError(f"weights must have the input's number of dimensions {x.ndim}, got weights of shape {w.shape}")
    if x.ndim == 0:
        raise ValueError("input must have at least one dimension")
    if w.size == 0:
        raise ValueError(f"weights must not be empty, got weights of shape {w.shape}")
    if isinstance(mode, (list, tuple)):
        raise ModeSequenceError(f"mode must be one of {NDIMAGE_MODES}: a sequence of modes is not supported here, got "
                                f"{mode!r}")  # fmt: skip
    if not isinstance(mode, str) or mode not in NDIMAGE_MODES:
        raise ValueError(f"mode must be one of {NDIMAGE_MODES}, got {mode!r}")
    if isinstance(cval, (bool, np.bool_)) or not isinstance(cval, (int, float, complex, np.number)):
        raise TypeError(f"cval must be a number, got {type(cval).__name__}")
    cval_imag = 0.0
    if isinstance(cval, (complex, np.complexfloating)):
        if np.asarray(input).dtype.kind != "c":  # (as scipy)
            raise ValueError("Cannot provide a complex-valued cval when the input is real.")
        cval, cval_imag = cval.real, cval.imag
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    kernel = tuple(int(k) for k in w.shape)
    origins = _origins(origin, x.ndim, kernel)
    w = correlation_weights(w, convolve)
    if convolve:  # scipy: convolve = correlate with reversed weights and mirrored origins
        origins = tuple(-o - (1 - k % 2) for o, k in zip(origins, kernel))
    is_complex = x.dtype.kind == "c" or w.dtype.kind == "c"
    single = x.dtype in (np.float32, np.float16, np.complex64)
    dtype = np.dtype(np.float32 if single else np.float64)
    native = x.dtype.newbyteorder("=")  # scipy returns the dtype by name (native order)
    if is_complex:
        out_dtype = native if x.dtype.kind == "c" else np.result_type(native, np.complex64)
    else:
        out_dtype = native
    out_arr = None
    if output is not None:
        out_dtype = output_dtype(output, x.shape, None)
        if isinstance(output, np.ndarray):
            if not output.flags.writeable:
                raise ValueError("output must be writeable")
            out_arr = output
        if is_complex and out_dtype.kind != "c":
            if out_arr is not None or isinstance(output, str):
                raise OutputDtypeError(f"output must be complex for complex input or weights, got {out_dtype}")
            # (a dtype or type: scipy warns and promotes it)
            warnings.warn(f"promoting specified output dtype to complex: {out_dtype} (complex input or weights)",
                          UserWarning, stacklevel=user_stacklevel())  # fmt: skip
            out_dtype = np.promote_types(out_dtype, np.complex64)
    pad_lo = tuple(k // 2 + o for k, o in zip(kernel, origins))
    pad_hi = tuple(k - 1 - lo for k, lo in zip(kernel, pad_lo))
    taps, rank1 = weight_fields(w, x.ndim, is_complex)
    if every_tap:
        taps = int(w.size)
    spec = FilterSpec(
        op="ndimage",
        ndim=x.ndim,
        shape=tuple(int(s) for s in x.shape),
        kernel=kernel,
        pad_lo=pad_lo,
        pad_hi=pad_hi,
        mode=mode,
        cval=float(cval),
        dtype=dtype,
        is_complex=is_complex,
        out_dtype=np.dtype(out_dtype),
        taps=taps,
        rank1=rank1,
        method=method,
        skip_zeros=not every_tap,
        cval_imag=float(cval_imag),
    )
    return spec, x, w, out_arr


def user_stacklevel() -> int:
    """The ``stacklevel`` of a warning raised here that points at the
    caller's line: the first frame outside fastconv (and the public
    functions' generated wrappers)."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith(package) or "_op" in frame.f_globals):
        frame, level = frame.f_back, level + 1
    return level


class AxesTypeError(TypeError, ValueError):
    """``axes`` that are not integers: a TypeError, and the ValueError
    scipy.signal raises."""


class WeightsAxesError(ValueError, RuntimeError):
    """Weights whose dimensions do not match ``axes``: a ValueError, and the
    RuntimeError scipy.ndimage raises."""


class ModeSequenceError(ValueError, RuntimeError):
    """One mode per axis where the function takes one (correlate, convolve):
    a ValueError, and the RuntimeError scipy.ndimage raises."""


class OutputShapeError(ValueError, RuntimeError):
    """``output`` has another shape than the result: a ValueError, and the
    RuntimeError scipy.ndimage raises."""


class OutputDtypeError(TypeError, RuntimeError):
    """``output`` cannot hold the result (a real array for complex data): a
    TypeError, and the RuntimeError scipy.ndimage raises."""


def check_axes(axes: Any, ndim: int) -> tuple[int, ...]:
    """``axes`` (None: all; an int; a sequence of ints) as distinct
    non-negative axes, as scipy.ndimage reads them."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (numbers.Integral, np.integer)):
        axes = (axes,)
    if not isinstance(axes, (Sequence, np.ndarray)) or isinstance(axes, str):
        raise TypeError(f"axes must be None, an int or a sequence of ints, got {axes!r}")
    out = []
    for a in axes:
        a = _int(a, "axes")
        if not -ndim <= a < ndim:
            raise ValueError(f"axes {axes!r} out of range for an input of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axes must be unique, got {axes!r}")
    return tuple(out)


def check_axis(axis: Any, ndim: int) -> int:
    """A filter's ``axis``: an int in range, non-negative."""
    return check_axes((_int(axis, "axis"),), ndim)[0]


def per_axis(value: Any, n: int, name: str) -> list:
    """A filter argument given once or per filtered axis (scipy's
    ``_normalize_sequence``): a scalar or a string repeated, a sequence of
    length ``n`` as is (scipy raises RuntimeError otherwise)."""
    if isinstance(value, str) or not isinstance(value, (Sequence, np.ndarray)):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise RuntimeError(f"sequence argument must have length equal to input rank: {name} must have one entry per "
                           f"filtered axis ({n}), got {len(values)}")  # fmt: skip
    return values


def output_dtype(output: Any, shape: tuple[int, ...], default: Any) -> np.dtype:
    """The dtype an ndimage function writes: ``output``'s (a NumPy array of
    the input's ``shape``, or a dtype), else ``default``."""
    if output is None:
        return np.dtype(default)
    if isinstance(output, np.ndarray):
        if output.shape != tuple(shape):
            raise OutputShapeError(f"output must have the input's shape {tuple(shape)}, got {output.shape}")
        return output.dtype
    try:
        return np.dtype(output)
    except TypeError:
        raise TypeError(f"output must be None, a numpy.ndarray or a dtype, got {output!r}") from None


def gaussian_args(sigma: Any, order: Any, truncate: Any, radius: Any) -> tuple[float, int, int]:
    """(sigma, order, radius) of gaussian_filter1d: ``radius`` defaults to
    ``int(truncate * sigma + 0.5)``; both non-negative integers."""
    sigma = float(sigma)
    if radius is None:
        radius = int(float(truncate) * sigma + 0.5)
    elif isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}")  # (a ValueError, as scipy)
    order = _int(order, "order")
    if order < 0:
        raise ValueError(f"order must be non-negative, got {order}")
    return sigma, order, int(radius)


def uniform_size(size: Any, origin: Any) -> tuple[int, int]:
    """``size`` and ``origin`` of ``uniform_filter1d``, checked as scipy does."""
    size, origin = _int(size, "size"), _int(origin, "origin")
    if size < 1:
        raise RuntimeError(f"size must be at least 1, got {size}")
    if not 0 <= size // 2 + origin < size:
        raise ValueError(f"origin {origin} is out of range for a filter of size {size}")
    return size, origin


def expand_axes(input: Any, weights: Any, origin: Any, axes: Any) -> tuple[np.ndarray, Any]:
    """scipy's ``axes=`` of correlate/convolve: weights with one dimension
    per filtered axis get a length-1 dimension on every other axis, and
    ``origin`` (one, or one per filtered axis) 0 there; with every axis
    filtered both are left as given."""
    ndim = len(getattr(input, "shape", np.shape(input)))
    axes = check_axes(axes, ndim)
    w = weights if hasattr(weights, "__cuda_array_interface__") else as_array(weights, "weights")
    if w.ndim != len(axes):
        raise WeightsAxesError(f"weights.ndim ({w.ndim}) must match len(axes) ({len(axes)}): one dimension per axis")
    if len(axes) == ndim:
        return weights, origin
    w = w.reshape([w.shape[list(sorted(axes)).index(a)] if a in axes else 1 for a in range(ndim)])
    if isinstance(origin, (list, tuple, np.ndarray)):
        origins = list(np.asarray(origin).reshape(-1))
        if len(origins) != len(axes):
            raise RuntimeError(f"sequence argument must have length equal to input rank: origin must have one entry "
                               f"per axis in axes ({len(axes)}), got {len(origins)}")  # fmt: skip
    else:
        origins = [origin] * len(axes)
    full = [0] * ndim
    for o, a in zip(origins, axes):
        full[a] = o
    return w, tuple(full)


def correlation_weights(w: np.ndarray, convolve: bool) -> np.ndarray:
    """The weights ndimage correlates with: reversed for a convolution,
    conjugated (complex) for a correlation, as scipy."""
    if convolve:
        return w[tuple(slice(None, None, -1) for _ in range(w.ndim))]
    return np.conj(w) if w.dtype.kind == "c" else w


def weight_fields(w: np.ndarray, ndim: int, is_complex: bool) -> tuple[int, bool]:
    """The spec fields read from the correlation weights' values: the
    footprint's tap count and whether they are separable (real, <= 3 axes)."""
    return _footprint(w), not is_complex and ndim <= 3 and _is_rank1(w)


def _footprint(w: np.ndarray) -> int:
    """The weights scipy.ndimage counts (magnitude above FOOTPRINT_EPS)."""
    return int((np.abs(w.astype(np.complex128 if w.dtype.kind == "c" else np.float64)) > FOOTPRINT_EPS).sum())


def _is_rank1(w: np.ndarray) -> bool:
    """An outer product of 1-D kernels (to a relative 1e-12), at least 2 axes longer than 1."""
    if sum(k > 1 for k in w.shape) < 2:
        return False
    w = np.asarray(w, dtype=np.float64)
    for axis in range(w.ndim):
        m = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        s = np.linalg.svd(m, compute_uv=False)
        if s[0] == 0 or (len(s) > 1 and s[1] > 1e-12 * s[0]):
            return False
    return True


# --- signal (scipy.signal) -----------------------------------------------------------

SIGNAL_MODES = ("full", "same", "valid")
SIGNAL_METHODS = ("auto", "direct", "fft", "oa", "numpy")
BOUNDARIES = {"fill": "constant", "pad": "constant", "wrap": "wrap", "circular": "wrap", "symm": "reflect",
              "symmetric": "reflect"}  # fmt: skip


def signal_arrays(in1: Any, in2: Any) -> tuple[np.ndarray, np.ndarray]:
    a = as_array(in1, "in1")
    b = as_array(in2, "in2")
    if a.ndim != b.ndim:
        raise ValueError(f"in1 and in2 should have the same dimensionality, got {a.ndim} and {b.ndim}")
    return a, b


def unswapped_signal_weights(kind: str, in1_shape, b: np.ndarray, mode: Any, where: str) -> tuple[str, np.ndarray]:
    """``mode`` and the correlation weights of a signal ``kind`` ("convolve"
    or "correlate") whose ``in1`` stays where it is (a dask or GPU array,
    ``where``): in2 reversed for convolve, conjugated for correlate; 'valid'
    needs in1 at least as large as in2 (scipy would swap them)."""
    mode = check_signal_mode(mode)
    if b.ndim != len(in1_shape):
        raise ValueError(f"in1 and in2 should have the same dimensionality, got {len(in1_shape)} and {b.ndim}")
    if mode == "valid" and not all(n >= k for n, k in zip(in1_shape, b.shape)):
        raise ValueError(f"for a {where} in1 in 'valid' mode, in1 must be at least as large as in2 in every dimension")
    if kind == "correlate":
        return mode, (np.conj(b) if b.dtype.kind == "c" else b)
    return mode, b[tuple(slice(None, None, -1) for _ in range(b.ndim))]


def check_gpu_filter_method(method: Any) -> None:
    """``method=`` of a signal/ndimage call on GPU arrays: the GPU has one
    filter (direct), so another method is refused, not dropped."""
    if method not in ("auto", "direct"):
        raise ValueError(
            f"method={method!r} is not available on the GPU (its filter is direct); use 'auto' or 'direct'"
        )


def check_signal_mode(mode: Any) -> str:
    if not isinstance(mode, str) or mode not in SIGNAL_MODES:
        raise ValueError(f"mode: acceptable mode flags are 'valid', 'same', or 'full', got {mode!r}")
    return mode


def swap_for_valid(mode: str, a: np.ndarray, b: np.ndarray) -> bool:
    """scipy's rule: in 'valid' mode the larger array (at least as large on
    every axis) is the signal; neither being so is an error."""
    if mode != "valid":
        return False
    ok1 = all(i >= j for i, j in zip(a.shape, b.shape))
    ok2 = all(j >= i for i, j in zip(a.shape, b.shape))
    if not (ok1 or ok2):
        raise ValueError(
            f"For 'valid' mode, one must be at least as large as the other in every dimension (in1 {a.shape}, "
            f"in2 {b.shape})"
        )
    return not ok1


def signal_spec(a: np.ndarray, w: np.ndarray, mode: str, method: str, *, boundary: str = "fill",
                fillvalue: float = 0.0, same_start_high: bool = False) -> FilterSpec:  # fmt: skip
    """The spec of ``mode`` convolution of ``a`` with the correlation kernel
    ``w`` (in2 reversed): a valid correlation of ``a`` padded by ``boundary``.
    'same' keeps the full result from ``(k - 1) // 2`` (scipy.signal.convolve),
    or from ``k // 2`` with ``same_start_high`` (scipy.signal.correlate2d)."""
    if not isinstance(method, str) or method not in SIGNAL_METHODS:
        raise ValueError(f"method must be one of {SIGNAL_METHODS}, got {method!r}")
    k = tuple(int(v) for v in w.shape)
    n = tuple(int(v) for v in a.shape)
    if mode == "full":
        lo = hi = tuple(kk - 1 for kk in k)
    elif mode == "same" and same_start_high:
        lo = tuple((kk - 1) // 2 for kk in k)
        hi = tuple(kk // 2 for kk in k)
    elif mode == "same":
        lo = tuple(kk // 2 for kk in k)
        hi = tuple((kk - 1) // 2 for kk in k)
    else:
        lo = hi = (0,) * len(k)
    is_complex = a.dtype.kind == "c" or w.dtype.kind == "c"
    rt = np.result_type(a.dtype, w.dtype)
    single = rt in (np.float32, np.float16, np.complex64)
    return FilterSpec(
        op="signal",
        ndim=a.ndim,
        shape=n,
        kernel=k,
        pad_lo=lo,
        pad_hi=hi,
        mode=BOUNDARIES[boundary],
        cval=float(fillvalue),
        dtype=np.dtype(np.float32 if single else np.float64),
        is_complex=is_complex,
        out_dtype=rt.newbyteorder("="),
        taps=_prod(k),
        rank1=False,
        method=method,
        skip_zeros=False,
    )


def check_2d(ndim1: int, ndim2: int, boundary: Any, fillvalue: Any) -> str:
    """convolve2d/correlate2d: 2-D inputs, a known boundary, a real fillvalue."""
    if ndim1 != 2 or ndim2 != 2:
        raise ValueError(f"in1 and in2 must be 2-D, got {ndim1}-D and {ndim2}-D arrays")
    if not isinstance(boundary, str) or boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {tuple(BOUNDARIES)}, got {boundary!r}")
    fill_value(fillvalue)
    return boundary


class FillValueError(TypeError, ValueError):
    """A ``fillvalue`` that is not one real number: a TypeError, and the
    ValueError scipy.signal raises."""


def fill_value(fillvalue: Any) -> float:
    """convolve2d/correlate2d's ``fillvalue``: a real number or an array of
    one (scipy's rule)."""
    if isinstance(fillvalue, (bool, np.bool_)):
        raise FillValueError(f"fillvalue must be a real number, got {fillvalue!r}")
    try:
        arr = np.asarray(fillvalue)
    except (TypeError, ValueError):
        raise FillValueError(f"fillvalue must be a real number, got {fillvalue!r}") from None
    if arr.size != 1:
        raise FillValueError(f"`fillvalue` must be scalar or an array with one element, got {fillvalue!r}")
    if arr.dtype.kind == "c":  # (as scipy for real data)
        raise FillValueError(f"could not cast `fillvalue` directly to the output type: fillvalue must be a real "
                             f"number, got {fillvalue!r}")  # fmt: skip
    if arr.dtype.kind not in "iuf":
        raise FillValueError(f"fillvalue must be a real number, got {fillvalue!r}")
    return float(arr.reshape(-1)[0])


def freq_axes(shape1: tuple[int, ...], shape2: tuple[int, ...], axes: Any) -> tuple[int, ...]:
    """fftconvolve/oaconvolve's ``axes``: unique, in range; the other axes must
    match or be 1 in one input (they are broadcast, as scipy)."""
    ndim = len(shape1)
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    if len(axes) == 0:
        raise ValueError("axes: when provided, axes cannot be empty")
    out = []
    for ax in axes:
        if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer)):
            raise AxesTypeError(f"axes must be a scalar or iterable of integers, got {axes!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"axes exceeds dimensionality of input: axis {ax} is out of range for {ndim}-D inputs")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"all axes must be unique, got {axes!r}")
    for ax in range(ndim):
        if ax not in out and shape1[ax] != shape2[ax] and 1 not in (shape1[ax], shape2[ax]):
            raise ValueError(
                f"incompatible shapes for in1 and in2: {shape1} and {shape2} (axis {ax} is not in axes, so "
                "its lengths must match or one must be 1)"
            )
    return tuple(out)


def axis_filter_args(ndim: int, weights: np.ndarray, axis: Any, origin: Any) -> tuple[int, int]:
    """correlate1d/convolve1d: 1-D weights, an axis of the input, an int origin."""
    if weights.ndim != 1:
        raise ValueError(f"weights must be 1-D, got weights of shape {weights.shape}")
    if ndim == 0:
        raise ValueError("input must have at least one dimension")
    axis = _int(axis, "axis")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for input with {ndim} dimensions")
    return axis % ndim, _int(origin, "origin")
