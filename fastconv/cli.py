"""The ``fastconv`` command: ``bench``, ``tune``, ``explain``, ``info`` and ``warmup``."""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 8,64,56,56, got {text!r}"
        ) from None
    if any(d < 0 for d in dims):
        raise argparse.ArgumentTypeError(f"dimensions must be >= 0, got {text!r}")
    return dims


def _ints(text: str):
    dims = _shape(text)
    return dims[0] if len(dims) == 1 else dims


def cmd_bench(args) -> int:
    import os

    from . import _bench, set_config

    # the kernels are timed, not tier 0: a first call compiles before it returns
    os.environ["FASTCONV_BACKGROUND_COMPILE"] = "0"  # (the --memory child processes too)
    set_config(background_compile=False)

    suites = _bench.SUITE_GROUPS[args.suite]
    compare = tuple(c for c in args.compare.split(",") if c) if args.compare else ()
    for lib in compare:
        if lib not in ("torch", "scipy"):
            print(f"fastconv bench: --compare: unknown library {lib!r} (known: torch, scipy)", file=sys.stderr)
            return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("fastconv bench: --plot needs matplotlib (pip install 'fastconv[bench]')", file=sys.stderr)
            return 2
        if not args.plot.lower().endswith(".png"):
            print(f"fastconv bench: --plot: expected a .png file name, got {args.plot!r}", file=sys.stderr)
            return 2
    env = _bench.environment(args.threads)
    print("fastconv bench: " + ", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    if "torch" in compare and "torch" not in env:
        print("  (torch is not installed: no comparison; pip install torch to add one)", flush=True)
    gemm = _bench.gemm_rate(args.threads)
    print(f"  numpy float32 GEMM 2048^3 with {args.threads} threads: {gemm:.1f} GFLOP/s", flush=True)
    copy = _bench.copy_rate() if "pool2d" in suites else None
    if copy:
        print(f"  numpy copy of 256 MiB: {copy:.1f} GB/s (read + write)", flush=True)
    results = []
    from . import _sweep

    if args.cases and not (
        any(args.cases in c[0] for suite in suites if suite != "sweep" for c in _bench.SUITES[suite])
        or ("sweep" in suites and _sweep.select_points(False, args.cases))
    ):
        print(f"fastconv bench: --cases: no case name contains {args.cases!r}", file=sys.stderr)
        return 2
    from ._progress import Progress

    sweep = []
    for suite in suites:
        if suite == "sweep":
            with Progress(_sweep.count(args.quick, args.cases), "bench sweep") as bar:
                sweep = _sweep.run(args.quick, args.threads, only=args.cases, progress=bar.step)
            print()
            print(_sweep.table(sweep))
            print()
            continue
        with Progress(_bench.case_count(suite, args.quick, args.cases), f"bench {suite}") as bar:
            res = _bench.run_suite(
                suite,
                quick=args.quick,
                only=args.cases,
                threads=args.threads,
                compare=compare,
                repeats=args.repeats,
                progress=bar.step,
                methods=args.methods,
                memory=args.memory,
            )
        print()
        print(_bench.table(res, gemm, copy))
        print()
        if suite == "ndimage":
            scaling = _bench.thread_scaling()
            print(f"two Python threads calling fastconv.ndimage at once (1 thread each): {scaling:.2f}x the "
                  "throughput of the same calls one after the other (the GIL is released)\n", flush=True)  # fmt: skip
        results += res
        bad = [r for r in res if r.max_rel_err is not None and r.max_rel_err > 1e-3]
        if bad:
            print(
                f"fastconv bench: {len(bad)} case(s) disagree with the reference: {[r.case for r in bad]}",
                file=sys.stderr,
            )
            return 1
    bad = [f"{r.family} {r.label} {r.dtype}" for r in sweep if r.max_rel_err > 1e-3]
    if bad:
        print(f"fastconv bench: {len(bad)} sweep point(s) disagree with the reference: {bad}", file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(_bench.to_json(results, env, gemm, copy, sweep))
        print(f"wrote {args.json}")
    if args.plot:
        if results:
            _bench.plot(results, env, args.plot)
            print(f"wrote {args.plot}")
        if sweep:
            path = args.plot if not results else args.plot[: -len(".png")] + "-sweep.png"
            _sweep.plot(sweep, env, path)
            print(f"wrote {path}")
    return 0


def cmd_info(args) -> int:
    import os
    import platform

    import numba
    import numpy as np
    import scipy

    from . import __version__, get_config
    from .dispatch.selector import cost_model_source
    from .dispatch.tuning import cpu_id

    cfg = get_config()
    print(f"fastconv {__version__}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, numba {numba.__version__}"
    )
    print(f"cpu: {cpu_id()} ({platform.machine()}), {os.cpu_count()} logical cores")
    flags = sorted(f for f in ("avx2", "avx512f", "fma", "neon", "asimd") if f in _cpu_flags())
    print(f"simd: {', '.join(flags) or 'unknown'}")
    print(
        f"threads: fastconv {cfg.num_threads}, numba max {numba.config.NUMBA_NUM_THREADS}, layer {_threading_layer()}"
    )
    print(f"autotune: {cfg.autotune}, workspace_limit: {cfg.workspace_limit} bytes, precision: {cfg.precision}")
    print(f"background compilation: {'on' if cfg.background_compile else 'off'} (FASTCONV_BACKGROUND_COMPILE)")
    print(f"kernel cache: {_kernel_cache_dir()}")
    print(f"cost model: {cost_model_source()}")
    print(f"tuning cache: {cfg.cache_dir}")
    print(f"gpu: {_gpus()}")
    return 0


def _names(choices: tuple[str, ...], what: str):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in names if v not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"{what} must be comma-separated names from {', '.join(choices)}, got {text!r}"
            )
        return names

    return parse


def cmd_warmup(args) -> int:
    import time

    from . import _warmup, get_config
    from ._progress import Progress

    total = len(args.ops) * len(args.dtypes)
    jobs = args.jobs or min(total, get_config().num_threads)  # (the cores, unless FASTCONV_NUM_THREADS says)
    print(
        f"fastconv warmup: compiling {', '.join(args.ops)} in {', '.join(args.dtypes)} ({total} jobs, {jobs} at a time)"
    )
    start = time.perf_counter()
    failed = 0
    with Progress(total, "warmup") as bar:

        def report(r) -> None:
            nonlocal failed
            op, dtype, ok, took, what = r
            failed += not ok
            bar.step(f"{op} {dtype}: " + (f"{what} kernels compiled in {took:.1f} s" if ok else "FAILED"))

        results = _warmup.warmup(args.ops, args.dtypes, jobs, report)
    for op, dtype, ok, took, what in results:
        line = f"{what} kernels compiled" if ok else f"failed:\n{what}"
        print(f"  {op:<15} {dtype:<8} {took:7.1f} s  {line}")
    print(f"done in {time.perf_counter() - start:.1f} s; the kernels are in Numba's disk cache for every later process")
    return 1 if failed else 0


def cmd_calibrate(args) -> int:
    from . import _calibrate, get_config
    from ._progress import Progress
    from .dispatch import calibration, selector

    cfg = get_config()
    threads = args.threads or cfg.num_threads
    cases = _calibrate.calls(args.quick)
    print(f"fastconv calibrate: {len(cases)} calls x {_calibrate.PASSES} passes, every method auto may pick, {threads} threads "
          f"(kernels not compiled yet compile first)")  # fmt: skip
    with Progress(len(cases) * _calibrate.PASSES, "calibrate") as bar:
        summary = _calibrate.calibrate(cfg.cache_dir, threads, args.quick, progress=bar.step)
    print(f"{'method':<20} {'fixed':>6} {'compute':>8} {'calls':>5}  median |error| shipped -> calibrated")
    for key, fit in summary["fits"].items():
        print(f"{key:<20} x{fit['overhead']:<5.2f} x{fit['compute']:<7.2f} {fit['calls']:>5}  "
              f"{fit['median_error_before']:.0%} -> {fit['median_error_after']:.0%}")  # fmt: skip
    print(f"done in {summary['seconds']:.1f} s; stored in {summary['path']} for {calibration.machine_key()}")
    selector.reload_constants()
    print(f"cost model: {selector.cost_model_source()}")
    return 0


def _kernel_cache_dir() -> str:
    """Where compiled kernels are cached (the first kernel module's directory)."""
    from ._cache import cache_dir_of
    from .kernels import pool

    return cache_dir_of(pool.max_pool_kernel) or "not cached"


def _gpus() -> str:
    """The GPUs numba.cuda sees, or why none is usable."""
    from . import cuda as fcuda

    reason = fcuda.unavailable_reason()
    if reason is not None:
        return f"none ({reason})"
    from numba import cuda

    try:
        names = [g.name.decode() if isinstance(g.name, bytes) else str(g.name) for g in cuda.gpus]
    except Exception:  # pragma: no cover - the simulator or a driver quirk
        names = ["CUDA device"]
    return ", ".join(names) or "CUDA simulator"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region yet: what Numba will try, in order
        chosen = numba.config.THREADING_LAYER
        order = numba.config.THREADING_LAYER_PRIORITY if chosen == "default" else [chosen]
        return f"not started yet (tries {', '.join(order)})"


def _call_from_args(args):
    import numpy as np

    import fastconv

    func = getattr(fastconv, args.op)
    x = np.zeros(args.input, dtype=args.dtype)
    w = np.zeros(args.weight, dtype=args.dtype)
    kwargs = dict(stride=args.stride, padding=args.padding, dilation=args.dilation, groups=args.groups)
    if getattr(args, "device", None) is not None:
        kwargs["device"] = args.device
    if args.op.startswith("conv_transpose"):
        kwargs["output_padding"] = args.output_padding
    elif args.output_padding != 0:
        raise SystemExit(f"fastconv {args.command}: --output-padding is for transposed convolution only")
    return func, x, w, kwargs


def cmd_explain(args) -> int:
    import fastconv

    func, x, w, kwargs = _call_from_args(args)
    try:
        plan = fastconv.explain(func, x, w, **kwargs)
    except (ValueError, TypeError) as exc:
        print(f"fastconv explain: {exc}", file=sys.stderr)
        return 2
    print(plan)
    return 0


def cmd_tune(args) -> int:
    import numpy as np

    import fastconv

    from . import _bench

    if args.op is not None:
        if args.input is None or args.weight is None:
            print("fastconv tune: an operation needs --input and --weight", file=sys.stderr)
            return 2
        func, x, w, kwargs = _call_from_args(args)
        calls = [(f"{args.op} {args.input} {args.weight}", func, x, w, kwargs)]
    else:
        # pooling has one kernel; the ndimage suite is tuned by running it with autotune on
        suites = [s for s in _bench.SUITE_GROUPS[args.suite] if s in _bench.CONV_SUITES]
        calls = [
            (name, getattr(fastconv, suite), np.zeros(xs, np.float32), np.zeros(ws, np.float32), kw)
            for suite in suites
            for name, xs, ws, kw in _bench.SUITES[suite]
        ]
    with fastconv.set_config(autotune=True, num_threads=args.threads):
        print(f"fastconv tune: {len(calls)} call(s), {args.threads} threads, cache {fastconv.get_config().cache_dir}")
        from ._progress import Progress

        rows = []
        with Progress(len(calls), "tune") as bar:
            for name, func, x, w, kwargs in calls:
                bar.step(name)
                try:
                    plan = fastconv.explain(func, x, w, **kwargs)
                except (ValueError, TypeError) as exc:
                    print(f"fastconv tune: {exc}", file=sys.stderr)
                    return 2
                times = ", ".join(
                    f"{c.name} {c.measured_s * 1e3:.2f} ms" for c in plan.candidates if c.measured_s is not None
                )
                rows.append(f"  {name}: {plan.method}  ({times or plan.reason})")
        print("\n".join(rows), flush=True)
    return 0


_SUITE_CHOICES = [
    "conv", "transpose", "pool", "signal", "ndimage", "filters", "conv2d", "conv1d", "conv3d", "conv_transpose2d",
    "pool2d", "sweep", "all",
]  # fmt: skip
_OPS = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastconv", description="Numba convolution kernels: benchmark and inspect.")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="time fastconv against torch on realistic layers")
    b.add_argument(
        "--suite",
        choices=_SUITE_CHOICES,
        default="all",
        help="conv (1d/2d/3d), transpose, pool, signal, ndimage, filters (gaussian, uniform, sobel, ...), sweep (every "
        "family from tiny to large inputs), or all",
    )
    b.add_argument("--quick", action="store_true", help="a few cases per suite (a couple of minutes)")
    b.add_argument(
        "--compare",
        default="torch,scipy",
        help="comma-separated reference libraries: torch (NN ops), scipy (signal, ndimage); default both",
    )
    b.add_argument("--threads", type=_positive_int, default=2, help="threads for every library (default 2)")
    b.add_argument("--repeats", type=_positive_int, default=15, help="interleaved runs per case (default 15)")
    b.add_argument("--cases", metavar="TEXT", help="only the cases whose name contains TEXT")
    b.add_argument("--json", metavar="FILE", help="write the raw results as JSON")
    b.add_argument(
        "--plot",
        metavar="FILE.png",
        help="write a PNG of the speed-ups per case (needs matplotlib); the sweep's ratio-against-size plot goes to "
        "FILE-sweep.png beside it (to FILE.png with --suite sweep)",
    )
    b.add_argument(
        "--methods",
        action="store_true",
        help="convolution suites: also time every explicit method (is method='auto' the fastest?)",
    )
    b.add_argument(
        "--memory",
        action="store_true",
        help="convolution suites: peak memory of one call, fastconv and torch (Linux; a child process each)",
    )
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", help="versions, CPU, threads and cache locations")
    i.set_defaults(func=cmd_info)

    e = sub.add_parser("explain", help="show the plan the dispatcher makes for one call")
    e.add_argument("op", choices=_OPS)
    _call_arguments(e, required=True)
    e.set_defaults(func=cmd_explain)

    t = sub.add_parser(
        "tune", help="measure and cache the dispatcher's choice (for a suite, or for one call given by shapes)"
    )
    t.add_argument("op", nargs="?", choices=_OPS)
    _call_arguments(t, required=False)
    t.add_argument(
        "--suite",
        choices=[c for c in _SUITE_CHOICES if "pool" not in c and c not in ("ndimage", "filters", "sweep")],
        default="all",
    )
    t.add_argument("--threads", type=_positive_int, default=None, help="threads to tune for (default: the setting)")
    t.set_defaults(func=cmd_tune)

    from ._warmup import WARMUP_DEFAULT, WARMUP_DTYPES, WARMUP_OPS

    w = sub.add_parser("warmup", help="compile the kernels up front, in parallel processes (Docker images, clusters)")
    w.add_argument(
        "--ops",
        type=_names(WARMUP_OPS, "--ops"),
        default=WARMUP_DEFAULT,
        help=f"comma-separated: {', '.join(WARMUP_OPS)} (default: all but njit, what calls from @njit code run)",
    )
    w.add_argument(
        "--dtypes", type=_names(WARMUP_DTYPES, "--dtypes"), default=WARMUP_DTYPES, help="float32, float64 or both"
    )
    w.add_argument("--jobs", type=_positive_int, default=None, help="processes at a time (default: fastconv's threads)")
    w.set_defaults(func=cmd_warmup)

    c = sub.add_parser(
        "calibrate", help="fit the dispatcher's constants to this machine (every method timed on 70 calls)"
    )
    c.add_argument("--quick", action="store_true", help="a third of the calls (less accurate)")
    c.add_argument("--threads", type=_positive_int, default=None, help="threads to fit for (default: the setting)")
    c.set_defaults(func=cmd_calibrate)
    return parser


def _call_arguments(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--input", type=_shape, required=required, help="input shape, e.g. 8,64,56,56")
    p.add_argument("--weight", type=_shape, required=required, help="weight shape, e.g. 64,64,3,3")
    p.add_argument("--stride", type=_ints, default=1)
    p.add_argument("--padding", default=0, help="int, comma-separated ints, 'valid' or 'same'")
    p.add_argument("--dilation", type=_ints, default=1)
    p.add_argument("--groups", type=_positive_int, default=1)
    p.add_argument("--output-padding", type=_ints, default=0, help="transposed convolution only")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="plan for this device (default: cpu)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("explain", "tune") and isinstance(args.padding, str) and args.padding not in ("valid", "same"):
        try:
            args.padding = _ints(args.padding)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument --padding: {exc}")
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
