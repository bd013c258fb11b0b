"""Small repeated calls: fastconv time / reference time (torch CPU or scipy),
same process, 2 threads each, the best of 3 medians of 7 timed loops.

Run: ``python bench/small_calls.py OUT.json`` (torch and scipy installed);
``PYTHONPATH=<an older checkout> python bench/small_calls.py OLD.json``
from outside this checkout measures another version the same way.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import scipy.ndimage as ndi
import scipy.signal as ss
import torch

import fastconv
import fastconv.ndimage as fnd
import fastconv.signal as fs


def median_us(f, n: int = 1400) -> float:
    for _ in range(20):
        f()
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n // 7):
            f()
        times.append((time.perf_counter() - t0) / (n // 7))
    return float(np.median(times)) * 1e6


def cases():
    rng = np.random.default_rng(0)

    def a(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    F = torch.nn.functional
    x, w = a(1, 1, 8, 8), a(1, 1, 3, 3)
    x2, w2 = a(4, 16, 16, 16), a(16, 16, 3, 3)
    tx, tw, tx2, tw2 = (torch.from_numpy(v) for v in (x, w, x2, w2))
    im, k, im32, k5, im128 = a(16, 16), a(3, 3), a(32, 32), a(5), a(128, 128)
    s64, s1k, k17 = a(64), a(1024), a(17)
    return [
        ("conv2d 1x1x8x8, 3x3", lambda: fastconv.conv2d(x, w, padding=1), lambda: F.conv2d(tx, tw, padding=1), "torch"),
        ("max_pool2d 1x1x8x8", lambda: fastconv.max_pool2d(x, 2), lambda: F.max_pool2d(tx, 2), "torch"),
        (
            "conv2d 4x16x16x16 -> 16",
            lambda: fastconv.conv2d(x2, w2, padding=1),
            lambda: F.conv2d(tx2, tw2, padding=1),
            "torch",
        ),
        ("ndimage.convolve 16x16, 3x3", lambda: fnd.convolve(im, k), lambda: ndi.convolve(im, k), "scipy"),
        (
            "ndimage.convolve1d 32x32, 5 taps",
            lambda: fnd.convolve1d(im32, k5),
            lambda: ndi.convolve1d(im32, k5),
            "scipy",
        ),
        ("ndimage.convolve 128x128, 3x3", lambda: fnd.convolve(im128, k), lambda: ndi.convolve(im128, k), "scipy"),
        (
            "signal.convolve2d 16x16 symm",
            lambda: fs.convolve2d(im, k, boundary="symm"),
            lambda: ss.convolve2d(im, k, boundary="symm"),
            "scipy",
        ),
        ("signal.fftconvolve 64 x 17", lambda: fs.fftconvolve(s64, k17), lambda: ss.fftconvolve(s64, k17), "scipy"),
        ("signal.fftconvolve 1024 x 17", lambda: fs.fftconvolve(s1k, k17), lambda: ss.fftconvolve(s1k, k17), "scipy"),
    ]


def main(path: str) -> None:
    torch.set_num_threads(2)
    fastconv.set_config(background_compile=False)  # (the kernels are timed, not tier 0)
    rows = []
    for name, f, g, lib in cases():
        f()
        g()
        ours = min(median_us(f) for _ in range(3))
        ref = min(median_us(g) for _ in range(3))
        rows.append(dict(case=name, fastconv_us=ours, ref_us=ref, ref=lib, ratio=ours / ref))
        print(f"{name:34s} {ours:8.1f} {ref:8.1f} {lib:6s} {ours / ref:6.2f}", flush=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
