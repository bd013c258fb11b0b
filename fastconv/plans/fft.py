"""Sizing of the FFT method: no numba, so planning never compiles a kernel."""

from __future__ import annotations

from ._method import CONV_OPS, Method, always, settings


def fft_shape(padded: tuple[int, ...], span: tuple[int, ...]) -> tuple[int, ...]:
    """Transform lengths: the full linear convolution, rounded up to fast sizes."""
    from scipy.fft import next_fast_len

    return tuple(next_fast_len(p + s - 1, real=True) for p, s in zip(padded, span))


def geometry(spec) -> tuple[tuple[int, ...], int, int]:
    """(transform shape, complex frequencies, real samples) of one image-channel."""
    pads = spec.lifted("pad_lo"), spec.lifted("pad_hi")
    ins = (1,) * (3 - spec.nd) + spec.in_spatial
    span = tuple(d * (k - 1) + 1 for d, k in zip(spec.lifted("dilation"), spec.lifted("kernel")))
    shape = fft_shape(tuple(i + a + b for i, a, b in zip(ins, *pads)), span)
    real = shape[0] * shape[1] * shape[2]
    freq = shape[0] * shape[1] * (shape[2] // 2 + 1)
    return shape, freq, real


def _sizes(spec) -> tuple[int, int]:
    """(complex elements held per image, complex elements of the kernel), one group."""
    _, freq, real = geometry(spec)
    cig, cog = spec.c_in // spec.groups, spec.c_out // spec.groups
    # input and output spectra, the transposed copies, and the real-valued result
    return freq * 2 * (cig + cog) + real * cog, freq * cig * cog * 2


def images_per_block(spec, limit: int) -> int:
    per_image, kernel = _sizes(spec)
    item = 2 * spec.dtype.itemsize
    return max(1, min(spec.n, (limit - kernel * item) // max(1, per_image * item)))


def workspace(spec, limit: int) -> int:
    per_image, kernel = _sizes(spec)
    item = 2 * spec.dtype.itemsize
    return (kernel + per_image * images_per_block(spec, limit)) * item


def transform_flops(spec) -> float:
    """~ 2.5 n log2 n per real transform, for the inputs, outputs and kernels."""
    import math

    _, _, real = geometry(spec)
    per = 2.5 * real * math.log2(max(real, 2))
    return per * (spec.n * spec.c_in + spec.n * spec.c_out + spec.c_out * spec.c_in // spec.groups)


def mix_flops(spec) -> float:
    """Real flops of the per-frequency channel mixing (8 per complex multiply-add)."""
    _, freq, _ = geometry(spec)
    cig, cog = spec.c_in // spec.groups, spec.c_out // spec.groups
    return 8.0 * spec.n * spec.groups * cig * cog * freq


def features(spec) -> dict[str, float]:
    """FFT: a fixed cost, the transforms, the per-frequency channel mixing, and
    the output elements written (strides compute and drop the rest)."""
    out = spec.n * spec.c_out
    for v in spec.out_spatial:
        out *= v
    return {
        "overhead_s": 1.0,
        "s_per_transform_flop": transform_flops(spec),
        "s_per_mix_flop": mix_flops(spec),
        "s_per_output": float(out),
    }


METHODS = (
    Method("fft", CONV_OPS, "fastconv.kernels.fft:conv_fft", always, lambda spec: workspace(spec, settings()[0]),
           "real FFTs, per-frequency channel mixing as a batched GEMM (large kernels)",
           features=features, cost_key="fft", float32_error=5.1e-7, finite_only=True),
)  # fmt: skip
