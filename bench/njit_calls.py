"""fastconv called from ``@numba.njit`` code, against the same work from
Python (torch, scipy, fastconv itself), same thread count for every
library, interleaved medians in one process:

- a loop of 2,000 tiny ``conv2d`` (1x1x8x8, 3x3, padding 1) + ``max_pool2d``
  (2) steps inside @njit, against the loop in Python calling torch (tensors
  made beforehand) and calling fastconv;
- large calls from @njit (serial code: they run on Numba's threads) against
  the same calls from Python with one thread and with every thread
  (Numba's thread count set to fastconv's), and the per-image loop in a
  ``prange`` body (each call on its thread) against one batched call;
- the first jitted use's compile time, in fresh processes (the kernels in
  the disk cache, the user's function not).

``python bench/njit_calls.py [--json FILE]``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

import numba
import numpy as np
import scipy.ndimage

import fastconv
from fastconv import ndimage
from fastconv._bench import interleaved_medians

STEPS = 2000


@numba.njit
def tiny_loop(x, w, b, steps):
    total = 0.0
    for _ in range(steps):
        total += fastconv.max_pool2d(fastconv.conv2d(x, w, b, padding=1), 2)[0, 0, 0, 0]
    return total


@numba.njit
def gaussian_in_njit(img):
    return ndimage.gaussian_filter(img, 2.0)


@numba.njit
def correlate_in_njit(img, k):
    return ndimage.correlate(img, k)


@numba.njit
def conv_in_njit(x, w):
    return fastconv.conv2d(x, w, padding=1)


@numba.njit
def transposed_in_njit(x, w):
    return fastconv.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)


@numba.njit
def pool_in_njit(x):
    return fastconv.max_pool2d(x, 3, 2, 1)


@numba.njit(parallel=True)
def per_image(x, w):
    out = np.empty((x.shape[0], w.shape[0], x.shape[2], x.shape[3]), x.dtype)
    for i in numba.prange(x.shape[0]):
        out[i] = fastconv.conv2d(x[i], w, padding=1)
    return out


def _compile_seconds(body: str) -> float:
    code = textwrap.dedent(
        f"""
        import time, numba, numpy as np, fastconv
        from fastconv import ndimage
        x = np.ones((1, 1, 8, 8), np.float32); w = np.ones((1, 1, 3, 3), np.float32); b = np.zeros(1, np.float32)
        img = np.ones((64, 64), np.float32)
        @numba.njit
        def f(x, w, b, img):
            {body}
        t = time.perf_counter(); f(x, w, b, img); print(time.perf_counter() - t)
        """
    )
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        runs.append(float(out.stdout.strip()))
    return float(np.median(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch

    fastconv.set_config(background_compile=False)  # (steady state: first calls compile what they need, and wait)
    threads = fastconv.get_config().num_threads
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    b = np.zeros(1, np.float32)
    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
    tiny_loop(x, w, b, 1)

    def torch_loop():
        total = 0.0
        for _ in range(STEPS):
            total += float(
                torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(tx, tw, tb, padding=1), 2)[0, 0, 0, 0]
            )
        return total

    def fastconv_loop():
        total = 0.0
        for _ in range(STEPS):
            total += float(fastconv.max_pool2d(fastconv.conv2d(x, w, b, padding=1), 2)[0, 0, 0, 0])
        return total

    rows = {}
    t = interleaved_medians({"njit": lambda: tiny_loop(x, w, b, STEPS), "torch from Python": torch_loop,
                             "fastconv from Python": fastconv_loop}, 7, 0.5)  # fmt: skip
    rows["tiny loop"] = {k: v * 1e3 for k, v in t.items()}
    print(
        f"{STEPS} x (conv2d 1x1x8x8 3x3 + max_pool2d 2), ms: " + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in t.items())
    )
    print(f"  njit / torch: {t['njit'] / t['torch from Python']:.3f}")

    img = rng.standard_normal((2048, 2048)).astype(np.float32)
    k = rng.standard_normal((5, 5)).astype(np.float32)
    gaussian_in_njit(img)
    correlate_in_njit(img, k)

    def one_thread(f):
        def run():
            with fastconv.set_config(num_threads=1):
                return f()

        return run

    x = rng.standard_normal((8, 16, 64, 64)).astype(np.float32)
    w3 = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    wt = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    feat = rng.standard_normal((8, 32, 128, 128)).astype(np.float32)
    for f, a in ((conv_in_njit, (x, w3)), (transposed_in_njit, (x, wt)), (pool_in_njit, (feat,)), (per_image, (x, w3))):
        f(*a)
    t = interleaved_medians({
        "conv2d 8x16x64x64 3x3 njit": lambda: conv_in_njit(x, w3),
        "conv2d per image in prange": lambda: per_image(x, w3),
        "conv2d Python direct": lambda: fastconv.conv2d(x, w3, padding=1, method="direct"),
        "conv2d Python auto": lambda: fastconv.conv2d(x, w3, padding=1),
        "conv_transpose2d 8x16x64x64 s2 njit": lambda: transposed_in_njit(x, wt),
        "conv_transpose2d Python auto": lambda: fastconv.conv_transpose2d(x, wt, stride=2, padding=1,
                                                                          output_padding=1),
        "max_pool2d 8x32x128x128 3/2 njit": lambda: pool_in_njit(feat),
        "max_pool2d Python": lambda: fastconv.max_pool2d(feat, 3, 2, 1),
    }, 5, 0.5)  # fmt: skip
    rows["NN layers float32"] = {k: v * 1e3 for k, v in t.items()}
    for name, v in t.items():
        print(f"{name:40s} {v * 1e3:8.2f} ms")

    t = interleaved_medians({
        "gaussian njit": lambda: gaussian_in_njit(img),
        "gaussian Python 1 thread": one_thread(lambda: ndimage.gaussian_filter(img, 2.0)),
        f"gaussian Python {threads} threads": lambda: ndimage.gaussian_filter(img, 2.0),
        "gaussian scipy": lambda: scipy.ndimage.gaussian_filter(img, 2.0),
        "correlate 5x5 njit": lambda: correlate_in_njit(img, k),
        "correlate 5x5 Python 1 thread": one_thread(lambda: ndimage.correlate(img, k)),
        f"correlate 5x5 Python {threads} threads": lambda: ndimage.correlate(img, k),
    }, 5, 0.5)  # fmt: skip
    rows["2048x2048 float32"] = {k: v * 1e3 for k, v in t.items()}
    for name, v in t.items():
        print(f"2048x2048 float32 {name:32s} {v * 1e3:8.2f} ms")

    compile_s = {
        "conv2d + max_pool2d": _compile_seconds("return fastconv.max_pool2d(fastconv.conv2d(x, w, b, padding=1), 2)"),
        "gaussian_filter": _compile_seconds("return ndimage.gaussian_filter(img, 2.0)"),
        "correlate": _compile_seconds("return ndimage.correlate(img, w[0, 0])"),
        "plain numba (x + 1)": _compile_seconds("return x + 1"),
    }
    rows["first jitted use, s"] = compile_s
    for name, v in compile_s.items():
        print(f"first jitted use (fresh process, kernels on disk) {name:22s} {v:.2f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
