"""``auto``'s pick against every feasible method on the signal and ndimage
suites (``fastconv bench --methods`` covers the convolution suites only).

    python bench/picks_signal_ndimage.py OUT.json

Each case is planned as the public call would be, then every feasible method
``auto`` may pick runs the same kernel call on the same operands (2 threads,
interleaved medians); prints pick/best per case and the count within 10%.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys

import numpy as np

import fastconv
import fastconv.ndimage as fnd
import fastconv.signal as fs
from fastconv import _bench
from fastconv._spec import synthetic_operands, synthetic_output
from fastconv.dispatch.registry import methods_for


def cases():
    for name, shape, dtype, (kind, k), mode in _bench.NDIMAGE:
        yield name, fnd.correlate, (np.zeros(shape, dtype), _bench.filter_weights(kind, k, len(shape))), dict(mode=mode)
    for name, sa, sb, mode, dtype in _bench.SIGNAL:
        yield name, fs.convolve, (np.zeros(sa, dtype), np.zeros(sb, dtype)), dict(mode=mode)


def main(path: str) -> None:
    out = []
    for name, func, arrays, kw in cases():
        plan = fastconv.explain(func, *arrays, **kw)
        methods = methods_for(plan.op)
        feasible = [c for c in plan.candidates if c.rejected is None and not methods[c.name].fallback]
        if len(feasible) < 2:
            out.append(dict(case=name, method=plan.method, pick_over_best=1.0, ms={}))
            continue
        spec = plan.spec
        ops = synthetic_operands(spec)
        scratch = synthetic_output(spec)
        runs = {
            c.name: functools.partial(dataclasses.replace(plan, method=c.name)._call, spec, ops, scratch, 2)
            for c in feasible
            if (c.estimated_s or 0.0) < 5.0  # (hopeless and slow: a direct 1M x 20k)
        }
        times = _bench.interleaved_medians(runs, repeats=5, budget_s=3.0, settle_s=0.02)
        ratio = times.get(plan.method, float("nan")) / min(times.values())
        out.append(dict(case=name, method=plan.method, pick_over_best=ratio, ms={k: v * 1e3 for k, v in times.items()}))
        print(f"{name:40s} {plan.method:10s} pick/best {ratio:.2f}", flush=True)
    near = sum(r["pick_over_best"] <= 1.1 for r in out)
    print(f"within 10%: {near}/{len(out)}, worst {max(r['pick_over_best'] for r in out):.2f}")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
