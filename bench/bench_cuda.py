"""GPU benchmark: fastconv's numba.cuda kernels against torch (cuDNN) and CuPy.

    python bench/bench_cuda.py [--quick] [--tiny] [--repeats 20] [--json FILE]

On a machine with an NVIDIA GPU, times every case with CUDA events after a
warm-up (compilation excluded), data already on the GPU for every library,
float32, and prints a table: time, the method fastconv's dispatcher chose,
GFLOP/s (convolutions) or GB/s (pooling, filters), and the ratio to torch
(cuDNN, with TF32 *disabled* so both do full float32 arithmetic) and to CuPy
(``cupyx.scipy.ndimage``) where installed.  ``fastconv/torch`` below 1 means
fastconv is faster; "of cuDNN" is torch's time / fastconv's (the fraction of
cuDNN's throughput fastconv reaches).

Without a GPU it says why and exits 0.  ``--tiny`` runs two tiny cases (for
the CUDA simulator: ``NUMBA_ENABLE_CUDASIM=1``, used by the tests).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys

import numpy as np

# (name, op, input shape, weight shape / kernel, kwargs)
CASES = [
    ("resnet 3x3 56 c64 b32", "conv2d", (32, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
    ("resnet 3x3 28 c128 b32", "conv2d", (32, 128, 28, 28), (128, 128, 3, 3), dict(padding=1)),
    ("resnet 3x3 14 c256 b32", "conv2d", (32, 256, 14, 14), (256, 256, 3, 3), dict(padding=1)),
    ("resnet 3x3 7 c512 b32", "conv2d", (32, 512, 7, 7), (512, 512, 3, 3), dict(padding=1)),
    ("1x1 expand 56 c64->256 b32", "conv2d", (32, 64, 56, 56), (256, 64, 1, 1), {}),
    ("7x7 s2 stem 224 b16", "conv2d", (16, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3)),
    ("depthwise 3x3 56 c128 b32", "conv2d", (32, 128, 56, 56), (128, 1, 3, 3), dict(padding=1, groups=128)),
    ("transpose 4x4 s2 32 c128 b16", "conv_transpose2d", (16, 128, 32, 32), (128, 64, 4, 4), dict(stride=2, padding=1)),
    ("max_pool 3x3 s2 112 c64 b32", "max_pool2d", (32, 64, 112, 112), 3, dict(stride=2, padding=1)),
    ("avg_pool 2x2 56 c256 b32", "avg_pool2d", (32, 256, 56, 56), 2, {}),
    ("ndimage 7x7 4096^2", "ndimage", (4096, 4096), (7, 7), dict(mode="reflect")),
]
QUICK = {0, 2, 4, 6, 7, 8, 10}
TINY = [
    ("tiny conv 3x3", "conv2d", (2, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),
    ("tiny max_pool", "max_pool2d", (2, 3, 8, 8), 2, {}),
]


def _flops(op, xs, ws, kw, out_shape) -> float | None:
    if op == "conv2d":
        return 2.0 * np.prod(out_shape) * np.prod(ws[1:])
    if op == "conv_transpose2d":
        return 2.0 * np.prod(xs) * np.prod(ws[1:])
    return None


def _bytes(xs, out_shape) -> float:
    return 4.0 * (np.prod(xs) + np.prod(out_shape))


def _timer(cuda, repeats: int):
    """Median milliseconds of ``fn`` by CUDA events, after two warm-up calls."""

    def measure(fn) -> float:
        fn()
        fn()
        cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, end = cuda.event(), cuda.event()
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return max(statistics.median(times), 1e-6)  # (the simulator times 0)

    return measure


def _fastconv_call(op, x, w, kw):
    import fastconv
    from fastconv import ndimage

    if op == "ndimage":
        return lambda: ndimage.correlate(x, w, **kw)
    f = getattr(fastconv, op)
    return lambda: f(x, w, **kw)


def _torch_call(torch, op, x, w, kw):
    F = torch.nn.functional
    if op in ("conv2d", "conv_transpose2d"):
        return lambda: getattr(F, op)(x, w, **kw)
    if op in ("max_pool2d", "avg_pool2d"):
        return lambda: getattr(F, op)(x, w, **kw)
    if op == "ndimage":
        # a 2-D correlation as a one-channel conv2d on the reflect-padded image
        k = w.shape[-1]
        return lambda: F.conv2d(F.pad(x[None, None], (k // 2,) * 4, mode="reflect"), w[None, None])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset of the cases")
    parser.add_argument("--tiny", action="store_true", help="two tiny cases (CUDA simulator)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    import fastconv
    import fastconv.cuda

    reason = fastconv.cuda.unavailable_reason()
    if reason is not None:
        print(f"bench_cuda: skipped, {reason}")
        return 0
    from numba import cuda

    cases = TINY if args.tiny else [c for i, c in enumerate(CASES) if not args.quick or i in QUICK]
    try:
        import torch

        has_torch = torch.cuda.is_available()
    except ImportError:
        torch, has_torch = None, False
    if has_torch:
        torch.backends.cudnn.allow_tf32 = False  # like-for-like float32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    try:
        import cupy
        import cupyx.scipy.ndimage as cundimage
    except ImportError:
        cupy = cundimage = None
    sim = bool(getattr(cuda, "simulator_enabled", False)) or "simulator" in type(cuda.to_device(np.zeros(1))).__module__
    gpu = "CUDA simulator" if sim else cuda.get_current_device().name
    gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
    measure = _timer(cuda, 1 if args.tiny else args.repeats)
    rng = np.random.default_rng(0)
    rows = []
    for name, op, xs, ws, kw in cases:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32) if isinstance(ws, tuple) else ws
        dx = cuda.to_device(x)
        dw = cuda.to_device(w) if isinstance(w, np.ndarray) else w
        fc = _fastconv_call(op, dx, dw if op != "ndimage" else w, kw)
        out = fc()
        out_shape = tuple(out[0].shape if isinstance(out, tuple) else out.shape)
        method = ""
        if op in ("conv2d", "conv_transpose2d"):
            method = fastconv.explain(getattr(fastconv, op), dx, dw, **kw).method
        row = {"case": name, "op": op, "input": xs, "fastconv_ms": measure(fc), "method": method}
        flops = _flops(op, xs, ws, kw, out_shape)
        if flops:
            row["fastconv_gflops"] = flops / row["fastconv_ms"] / 1e6
        else:
            row["fastconv_gbs"] = _bytes(xs, out_shape) / row["fastconv_ms"] / 1e6
        if has_torch:
            tx = torch.from_numpy(x).cuda()
            tw = torch.from_numpy(w).cuda() if isinstance(w, np.ndarray) else w
            tc = _torch_call(torch, op, tx, tw, kw if op != "ndimage" else {})
            row["torch_ms"] = measure(tc)
            row["fastconv/torch"] = row["fastconv_ms"] / row["torch_ms"]
        if cupy is not None and op == "ndimage":
            cx, cw = cupy.asarray(x), cupy.asarray(w)
            row["cupy_ms"] = measure(lambda cx=cx, cw=cw: cundimage.correlate(cx, cw, mode="reflect"))
            row["fastconv/cupy"] = row["fastconv_ms"] / row["cupy_ms"]
        rows.append(row)
        print(_line(row), flush=True)

    ratios = [r["fastconv/torch"] for r in rows if "fastconv/torch" in r]
    summary = {"gpu": gpu, "fastconv": fastconv.__version__, "python": platform.python_version(),
               "torch": getattr(torch, "__version__", None) if has_torch else None,
               "tf32": False, "repeats": args.repeats, "rows": rows}  # fmt: skip
    if ratios:
        summary["geomean fastconv/torch"] = float(np.exp(np.mean(np.log(ratios))))
        print(f"geomean fastconv/torch {summary['geomean fastconv/torch']:.2f} on {gpu}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
    return 0


def _line(row) -> str:
    rate = (f"{row['fastconv_gflops']:8.0f} GFLOP/s" if "fastconv_gflops" in row
            else f"{row['fastconv_gbs']:8.1f} GB/s   ")  # fmt: skip
    parts = [f"{row['case']:30s} {row['fastconv_ms']:9.3f} ms {rate} {row['method']:14s}"]
    if "torch_ms" in row:
        parts.append(f"torch {row['torch_ms']:8.3f} ms  fastconv/torch {row['fastconv/torch']:5.2f}"
                     f"  of cuDNN {1 / row['fastconv/torch']:5.0%}")  # fmt: skip
    if "cupy_ms" in row:
        parts.append(f"cupy {row['cupy_ms']:8.3f} ms  fastconv/cupy {row['fastconv/cupy']:5.2f}")
    return "  ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
