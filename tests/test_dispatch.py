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
    register(Method("cheap", ("conv2d",), cheap, lambda s: None, lambda s: 2**20, "mock", estimate=lambda s, c: 0.0))
    register(
        Method(
            "picky",
            ("conv2d",),
            picky,
            lambda s: None if s.stride == (1, 1) else "stride must be 1",
            lambda s: 0,
            "mock",
            estimate=lambda s, c: 1.0,
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
    strided = fastconv.available_methods(fastconv.conv2d, X, W, stride=2)
    plain = fastconv.available_methods(fastconv.conv2d, X, W)
    assert strided[0] == "auto" and "cheap" in strided and "picky" not in strided
    assert "picky" in plain and {"cheap", "direct", "im2col"} <= set(strided)


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
        register(Method("cheap", ("conv2d",), Recorder(0), lambda s: None, lambda s: 0, "", estimate=lambda s, c: 0))


def test_explain_repr_shows_candidates_and_flops():
    plan = fastconv.explain(fastconv.conv2d, X, W, padding=1, groups=1, method="direct")
    text = repr(plan)
    assert "method='direct'" in text and "direct" in text and "GFLOP" in text and "why:" in text
    assert plan.flops == 2 * 2 * 4 * 3 * 9 * 10 * 10
    assert plan.workspace_bytes == 0


def test_explain_does_not_run(mock_methods):
    cheap, _ = mock_methods
    fastconv.explain(fastconv.conv2d, X, W)
    assert not cheap.calls


# --- measurement (autotune) and the tuning cache -------------------------------


def test_autotune_measures_once_and_caches_on_disk(mock_methods, tuning_dir):
    import json

    from fastconv.dispatch import tuning

    cheap, picky = mock_methods
    y = fastconv.conv2d(X, W, padding=1)
    data = json.loads((tuning_dir / "tuning.json").read_text())
    (entry,) = data.values()
    # every feasible method but tier 0 (a stand-in while kernels compile, not a choice)
    feasible = set(fastconv.available_methods(fastconv.conv2d, X, W, padding=1)[1:]) - {"numpy"}
    assert set(entry["times"]) == feasible and {"cheap", "picky", "direct"} <= feasible
    assert entry["method"] == min(entry["times"], key=entry["times"].get)
    # every feasible candidate ran 4 times (warm-up + 3 timed), then the winner once more
    for name, rec in (("cheap", cheap), ("picky", picky)):
        assert len(rec.calls) == 4 + (entry["method"] == name)
    if entry["method"] in ("cheap", "picky"):
        assert (y == {"cheap": 1.0, "picky": 2.0}[entry["method"]]).all()
    # a new process (simulated: memory and plans cleared) reads the disk cache
    tuning.clear_memory()
    clear_plan_cache()
    n_cheap, n_picky = len(cheap.calls), len(picky.calls)
    plan = fastconv.explain(fastconv.conv2d, X, W, padding=1)
    assert "tuning cache" in plan.reason and plan.method == entry["method"]
    assert (len(cheap.calls), len(picky.calls)) == (n_cheap, n_picky)  # nothing re-measured
    assert "measured" in repr(plan)


def test_autotune_off_never_measures(mock_methods, tmp_path):
    cheap, picky = mock_methods
    with fastconv.set_config(autotune=False, cache_dir=str(tmp_path)):
        fastconv.conv2d(X, W, padding=1)
    assert len(cheap.calls) == 1 and not picky.calls
    assert not (tmp_path / "tuning.json").exists()


def test_forced_method_is_never_measured(mock_methods, tuning_dir):
    cheap, picky = mock_methods
    fastconv.conv2d(X, W, padding=1, method="picky")
    assert len(picky.calls) == 1 and not cheap.calls


def test_corrupt_cache_warns_and_carries_on(mock_methods, tuning_dir):
    from fastconv.dispatch.tuning import TuningCacheWarning

    (tuning_dir / "tuning.json").write_text("{ not json")
    with pytest.warns(TuningCacheWarning, match="unreadable"):
        y = fastconv.conv2d(X, W, padding=1)
    assert y.shape == (2, 4, 10, 10)
    # the rewrite replaced the corrupt file with a valid one
    import json

    assert len(json.loads((tuning_dir / "tuning.json").read_text())) == 1


def test_unwritable_cache_dir_warns_and_carries_on(mock_methods, tmp_path):
    import os

    from fastconv.dispatch import tuning
    from fastconv.dispatch.tuning import TuningCacheWarning

    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")  # a file where the directory should be: unwritable for everyone, root too
    tuning.clear_memory()
    clear_plan_cache()
    with fastconv.set_config(autotune=True, cache_dir=os.fspath(blocked / "sub")):
        with pytest.warns(TuningCacheWarning, match="cannot write"):
            y = fastconv.conv2d(X, W, padding=1)
        assert y.shape == (2, 4, 10, 10)
        clear_plan_cache()
        # measured once: the winner is remembered in memory although the disk failed
        plan = fastconv.explain(fastconv.conv2d, X, W, padding=1)
        assert "tuning cache" in plan.reason
    tuning.clear_memory()
    clear_plan_cache()


def test_two_processes_writing_the_cache_at_once(tmp_path):
    """Concurrent writers never corrupt the file and both entries survive."""
    import json
    import subprocess
    import sys

    code = (
        "import numpy as np, fastconv\n"
        "import sys\n"
        "n = int(sys.argv[1])\n"
        "with fastconv.set_config(autotune=True, cache_dir=sys.argv[2]):\n"
        "    for k in range(3):\n"
        "        fastconv.conv2d(np.ones((1, 2, 6 + n * 3 + k, 7)), np.ones((3, 2, 3, 3)))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(i), str(tmp_path)], stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    data = json.loads((tmp_path / "tuning.json").read_text())
    assert len(data) == 6


def test_plan_cache_is_bounded(monkeypatch):
    from fastconv.dispatch import selector

    monkeypatch.setattr(selector, "_MAX_PLANS", 5)
    clear_plan_cache()
    for h in range(4, 16):
        fastconv.explain(fastconv.conv2d, np.ones((1, 3, h, 10), np.float32), W)
    assert len(selector._plans) == 5
    clear_plan_cache()


def test_cost_constants_per_cpu():
    # the reference CPU's constants, with those fitted on this CPU in their
    # place method by method; other CPUs keep the reference's
    from fastconv.dispatch.selector import constants_for

    model = {
        "_reference_cpu": "znver4",
        "direct": {"overhead_s": 1.0, "s_per_flop": 2.0},
        "blocked": {"overhead_s": 3.0},
        "_machines": {"rocketlake": {"blocked": {"overhead_s": 5.0, "s_per_call": 6.0}}},
    }
    here = constants_for(model, "rocketlake")
    assert here["blocked"] == {"overhead_s": 5.0, "s_per_call": 6.0}
    assert here["direct"] == model["direct"]
    assert "_machines" not in here
    elsewhere = constants_for(model, "sapphirerapids")
    assert elsewhere["blocked"] == {"overhead_s": 3.0}
    assert constants_for(model, "znver4")["blocked"] == {"overhead_s": 3.0}


def test_shipped_cost_model_covers_every_method_on_every_cpu():
    # every method with features has constants at the top level, and a CPU's
    # own fit replaces whole methods with the same terms
    import json

    from fastconv.dispatch import registry, selector

    with open(selector.COST_MODEL, encoding="utf-8") as fh:
        model = json.load(fh)
    assert isinstance(model["_reference_cpu"], str)
    keys = selector.cost_keys()
    for name in keys:
        assert name in model, name
    for cpu, methods in model.get("_machines", {}).items():
        for name, constants in methods.items():
            assert name in keys, (cpu, name)
            assert set(constants) == set(model[name]), (cpu, name)
            assert all(v >= 0 for v in constants.values()), (cpu, name)
    # every term a method reports has a constant (a missing one would count
    # 0: a new term left out of the reference CPU's fit)
    from fastconv._spec import conv_spec

    for xs, ws, kw in [((1, 8, 64), (8, 8, 3), dict(padding=1)), ((1, 16, 12, 12), (32, 16, 1, 1), dict(stride=2)),
                       ((1, 8, 9, 9), (8, 1, 3, 3), dict(padding=1, groups=8)), ((1, 4, 6, 6, 6), (4, 4, 3, 3, 3), {})]:  # fmt: skip
        p = dict(stride=1, padding=0, groups=1) | kw
        x, w = np.zeros(xs, np.float32), np.zeros(ws, np.float32)
        spec = conv_spec(
            len(xs) - 2, x, w, None, p["stride"], p["padding"], 1, p["groups"], "zeros", "auto", None, None
        )[0]
        for cand in selector.select(spec).candidates:
            key = registry.methods_for(spec.op)[cand.name].cost_key
            if cand.rejected is None and key in keys:
                assert set(selector.features(key, spec)) <= set(model[key]), (cand.name, xs, ws)
