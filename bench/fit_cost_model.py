"""Re-fit the dispatcher's shipped cost-model constants on this machine.

    python bench/fit_cost_model.py [--threads 2] [--full] [--methods NAME,...] [--write]

Times every method ``auto`` may pick (``fastconv._calibrate.measure``)
on ``fastconv calibrate``'s calls plus the convolution bench suites' layers
at batch 1 and 2, then fits, per method (cost key):

- by default, the two factors ``fastconv calibrate`` fits (fixed cost,
  compute) and multiplies the shipped constants by them -- robust with a few
  dozen calls per method;
- with ``--full``, every constant afresh (non-negative least squares on
  relative error) for the methods timed on at least 15 calls (``--min-calls``), which then
  need to cover every feature; the two factors for the others.

``--write`` stores them in fastconv/dispatch/cost_model.json, with the
digest of each method's sources (``calibration.digest``; a test checks the
reference fit's against the sources): at its top level on the reference
CPU (``_reference_cpu``), else under ``_machines[<this CPU>]``, where they
replace the top level's on CPUs of this kind.  ``--methods`` fits only the
named cost keys (after a change to one method's kernels).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np

import fastconv
from fastconv import _bench, _calibrate
from fastconv.dispatch import calibration, selector

#: with --full, methods timed on fewer calls get the two factors instead
FULL_FIT_CALLS = 15
MODEL = os.path.join(os.path.dirname(fastconv.__file__), "dispatch", "cost_model.json")


def suite_calls():
    """The convolution suites' layers at batch 1 and 2."""
    for suite in _bench.CONV_SUITES:
        func = getattr(fastconv, suite)
        for name, xs, ws, kw in _bench.SUITES[suite]:
            for n in sorted({1, min(2, xs[0])}):
                x = np.zeros((n, *xs[1:]), np.float32)
                yield (f"{name} batch {n}", func, (x, np.zeros(ws, np.float32)), kw)


def small_calls():
    """Small layers (the size sweep's and a few more), float32 and float64:
    where fixed costs decide between methods whose estimates are close."""
    from fastconv import _sweep

    extra = [((2, 8, 16, 16), (8, 8, 3, 3)), ((1, 32, 32, 32), (32, 32, 3, 3)), ((2, 16, 32, 32), (16, 16, 3, 3)),
             ((4, 32, 16, 16), (32, 32, 3, 3)), ((1, 8, 64, 64), (8, 8, 3, 3))]  # fmt: skip
    rng = np.random.default_rng(0)
    points = [(p.family, p.arrays(rng, np.float32), p.kw) for p in _sweep.select_points(False)
              if p.family in ("conv2d", "conv1d", "conv_transpose2d")]  # fmt: skip
    for family, (x, w), kw in points:
        for dtype in (np.float32, np.float64):
            yield (f"sweep {family} {x.shape} {np.dtype(dtype).name}", getattr(fastconv, family),
                   (x.astype(dtype), w.astype(dtype)), kw)  # fmt: skip
    for xs, ws in extra:
        for dtype in (np.float32, np.float64):
            yield (f"small conv2d {xs} {np.dtype(dtype).name}", fastconv.conv2d,
                   (np.zeros(xs, dtype), np.zeros(ws, dtype)), dict(padding=1))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--full", action="store_true", help="fit every constant afresh where there are calls enough")
    parser.add_argument(
        "--min-calls", type=int, default=FULL_FIT_CALLS, help=f"--full: calls a method needs (default {FULL_FIT_CALLS})"
    )
    parser.add_argument("--methods", type=lambda s: set(s.split(",")), help="comma-separated cost keys to fit")
    args = parser.parse_args()
    cases = _calibrate.calls() + list(suite_calls()) + list(small_calls())
    shipped = selector.shipped_constants()
    with (
        tempfile.TemporaryDirectory() as empty,
        fastconv.set_config(num_threads=args.threads, autotune=False, learn=False, cache_dir=empty),
    ):
        # every feasible method within 50x of the best estimate: a method no
        # call would pick is still fitted (its digest is stamped below)
        rows = _calibrate.measure(
            cases, args.threads, shipped, lambda label: print(label, flush=True), within=50.0, passes=2
        )
    if args.methods:
        rows = [r for r in rows if r.key in args.methods]
    with open(MODEL, encoding="utf-8") as fh:
        stored = json.load(fh)
    counts = {key: sum(r.key == key for r in rows) for key in {r.key for r in rows}}
    full = {key for key, n in counts.items() if args.full and n >= args.min_calls}
    fitted = calibration.fit_constants([r for r in rows if r.key in full])
    for key in sorted(full):
        print(f"{key:<20} every constant ({counts[key]} calls): median |error| {fitted[key].pop('_median_error'):.0%}")
    factors = calibration.fit_factors([r for r in rows if r.key not in full])
    for key, fit in factors.items():
        fitted[key] = calibration.scaled(shipped[key], fit)
        print(f"{key:<20} fixed x{fit['overhead']:.2f} compute x{fit['compute']:.2f} ({fit['calls']} calls): "
              f"median |error| {fit['median_error_before']:.0%} -> {fit['median_error_after']:.0%}")  # fmt: skip
    print(json.dumps(fitted, indent=2))
    if args.write:
        cpu = selector.machine()
        digests = {key: calibration.digest(key) for key in fitted}
        if cpu == stored.get("_reference_cpu"):
            target, where = stored, "the reference constants"
        else:
            target, where = stored.setdefault("_machines", {}).setdefault(cpu, {}), f"_machines[{cpu!r}]"
        target.update(fitted)
        target.setdefault("_digests", {}).update(digests)
        with open(MODEL, "w", encoding="utf-8") as fh:
            json.dump(stored, fh, indent=2)
            fh.write("\n")
        print(f"wrote {where} in {MODEL}")


if __name__ == "__main__":
    main()
