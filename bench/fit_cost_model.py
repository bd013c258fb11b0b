"""Re-fit the dispatcher's cost-model constants on this machine.

    python bench/fit_cost_model.py [--threads 2] [--passes 2] [--only conv|transpose|ndimage]
                                   [--methods NAME,...] [--write]

Times every registered convolution method on a spread of shapes (the bench
suites at batch 1..2 plus small variants), then fits, per method, the
non-negative constants of ``estimated seconds = sum(feature x constant)``
(features from ``fastconv.dispatch.selector.features``, declared by each
algorithm's plan module) by least squares on
relative error (a method with a ``base_cost`` fits only its own
constants on top of the shared estimate).  ``--write`` stores them in
fastconv/dispatch/cost_model.json: at its top level on the reference CPU
(``_reference_cpu``), else under ``_machines[<this CPU>]``, where they replace
the top level's on CPUs of this kind (``selector.machine()``: LLVM's name).
``--methods`` times and fits only the named methods (after a change to one
method's kernels), leaving the others' constants as they are.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np
from scipy.optimize import nnls

import fastconv
from fastconv import _bench
from fastconv._spec import conv_spec, conv_transpose_spec, synthetic_operands
from fastconv.dispatch import selector

MODEL = os.path.join(os.path.dirname(fastconv.__file__), "dispatch", "cost_model.json")


def shapes():
    for suite, cases in _bench.SUITES.items():
        if suite not in _bench.CONV_SUITES:  # pooling: one kernel; signal/ndimage: fit_filters
            continue
        nd = int(suite[-2])
        for _, xs, ws, kw in cases:
            for n in sorted({1, min(2, xs[0]), xs[0]}):
                yield suite, nd, (n, *xs[1:]), ws, kw
            # a thinner variant: fewer channels
            if xs[1] >= 16 and ws[0] >= 16:
                g = kw.get("groups", 1)
                if g == 1:
                    yield suite, nd, (xs[0], xs[1] // 4, *xs[2:]), (ws[0] // 4, ws[1] // 4, *ws[2:]), kw


def filter_shapes():
    """Images and volumes with random (dense) and outer-product kernels."""
    rng = np.random.default_rng(0)
    for shape in [(256, 256), (1024, 1024), (2048, 2048), (200_000,), (32, 32, 32), (96, 96, 96)]:
        for k in (3, 5, 9, 15, 31):
            if len(shape) == 3 and k > 9:
                continue
            kshape = (k,) * len(shape)
            yield shape, rng.standard_normal(kshape)
            if len(shape) > 1:
                g = np.exp(-(np.linspace(-2, 2, k) ** 2))
                outer = g
                for _ in range(len(shape) - 1):
                    outer = np.multiply.outer(outer, g)
                yield shape, outer


def fit_filters(rows, threads) -> None:
    from fastconv._execute import _pad
    from fastconv._spec import FilterOperands, filter_spec, kernel_ready

    for shape, w in filter_shapes():
        for dtype in (np.float32, np.float64):
            x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
            spec, x, w2, _ = filter_spec(x, w, None, "reflect", 0.0, 0, "auto", convolve=False)
            xp = kernel_ready(_pad(x, spec, spec.dtype), spec.dtype).reshape(spec.lifted("padded"))
            ops = FilterOperands(x=xp, w=kernel_ready(w2, spec.dtype).reshape(spec.lifted("kernel")))
            out = np.empty(spec.lifted("shape"), dtype=spec.dtype)
            plan = selector.select(spec)
            for cand in plan.candidates:
                if cand.rejected is not None:
                    continue
                runner = dataclasses.replace(plan, method=cand.name)._call
                t = best_time(lambda r=runner, s=spec, o=ops, y=out: r(s, o, y, threads))
                key = f"filter_{cand.name}"
                rows[key].append((selector.features(key, spec), t, spec))
                print(f"{key:18s} {shape} {w.shape} {np.dtype(dtype).name}: {t * 1e3:.2f} ms", flush=True)


def best_time(run, repeats=5):
    run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_convs(rows, args) -> None:
    """Time the feasible methods of every conv/transposed shape, interleaved,
    in ``args.passes`` passes over the whole list; each row keeps its fastest
    pass's median (this machine has slow spells lasting seconds to minutes,
    in which every method measured runs 1.2-2x slower)."""
    specs = []
    for suite, nd, xs, ws, kw in shapes():
        transposed = suite.startswith("conv_transpose")
        if args.only and (args.only == "transpose") != transposed:
            continue
        p = dict(stride=1, padding=0, dilation=1, groups=1, output_padding=0) | kw
        x = np.zeros(xs, np.float32)
        w = np.zeros(ws, np.float32)
        if transposed:
            spec, _, _ = conv_transpose_spec(
                nd, x, w, None, p["stride"], p["padding"], p["output_padding"], p["groups"], p["dilation"],
                "auto", None, None,
            )  # fmt: skip
        else:
            spec, _, _ = conv_spec(
                nd, x, w, None, p["stride"], p["padding"], p["dilation"], p["groups"], "zeros", "auto", None, None
            )
        specs.append((f"{xs} {ws} {kw}", transposed, spec))
    best: dict[tuple[int, str], float] = {}
    for rnd in range(args.passes):
        for i, (label, _, spec) in enumerate(specs):
            ops = synthetic_operands(spec)
            out = np.empty((spec.n, spec.c_out, *spec.lifted("out_spatial")), np.float32)
            plan = selector.select(spec)
            runs = {}
            for cand in plan.candidates:
                if cand.rejected is None and (not args.methods or cand.name in args.methods):
                    runner = dataclasses.replace(plan, method=cand.name)._call
                    runs[cand.name] = lambda r=runner, s=spec, o=ops, y=out: r(s, o, y, args.threads)
            # the candidates interleaved, medians: as `fastconv bench` times
            # them (back-to-back best-of-N flattered the methods with big
            # working sets: Winograd 1.4x faster than in the suite's runs)
            times = _bench.interleaved_medians(runs, repeats=5, budget_s=3.0, settle_s=0.03)
            for name, t in times.items():
                best[i, name] = min(t, best.get((i, name), t))
                print(f"pass {rnd + 1} {name:8s} {label}: {t * 1e3:.2f} ms", flush=True)
    for (i, name), t in best.items():
        _, transposed, spec = specs[i]
        key = f"transpose_{name}" if transposed else name
        rows[key].append((selector.features(key, spec), t, spec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--passes", type=int, default=2, help="passes over the shapes; each keeps its fastest")
    parser.add_argument("--only", choices=["conv", "transpose", "ndimage"], help="fit only these methods' constants")
    parser.add_argument("--methods", type=lambda s: set(s.split(",")), help="comma-separated: time and fit only these")
    args = parser.parse_args()
    keys = selector.cost_keys()
    rows: dict[str, list[tuple[dict, float, object]]] = {name: [] for name in keys}
    with fastconv.set_config(num_threads=args.threads):
        if args.only in (None, "ndimage"):
            fit_filters(rows, args.threads)
        if args.only != "ndimage":
            measure_convs(rows, args)
    with open(MODEL, encoding="utf-8") as fh:
        stored = json.load(fh)
    cpu = selector.machine()
    model = selector.constants_for(stored, cpu)  # what the dispatcher uses here
    fitted = {}
    # methods that share another's model last: their base uses its new constants
    for name in sorted(rows, key=lambda n: keys[n].base_cost is not None):
        data = rows[name]
        if not data:
            continue
        # every feature any shape has (a method's code paths may name different ones)
        keys = list(dict.fromkeys(k for f, _, _ in data for k in f))
        a = np.array([[f.get(k, 0.0) for k in keys] for f, _, _ in data])
        t = np.array([t for _, t, _ in data])
        base = keys[name].base_cost
        b = np.array([0.0 if base is None else base(s, model) for _, _, s in data])
        # relative error: divide each row by its time; the shared part is known
        coef, _ = nnls(a / t[:, None], 1 - b / t)
        pred = a @ coef + b
        err = np.abs(pred / t - 1)
        print(f"{name}: median |error| {np.median(err):.0%}, 90th percentile {np.percentile(err, 90):.0%}")
        model[name] = fitted[name] = {k: float(c) for k, c in zip(keys, coef)}
    print(json.dumps(fitted, indent=2))
    if args.write:
        if cpu == stored.get("_reference_cpu"):
            stored.update(fitted)
            where = "the reference constants"
        else:
            stored.setdefault("_machines", {}).setdefault(cpu, {}).update(fitted)
            where = f"_machines[{cpu!r}]"
        with open(MODEL, "w", encoding="utf-8") as fh:
            json.dump(stored, fh, indent=2)
            fh.write("\n")
        print(f"wrote {where} in {MODEL}")


if __name__ == "__main__":
    main()
