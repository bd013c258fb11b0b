"""float32 error of every convolution method on realistic data, next to torch's.

For each kind of data, each method computes the layer in float32; the truth
is the float64 direct sum of the same (float32) operands.  The error is the
largest absolute difference as a fraction of the output's largest magnitude
(``max |y - y64| / max |y64|``), and, in brackets, as a multiple of the
direct method's.  This is the table behind ``precision="high"`` (which
methods it allows for float32) and behind the expected error ``explain``
shows; see docs/how-it-works.md, "Precision".

    python bench/precision.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import fastconv


def kinds(rng):
    """(name, x, w[, conv2d keyword arguments]): the data the error is measured on."""
    n, c, o, s = 2, 64, 64, 28
    fan = c * 9
    relu = np.maximum(rng.standard_normal((n, c, s, s)), 0)
    pixels = rng.integers(0, 256, (n, c, s, s)).astype(np.float64)
    zero_sum = rng.standard_normal((o, c, 3, 3))
    zero_sum -= zero_sum.mean(axis=(1, 2, 3), keepdims=True)
    deep = np.maximum(rng.standard_normal((1, 4096, 8, 8)), 0)
    return [
        ("depthwise 3x3, post-ReLU", relu, rng.standard_normal((c, 1, 3, 3)) * np.sqrt(2 / 9), dict(groups=c)),
        ("unit noise", rng.standard_normal((n, c, s, s)), rng.standard_normal((o, c, 3, 3)) / np.sqrt(fan)),
        ("post-ReLU, He weights", relu, rng.standard_normal((o, c, 3, 3)) * np.sqrt(2 / fan)),
        ("pixels 0-255", pixels, rng.standard_normal((o, c, 3, 3)) / np.sqrt(fan)),
        ("pixels, zero-sum filters", pixels, zero_sum / np.sqrt(fan)),
        ("DC offset 1000", 1000 + rng.standard_normal((n, c, s, s)), rng.standard_normal((o, c, 3, 3)) / np.sqrt(fan)),
        ("DC 1000, zero-sum filters", 1000 + rng.standard_normal((n, c, s, s)), zero_sum / np.sqrt(fan)),
        ("C_in 4096, post-ReLU", deep, rng.standard_normal((8, 4096, 3, 3)) * np.sqrt(2 / (4096 * 9))),
    ]


def measure(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    try:
        import torch
        import torch.nn.functional as tf
    except ImportError:  # pragma: no cover - torch is optional
        torch = None
    table: dict[str, dict[str, float]] = {}
    for name, x, w, *extra in kinds(rng):
        kw = dict(padding=1, **(extra[0] if extra else {}))
        x32, w32 = x.astype(np.float32), w.astype(np.float32)
        truth = fastconv.conv2d(x32.astype(np.float64), w32.astype(np.float64), method="direct", **kw)
        scale = np.abs(truth).max()
        row = {}
        for method in fastconv.available_methods(fastconv.conv2d, x32, w32, **kw)[1:]:
            y = fastconv.conv2d(x32, w32, method=method, **kw)
            row[method] = float(np.abs(y.astype(np.float64) - truth).max() / scale)
        if torch is not None:
            with torch.no_grad():
                y = tf.conv2d(torch.from_numpy(x32), torch.from_numpy(w32), **kw).numpy()
            row["torch"] = float(np.abs(y.astype(np.float64) - truth).max() / scale)
        table[name] = row
    return table


def measure_filters(seed: int = 0) -> dict:
    """The same for ``fastconv.ndimage.correlate`` (256x256 pixels, 15x15
    weights) and ``fastconv.signal.convolve`` (a 100k-sample signal, 255 taps)."""
    from fastconv import ndimage, signal

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (256, 256)).astype(np.float32)
    g = np.exp(-(np.linspace(-2, 2, 15) ** 2))
    zero_sum = rng.standard_normal((15, 15))
    zero_sum -= zero_sum.mean()
    sig = (1000 + rng.standard_normal(100_000)).astype(np.float32)
    cases = [
        ("ndimage, gaussian 15x15", ndimage.correlate, img, np.outer(g, g) / np.outer(g, g).sum(), {}),
        ("ndimage, zero-sum 15x15", ndimage.correlate, img, zero_sum, {}),
        ("signal, DC 1000, 255 taps", signal.convolve, sig, rng.standard_normal(255), {}),
    ]
    table = {}
    for name, f, x, w, kw in cases:
        w32 = w.astype(np.float32)
        truth = f(x.astype(np.float64), w32.astype(np.float64), method="direct", **kw)
        scale = np.abs(truth).max()
        table[name] = {
            m: float(np.abs(f(x, w32, method=m, **kw).astype(np.float64) - truth).max() / scale)
            for m in fastconv.available_methods(f, x, w32, **kw)[1:]
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the table as JSON")
    args = parser.parse_args()
    with fastconv.set_config(background_compile=False):
        tables = {"conv2d": measure(), "filters": measure_filters()}
    for title, table in tables.items():
        methods = sorted({m for row in table.values() for m in row}, key=lambda m: (m == "torch", m))
        print(f"{title + ' (float32 vs float64 truth)':30s}" + "".join(f"{m:>18s}" for m in methods))
        for name, row in table.items():
            ref = row.get("direct")
            cells = []
            for m in methods:
                v = row.get(m)
                cells.append("-" if v is None else f"{v:.1e} ({v / ref:.1f}x)" if ref else f"{v:.1e}")
            print(f"{name:30s}" + "".join(f"{c:>18s}" for c in cells))
        print()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(tables, fh, indent=2)


if __name__ == "__main__":
    main()
