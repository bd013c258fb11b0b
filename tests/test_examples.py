"""The examples run and write their pictures (as a user would run them)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")

pytest.importorskip("matplotlib")


@pytest.mark.parametrize("script, words", [("edge_detection.py", "edges in"), ("cnn_feature_maps.py", "block 3")])
def test_example_writes_png(tmp_path, script, words):
    out = tmp_path / "picture.png"
    res = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert words in res.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_example_filters_match_scipy():
    """The example's blur and Sobel agree with scipy.ndimage."""
    from scipy import ndimage

    sys.path.insert(0, EXAMPLES)
    try:
        import edge_detection
    finally:
        sys.path.remove(EXAMPLES)
    rng = np.random.default_rng(3)
    image = rng.random((40, 33)).astype(np.float32)
    g = edge_detection.gaussian_1d(1.5)
    want = ndimage.correlate1d(ndimage.correlate1d(image, g, axis=1, mode="mirror"), g, axis=0, mode="mirror")
    np.testing.assert_allclose(edge_detection.blur(image, 1.5), want, rtol=1e-5, atol=1e-6)
    gx = ndimage.sobel(image.astype(np.float64), axis=1, mode="mirror")
    gy = ndimage.sobel(image.astype(np.float64), axis=0, mode="mirror")
    np.testing.assert_allclose(edge_detection.sobel_magnitude(image), np.hypot(gx, gy), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["ndimage", "conv2d"])
def test_dask_large_image_example_small(op):
    """The larger-than-memory example, at a small size: both paths run and agree."""
    pytest.importorskip("dask")
    res = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "dask_large_image.py"), "--size", "1500", "--chunk", "400", "--kernel", "5",
         "--op", op],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "equals the in-memory one" in res.stdout and "peak RSS" in res.stdout
