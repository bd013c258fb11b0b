"""Fuzz every public operation against the libraries it stands in for.

Random shapes, parameters, dtypes, layouts (Fortran order, negative and
non-unit strides) and NaN/Inf, with autotune on, from four threads at once,
each with its own settings (a small workspace limit, one thread,
``precision="high"``, autotune).  Every result is compared with torch
(NN operations, float64 on both sides) or scipy (signal, ndimage): values
within tolerance, NaN exactly where the reference has NaN.

    python bench/fuzz.py [--seconds 120] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import traceback
import warnings

import numpy as np

import fastconv
from fastconv import ndimage, signal


def _layout(rng, x: np.ndarray) -> np.ndarray:
    """x itself, Fortran-ordered, reversed along an axis, or a strided view."""
    kind = rng.integers(0, 4)
    if kind == 1:
        return np.asfortranarray(x)
    if kind == 2:
        axis = int(rng.integers(0, x.ndim))
        flipped = np.flip(x, axis).copy()
        return np.flip(flipped, axis)  # the same values, a negative stride
    if kind == 3:
        big = np.repeat(x, 2, axis=-1)
        return big[..., ::2]
    return x


def _poison(rng, x: np.ndarray) -> np.ndarray:
    if x.size and rng.random() < 0.3:
        x = x.copy()
        flat = x.reshape(-1)
        for _ in range(int(rng.integers(1, 3))):
            flat[int(rng.integers(0, flat.size))] = rng.choice([np.nan, np.inf, -np.inf])
    return x


def nn_case(rng, torch):
    """A conv, transposed conv or pooling call and torch's answer."""
    import torch.nn.functional as tf

    nd = int(rng.integers(1, 4))
    n, g = int(rng.integers(1, 3)), int(rng.choice([1, 1, 2]))
    cin, cout = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 5))
    k = int(rng.integers(1, 4))
    s, d = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    size = int(rng.integers(d * (k - 1) + 1, d * (k - 1) + 12 if nd < 3 else d * (k - 1) + 6))
    dtype = rng.choice([np.float32, np.float64])
    x = rng.standard_normal((n, cin, *(size,) * nd)).astype(dtype)
    kind = rng.choice(["conv", "transpose", "max", "avg", "adaptive_max", "adaptive_avg"])
    if kind == "conv":
        w = rng.standard_normal((cout, cin // g, *(k,) * nd)).astype(dtype)
        p = int(rng.integers(0, k))
        kw = dict(stride=s, padding=p, dilation=d, groups=g)
        f = getattr(fastconv, f"conv{nd}d")
        ref = getattr(tf, f"conv{nd}d")
    elif kind == "transpose":
        w = rng.standard_normal((cin, cout // g, *(k,) * nd)).astype(dtype)
        p = int(rng.integers(0, (d * (k - 1)) // 2 + 1))
        kw = dict(stride=s, padding=p, dilation=d, groups=g)
        f = getattr(fastconv, f"conv_transpose{nd}d")
        ref = getattr(tf, f"conv_transpose{nd}d")
    elif kind.startswith("adaptive"):
        out = tuple(int(v) for v in rng.integers(1, size + 2, nd))
        f = getattr(fastconv, f"{kind}_pool{nd}d")
        ref = getattr(tf, f"{kind}_pool{nd}d")
        x = _poison(rng, x)
        got = f(_layout(rng, x), out)
        want = ref(torch.from_numpy(x.astype(np.float64)), out).numpy()
        return f"{f.__name__} {x.shape} {np.dtype(dtype).name} {out}", got, want
    else:
        kk = min(k + 1, size)
        kw = dict(kernel_size=kk, stride=s, padding=int(rng.integers(0, kk // 2 + 1)))
        f = getattr(fastconv, f"{kind}_pool{nd}d")
        ref = getattr(tf, f"{kind}_pool{nd}d")
        x = _poison(rng, x)
        got = f(_layout(rng, x), **kw)
        want = ref(torch.from_numpy(x.astype(np.float64)), **kw).numpy()
        return f"{f.__name__} {x.shape} {np.dtype(dtype).name} {kw}", got, want
    x = _poison(rng, x)
    got = f(_layout(rng, x), _layout(rng, w), **kw)
    want = ref(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)), **kw).numpy()
    return f"{f.__name__} {x.shape} {w.shape} {np.dtype(dtype).name} {kw}", got, want


def filter_case(rng):
    """A signal or ndimage call and scipy's answer."""
    import scipy.ndimage
    import scipy.signal

    nd = int(rng.integers(1, 4))
    shape = tuple(int(v) for v in rng.integers(1, {1: 400, 2: 40, 3: 12}[nd], nd))
    kshape = tuple(int(v) for v in rng.integers(1, 6, nd))
    dtype = rng.choice([np.float32, np.float64])
    x = _poison(rng, rng.standard_normal(shape).astype(dtype))
    w = rng.standard_normal(kshape).astype(dtype)
    pick = rng.random()
    if pick < 0.25:
        mode = str(rng.choice(["reflect", "constant", "nearest", "mirror", "wrap"]))
        name = str(rng.choice(["correlate", "convolve"]))
        got = getattr(ndimage, name)(_layout(rng, x), w, mode=mode)
        want = getattr(scipy.ndimage, name)(x.astype(np.float64), w.astype(np.float64), mode=mode)
        return f"ndimage.{name} {shape} {kshape} {mode}", got, want
    if pick < 0.4:
        mode = str(rng.choice(["reflect", "constant", "nearest", "mirror", "wrap"]))
        name = str(rng.choice(["correlate1d", "convolve1d"]))
        axis = int(rng.integers(0, nd))
        w1 = w.reshape(-1)[: kshape[0]]
        got = getattr(ndimage, name)(_layout(rng, x), w1, axis=axis, mode=mode)
        want = getattr(scipy.ndimage, name)(x.astype(np.float64), w1.astype(np.float64), axis=axis, mode=mode)
        return f"ndimage.{name} {shape} {w1.shape} axis {axis} {mode}", got, want
    if pick < 0.55 and nd == 2:
        mode = str(rng.choice(["full", "same", "valid"]))
        if mode == "valid" and not (
            all(a >= b for a, b in zip(shape, kshape)) or all(a <= b for a, b in zip(shape, kshape))
        ):
            mode = "full"
        boundary = str(rng.choice(["fill", "wrap", "symm"]))
        name = str(rng.choice(["convolve2d", "correlate2d"]))
        got = getattr(signal, name)(_layout(rng, x), w, mode=mode, boundary=boundary)
        want = getattr(scipy.signal, name)(x.astype(np.float64), w.astype(np.float64), mode=mode, boundary=boundary)
        return f"signal.{name} {shape} {kshape} {mode} {boundary}", got, want
    mode = str(rng.choice(["full", "same", "valid"]))
    if mode == "valid" and any(a < b for a, b in zip(shape, kshape)) and any(a > b for a, b in zip(shape, kshape)):
        mode = "full"
    name = str(rng.choice(["convolve", "correlate", "fftconvolve", "oaconvolve"]))
    got = getattr(signal, name)(_layout(rng, x), w, mode=mode)
    want = getattr(scipy.signal, name)(x.astype(np.float64), w.astype(np.float64), mode=mode)
    return f"signal.{name} {shape} {kshape} {mode}", got, want


def check(got, want, dtype_tol: float) -> str | None:
    got = np.asarray(got, np.float64)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    bad = np.isnan(want)
    finite = np.isfinite(want)
    if np.isnan(got[~bad]).any():
        return "NaN where the reference has none"
    if not finite.any():
        return None
    scale = max(1.0, float(np.abs(want[finite]).max()))
    err = float(np.abs(got[finite] - want[finite]).max()) / scale
    return None if err <= dtype_tol else f"error {err:.2e} of the scale"


def worker(name: str, settings: dict, seed: int, until: float, report: dict, torch) -> None:
    rng = np.random.default_rng(seed)
    runs = fails = 0
    with fastconv.set_config(**settings):
        while time.monotonic() < until:
            try:
                label, got, want = (
                    nn_case(rng, torch) if (torch is not None and rng.random() < 0.5) else filter_case(rng)
                )
                tol = 1e-4 if np.asarray(got).dtype == np.float32 else 1e-9
                problem = check(got, want, tol)
            except Exception:  # (reported, and the fuzzing goes on)
                label, problem = "exception", traceback.format_exc(limit=3)
            runs += 1
            if problem:
                fails += 1
                print(f"[{name}] {label}: {problem}", flush=True)
    report[name] = (runs, fails)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    # (the references warn about the NaN/Inf this puts in their FFTs)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    report: dict = {}
    until = time.monotonic() + args.seconds
    with tempfile.TemporaryDirectory() as cache:
        plans = {
            "autotune": dict(autotune=True, cache_dir=cache),
            "workspace 256 KiB": dict(workspace_limit=256 << 10, autotune=True, cache_dir=cache),
            "one thread": dict(num_threads=1),
            "precision high": dict(precision="high"),
        }
        threads = [
            threading.Thread(target=worker, args=(name, s, args.seed + i, until, report, torch))
            for i, (name, s) in enumerate(plans.items())
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    total = sum(r for r, _ in report.values())
    failed = sum(f for _, f in report.values())
    for name, (runs, fails) in report.items():
        print(f"{name:20s} {runs:6d} calls, {fails} failed")
    if torch is None:
        print("(torch is not installed: the NN operations were not fuzzed)")
    print(f"fuzz: {total} calls from 4 threads in {args.seconds:.0f} s, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
