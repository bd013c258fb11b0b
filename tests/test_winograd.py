"""Winograd float32 accuracy, measured against the float64 reference.

The dispatcher only offers a Winograd variant where this error stays inside
the float32 tolerance of the other tests (2e-4 of the output scale)."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv.dispatch.registry import WINOGRAD_F4_MAX_CIN_FLOAT32

from .reference import conv_nd


@pytest.mark.parametrize("method, bound", [("winograd_f2", 2e-5), ("winograd_f4", 1e-4)])
@pytest.mark.parametrize("cin", [16, 256, 1024])
def test_float32_error_within_tolerance(method, bound, cin, rng):
    x = rng.standard_normal((1, cin, 20, 20)).astype(np.float32)
    w = (rng.standard_normal((8, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)
    want = conv_nd(x, w, padding=1)
    got = fastconv.conv2d(x, w, padding=1, method=method)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < bound, f"{method} C_in={cin}: relative error {err:.2e}"


def test_f4_not_offered_beyond_its_channel_limit():
    x = np.zeros((1, WINOGRAD_F4_MAX_CIN_FLOAT32 + 1, 6, 6), np.float32)
    w = np.zeros((2, WINOGRAD_F4_MAX_CIN_FLOAT32 + 1, 3, 3), np.float32)
    assert "winograd_f4" not in fastconv.available_methods(fastconv.conv2d, x, w, padding=1)
    assert "winograd_f4" in fastconv.available_methods(fastconv.conv2d, x.astype(np.float64), w, padding=1)


@pytest.mark.parametrize("m", [2, 4])
def test_partial_tiles_and_groups(m, rng):
    """Output sizes that are not multiples of the tile, grouped, with bias."""
    for h, w_ in [(1, 1), (3, 5), (7, 9), (13, 6)]:
        x = rng.standard_normal((3, 4, h, w_))
        w = rng.standard_normal((6, 2, 3, 3))
        b = rng.standard_normal(6)
        got = fastconv.conv2d(x, w, b, padding=1, groups=2, method=f"winograd_f{m}")
        np.testing.assert_allclose(got, conv_nd(x, w, b, padding=1, groups=2), rtol=1e-9, atol=1e-9)
