"""Cold start: tier 0 while a kernel compiles, background builds, the disk
cache (one key for all kernel sources, a writable directory, concurrent
writers) and ``fastconv warmup``."""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _warm, _warmup
from fastconv.dispatch import Method, clear_plan_cache, register, unregister

from .reference import conv_nd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, cache, *args, background: bool = False, cwd=ROOT, timeout=600, **env):
    """Run ``code`` in a fresh interpreter whose Numba cache is ``cache``."""
    full = dict(
        os.environ,
        NUMBA_CACHE_DIR=str(cache),
        FASTCONV_BACKGROUND_COMPILE="1" if background else "0",
        PYTHONPATH=str(cwd),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=full, cwd=cwd, timeout=timeout
    )


# --- no_compile and the tier switch, in this process --------------------------------


def test_no_compile_stops_numba_before_it_compiles():
    import numba

    @numba.njit(cache=False)  # (not on disk: every run starts it cold)
    def plus_one(v):
        return v + 1

    with _warm.no_compile(), pytest.raises(_warm.NotCompiled, match="plus_one"):
        plus_one(1)
    assert plus_one(1) == 2  # compiles outside the block
    with _warm.no_compile():
        assert plus_one(5) == 6  # compiled: runs
        with pytest.raises(_warm.NotCompiled):
            plus_one(1.5)  # a new signature would compile


class ColdKernel:
    """A mock conv2d kernel that is "not compiled" until ``compiled`` is set."""

    def __init__(self):
        self.compiled = False
        self.calls = 0

    def __call__(self, spec, ops, out, num_threads):
        if not self.compiled:
            raise _warm.NotCompiled("cold")
        self.calls += 1
        out[...] = 7.0


@pytest.fixture
def cold(monkeypatch):
    """A cheapest-estimate mock method whose kernel is cold, background
    compilation on, and builds recorded instead of run."""
    kernel = ColdKernel()
    register(Method("cold", ("conv2d",), kernel, lambda s: None, lambda s: 0, "mock", estimate=lambda s, c: 0.0))
    built = []

    def fake_build(jobs, timeout=None):
        built.extend(jobs)
        return True, ""

    monkeypatch.setattr(_warm, "build", fake_build)
    monkeypatch.setattr(_warm, "_ready", set())
    clear_plan_cache()
    with fastconv.set_config(background_compile=True):
        yield kernel, built
    _warm.wait(60)
    unregister("cold", ("conv2d",))
    clear_plan_cache()


def test_tier0_answers_while_the_kernel_compiles_then_the_kernel_runs(cold, rng):
    kernel, built = cold
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = fastconv.conv2d(x, w, padding=1)
    assert _warm.last_tier() == "numpy" and kernel.calls == 0
    np.testing.assert_allclose(y, conv_nd(x.astype(np.float64), w.astype(np.float64), padding=1), rtol=1e-4, atol=1e-4)
    assert _warm.wait(60)
    (job,) = built
    assert job.spec.method == "cold" and job.spec.op == "conv2d" and job.out_shape == (2, 4, 1, 9, 8)
    assert pickle.loads(pickle.dumps(job)) == job  # what the child receives
    kernel.compiled = True  # (what the child's build did to the disk cache)
    plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    assert "kernel: not run yet" in repr(plan)
    assert (fastconv.conv2d(x, w, padding=1) == 7.0).all()
    assert _warm.last_tier() == "kernel" and kernel.calls == 1
    assert "kernel: compiled" in repr(fastconv.explain(fastconv.conv2d, x, w, padding=1))


def test_a_running_build_does_not_hold_back_a_compiled_kernel(cold, rng, monkeypatch):
    """While one plan's kernel builds, another plan whose kernel is compiled
    (here: a mock that is cold for one shape only) runs its kernel."""
    import threading
    import time

    _, built = cold
    release = threading.Event()
    monkeypatch.setattr(
        _warm, "build", lambda jobs, timeout=None: (built.extend(jobs), release.wait(60), (True, ""))[2]
    )
    monkeypatch.setattr(_warm, "_builder", _warm._Builder())
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    cold_x, warm_x = rng.standard_normal((1, 3, 6, 6)), rng.standard_normal((1, 3, 7, 7))
    calls = ColdKernel.__call__

    def picky(self, spec, ops, out, num_threads):  # compiled for 7x7 inputs only
        self.compiled = spec.in_spatial == (7, 7)
        calls(self, spec, ops, out, num_threads)

    monkeypatch.setattr(ColdKernel, "__call__", picky)
    fastconv.conv2d(cold_x.astype(np.float32), w)
    assert _warm.last_tier() == "numpy"
    for _ in range(500):  # (the builder thread starts it)
        if built:
            break
        time.sleep(0.01)
    assert len(built) == 1  # its build runs (held)
    assert (fastconv.conv2d(warm_x.astype(np.float32), w) == 7.0).all()
    assert _warm.last_tier() == "kernel"
    fastconv.conv2d(cold_x.astype(np.float32), w)  # its own build still pending: tier 0, no second build
    assert _warm.last_tier() == "numpy" and len(built) == 1
    release.set()
    assert _warm.wait(60)


def test_no_tier0_for_a_forced_method_or_with_background_compile_off(cold, rng):
    _kernel, built = cold
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    with pytest.raises(_warm.NotCompiled):  # (the mock cannot compile: what a real kernel would do here)
        fastconv.conv2d(x, w, method="cold")
    with fastconv.set_config(background_compile=False), pytest.raises(_warm.NotCompiled):
        fastconv.conv2d(x, w)
    assert not built


def test_a_build_that_keeps_failing_compiles_in_process(cold, rng, monkeypatch):
    _kernel, built = cold
    monkeypatch.setattr(_warm, "build", lambda jobs, timeout=None: (built.extend(jobs), (False, "boom"))[1])
    monkeypatch.setattr(_warm, "_builder", _warm._Builder())
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    for _ in range(_warm._Builder.MAX_FAILURES):
        fastconv.conv2d(x, w)
        assert _warm.last_tier() == "numpy"
        assert _warm.wait(60)
    assert len(built) == _warm._Builder.MAX_FAILURES
    with pytest.raises(_warm.NotCompiled):  # then the call compiles itself (here: the mock raises)
        fastconv.conv2d(x, w)


def test_a_job_runs_the_real_kernel(rng):
    """What the child runs: the chosen method on random operands of the shapes."""
    from fastconv._spec import conv_spec

    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    spec, ops, _ = conv_spec(2, x, w, None, 1, 1, 1, 1, "zeros", "auto", None, None)
    job = _warm.job_for(dataclasses.replace(spec, method="direct"), ops, (2, 4, 1, 7, 7), fastconv.get_config())
    assert job.ops["x"] == ((2, 3, 1, 7, 7), "<f4") and job.ops["b"] is None
    _warmup.run_job(job)


def test_parallel_builds_keep_shared_kernels_together_and_spread_the_slow_ones(monkeypatch, rng):
    children = []
    monkeypatch.setattr(_warm, "build", lambda jobs, timeout=None: (children.append(jobs), (True, ""))[1])
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    dense, depthwise = rng.standard_normal((4, 4, 3, 3)), rng.standard_normal((4, 1, 3, 3))
    jobs = _warmup.call_jobs(fastconv.conv2d, (x, dense.astype(np.float32)), dict(padding=1),
                           ["winograd_f4", "winograd_f2", "blocked", "direct"])  # fmt: skip
    jobs += _warmup.call_jobs(
        fastconv.conv2d, (x, depthwise.astype(np.float32)), dict(padding=1, groups=4), ["depthwise"]
    )
    _warm.build_parallel(jobs, 2)
    assert len(children) == 2
    by_child = [{j.spec.method.split(":")[0] for j in child} for child in children]
    winograd = next(c for c in by_child if "winograd_f4" in c)
    assert "winograd_f2" in winograd and "depthwise" not in winograd  # (the two slowest apart)
    assert sorted(m for c in by_child for m in c) == sorted(j.spec.method.split(":")[0] for j in jobs)


# --- whole processes on an empty cache -------------------------------------------------

COLD = """
import numpy as np, fastconv
from fastconv import _warm, _warmup
from tests.reference import conv_nd, max_pool_nd
rng = np.random.default_rng(1)
x = rng.standard_normal((1, 2, 9, 9)).astype(np.float32)
w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
calls = {
    "conv2d": (lambda: fastconv.conv2d(x, w, padding=1), conv_nd(x.astype(float), w.astype(float), padding=1)),
    "max_pool2d": (lambda: fastconv.max_pool2d(x, 3, 2, 1), max_pool_nd(x, (3, 3), (2, 2), (1, 1), (1, 1), False)[0]),
}
for name, (call, want) in calls.items():
    got = call()
    assert _warm.last_tier() == "numpy", (name, _warm.last_tier())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert _warm.wait(500), name
    got = call()
    assert _warm.last_tier() == "kernel", (name, _warm.last_tier(), _warm._builder.errors)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
print("ok")
"""


def test_cold_process_runs_tier0_then_the_kernel_built_in_the_background(tmp_path):
    res = _python(COLD, tmp_path, background=True)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]


FILTER = """
import sys, numpy as np
from fastconv import ndimage, _warm
x = np.arange(48.0).reshape(6, 8)
if sys.argv[1] == "loaded":
    with _warm.no_compile():  # loads from the disk cache, compiles nothing
        got = ndimage.correlate(x, np.ones((3, 3)), method="direct")
else:
    got = ndimage.correlate(x, np.ones((3, 3)), method="direct")
import scipy.ndimage
np.testing.assert_allclose(got, scipy.ndimage.correlate(x, np.ones((3, 3))))
print("ok")
"""


def test_concurrent_cold_processes_share_one_empty_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), FASTCONV_BACKGROUND_COMPILE="0", PYTHONPATH=ROOT)
    procs = [
        subprocess.Popen([sys.executable, "-c", FILTER, "cold"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and "ok" in out, err[-2000:]
    res = _python(FILTER, tmp_path, "loaded")
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


def test_unwritable_cache_dir_falls_back_with_one_warning(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # (three kernel modules: one warning for all)
    code = "import warnings; warnings.simplefilter('always')\nimport fastconv.kernels.pool, fastconv.kernels.direct\n"
    code += FILTER
    res = _python(code, blocker / "cache", "cold")
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
    assert res.stderr.count("CacheWarning") == 1, res.stderr
    assert str(blocker / "cache") in res.stderr and "is not writable" in res.stderr


def test_an_edited_helper_module_recompiles_the_kernels_that_inline_it(tmp_path):
    """The filter kernel is defined in kernels/filter.py; an edit of another
    kernel source (kernels/direct.py, whose helpers kernels inline), or of a
    plan module (whose constants kernels compile in), must not let the stale
    build load."""
    tree = tmp_path / "tree"
    shutil.copytree(os.path.join(ROOT, "fastconv"), tree / "fastconv", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "tests"), tree / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    for stage in ("cold", "loaded"):
        res = _python(FILTER, cache, stage, cwd=tree)
        assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
    for edited in (("kernels", "direct.py"), ("plans", "shape.py")):
        with open(tree / "fastconv" / edited[0] / edited[1], "a") as fh:
            fh.write("\n# an edit\n")
        res = _python(FILTER, cache, "loaded", cwd=tree)
        assert res.returncode != 0 and "NotCompiled" in res.stderr, (edited, res.stderr[-2000:])
        res = _python(FILTER, cache, "cold", cwd=tree)  # (compiles the edited tree's kernel)
        assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


def test_warmup_command_compiles_ahead(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "fastconv.cli", "warmup", "--ops", "ndimage", "--dtypes", "float64"],
        capture_output=True,
        text=True,
        env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT),
        cwd=ROOT,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ndimage" in res.stdout and "kernels compiled" in res.stdout and "warmup [" in res.stderr
    res = _python(FILTER, tmp_path, "loaded")
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


def test_warmup_command_rejects_unknown_names_and_leaves_njit_opt_in(monkeypatch):
    from fastconv import _warmup
    from fastconv.cli import main

    with pytest.raises(SystemExit):
        main(["warmup", "--ops", "conv9d"])
    asked = []
    monkeypatch.setattr(_warmup, "warmup", lambda ops, dtypes, jobs, progress: asked.append(tuple(ops)) or [])
    main(["warmup", "--dtypes", "float32"])
    main(["warmup", "--ops", "njit,pool", "--dtypes", "float32"])
    assert asked == [_warmup.WARMUP_DEFAULT, ("njit", "pool")] and "njit" not in _warmup.WARMUP_DEFAULT


def test_tier0_in_blocks_of_images_within_the_workspace_limit(rng):
    """Tier 0 with room for two of five images: dense (GEMMs, taps outer)
    and depthwise (products, blocks outer), forward and transposed, against
    the references; refused when one image does not fit."""
    from fastconv._spec import conv_spec
    from fastconv.kernels.tier0 import conv_workspace

    from .reference import conv_transpose_nd

    x = rng.standard_normal((5, 4, 9, 8))
    per_image = (4 + 4) * 9 * 8 * 8  # a tap's gathered input and GEMM result, float64
    for groups in (1, 4):
        w = rng.standard_normal((4, 4 // groups, 3, 3))
        b = rng.standard_normal(4)
        with fastconv.set_config(workspace_limit=2 * per_image + 7):
            spec = conv_spec(2, x, w, b, 1, 1, 1, groups, "zeros", "numpy", None, None)[0]
            assert conv_workspace(spec, 2 * per_image + 7) == 2 * per_image
            got = fastconv.conv2d(x, w, b, padding=1, groups=groups, method="numpy")
            np.testing.assert_allclose(got, conv_nd(x, w, b, padding=1, groups=groups), rtol=1e-10, atol=1e-10)
            wt = rng.standard_normal((4, 4 // groups, 3, 3))
            kw = dict(stride=2, padding=1, groups=groups)
            got = fastconv.conv_transpose2d(x, wt, b, method="numpy", **kw)
            want = conv_transpose_nd(x, wt, b, **kw)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        with fastconv.set_config(workspace_limit=per_image - 1), pytest.raises(ValueError, match="numpy"):
            fastconv.conv2d(x, w, b, padding=1, groups=groups, method="numpy")
