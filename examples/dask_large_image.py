"""A filter over an image too large to hold twice: fastconv on dask.

    python examples/dask_large_image.py [--size 20000] [--chunk 2048] [--kernel 7] [--op ndimage|conv2d]

Runs the same 7x7 box filter two ways, each in its own process so that peak
memory is measured cleanly -- ``--op ndimage``: ``fastconv.ndimage.convolve``
(mode "reflect"); ``--op conv2d``: ``fastconv.conv2d`` on the image as a
(1, 1, H, W) batch (``padding=k//2, padding_mode="reflect"``), which dask
splits into spatial tiles with stride-aligned halos:

- in memory: ``numpy`` image -> the op -> result (input, padded copy and
  output all held at once);
- dask: the image is generated chunk by chunk and filtered chunk by chunk
  with halos, and the result is reduced as it is produced (its sum, plus a
  few sampled windows kept), so only a few chunks are in memory at any time.

Prints time and peak resident memory (RSS) of both, and checks that the two
results agree (sum and sampled windows).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _pixels(i, j):
    """The test image, a function of the pixel coordinates (so the dask and
    NumPy paths build the same image): smooth waves plus a fine texture."""
    import numpy as np

    wave = np.sin(0.0123 * i) * np.cos(0.0171 * j)
    texture = ((7 * i + 13 * j) % 17) / 17.0
    return (wave + texture).astype(np.float32)


WINDOWS = ((0, 0), (0.5, 0.1), (1.0, 1.0))  # where to sample 200x200 windows (fractions of the size)


def _windows(size: int):
    return [(min(int(a * size), size - 200), min(int(b * size), size - 200)) for a, b in WINDOWS]


def _filter(x, k: int, op: str):
    """The 7x7 (k x k) box filter of ``x`` (NumPy or dask) by ``op``."""
    import numpy as np

    import fastconv
    from fastconv import ndimage

    w = np.ones((k, k), dtype=np.float32) / (k * k)
    if op == "ndimage":
        return ndimage.convolve(x, w, mode="reflect")
    return fastconv.conv2d(x[None, None], w[None, None], padding=k // 2, padding_mode="reflect")[0, 0]


def _child(path: str, size: int, chunk: int, k: int, how: str, op: str) -> None:
    import numpy as np

    t0 = time.perf_counter()
    if how == "numpy":
        x = np.empty((size, size), dtype=np.float32)  # built in row blocks: no full-size temporaries
        cols = np.arange(size, dtype=np.float32)[None, :]
        for r0 in range(0, size, 1024):
            rows = np.arange(r0, min(size, r0 + 1024), dtype=np.float32)[:, None]
            x[r0 : r0 + len(rows)] = _pixels(rows, cols)
        y = _filter(x, k, op)
        total = float(y.sum(dtype=np.float64))
        windows = [np.array(y[r : r + 200, c : c + 200]) for r, c in _windows(size)]
    else:
        import dask
        import dask.array as da

        x = da.fromfunction(_pixels, shape=(size, size), chunks=chunk, dtype=np.float32)
        y = _filter(x, k, op)
        parts = [y.sum(dtype=np.float64)] + [y[r : r + 200, c : c + 200] for r, c in _windows(size)]
        with dask.config.set(scheduler="threads", num_workers=2):
            total, *windows = dask.compute(*parts)
        total = float(total)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    np.savez(path, *windows)
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": peak, "sum": total}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--kernel", type=int, default=7)
    parser.add_argument("--op", choices=["ndimage", "conv2d"], default="ndimage")
    parser.add_argument("--child", choices=["numpy", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.path, args.size, args.chunk, args.kernel, args.child, args.op)
        return

    import numpy as np

    gib = args.size * args.size * 4 / 2**30
    print(
        f"{args.size}x{args.size} float32 image ({gib:.2f} GiB), {args.kernel}x{args.kernel} box filter, "
        f"reflected edges, by {'fastconv.ndimage.convolve' if args.op == 'ndimage' else 'fastconv.conv2d'}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for how in ("dask", "numpy"):
            path = os.path.join(tmp, f"{how}.npz")
            cmd = [sys.executable, __file__, "--child", how, "--path", path, "--size", str(args.size),
                   "--chunk", str(args.chunk), "--kernel", str(args.kernel), "--op", args.op]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results[how] = json.loads(res.stdout.strip().splitlines()[-1])
            print(
                f"  {how:5s}: {results[how]['seconds']:6.1f} s, peak RSS {results[how]['peak_rss_bytes'] / 2**30:5.2f} GiB"
            )
        a = np.load(os.path.join(tmp, "dask.npz"))
        b = np.load(os.path.join(tmp, "numpy.npz"))
        for key in a.files:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(results["dask"]["sum"], results["numpy"]["sum"], rtol=1e-6)
    ratio = results["dask"]["peak_rss_bytes"] / results["numpy"]["peak_rss_bytes"]
    print(f"dask result equals the in-memory one (sum, sampled windows); peak memory ratio dask/numpy {ratio:.2f}, "
          f"time ratio {results['dask']['seconds'] / results['numpy']['seconds']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
