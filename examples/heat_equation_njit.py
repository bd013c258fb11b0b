"""A heat-equation simulation written entirely in ``@numba.njit`` code, with
fastconv's ``ndimage.laplace`` and ``ndimage.gaussian_filter`` called inside
the time loop, against the same simulation in Python with scipy.ndimage.

    python examples/heat_equation_njit.py [--side 128] [--steps 500]

Explicit Euler steps of du/dt = alpha * laplace(u) on a square plate with
insulated edges (``mode="nearest"``), a hot spot smoothed in at the start,
and a slow leak of heat to the surroundings every 50 steps (a Gaussian blur
towards the plate's mean).  The two versions compute the same field."""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np
import scipy.ndimage

import fastconv
from fastconv import ndimage


@numba.njit(cache=False)
def simulate(u, steps, alpha):
    u = ndimage.gaussian_filter(u, 2.0, mode="nearest")
    for step in range(steps):
        u = u + alpha * ndimage.laplace(u, mode="nearest")
        if step % 50 == 49:
            u = 0.9 * u + 0.1 * ndimage.gaussian_filter(u, 3.0, mode="nearest")
    return u


def simulate_scipy(u, steps, alpha):
    u = scipy.ndimage.gaussian_filter(u, 2.0, mode="nearest")
    for step in range(steps):
        u = u + alpha * scipy.ndimage.laplace(u, mode="nearest")
        if step % 50 == 49:
            u = 0.9 * u + 0.1 * scipy.ndimage.gaussian_filter(u, 3.0, mode="nearest")
    return u


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args()
    u0 = np.zeros((args.side, args.side))
    u0[args.side // 3, args.side // 2] = 1000.0
    fastconv.set_config(background_compile=False)  # (the first call compiles everything, and waits: timed runs after)
    t = time.perf_counter()
    simulate(u0, 1, 0.2)
    first = time.perf_counter() - t
    best = {}
    for name, run in (("fastconv in @njit", lambda: simulate(u0, args.steps, 0.2)),
                      ("scipy.ndimage from Python", lambda: simulate_scipy(u0, args.steps, 0.2))):  # fmt: skip
        times = []
        for _ in range(5):
            t = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - t)
        best[name] = (float(np.median(times)), result)
    a, b = best["fastconv in @njit"], best["scipy.ndimage from Python"]
    assert np.allclose(a[1], b[1], rtol=1e-9, atol=1e-12), "the two simulations differ"
    print(f"fastconv {fastconv.__version__}: {args.side}x{args.side} plate, {args.steps} steps")
    print(f"  first call (compiles the loop and fastconv's overloads): {first:.1f} s")
    for name, (seconds, _) in best.items():
        print(f"  {name:28s} {seconds * 1e3:8.1f} ms  ({seconds / args.steps * 1e6:.1f} us a step)")
    print(f"  speed-up: {b[0] / a[0]:.1f}x")


if __name__ == "__main__":
    main()
