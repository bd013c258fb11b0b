"""The GPU methods (:mod:`fastconv.cuda`): their guards and cost features
(specs of ``device="cuda"`` calls have ops ending in "@cuda").  No Numba
here: the launch shapes are read from :mod:`fastconv.cuda._kernels` (its
constants; imported only when a GPU call is planned)."""

from __future__ import annotations

from ._method import CUDA_CONV_OPS, CUDA_TRANSPOSE_OPS, Method, always, no_workspace, prod


def _ceil_to(v: int, m: int) -> int:
    return -(-v // m) * m


def direct_tile(spec) -> tuple[int, int] | None:
    """The direct kernel's output tile (TH, TW) whose input patch fits shared
    memory, or None when even one output's patch does not."""
    from ..cuda import _kernels

    _, kh, kw = spec.lifted("kernel")
    _, sh, sw = spec.lifted("stride")
    _, dh, dw = spec.lifted("dilation")
    th, tw = _kernels.TILE
    while True:
        patch = ((th - 1) * sh + (kh - 1) * dh + 1) * ((tw - 1) * sw + (kw - 1) * dw + 1)
        if patch <= _kernels.SHARED_ELEMS:
            return th, tw
        if th == 1 and tw == 1:
            return None
        if th >= tw and th > 1:
            th = max(1, th // 2)
        else:
            tw = max(1, tw // 2)


def _features(flops):
    """A launch, the arithmetic the kernel really does (tiles padded to their
    block shape), and the host<->GPU copies of NumPy operands (the same for
    every GPU method, so they never change the choice between them -- but
    ``explain`` shows what a device="cuda" call pays for them)."""

    def features(spec) -> dict[str, float]:
        return {"overhead_s": 1.0, "s_per_flop": float(flops(spec)), "s_per_transfer_byte": float(spec.transfer_bytes)}

    return features


def _gemm_flops(spec) -> float:
    from ..cuda import _kernels

    bm, bn, bk, _, _ = _kernels.GEMM
    cols = spec.n * prod(spec.out_spatial)
    k = spec.c_in // spec.groups * prod(spec.kernel)
    return 2.0 * spec.groups * _ceil_to(spec.c_out // spec.groups, bm) * _ceil_to(cols, bn) * _ceil_to(k, bk)


def _direct_flops(spec) -> float:
    from ..cuda import _kernels

    cog = _ceil_to(spec.c_out // spec.groups, _kernels.COB)
    th, tw = _kernels.TILE
    oh, ow = spec.lifted("out_spatial")[1:]
    plane = _ceil_to(oh, th) * _ceil_to(ow, tw) * spec.lifted("out_spatial")[0]
    return 2.0 * spec.n * spec.groups * cog * plane * (spec.c_in // spec.groups) * prod(spec.kernel)


def _direct_supports(spec) -> str | None:
    if direct_tile(spec) is None:
        return "the (dilated) kernel's input patch does not fit the shared-memory tile"
    return None


def _depthwise_supports(spec) -> str | None:
    if spec.c_in // spec.groups != 1:
        return "needs one input channel per group (depthwise)"
    return None


METHODS = (
    Method("cuda_direct", CUDA_CONV_OPS, "fastconv.cuda._run:conv_direct", _direct_supports, no_workspace,
           "GPU: shared-memory tiled direct kernel (input patch staged once per channel and tap)",
           features=_features(_direct_flops), cost_key="cuda_direct"),
    Method("cuda_gemm", CUDA_CONV_OPS, "fastconv.cuda._run:conv_gemm", always, no_workspace,
           "GPU: implicit GEMM (input gathered into shared-memory tiles, register blocking)",
           features=_features(_gemm_flops), cost_key="cuda_gemm"),
    Method("cuda_depthwise", CUDA_CONV_OPS, "fastconv.cuda._run:conv_depthwise", _depthwise_supports, no_workspace,
           "GPU: one thread per output over its taps (depthwise and one-channel groups)",
           features=_features(lambda spec: spec.flops), cost_key="cuda_depthwise"),
    Method("cuda_direct", CUDA_TRANSPOSE_OPS, "fastconv.cuda._run:conv_transpose_direct", always, no_workspace,
           "GPU: gather form, one thread per output (no atomics)",
           features=_features(lambda spec: spec.flops), cost_key="cuda_transpose"),
)  # fmt: skip
