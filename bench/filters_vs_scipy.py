"""The convolution-based ndimage filters against scipy.ndimage: fastconv
time, scipy time and the speed-up per filter, image side and dtype
(interleaved medians in one process, same thread count for fastconv; scipy's
filters are single-threaded).  ``python bench/filters_vs_scipy.py [SIDES]
[--json FILE]``, SIDES comma-separated (default 16,64,512,2048)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import scipy.ndimage

from fastconv import ndimage
from fastconv._bench import interleaved_medians

CASES = [
    ("gaussian_filter", (2.0,), {}),
    ("gaussian_filter1d", (2.0,), {"axis": 0}),
    ("uniform_filter", (5,), {}),
    ("uniform_filter1d", (5,), {"axis": 0}),
    ("sobel", (), {}),
    ("prewitt", (), {"axis": 0}),
    ("laplace", (), {}),
    ("gaussian_laplace", (2.0,), {}),
    ("gaussian_gradient_magnitude", (2.0,), {}),
]


def _bound(f, x, a, k):
    return lambda: f(x, *a, **k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sides", nargs="?", default="16,64,512,2048")
    ap.add_argument("--json")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for side in (int(s) for s in args.sides.split(",")):
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((side, side)).astype(dtype)
            for name, a, k in CASES:
                f, g = getattr(ndimage, name), getattr(scipy.ndimage, name)
                calls = {"fastconv": _bound(f, x, a, k), "scipy": _bound(g, x, a, k)}
                t = interleaved_medians(calls, args.repeats, 0.3, settle_s=0.01, warm_s=0.01)
                row = {"filter": name, "side": side, "dtype": np.dtype(dtype).name, "fastconv_ms": t["fastconv"] * 1e3,
                       "scipy_ms": t["scipy"] * 1e3, "speedup": t["scipy"] / t["fastconv"]}  # fmt: skip
                rows.append(row)
                print(f"{name:28s} {side:5d}^2 {row['dtype']:8s} fastconv {row['fastconv_ms']:8.3f} ms"
                      f"  scipy {row['scipy_ms']:8.3f} ms  {row['speedup']:5.1f}x")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
