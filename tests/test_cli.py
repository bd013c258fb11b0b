"""The ``fastconv`` command: every subcommand runs, JSON has its schema, bad arguments are rejected."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fastconv.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "fastconv" in out and "numba" in out and "threads" in out and "tuning cache" in out
    from fastconv.dispatch.selector import machine

    assert "cost model: " in out and (machine() in out or "calibrated on this machine" in out)
    # the threading layer: the one running, or the ones Numba will try
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not started yet (tries "
    assert f"layer {layer}" in out


def test_explain(capsys):
    assert main(["explain", "conv2d", "--input", "2,8,16,16", "--weight", "4,8,3,3", "--padding", "1"]) == 0
    out = capsys.readouterr().out
    assert "plan for conv2d" in out and "candidates" in out and "direct" in out


def test_explain_reports_bad_shapes(capsys):
    assert main(["explain", "conv2d", "--input", "2,8,16,16", "--weight", "4,3,3,3"]) == 2
    assert "weight.shape[1]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["bench", "--threads", "0"], "--threads"),
        (["bench", "--suite", "fft"], "--suite"),
        (["explain", "conv2d", "--input", "2,x", "--weight", "1,1,1,1"], "--input"),
        (["explain", "conv2d", "--input", "2,2,5,5", "--weight", "1,2,1,1", "--padding", "a,b"], "--padding"),
        (["explain", "conv4d"], "conv4d"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_arguments(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert words in capsys.readouterr().err


def test_bench_unknown_library_and_case(capsys):
    assert main(["bench", "--compare", "tensorflow"]) == 2
    assert "tensorflow" in capsys.readouterr().err
    assert main(["bench", "--cases", "no such layer"]) == 2


def test_tune_one_call_writes_the_cache(tmp_path, capsys):
    from fastconv.dispatch import clear_plan_cache

    os.environ["FASTCONV_CACHE_DIR"] = str(tmp_path)
    try:
        import fastconv

        with fastconv.set_config(cache_dir=str(tmp_path)):
            clear_plan_cache()
            argv = ["tune", "conv2d", "--input", "1,4,12,12", "--weight", "4,4,3,3", "--padding", "1"]
            assert main(argv) == 0
    finally:
        del os.environ["FASTCONV_CACHE_DIR"]
        clear_plan_cache()
    out = capsys.readouterr().out
    assert "direct" in out and "im2col" in out and "ms" in out
    assert len(json.loads((tmp_path / "tuning.json").read_text())) == 1


def test_bench_json_schema(tmp_path):
    """`python -m fastconv bench` on one small case: table printed, JSON written;
    --methods times every explicit method, --memory measures peak memory."""
    path = tmp_path / "bench.json"
    res = subprocess.run(
        [sys.executable, "-m", "fastconv", "bench", "--suite", "conv1d", "--cases", "depthwise",
         "--repeats", "2", "--json", str(path), "--methods", "--memory"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "GFLOP/s" in res.stdout and "1d depthwise" in res.stdout
    assert "auto/best" in res.stdout and "within 10% of the best explicit method on" in res.stdout
    assert "pick/best" in res.stdout and "auto's pick, forced by name" in res.stdout
    data = json.loads(path.read_text())
    assert set(data) == {"environment", "gemm_gflops", "copy_gbps", "results", "sweep"}
    (r,) = data["results"]
    assert {"case", "method", "fastconv_ms", "gflops", "reference", "max_rel_err"} <= set(r)
    assert r["fastconv_ms"] > 0 and r["gflops"] > 0
    assert {"direct", "depthwise", "im2col"} <= set(r["methods"]) and min(r["methods"].values()) > 0
    assert not any(k.startswith("method:") for k in r["reference"])
    # the (8, 128, 2048) float32 output alone is 8 MiB
    assert 7.5 < r["peak_mib"]["fastconv"] < 200
    if "torch" in r["reference"]:
        assert r["max_rel_err"] < 1e-3 and r["reference"]["torch"]["ratio"] > 0
        assert 7.5 < r["peak_mib"]["torch"] < 200


def test_bench_pool_and_transpose_cases(tmp_path, capsys):
    """The pooling suite reports GB/s against the copy rate; the transposed suite GFLOP/s."""
    path = tmp_path / "pool.json"
    argv = ["bench", "--suite", "pool", "--cases", "global avg", "--repeats", "2", "--json", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "GB/s" in out and "%copy" in out and "global avg" in out
    data = json.loads(path.read_text())
    assert data["copy_gbps"] > 0
    (r,) = data["results"]
    assert r["gbps"] > 0 and r["method"] == "global"
    assert main(["bench", "--suite", "transpose", "--cases", "gan up", "--repeats", "2", "--compare", ""]) == 0
    assert "gan up 4x4/2" in capsys.readouterr().out


def test_bench_sweep(tmp_path, capsys):
    """The size sweep: a table of ratios against the reference (checked
    against it too), JSON rows and a ratio-against-size PNG."""
    pytest.importorskip("matplotlib")
    path, png = tmp_path / "sweep.json", tmp_path / "sweep.png"
    argv = ["bench", "--suite", "sweep", "--cases", " 8^2", "--repeats", "2", "--json", str(path), "--plot", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ndimage.convolve" in out and "signal.convolve2d" in out and "above 1.0" in out
    rows = json.loads(path.read_text())["sweep"]
    assert {r["family"] for r in rows} == {"ndimage.convolve", "ndimage.convolve1d", "signal.convolve2d"}
    assert {r["dtype"] for r in rows} == {"float32", "float64"}
    assert all(r["ratio"] > 0 and r["max_rel_err"] < 1e-6 for r in rows)
    assert png.stat().st_size > 10_000
    assert main(["bench", "--suite", "sweep", "--cases", "no such point"]) == 2
    # without --cases (the README's main job): every quick case of the suite
    assert main(["bench", "--suite", "conv3d", "--quick", "--repeats", "1", "--compare", ""]) == 0


def test_explain_transposed(capsys):
    argv = ["explain", "conv_transpose2d", "--input", "2,8,7,7", "--weight", "8,4,3,3", "--stride", "2"]
    assert main([*argv, "--padding", "1", "--output-padding", "1"]) == 0
    out = capsys.readouterr().out
    assert "plan for conv_transpose2d" in out and "gemm" in out and "subpixel" in out
    assert "output (2, 4, 14, 14)" in out
    with pytest.raises(SystemExit):
        main(["explain", "conv2d", "--input", "2,8,7,7", "--weight", "4,8,3,3", "--output-padding", "1"])


def test_bench_plot_writes_a_png(tmp_path, capsys):
    png = tmp_path / "speedups.png"
    argv = ["bench", "--suite", "pool", "--cases", "global avg", "--repeats", "2", "--plot", str(png)]
    assert main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["bench", "--suite", "pool", "--plot", str(tmp_path / "x.jpg")]) == 2
    assert "--plot" in capsys.readouterr().err


def test_progress_bar_lines_and_terminal():
    import io

    from fastconv._progress import Progress

    log = io.StringIO()
    with Progress(3, "bench", stream=log) as bar:
        for name in ("a", "b", "c"):
            bar.step(name)
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("bench [") and lines[2].endswith(" c") and "2/3" in lines[2]

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    with Progress(2, "tune", stream=tty) as bar:
        bar.step("x")
        bar.step("y")
    text = tty.getvalue()
    assert text.count("\r") == 3 and "2/2" in text and text.endswith("done\n")


def test_bench_ndimage_against_scipy(capsys):
    argv = ["bench", "--suite", "ndimage", "--cases", "3x3 nearest", "--repeats", "2", "--compare", "scipy"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "scipy ms" in out and "3x3 nearest" in out and "two Python threads" in out


def test_bench_signal_against_scipy(capsys):
    argv = ["bench", "--suite", "signal", "--cases", "100 x 10", "--repeats", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "scipy ms" in out and "1-D 100 x 10" in out
