"""The package's shape: dependencies run one way, planning needs no Numba."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import fastconv

ROOT = pathlib.Path(fastconv.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every fastconv module -> the fastconv modules it imports, at any depth
    of the code (imports inside functions count: they are dependencies too)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # "from . import x" names a module when x is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("fastconv"):
                    deps.add(t)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_graph_reader_sees_function_level_imports_and_cycles():
    g = import_graph()
    assert "fastconv._config" in g["fastconv.kernels.direct"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def public_operations():
    """Every public operation of fastconv, fastconv.signal and fastconv.ndimage."""
    from fastconv import ndimage, signal

    skip = {"get_config", "set_config", "explain", "available_methods", "signal", "ndimage", "__version__"}
    ops = [getattr(fastconv, n) for n in fastconv.__all__ if n not in skip]
    ops += [getattr(signal, n) for n in signal.__all__] + [getattr(ndimage, n) for n in ndimage.__all__]
    return ops


def example_call(func):
    """Arguments of a small call of ``func``."""
    import numpy as np

    name = func.__name__
    x1, x2, x3 = (np.ones((1, 2, *(8,) * nd), np.float32) for nd in (1, 2, 3))
    if name.startswith("conv_transpose"):
        nd = int(name[-2])
        return (x1, x2, x3)[nd - 1], np.ones((2, 3, *(3,) * nd), np.float32)
    if name.startswith("conv") and name[-2].isdigit() and func.__module__ == "fastconv.nn":
        nd = int(name[-2])
        return (x1, x2, x3)[nd - 1], np.ones((3, 2, *(3,) * nd), np.float32)
    if "pool" in name:
        nd = int(name[-2])
        return ((x1, x2, x3)[nd - 1], 2)
    if func.__module__ == "fastconv.ndimage":
        if name in ("sobel", "prewitt", "laplace"):
            return (np.ones((9, 9)),)
        if name.startswith(("gaussian", "uniform")):
            return (np.ones((9, 9)), 2)
        return (np.ones((9, 9)), np.ones(3)) if name.endswith("1d") else (np.ones((9, 9)), np.ones((3, 3)))
    return np.ones((9, 9)), np.ones((3, 3))


def test_explain_and_available_methods_answer_for_every_public_operation():
    ops = public_operations()
    assert len(ops) >= 28
    for func in ops:
        args = example_call(func)
        plan = fastconv.explain(func, *args)
        methods = fastconv.available_methods(func, *args)
        assert methods[0] == "auto" and plan.method in methods, func.__name__
        assert plan.method in repr(plan) and "candidates" in repr(plan), func.__name__


def test_explain_imports_no_numba():
    # planning every public operation needs no kernel: a fresh process
    # explains them all and has not imported numba
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})\n"
        "import fastconv\n"
        "from test_structure import example_call, public_operations\n"
        "for f in public_operations():\n"
        "    fastconv.explain(f, *example_call(f))\n"
        "    fastconv.available_methods(f, *example_call(f))\n"
        "assert 'numba' not in sys.modules, sorted(m for m in sys.modules if m.startswith('numba'))\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


# --- plans: variants by name, parts planned once, one entry path ---------------------------


def test_blocked_variants_forced_by_name(rng):
    import numpy as np

    from fastconv.plans import blocked as bplan

    from .reference import conv_nd

    x = rng.standard_normal((2, 4, 13, 12)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    want = conv_nd(x.astype(np.float64), w.astype(np.float64), padding=1)
    spec = fastconv.explain(fastconv.conv2d, x, w, padding=1).spec
    assert set(bplan.variants(spec)) == {"shifted", "plane_windows", "padded"}
    for variant in bplan.variants(spec):
        plan = fastconv.explain(fastconv.conv2d, x, w, padding=1, method=f"blocked:{variant}")
        assert plan.method == "blocked" and plan.variant == variant and f"variant: {variant}" in repr(plan)
        got = fastconv.conv2d(x, w, padding=1, method=f"blocked:{variant}")
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(), err_msg=variant)
    # auto's plan names the variant it runs
    auto = fastconv.explain(fastconv.conv2d, x, w, padding=1, method="blocked")
    assert auto.variant == bplan.choose_variant(spec)
    with pytest.raises(ValueError, match="variant 'windowed' cannot compute"):
        fastconv.conv2d(x, w, padding=1, method="blocked:windowed")  # (conv1d only)
    with pytest.raises(ValueError, match="has no variants"):
        fastconv.conv2d(x, w, padding=1, method="direct:fast")


def test_runners_never_select(rng, monkeypatch):
    # the subpixel method's phases are planned with the call (child plans
    # shown by explain); running the plan does not go back to the selector
    import numpy as np

    from fastconv._plan_api import built
    from fastconv.dispatch import selector

    from .reference import conv_transpose_nd

    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((4, 3, 4, 3))
    kwargs = dict(stride=2, padding=1, method="subpixel")
    plan = fastconv.explain(fastconv.conv_transpose2d, x, w, **kwargs)
    parts = [c for c in plan.children if c is not None]
    assert len(plan.children) == 4 and parts and all(c.op == "conv2d" and c.spec.stride == (1, 1) for c in parts)
    assert "part 0: " in repr(plan)
    spec, ops, _ = built(fastconv.conv_transpose2d, (x, w), kwargs)
    out = np.empty((spec.n, spec.c_out, *spec.lifted("out_spatial")))

    def no_selection(*args, **kw):
        raise AssertionError("a runner called the selector")

    monkeypatch.setattr(selector, "_select", no_selection)
    monkeypatch.setattr(selector, "select", no_selection)
    plan.run(ops, out)
    want = conv_transpose_nd(x, w, stride=2, padding=1)
    np.testing.assert_allclose(out.reshape(want.shape), want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_every_public_function_enters_through_its_descriptor():
    import inspect

    from fastconv._ops import Op

    for func in public_operations():
        op = func.__fastconv_op__
        assert isinstance(op, Op) and op.name.endswith(func.__name__), func
        assert func.__doc__ and "Examples" in func.__doc__, func
        # the descriptor's spec builder takes the function's arguments, by name
        inspect.signature(op.spec).bind(**dict.fromkeys(inspect.signature(func).parameters))


def test_misspelt_method_raises_before_a_dask_graph_is_built():
    import numpy as np

    da = pytest.importorskip("dask.array")
    from fastconv import ndimage, signal

    x = da.ones((1, 2, 16, 16), chunks=(1, 2, 8, 8))
    w = np.ones((2, 2, 3, 3))
    calls = [
        (fastconv.conv2d, (x, w), {}),
        (fastconv.conv_transpose2d, (x, w), {}),
        (signal.convolve, (x[0, 0], w[0, 0]), {}),
        (signal.correlate, (x[0, 0], w[0, 0]), {}),
        (ndimage.correlate, (x[0, 0], w[0, 0]), {}),
        (ndimage.convolve, (x[0, 0], w[0, 0]), {}),
    ]
    for func, args, kwargs in calls:
        with pytest.raises(ValueError, match="method must be one of"):
            func(*args, method="winograd_f5", **kwargs)
    with pytest.raises(ValueError, match="device must be"):
        fastconv.conv2d(x, w, device="tpu")
    # a valid method is passed on to every chunk's plan
    y = signal.convolve(x[0, 0], w[0, 0], method="direct").compute()
    np.testing.assert_allclose(y, signal.convolve(np.ones((16, 16)), w[0, 0], method="direct"))


def test_plans_never_import_kernels_or_numba():
    # planning is importable without Numba: the plan modules depend on no
    # kernel module and import no numba, at any depth of their code
    graph = import_graph()
    plans = [m for m in graph if m.startswith("fastconv.plans")]
    assert len(plans) >= 12
    for name in plans:
        assert not any(d.startswith("fastconv.kernels") for d in graph[name]), (name, graph[name])
        path = ROOT / "plans" / f"{name.rpartition('.')[2]}.py"
        if path.exists():
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not any(m == "numba" or m.startswith("numba.") for m in imported), name
