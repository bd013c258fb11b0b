"""GPU offload without a GPU: the simulator run of every GPU kernel, clear
errors for device="cuda", plans for GPU calls, and no CUDA import by default."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
import fastconv.cuda

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_kernels_on_the_cuda_simulator():
    """tests/gpu in a fresh process with NUMBA_ENABLE_CUDASIM=1 (set before numba is imported)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(ROOT, "tests", "gpu")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "failed" not in res.stdout


@pytest.mark.skipif(fastconv.cuda.is_available(), reason="a GPU is usable here")
def test_device_cuda_without_a_gpu_says_why():
    x = np.ones((1, 1, 5, 5), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    reason = fastconv.cuda.unavailable_reason()
    assert reason and not fastconv.cuda.is_available()
    for call in (lambda: fastconv.conv2d(x, w, device="cuda"),
                 lambda: fastconv.conv_transpose2d(x, w, device="cuda"),
                 lambda: fastconv.max_pool2d(x, 2, device="cuda"),
                 lambda: fastconv.adaptive_avg_pool2d(x, 1, device="cuda")):  # fmt: skip
        with pytest.raises(ValueError, match="device='cuda' cannot run"):
            call()
    # the CPU paths are unaffected
    np.testing.assert_allclose(fastconv.conv2d(x, w, device="cpu"), fastconv.conv2d(x, w))


def test_bad_device_values():
    x = np.ones((1, 1, 5, 5), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    for bad in ("gpu", "tpu", 0):
        with pytest.raises(ValueError, match="device must be"):
            fastconv.conv2d(x, w, device=bad)
        with pytest.raises(ValueError, match="device must be"):
            fastconv.avg_pool2d(x, 2, device=bad)


def test_gpu_plans_without_a_gpu():
    """explain plans a device="cuda" call anywhere: GPU methods only, the
    copies of NumPy operands counted."""
    x = np.zeros((8, 64, 56, 56), np.float32)
    w = np.zeros((64, 64, 3, 3), np.float32)
    plan = fastconv.explain(fastconv.conv2d, x, w, padding=1, device="cuda")
    assert plan.op == "conv2d@cuda" and plan.method in ("cuda_direct", "cuda_gemm")
    assert plan.spec.transfer_bytes == x.nbytes + w.nbytes + 8 * 64 * 56 * 56 * 4
    assert "host<->GPU copies" in repr(plan)
    dw = fastconv.explain(fastconv.conv2d, x, np.zeros((64, 1, 3, 3), np.float32), padding=1, groups=64, device="cuda")
    assert dw.method == "cuda_depthwise"
    t = fastconv.explain(fastconv.conv_transpose2d, x, np.zeros((64, 32, 4, 4), np.float32), stride=2, device="cuda")
    assert t.method == "cuda_direct"
    assert fastconv.available_methods(fastconv.conv2d, x, w, device="cuda") == [
        "auto", "cuda_direct", "cuda_gemm"
    ]  # fmt: skip


def test_import_does_not_load_cuda(tmp_path):
    # (an empty cache: the call loads numba and the kernel module, tries the
    # kernel and runs tier 0 while a build starts, which is stopped)
    code = (
        "import sys, numpy as np, fastconv\n"
        "from fastconv import _warm\n"
        "fastconv.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))\n"
        "_warm.shutdown()\n"
        "assert 'numba' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m.startswith(('numba.cuda', 'fastconv.cuda'))))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "FASTCONV_BACKGROUND_COMPILE": "1"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_gpu_benchmark_script(tmp_path):
    """bench/bench_cuda.py: without a GPU it says so; on the simulator its
    tiny cases run through the GPU kernels and the JSON is written."""
    import json

    script = os.path.join(ROOT, "bench", "bench_cuda.py")
    if not fastconv.cuda.is_available():
        res = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and "skipped" in res.stdout
    out = tmp_path / "gpu.json"
    res = subprocess.run([sys.executable, script, "--tiny", "--json", str(out)], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["gpu"] == "CUDA simulator" and [r["case"] for r in data["rows"]] == ["tiny conv 3x3", "tiny max_pool"]
    assert data["rows"][0]["method"].startswith("cuda_")


def test_cli_explain_and_info_name_the_gpu(capsys):
    from fastconv.cli import main

    assert main(["explain", "conv2d", "--input", "2,8,16,16", "--weight", "8,1,3,3", "--groups", "8",
                 "--padding", "1", "--device", "cuda"]) == 0  # fmt: skip
    assert "cuda_depthwise" in capsys.readouterr().out
    assert main(["info"]) == 0
    assert "gpu: " in capsys.readouterr().out
