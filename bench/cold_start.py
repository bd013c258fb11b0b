"""The first call with empty caches, per operation: what a user on a fresh
machine (new install, container, CI job, dask worker) waits for.

Each run is a fresh process with an empty Numba cache: the time of
``import fastconv``, of the first call (and which tier answered it), and
with ``--until-kernel`` how long after the first call the compiled kernel
takes over (calls repeated every 0.5 s) and one warm call's time.
``--background off`` is the behaviour before tiers: the first call compiles.

Run: ``python bench/cold_start.py [--runs 3] [--until-kernel] [--background on|off] [--only TEXT]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

#: name -> statement building ``f``, the call
CASES = {
    "conv2d 8x64x56x56 3x3": "x = a(8, 64, 56, 56); w = a(64, 64, 3, 3); f = lambda: fastconv.conv2d(x, w, padding=1)",
    "conv2d depthwise 8x32x112x112": "x = a(8, 32, 112, 112); w = a(32, 1, 3, 3); "
    "f = lambda: fastconv.conv2d(x, w, padding=1, groups=32)",
    "max_pool2d 8x64x112x112": "x = a(8, 64, 112, 112); f = lambda: fastconv.max_pool2d(x, 3, stride=2, padding=1)",
    "conv_transpose2d 8x64x28x28 4x4/2": "x = a(8, 64, 28, 28); w = a(64, 32, 4, 4); "
    "f = lambda: fastconv.conv_transpose2d(x, w, stride=2, padding=1)",
    "ndimage.correlate 1024^2 5x5": "x = a(1024, 1024); w = a(5, 5); f = lambda: fastconv.ndimage.correlate(x, w)",
    "signal.fftconvolve 10^6 x 1000": "x = a(1_000_000); w = a(1000); f = lambda: fastconv.signal.fftconvolve(x, w)",
}

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastconv
from fastconv import _warm
t_import = time.perf_counter() - t0
rng = np.random.default_rng(0)
dtype = np.float32
a = lambda *s: rng.standard_normal(s).astype(dtype if len(s) > 2 else np.float64)
{build}
t = time.perf_counter()
y = f()
first = time.perf_counter() - t
row = dict(import_s=t_import, first_s=first, tier=_warm.last_tier())
if sys.argv[1] == "until-kernel":
    t = time.perf_counter()
    while _warm.last_tier() == "numpy":
        time.sleep(0.5)
        f()
    row["kernel_after_s"] = time.perf_counter() - t
    t = time.perf_counter()
    y2 = f()
    row["warm_ms"] = (time.perf_counter() - t) * 1e3
    row["max_rel_diff"] = float(np.abs(y2 - y).max() / max(1e-30, np.abs(y).max()))
_warm.shutdown()  # (no build left running into the next case)
print(json.dumps(row))
"""


def fresh_process(code: str, args: list[str], background: bool) -> dict:
    """Run ``code`` in a new interpreter with empty Numba and fastconv caches;
    the JSON object it prints last (or {"error": ...})."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(
            os.environ,
            NUMBA_CACHE_DIR=os.path.join(cache, "numba"),
            FASTCONV_CACHE_DIR=os.path.join(cache, "fastconv"),
            FASTCONV_BACKGROUND_COMPILE="1" if background else "0",
        )
        res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode:
        return {"error": res.stderr.strip().splitlines()[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def save(rows: list, path: str | None) -> int:
    """Write ``rows`` as JSON to ``path`` (when given); the exit status."""
    if path:
        with open(path, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


def run(build: str, background: bool, until_kernel: bool) -> dict:
    return fresh_process(CHILD.format(build=build), ["until-kernel" if until_kernel else "first"], background)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1, help="fresh processes per case (medians shown)")
    p.add_argument("--background", choices=["on", "off"], default="on")
    p.add_argument("--until-kernel", action="store_true", help="also wait for the compiled kernel to take over")
    p.add_argument("--only", default="")
    p.add_argument("--json")
    args = p.parse_args(argv)
    rows = []
    print(f"background compilation {args.background}, {args.runs} run(s) per case, medians")
    for name, build in CASES.items():
        if args.only not in name:
            continue
        runs = [run(build, args.background == "on", args.until_kernel) for _ in range(args.runs)]
        ok = [r for r in runs if "error" not in r]
        if not ok:
            print(f"{name:<36} error: {runs[0]['error']}")
            continue

        def med(key, runs=ok):
            return statistics.median(r[key] for r in runs)

        line = f"{name:<36} import {med('import_s'):5.2f} s  first call {med('first_s'):6.2f} s  tier {ok[0]['tier']}"
        if args.until_kernel and "kernel_after_s" in ok[0]:
            line += f"  kernel after {med('kernel_after_s'):6.1f} s  warm call {med('warm_ms'):7.1f} ms"
        print(line, flush=True)
        rows.append(dict(case=name, background=args.background, runs=ok))
    return save(rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
