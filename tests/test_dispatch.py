"""The registry, the selector and the plan, with mock kernels that record calls."""

from __future__ import annotations

import numpy as np
import pytest

import fastconv
from fastconv.dispatch import Method, clear_plan_cache, register, unregister

X = np.ones((2, 3, 10, 10), np.float32)
W = np.ones((4, 3, 3, 3), np.float32)


class Recorder:
    def __init__(self, value):
        self.value = value
        self.calls = []

    def __call__(self, spec, ops, out, num_threads):
        self.calls.append((spec.op, out.shape, num_threads))
        out[...] = self.value


@pytest.fixture
def mock_methods():
    """Two mock conv2d methods: 'cheap' (always estimated fastest, needs 1 MiB
    of workspace) and 'picky' (only supports stride 1)."""
    cheap, picky = Recorder(1.0), Recorder(2.0)
    register(Method("cheap", ("conv2d",), cheap, lambda s: None, lambda s, c: 0.0, lambda s: 2**20, "mock"))
    register(
        Method(
            "picky",
            ("conv2d",),
            picky,
            lambda s: None if s.stride == (1, 1) else "stride must be 1",
            lambda s, c: 1.0,
            lambda s: 0,
            "mock",
        )
    )
    clear_plan_cache()
    yield cheap, picky
    unregister("cheap", ("conv2d",))
    unregister("picky", ("conv2d",))
    clear_plan_cache()


def test_auto_picks_lowest_estimate(mock_methods):
    cheap, picky = mock_methods
    y = fastconv.conv2d(X, W, padding=1)
    assert (y == 1.0).all() and len(cheap.calls) == 1 and not picky.calls
    plan = fastconv.explain(fastconv.conv2d, X, W, padding=1)
    assert plan.method == "cheap" and "cost model" in plan.reason


def test_forced_method_runs_that_kernel(mock_methods):
    cheap, picky = mock_methods
    y = fastconv.conv2d(X, W, padding=1, method="picky")
    assert (y == 2.0).all() and picky.calls == [("conv2d", (2, 4, 1, 10, 10), fastconv.get_config().num_threads)]
    assert not cheap.calls


def test_unsupported_method_is_rejected_with_reason(mock_methods):
    with pytest.raises(ValueError, match="stride must be 1"):
        fastconv.conv2d(X, W, stride=2, method="picky")
    assert fastconv.available_methods(fastconv.conv2d, X, W, stride=2) == ["auto", "cheap", "direct"]
    assert fastconv.available_methods(fastconv.conv2d, X, W) == ["auto", "cheap", "direct", "picky"]


def test_workspace_limit_is_a_guard(mock_methods):
    cheap, _ = mock_methods
    with fastconv.set_config(workspace_limit=2**19):
        plan = fastconv.explain(fastconv.conv2d, X, W, padding=1)
        assert plan.method != "cheap"
        assert "workspace_limit" in repr(plan)
        with pytest.raises(ValueError, match="workspace"):
            fastconv.conv2d(X, W, method="cheap")
    assert not cheap.calls


def test_plans_are_cached_per_settings(mock_methods):
    p1 = fastconv.explain(fastconv.conv2d, X, W, padding=1)
    assert fastconv.explain(fastconv.conv2d, X, W, padding=1) is p1
    with fastconv.set_config(num_threads=1):
        p2 = fastconv.explain(fastconv.conv2d, X, W, padding=1)
    assert p2 is not p1 and p2.num_threads == 1


def test_registering_twice_is_an_error(mock_methods):
    with pytest.raises(ValueError, match="already registered"):
        register(Method("cheap", ("conv2d",), Recorder(0), lambda s: None, lambda s, c: 0, lambda s: 0, ""))


def test_explain_repr_shows_candidates_and_flops():
    plan = fastconv.explain(fastconv.conv2d, X, W, padding=1, groups=1)
    text = repr(plan)
    assert "method='direct'" in text and "direct" in text and "GFLOP" in text and "why:" in text
    assert plan.flops == 2 * 2 * 4 * 3 * 9 * 10 * 10
    assert plan.workspace_bytes == 0


def test_explain_does_not_run(mock_methods):
    cheap, _ = mock_methods
    fastconv.explain(fastconv.conv2d, X, W)
    assert not cheap.calls
