"""Compile time per kernel and dtype, split into typing/lowering and LLVM.

Each row is one call with a forced method, in a fresh process with an empty
Numba cache (what a user's first call of that method costs): the call's
wall time, the time Numba spent compiling (outermost ``numba:compile``
events), the part of it inside LLVM (``numba:llvm_lock``: optimisation and
machine code), the rest (typing, Numba's passes, lowering to LLVM IR), and
the number of functions compiled.  Then, for each case, the first call with
``method="auto"`` and background compilation on (tier 0 answers).

Run: ``python bench/compile_times.py [--dtypes float32,float64] [--only TEXT]``
(a few minutes on 2 cores: the kernels compile one after another).
"""

from __future__ import annotations

import argparse
import sys

from cold_start import fresh_process, save  # (this folder: python bench/compile_times.py)

#: name -> (statement building the arrays, the call without ``method=``, its methods)
CASES = {
    "conv2d 8x64x56x56 3x3": (
        "x = a(8, 64, 56, 56); w = a(64, 64, 3, 3)",
        "fastconv.conv2d(x, w, padding=1{m})",
        ["direct", "blocked", "im2col", "winograd_f2", "winograd_f4", "fft", "numpy"],
    ),
    "conv2d depthwise 8x32x112x112": (
        "x = a(8, 32, 112, 112); w = a(32, 1, 3, 3)",
        "fastconv.conv2d(x, w, padding=1, groups=32{m})",
        ["depthwise", "direct", "numpy"],
    ),
    "conv_transpose2d 8x64x28x28 4x4/2": (
        "x = a(8, 64, 28, 28); w = a(64, 32, 4, 4)",
        "fastconv.conv_transpose2d(x, w, stride=2, padding=1{m})",
        ["direct", "blocked", "gemm", "subpixel", "numpy"],
    ),
    "max_pool2d 8x64x112x112 3x3/2": ("x = a(8, 64, 112, 112)", "fastconv.max_pool2d(x, 3, 2, 1)", [None]),
    "ndimage.correlate 1024^2 5x5": (
        "x = a(1024, 1024); w = a(5, 5)",
        "fastconv.ndimage.correlate(x, w{m})",
        ["direct", "numpy"],
    ),
    "signal.fftconvolve 10^6 x 1000": ("x = a(1_000_000); w = a(1000)", "fastconv.signal.fftconvolve(x, w)", [None]),
}

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastconv
from fastconv import _warm
from numba.core import event
dtype = np.dtype(sys.argv[1])
rng = np.random.default_rng(0)
a = lambda *s: rng.standard_normal(s).astype(dtype)
{build}
timers = {{k: event.TimingListener() for k in ("numba:compile", "numba:llvm_lock")}}
count = []
class Count(event.Listener):
    def on_start(self, ev): count.append(1)
    def on_end(self, ev): pass
for k, t in timers.items():
    event.register(k, t)
event.register("numba:compile", Count())
t = time.perf_counter()
{call}
wall = time.perf_counter() - t
get = lambda k: timers[k].duration if timers[k].done else 0.0
print(json.dumps(dict(wall=wall, compile=get("numba:compile"), llvm=get("numba:llvm_lock"), functions=len(count),
                      tier=_warm.last_tier())))
"""


def run_case(build: str, call: str, dtype: str, background: bool) -> dict:
    return fresh_process(CHILD.format(build=build, call=call), [dtype], background)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtypes", default="float32", help="comma-separated (default float32)")
    p.add_argument("--only", default="", help="only the cases whose name contains this text")
    p.add_argument("--json", help="write the rows as JSON")
    args = p.parse_args(argv)
    rows = []
    print(
        f"{'case':<36} {'method':<12} {'dtype':<8} {'first call':>10} {'compile':>8} {'LLVM':>7} {'typing+':>8} {'funcs':>5}"
    )
    for name, (build, call, methods) in CASES.items():
        if args.only not in name:
            continue
        for dtype in args.dtypes.split(","):
            for method in [*methods, "auto (tiered)"]:
                if method == "auto (tiered)":
                    r = run_case(build, call.format(m=""), dtype, background=True)
                else:
                    m = "" if method is None else f", method={method!r}"
                    r = run_case(build, call.format(m=m), dtype, background=False)
                label = method or "(kernel)"
                rows.append(dict(case=name, method=label, dtype=dtype, **r))
                if "error" in r:
                    print(f"{name:<36} {label:<12} {dtype:<8} error: {r['error']}")
                    continue
                rest = max(0.0, r["compile"] - r["llvm"])
                print(
                    f"{name:<36} {label:<12} {dtype:<8} {r['wall']:9.2f}s {r['compile']:7.2f}s {r['llvm']:6.2f}s "
                    f"{rest:7.2f}s {r['functions']:5d}"
                    + (f"  (tier: {r['tier']})" if method == "auto (tiered)" else ""),
                    flush=True,
                )
    return save(rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
