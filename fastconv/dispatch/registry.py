"""The method registry the dispatcher reads.  A new algorithm is one kernel
module plus one :func:`register` call here; no public function changes."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

CONV_OPS = ("conv1d", "conv2d", "conv3d")


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered kernel.

    ``supports(spec)`` returns ``None`` when the method can compute ``spec``,
    else the reason it cannot; ``cost(spec, constants)`` estimates seconds from
    the cost-model constants (``cost_model.json``); ``workspace(spec)`` is the
    temporary memory in bytes; ``runner`` ("module:function") is imported on
    first use so that ``import fastconv`` never imports numba.
    """

    name: str
    ops: tuple[str, ...]
    runner: str | Callable[..., None]
    supports: Callable[[Any], str | None]
    cost: Callable[[Any, dict], float]
    workspace: Callable[[Any], int]
    description: str
    #: never chosen by "auto" for input containing NaN/Inf (it would spread them)
    finite_only: bool = False
    #: a ``finite_only`` method whose kernel checks the input as it reads it
    #: and raises ``kernels.NonFiniteInput`` (the dispatcher then runs another
    #: method): only the weights are checked beforehand, saving a pass over
    #: the input (measured: 0.35 ms of a 7 ms 64 @56 layer)
    checks_input: bool = False
    #: likewise for the weights: a method whose kernel probes every weight it
    #: reads (Winograd's weight transform) is not preceded by a check of them
    #: (measured: 0.5 ms, a pass over a 512x512x3x3 weight, of a 5.2 ms layer)
    checks_weights: bool = False
    #: tier 0 (:mod:`fastconv.kernels.tier0`): needs no compilation; never
    #: chosen by the cost model, it runs while the chosen kernel compiles
    #: (:mod:`fastconv._warm`) or when forced by name
    fallback: bool = False

    def load(self) -> Callable[..., None]:
        if callable(self.runner):
            return self.runner
        module, _, func = self.runner.partition(":")
        return getattr(importlib.import_module(module), func)


_REGISTRY: dict[str, dict[str, Method]] = {}


def register(method: Method) -> Method:
    for op in method.ops:
        table = _REGISTRY.setdefault(op, {})
        if method.name in table or method.name == "auto":
            raise ValueError(f"method {method.name!r} is already registered for {op}")
        table[method.name] = method
    return method


def unregister(name: str, ops: tuple[str, ...]) -> None:
    for op in ops:
        _REGISTRY.get(op, {}).pop(name, None)


def methods_for(op: str) -> dict[str, Method]:
    return dict(_REGISTRY.get(op, {}))


# --- registrations ----------------------------------------------------------------


def linear_cost(features: dict[str, float], constants: dict[str, float]) -> float:
    """Estimated seconds: sum of feature x constant (a missing constant counts 0)."""
    return sum(v * constants.get(k, 0.0) for k, v in features.items())


def direct_features(spec) -> dict[str, float]:
    """What the direct kernel's time grows with: a fixed cost, FLOPs, the
    number of accumulator passes (short streams are overhead-bound), and the
    input elements staged into tiles (once per block of 8 output channels)."""
    ow = spec.out_spatial[-1]
    plane = 1
    for v in spec.out_spatial:
        plane *= v
    stream = max(1, min(1024, plane * max(1, min(spec.n, 1024 // max(1, plane)))))
    cog = spec.c_out // spec.groups
    staged = spec.n * spec.c_in * -(-cog // 8)
    for v in spec.in_spatial:
        staged *= v
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(spec.flops),
        # blocks of 8 output channels: a thinner group wastes part of each pass
        "s_per_flop_thin": spec.flops * max(0.0, 8 / max(cog, 1) - 1),
        "s_per_pass": spec.macs / 8 / stream + spec.n * spec.c_out * plane / max(ow, 1),
        "s_per_staged": float(staged),
    }


def im2col_features(spec) -> dict[str, float]:
    """im2col: a fixed cost, the GEMM FLOPs, the bytes gathered into columns
    (again, separately, when a tile's columns cannot stay in cache: one output
    row is a tile, and a long 1-D signal makes it tens of megabytes), and the
    number of gather + GEMM calls."""
    from ..kernels.im2col_plan import gathered_bytes, gemm_calls, workspace

    limit, threads = _settings()
    cog = spec.c_out // spec.groups
    gathered = float(gathered_bytes(spec))
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(spec.flops),
        # GEMMs with few rows (output channels) run below the BLAS peak
        "s_per_flop_thin": spec.flops * max(0.0, 64 / max(cog, 1) - 1),
        "s_per_byte": gathered,
        "s_per_spilled_byte": gathered if workspace(spec, limit, threads) > _CACHE_TILE * max(1, threads) else 0.0,
        "s_per_call": float(gemm_calls(spec, limit, threads)),
    }


#: bytes of columns + result per thread that still stay in this class of CPU's L2/L3 share
_CACHE_TILE = 4 << 20


def _settings() -> tuple[int, int]:
    from .._config import get_config

    cfg = get_config()
    return cfg.workspace_limit, cfg.num_threads


def _im2col_workspace(spec) -> int:
    from ..kernels.im2col_plan import workspace

    return workspace(spec, *_settings())


def fft_features(spec) -> dict[str, float]:
    """FFT: a fixed cost, the transforms, the per-frequency channel mixing, and
    the output elements written (strides compute and drop the rest)."""
    from ..kernels.fft_plan import mix_flops, transform_flops

    out = spec.n * spec.c_out
    for v in spec.out_spatial:
        out *= v
    return {
        "overhead_s": 1.0,
        "s_per_transform_flop": transform_flops(spec),
        "s_per_mix_flop": mix_flops(spec),
        "s_per_output": float(out),
    }


def _fft_workspace(spec) -> int:
    from ..kernels.fft_plan import workspace

    return workspace(spec, _settings()[0])


def _winograd_features(m: int):
    def features(spec) -> dict[str, float]:
        """Winograd F(m): a fixed cost, the channel GEMMs' FLOPs (over the
        padded tiles; again for GEMMs with few output channels, and for 1-D
        transforms), the transformed elements (input and output
        transforms), the GEMM calls, the weight transform's output, and the
        transformed weights each work item streams through its GEMMs (large
        when many items each read a U of many megabytes: deep layers on
        small images; none where each item transforms its own weights piece
        by piece, ``Layout.fused``, whose GEMMs are called once per piece of
        input rows instead)."""
        from ..kernels.winograd_plan import (
            FUSED_ROWS,
            depth_ring,
            layout,
            phase_copy_bytes,
            phase_spec,
            transform_units,
        )

        copied = phase_copy_bytes(spec)
        spec = phase_spec(spec)  # a dilated 3x3 conv2d: its stacked input phases
        lay = layout(spec, m, *_settings())
        ring = depth_ring(spec, m, *_settings())
        t, transformed = transform_units(spec, m, ring is not None)
        cig, cog = spec.c_in // spec.groups, spec.c_out // spec.groups
        k = cig * lay.kdepth
        if ring is None:
            calls, o_block, n_oblocks = lay.n_blocks * lay.n_oblocks, lay.o_block, lay.n_oblocks
        else:  # one GEMM batch per output depth of each item
            o_block, n_oblocks = ring.o_block, ring.n_oblocks
            calls = spec.n * ring.n_blocks * n_oblocks * spec.lifted("out_spatial")[0]
        calls *= spec.groups
        gemm_flops = 2.0 * lay.a2 * k * cog * t * spec.groups
        rows = lay.ah == 1
        fused = ring is None and lay.fused
        streamed = 0 if fused else calls * lay.a2 * o_block * k
        if fused:
            calls *= -(-k // FUSED_ROWS)
        return {
            "overhead_s": 1.0,
            "s_per_flop": 0.0 if rows else gemm_flops,
            # GEMMs with few rows (output channels): a term of its own (when
            # they ran on BLAS, 32- and 16-channel layers were 1.2-1.4x slower
            # than the register-blocked direct method; on the micro-kernel
            # the Intel fit gives it 3-6% of the FLOP term's weight)
            "s_per_flop_thin": gemm_flops * max(0.0, 64 / max(cog, 1) - 1),
            # 1-D transforms (a kernel one row high) in place of the above: a
            # rate of their own (the 2-D layers' rate put the 64-channel audio
            # layer at 1.47x its measured time: picked over Winograd, `blocked`
            # ran 1.43x slower)
            "s_per_flop_rows": gemm_flops if rows else 0.0,
            "s_per_transformed": float(transformed * n_oblocks),
            "s_per_block": float(calls * lay.a2),
            "s_per_weight": float(lay.a2 * k * cog * spec.groups),
            "s_per_u_stream": float(streamed),
            "s_per_copied_byte": float(copied),
        }

    return features


def _winograd_workspace(m: int):
    def workspace(spec) -> int:
        from ..kernels.winograd_plan import workspace

        return workspace(spec, m, *_settings())

    return workspace


#: Winograd F(4x4, 3x3) in float32: measured relative error (see
#: tests/test_winograd.py) grows with the input channels; above this count it
#: is not offered for float32 (F(2x2) and float64 have no such limit)
WINOGRAD_F4_MAX_CIN_FLOAT32 = 4096


def _winograd_supports(m: int):
    def supports(spec) -> str | None:
        from ..kernels.winograd_plan import supports

        reason = supports(spec)  # (no BLAS: the GEMMs run on the micro-kernel)
        if reason is None and m == 4 and spec.dtype.itemsize == 4:
            if spec.c_in // spec.groups > WINOGRAD_F4_MAX_CIN_FLOAT32:
                reason = f"float32 error of F(4x4) too large for more than {WINOGRAD_F4_MAX_CIN_FLOAT32} input channels"
        return reason

    return supports


def depthwise_features(spec) -> dict[str, float]:
    """Depthwise: a fixed cost, the FLOPs, and the passes: one vectorised pass
    (plus the scalar ends of the row) per output row and depth tap (a 3-D
    kernel's depth taps are separate passes: before 3x3x3 kernels ran on
    whole planes, measured 2x the direct kernel's time).
    Whole 3x3 planes (:func:`fastconv.kernels.depthwise.whole_planes`,
    also 3x3x3: a plane per depth tap) are their own FLOP term (one flat
    pass per input plane) and count a row per output row, input channel and
    depth tap (its scalar first and last columns)."""
    from ..kernels.depthwise import whole_planes

    rows = spec.n * spec.c_out * spec.lifted("kernel")[0]
    for v in spec.out_spatial[:-1]:
        rows *= v
    plane = whole_planes(spec)
    if plane:
        rows *= spec.c_in // spec.groups
    return {
        "overhead_s": 1.0,
        "s_per_flop": 0.0 if plane else float(spec.flops),
        "s_per_plane_flop": float(spec.flops) if plane else 0.0,
        "s_per_row": float(rows),
    }


def blocked_features(spec) -> dict[str, float]:
    """Register-blocked direct: a fixed cost, the FLOPs the micro-kernel runs
    (whole channel blocks and position runs, plane padding included), the
    elements copied into the padded input or into work items' windows (two
    terms: a window is written and read by one thread, in one launch; a
    third for the window elements gathered at the stride, see
    :func:`fastconv.kernels.blocked.gathered_share`), and
    the micro-kernel calls (per run, block of channels and chunk of taps:
    each stores or adds its partial sums)."""
    from ..kernels.blocked import calls, computed_flops, copied_elements, gathered_share, shifted

    t = shifted(spec)
    if t is not None:  # stride 1 on small planes: run as a transposed convolution
        return shifted_features(t)
    copied, windows = copied_elements(spec, _settings()[1])
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(computed_flops(spec)),
        "s_per_copied": float(copied),
        "s_per_window_copied": float(windows),
        "s_per_window_gathered": windows * gathered_share(spec),
        "s_per_call": float(calls(spec)),
    }


def shifted_features(t) -> dict[str, float]:
    """The register-blocked kernel on the shifted layout
    (:mod:`fastconv.kernels.transpose_blocked`) for the transposed
    convolution ``t``: a fixed cost, the FLOPs the micro-kernel runs, the
    elements copied, the micro-kernel calls."""
    from ..kernels import transpose_blocked as tb

    nimg = max(1, tb.images_per_block(t, *_settings()))
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(tb.computed_flops(t, nimg)),
        "s_per_copied": float(t.n * tb.image_elements(t)),
        "s_per_call": float(tb.calls(t, nimg)),
    }


def _blocked_supports(spec) -> str | None:
    from ..kernels.blocked import images_per_block, windowed
    from ..kernels.im2col_plan import is_pointwise

    if is_pointwise(spec):
        # measured 1.2-1.3x slower than im2col, which runs it as one GEMM on
        # the input itself (no copy), BLAS at full width
        return "a 1x1 stride-1 unpadded convolution is a plain GEMM on the input (im2col, no copy)"
    if images_per_block(spec, *_settings()) == 0:
        if windowed(spec):
            return "the packed weights and each thread's input window exceed workspace_limit"
        return "one image's padded copy exceeds workspace_limit"
    return None


def _blocked_workspace(spec) -> int:
    from ..kernels.blocked import workspace

    return workspace(spec, *_settings())


def _depthwise_workspace(spec) -> int:
    from ..kernels.depthwise import workspace

    return workspace(spec, _settings()[1])


def _depthwise_supports(spec) -> str | None:
    from ..kernels.depthwise import PLANE_CHANNELS, whole_planes

    if spec.c_in != spec.groups and not whole_planes(spec):
        return (
            "depthwise needs groups == C_in (one input channel per output channel), or groups > 1 with a 3x3 "
            f"kernel (in the plane) at unit stride, padding 1 and at most {PLANE_CHANNELS} input channels per group"
        )
    return None


#: per-method feature functions; bench/fit_cost_model.py fits their constants
FEATURES = {
    "depthwise": depthwise_features,
    "direct": direct_features,
    "im2col": im2col_features,
    "blocked": blocked_features,
    "fft": fft_features,
    "winograd_f2": _winograd_features(2),
    "winograd_f4": _winograd_features(4),
}


#: methods whose time is another method's model plus their own features:
#: ``BASE_COST[name](spec, constants)`` estimates the shared part (the fit
#: subtracts it and fits only the method's own constants)
BASE_COST: dict[str, Callable[[Any, dict], float]] = {}


def _cost(name: str):
    def cost(spec, constants) -> float:
        base = BASE_COST.get(name)
        own = linear_cost(FEATURES[name](spec), constants[name])
        return own if base is None else own + base(spec, constants)

    return cost


def _always(spec) -> str | None:
    return None


def _needs_threadpoolctl(spec) -> str | None:
    """The GEMM methods call BLAS from inside Numba's parallel regions with
    BLAS limited to one thread; without threadpoolctl that limit cannot be set
    and OpenBLAS would nest its own threads (oversubscription, possible hang)."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return "needs threadpoolctl to keep BLAS single-threaded inside Numba's threads (pip install threadpoolctl)"
    return None


register(
    Method(
        name="direct",
        ops=CONV_OPS,
        runner="fastconv.kernels.direct:conv_direct",
        supports=_always,
        cost=_cost("direct"),
        workspace=lambda spec: 0,
        description="shifted-row streams over an L1-sized padded tile, 8 channels x 8 taps per pass, no workspace",
    )
)
register(
    Method(
        name="depthwise",
        ops=CONV_OPS,
        runner="fastconv.kernels.depthwise:conv_depthwise",
        supports=_depthwise_supports,
        cost=_cost("depthwise"),
        workspace=_depthwise_workspace,
        description="groups == C_in: each output row in vectorised passes straight over its input rows "
        "(rows copied with their padding for kernels not 3 wide); 3x3 'same' planes (also grouped layers of "
        "a few input channels per group) as one flat pass per input plane",
    )
)
register(
    Method(
        name="im2col",
        ops=CONV_OPS,
        runner="fastconv.kernels.im2col:conv_im2col",
        supports=_needs_threadpoolctl,
        cost=_cost("im2col"),
        workspace=_im2col_workspace,
        description="windows gathered into columns (tiled to workspace_limit), one BLAS GEMM per tile",
    )
)
register(
    Method(
        name="blocked",
        ops=CONV_OPS,
        runner="fastconv.kernels.blocked:conv_blocked",
        supports=_blocked_supports,
        cost=_cost("blocked"),
        workspace=_blocked_workspace,
        description="register-blocked direct: padded phase-split input copy, 8 channels x 16-48 positions per "
        "micro-kernel call with the accumulators in vector registers, no BLAS",
    )
)
register(
    Method(
        name="fft",
        ops=CONV_OPS,
        runner="fastconv.kernels.fft:conv_fft",
        supports=_always,
        cost=_cost("fft"),
        workspace=_fft_workspace,
        description="real FFTs, per-frequency channel mixing as a batched GEMM (large kernels)",
        finite_only=True,
    )
)
for _m in (2, 4):
    register(
        Method(
            name=f"winograd_f{_m}",
            ops=CONV_OPS,
            runner=f"fastconv.kernels.winograd:conv_winograd_f{_m}",
            supports=_winograd_supports(_m),
            cost=_cost(f"winograd_f{_m}"),
            workspace=_winograd_workspace(_m),
            description=(
                f"Winograd F({_m}x{_m}, 3x3) (F({_m}, 3) for kernels 1 high; depth taps stacked into the GEMMs): "
                "transformed tiles, one channel GEMM per transform point"
            ),
            finite_only=True,
            checks_input=True,
            checks_weights=True,
        )
    )


# --- transposed convolution ------------------------------------------------------

TRANSPOSE_OPS = ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def transpose_direct_features(spec) -> dict[str, float]:
    """Gather form: a fixed cost, the FLOPs, and the streams (one per input
    channel, tap and output row that it feeds; short rows are overhead-bound)."""
    iw = spec.in_spatial[-1]
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(spec.flops),
        "s_per_stream": spec.macs / max(1, iw),
    }


def transpose_subpixel_features(spec) -> dict[str, float]:
    """Stride decomposition: the cost model's estimate for each phase's
    convolution (as the convolution dispatcher would choose it), plus the copy
    of every output element into its strided place."""
    from .._config import get_config
    from ..kernels.transpose_plan import phases
    from .selector import _select

    cfg = get_config()
    phase_s = 0.0
    for ph in phases(spec):
        if ph.spec is not None:
            plan = _select(ph.spec, cfg)
            phase_s += next(c.estimated_s for c in plan.candidates if c.name == plan.method)
    out = spec.n * spec.c_out
    for v in spec.out_spatial:
        out *= v
    return {"overhead_s": 1.0, "phase_estimate": phase_s, "s_per_output": float(out)}


def _subpixel_workspace(spec) -> int:
    from ..kernels.transpose_plan import largest_phase_bytes

    return largest_phase_bytes(spec)


FEATURES["transpose_direct"] = transpose_direct_features
FEATURES["transpose_subpixel"] = transpose_subpixel_features

register(
    Method(
        name="direct",
        ops=TRANSPOSE_OPS,
        runner="fastconv.kernels.transpose:conv_transpose_direct",
        supports=_always,
        cost=_cost("transpose_direct"),
        workspace=lambda spec: 0,
        description="gather form: each output row sums its own taps (no scatter), phase-split row streams",
    )
)
register(
    Method(
        name="subpixel",
        ops=TRANSPOSE_OPS,
        runner="fastconv.kernels.transpose:conv_transpose_subpixel",
        supports=_always,
        cost=_cost("transpose_subpixel"),
        workspace=_subpixel_workspace,
        description="stride decomposition: one stride-1 convolution per output phase (conv dispatcher), no zero taps",
    )
)


def transpose_gemm_features(spec) -> dict[str, float]:
    """GEMM + col2im: a fixed cost, the GEMM FLOPs, the column elements added
    back (col2im), the GEMM calls, and the output elements (col2im sums in a
    phase-split plane, then interleaves it into the output: without this
    term the fit under-estimated the 2x2 stride-2 layers, whose columns are
    no more than their outputs, by up to 40%)."""
    from ..kernels.transpose_plan import gemm_tiles

    k = 1
    for v in spec.kernel:
        k *= v
    d, h, w = spec.lifted("in_spatial")
    rows = d * h
    limit, threads = _settings()
    cblk, nrows = gemm_tiles(spec, limit, threads)
    calls = spec.n * spec.groups * -(-(spec.c_out // spec.groups) // cblk) * -(-rows // nrows)
    return {
        "overhead_s": 1.0,
        "s_per_flop": float(spec.flops),
        "s_per_col": float(spec.n * spec.c_out * k * rows * w),
        "s_per_call": float(calls),
        "s_per_output": float(spec.n * spec.c_out * np.prod(spec.lifted("out_spatial"), dtype=np.int64)),
    }


def _transpose_gemm_workspace(spec) -> int:
    from ..kernels.transpose_plan import gemm_workspace

    return gemm_workspace(spec, *_settings())


FEATURES["transpose_gemm"] = transpose_gemm_features

register(
    Method(
        name="gemm",
        ops=TRANSPOSE_OPS,
        runner="fastconv.kernels.transpose:conv_transpose_gemm",
        supports=_needs_threadpoolctl,
        cost=_cost("transpose_gemm"),
        workspace=_transpose_gemm_workspace,
        description="one BLAS GEMM (all taps of all output channels) per block of input rows, then col2im",
    )
)


def transpose_blocked_features(spec) -> dict[str, float]:
    """Register-blocked transposed, beyond the micro-kernel's work: the
    strided store of every output element.  The micro-kernel's work (fixed
    cost, FLOPs, copy, calls: :func:`shifted_features`) is charged at the
    convolution's ``blocked`` constants, fitted on the many convolution
    layers that run the same kernel on the same layout (``BASE_COST``);
    fitted on the suite's few decoder layers alone, those constants were
    unstable and made auto pick ``gemm`` where ``blocked`` was faster."""
    out = spec.n * spec.c_out
    for v in spec.out_spatial:
        out *= v
    return {"s_per_output": float(out)}


def _shifted_blocked_cost(spec, constants) -> float:
    return linear_cost(shifted_features(spec), constants["blocked"])


def _transpose_blocked_supports(spec) -> str | None:
    from ..kernels.transpose_blocked import images_per_block

    if images_per_block(spec, *_settings()) == 0:
        return "one image's padded copy exceeds workspace_limit"
    return None


def _transpose_blocked_workspace(spec) -> int:
    from ..kernels.transpose_blocked import workspace

    return workspace(spec, *_settings())


FEATURES["transpose_blocked"] = transpose_blocked_features
BASE_COST["transpose_blocked"] = _shifted_blocked_cost

register(
    Method(
        name="blocked",
        ops=TRANSPOSE_OPS,
        runner="fastconv.kernels.transpose_blocked:conv_transpose_blocked",
        supports=_transpose_blocked_supports,
        cost=_cost("transpose_blocked"),
        workspace=_transpose_blocked_workspace,
        description="register-blocked: every output phase a stride-1 sum over its own taps (no zeros, no col2im) "
        "from one padded input copy, 8 channels x 16-48 positions per micro-kernel call",
    )
)


# --- image filters (fastconv.ndimage) ---------------------------------------------

FILTER_OPS = ("ndimage",)


def _filter_outputs(spec) -> float:
    n = 1
    for v in spec.out_shape:
        n *= v
    return float(n)


def _filter_padded(spec) -> int:
    n = 1
    for v in spec.padded:
        n *= v
    return n


def filter_direct_features(spec) -> dict[str, float]:
    """Direct: a fixed cost, one multiply-add per footprint tap and output, and
    the streams (output rows x taps: short rows are overhead-bound)."""
    outputs = _filter_outputs(spec) * spec.dtype.itemsize / 4  # float64: half the SIMD lanes
    width = max(1, spec.out_shape[-1])
    return {"overhead_s": 1.0, "s_per_tap": spec.taps * outputs, "s_per_stream": spec.taps * outputs / width}


def filter_separable_features(spec) -> dict[str, float]:
    """Separable: a fixed cost, the 1-D taps per output summed over the passes,
    and the intermediate arrays written."""
    scale = spec.dtype.itemsize / 4
    outputs = _filter_outputs(spec) * scale
    padded = scale
    for v in spec.padded:
        padded *= v
    return {"overhead_s": 1.0, "s_per_tap": sum(spec.kernel) * outputs, "s_per_element": padded * len(spec.kernel)}


def filter_fft_features(spec) -> dict[str, float]:
    """FFT: a fixed cost and n log n of the transform size (forward, product, inverse)."""
    import math

    from scipy.fft import next_fast_len

    n = 1.0
    for v in spec.padded:
        n *= next_fast_len(v, real=True)
    return {"overhead_s": 1.0, "s_per_nlogn": n * math.log2(max(n, 2.0)) * spec.dtype.itemsize / 4}


def _filter_supports_3d(spec) -> str | None:
    return None if spec.ndim <= 3 else "more than 3 axes: the NumPy fallback runs"


def _separable_supports(spec) -> str | None:
    reason = _filter_supports_3d(spec)
    if reason is None and not spec.rank1:
        reason = "weights are not an outer product of 1-D kernels"
    return reason


FEATURES["filter_direct"] = filter_direct_features
FEATURES["filter_separable"] = filter_separable_features
FEATURES["filter_fft"] = filter_fft_features

register(
    Method(
        name="direct",
        ops=FILTER_OPS,
        runner="fastconv.kernels.filter:filter_direct",
        supports=_filter_supports_3d,
        cost=_cost("filter_direct"),
        workspace=lambda spec: 0,
        description="one vectorised stream per tap over (row, column chunk) work items, scipy's footprint kept",
    )
)
register(
    Method(
        name="separable",
        ops=FILTER_OPS,
        runner="fastconv.kernels.filter:filter_separable",
        supports=_separable_supports,
        cost=_cost("filter_separable"),
        workspace=lambda spec: _filter_padded(spec) * spec.dtype.itemsize,
        description="outer-product weights as one 1-D pass per axis",
        finite_only=True,
    )
)
register(
    Method(
        name="fft",
        ops=FILTER_OPS,
        runner="fastconv.kernels.filter:filter_fft",
        supports=_filter_supports_3d,
        cost=_cost("filter_fft"),
        workspace=lambda spec: 3 * _filter_padded(spec) * spec.dtype.itemsize * 2,
        description="real FFTs of fast lengths over the padded input (large kernels)",
        finite_only=True,
    )
)


# --- signal (fastconv.signal) --------------------------------------------------------

SIGNAL_OPS = ("signal",)


def _signal_full(spec) -> list[int]:
    return [n + k - 1 for n, k in zip(spec.shape, spec.kernel)]


def _fft_parallel(rows: float) -> float:
    """How much slower than the fitted rate a transform over ``rows`` lines
    runs: the constants are fitted on multi-axis transforms that pocketfft
    spreads over all the threads, but it hands threads whole groups of
    vector-width lines, so a transform of a few lines (one long 1-D FFT, a
    few overlap-add blocks) runs on one thread (measured: 2 lines, workers=2,
    no faster than workers=1; scipy.fft calls on Python threads do not
    overlap either)."""
    threads = _settings()[1]
    return threads / max(1, min(threads, int(rows) // 4))


def signal_fft_features(spec) -> dict[str, float]:
    """FFT: a fixed cost and n log n of the full convolution's fast length."""
    import math

    from scipy.fft import next_fast_len

    full = _signal_full(spec)
    n = 1.0
    for v in full:
        n *= next_fast_len(v, real=True)
    lines = n / next_fast_len(full[-1], real=True)  # the lines of the first (real) pass
    nlogn = n * math.log2(max(n, 2.0)) * spec.dtype.itemsize / 4
    slower = _fft_parallel(lines)
    if lines == 1 and spec.dtype == np.float64:
        # float64: the two forward transforms overlap on two threads (numpy.fft
        # releases the GIL): 2 transforms' time for 3, instead of 3
        slower = max(1.0, 2 * _settings()[1] / 3)
    return {"overhead_s": 1.0, "s_per_nlogn": slower * nlogn}


def signal_oa_features(spec) -> dict[str, float]:
    """Overlap-add: a fixed cost and n log n summed over the blocks' transforms."""
    import math

    from scipy.fft import next_fast_len

    from ..kernels.filter import oa_block

    shape, kernel = spec.shape, spec.kernel
    if max(k / n for n, k in zip(shape, kernel)) > max(n / k for n, k in zip(shape, kernel)):
        shape, kernel = kernel, shape
    ratios = [n / k for n, k in zip(shape, kernel)]
    axis = ratios.index(max(ratios))
    n, k = shape[axis], kernel[axis]
    block = oa_block(n, k, _settings()[1])
    size = float(next_fast_len(block + k - 1, real=True))
    for a, v in enumerate(_signal_full(spec)):
        if a != axis:
            size *= next_fast_len(v, real=True)
    blocks = -(-n // block)
    lines = blocks * size / next_fast_len(block + k - 1, real=True)
    return {
        "overhead_s": 1.0,
        "s_per_nlogn": _fft_parallel(lines) * blocks * size * math.log2(max(size, 2.0)) * spec.dtype.itemsize / 4,
        # the blocks are padded into one batch and added back: copies a single FFT does not make
        "s_per_elem": blocks * size,
    }


def _oa_supports(spec) -> str | None:
    ratios = [max(n / k, k / n) for n, k in zip(spec.shape, spec.kernel)]
    if max(ratios) < 4:
        return "overlap-add needs a signal several times longer than the kernel on some axis"
    return _filter_supports_3d(spec)


FEATURES["signal_fft"] = signal_fft_features
FEATURES["signal_oa"] = signal_oa_features

register(
    Method(
        name="direct",
        ops=SIGNAL_OPS,
        runner="fastconv.kernels.filter:filter_direct",
        supports=_filter_supports_3d,
        cost=_cost("filter_direct"),
        workspace=lambda spec: 0,
        description="one vectorised stream per tap over (row, column chunk) work items, every tap multiplied",
    )
)
register(
    Method(
        name="fft",
        ops=SIGNAL_OPS,
        runner="fastconv.kernels.filter:signal_fft",
        supports=_filter_supports_3d,
        cost=_cost("signal_fft"),
        workspace=lambda spec: 3 * _filter_padded(spec) * spec.dtype.itemsize * 2,
        description="real FFTs of the full convolution's fast lengths",
        finite_only=True,
    )
)
register(
    Method(
        name="oa",
        ops=SIGNAL_OPS,
        runner="fastconv.kernels.filter:signal_oa",
        supports=_oa_supports,
        cost=_cost("signal_oa"),
        workspace=lambda spec: 4 * _filter_padded(spec) * spec.dtype.itemsize * 2,
        description="overlap-add: blocks of the long signal, one batched FFT (long-by-short)",
        finite_only=True,
    )
)


# --- GPU (numba.cuda; specs of device="cuda" calls have ops ending in "@cuda") ----

CUDA_CONV_OPS = tuple(f"{op}@cuda" for op in CONV_OPS)
CUDA_TRANSPOSE_OPS = tuple(f"{op}@cuda" for op in TRANSPOSE_OPS)


def _ceil_to(v: int, m: int) -> int:
    return -(-v // m) * m


def _cuda_features(flops):
    """A launch, the arithmetic the kernel really does (tiles padded to their
    block shape), and the host<->GPU copies of NumPy operands (the same for
    every GPU method, so they never change the choice between them -- but
    ``explain`` shows what a device="cuda" call pays for them)."""

    def features(spec) -> dict[str, float]:
        return {"overhead_s": 1.0, "s_per_flop": float(flops(spec)), "s_per_transfer_byte": float(spec.transfer_bytes)}

    return features


def _cuda_gemm_flops(spec) -> float:
    from .._spec import _prod
    from ..cuda import _kernels

    bm, bn, bk, _, _ = _kernels.GEMM
    cols = spec.n * _prod(spec.out_spatial)
    k = spec.c_in // spec.groups * _prod(spec.kernel)
    return 2.0 * spec.groups * _ceil_to(spec.c_out // spec.groups, bm) * _ceil_to(cols, bn) * _ceil_to(k, bk)


def _cuda_direct_flops(spec) -> float:
    from .._spec import _prod
    from ..cuda import _kernels

    cog = _ceil_to(spec.c_out // spec.groups, _kernels.COB)
    th, tw = _kernels.TILE
    oh, ow = spec.lifted("out_spatial")[1:]
    plane = _ceil_to(oh, th) * _ceil_to(ow, tw) * spec.lifted("out_spatial")[0]
    return 2.0 * spec.n * spec.groups * cog * plane * (spec.c_in // spec.groups) * _prod(spec.kernel)


def _cuda_direct_supports(spec) -> str | None:
    from ..cuda._run import direct_tile

    if direct_tile(spec) is None:
        return "the (dilated) kernel's input patch does not fit the shared-memory tile"
    return None


def _cuda_depthwise_supports(spec) -> str | None:
    if spec.c_in // spec.groups != 1:
        return "needs one input channel per group (depthwise)"
    return None


FEATURES["cuda_direct"] = _cuda_features(_cuda_direct_flops)
FEATURES["cuda_gemm"] = _cuda_features(_cuda_gemm_flops)
FEATURES["cuda_depthwise"] = FEATURES["cuda_transpose"] = _cuda_features(lambda spec: spec.flops)

register(
    Method(
        name="cuda_direct",
        ops=CUDA_CONV_OPS,
        runner="fastconv.cuda._run:conv_direct",
        supports=_cuda_direct_supports,
        cost=_cost("cuda_direct"),
        workspace=lambda spec: 0,
        description="GPU: shared-memory tiled direct kernel (input patch staged once per channel and tap)",
    )
)
register(
    Method(
        name="cuda_gemm",
        ops=CUDA_CONV_OPS,
        runner="fastconv.cuda._run:conv_gemm",
        supports=_always,
        cost=_cost("cuda_gemm"),
        workspace=lambda spec: 0,
        description="GPU: implicit GEMM (input gathered into shared-memory tiles, register blocking)",
    )
)
register(
    Method(
        name="cuda_depthwise",
        ops=CUDA_CONV_OPS,
        runner="fastconv.cuda._run:conv_depthwise",
        supports=_cuda_depthwise_supports,
        cost=_cost("cuda_depthwise"),
        workspace=lambda spec: 0,
        description="GPU: one thread per output over its taps (depthwise and one-channel groups)",
    )
)
register(
    Method(
        name="cuda_direct",
        ops=CUDA_TRANSPOSE_OPS,
        runner="fastconv.cuda._run:conv_transpose_direct",
        supports=_always,
        cost=_cost("cuda_transpose"),
        workspace=lambda spec: 0,
        description="GPU: gather form, one thread per output (no atomics)",
    )
)


# --- tier 0: NumPy, nothing to compile -------------------------------------------------

TIER0 = "numpy"


def _tier0_conv_supports(spec) -> str | None:
    from ..kernels.tier0 import conv_supports

    return conv_supports(spec, _settings()[0])


def _tier0_conv_workspace(spec) -> int:
    from ..kernels.tier0 import conv_workspace

    return conv_workspace(spec, _settings()[0])


def _no_estimate(spec, constants) -> None:
    return None


for _ops, _runner_name, _supports, _workspace, _what in (
    (CONV_OPS, "conv_numpy", _tier0_conv_supports, _tier0_conv_workspace, "one BLAS GEMM per kernel tap on shifted views"),
    (TRANSPOSE_OPS, "conv_transpose_numpy", _tier0_conv_supports, _tier0_conv_workspace,
     "one BLAS GEMM per kernel tap, added to the outputs it reaches"),
    (FILTER_OPS + SIGNAL_OPS, "filter_numpy", _always, lambda spec: 0, "one shifted slice of the padded input per tap"),
):  # fmt: skip
    register(
        Method(
            name=TIER0,
            ops=_ops,
            runner=f"fastconv.kernels.tier0:{_runner_name}",
            supports=_supports,
            cost=_no_estimate,
            workspace=_workspace,
            description=f"tier 0, no compilation (runs while a kernel compiles): {_what}",
            fallback=True,
        )
    )
