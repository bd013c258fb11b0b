"""The cost model's constants: digests of the sources they were fitted on,
``fastconv calibrate``'s factors, and what ``auto`` learns from calls."""

import json
import math

import numpy as np
import pytest

import fastconv
from fastconv.dispatch import calibration, corrections, selector


def _model():
    with open(selector.COST_MODEL, encoding="utf-8") as fh:
        return json.load(fh)


def test_reference_constants_fitted_on_the_current_sources():
    # a CPU method's kernels (or the plan module that declares its features)
    # changed without a refit: python bench/fit_cost_model.py --write
    # (--methods KEY for one method).  GPU methods are fitted on a GPU.
    model = _model()
    stale = [
        key
        for key in selector.cost_keys()
        if not key.startswith("cuda") and model.get("_digests", {}).get(key) != calibration.digest(key)
    ]
    assert stale == [], f"constants fitted on other sources: {stale}"


def test_digest_follows_the_sources(tmp_path, monkeypatch):
    # each method's digest covers its plan module and its kernel modules
    modules = calibration._declared_in()
    assert "fastconv.kernels.winograd" in modules["winograd_f4"]
    assert "fastconv.plans.winograd" in modules["winograd_f4"]
    assert "fastconv.kernels.microkernel" in modules["blocked"]
    assert "fastconv.kernels.winograd" not in modules["direct"]
    assert calibration.digest("direct") != calibration.digest("winograd_f4")
    assert calibration.digest("no such method") == ""
    # an edited kernel file changes the digest of the methods built on it
    path = tmp_path / "direct.py"
    original = calibration._module_file("fastconv.kernels.direct")
    path.write_text(open(original, encoding="utf-8").read() + "\n# edited\n")
    before = calibration.digest("direct")
    real = calibration._module_file
    monkeypatch.setattr(calibration, "_module_file", lambda m: str(path) if m == "fastconv.kernels.direct" else real(m))
    calibration.digest.cache_clear()
    try:
        assert calibration.digest("direct") != before
    finally:
        calibration.digest.cache_clear()


def test_a_cpu_fit_on_other_sources_is_ignored():
    model = {
        "_reference_cpu": "znver4",
        "direct": {"overhead_s": 1.0},
        "blocked": {"overhead_s": 3.0},
        "_machines": {
            "rocketlake": {
                "direct": {"overhead_s": 5.0},
                "blocked": {"overhead_s": 7.0},
                "_digests": {"direct": "now", "blocked": "before"},
            }
        },
    }
    here = selector.constants_for(model, "rocketlake", lambda key: "now")
    assert here["direct"] == {"overhead_s": 5.0}  # fitted on these sources
    assert here["blocked"] == {"overhead_s": 3.0}  # not: the reference stands in
    assert "_digests" not in here or here["_digests"] == model.get("_digests")


def _cal_file(tmp_path, factors):
    calibration.write(str(tmp_path), factors, threads=2)
    selector.reload_constants()


def test_calibrated_factors_apply_while_the_sources_hold(tmp_path):
    shipped = selector.shipped_constants()["direct"]
    fit = {"overhead": 0.5, "compute": 2.0, "calls": 9, "digest": calibration.digest("direct"),
           "shipped": calibration.constants_digest(shipped)}  # fmt: skip
    try:
        _cal_file(tmp_path, {"direct": fit})
        got = selector.cost_constants(str(tmp_path))["direct"]
        for k, v in shipped.items():
            assert got[k] == pytest.approx(v * (0.5 if k == "overhead_s" else 2.0))
        x, w = np.zeros((1, 4, 16, 16), np.float32), np.zeros((4, 4, 3, 3), np.float32)
        with fastconv.set_config(cache_dir=str(tmp_path)):
            text = repr(fastconv.explain(fastconv.conv2d, x, w, method="direct"))
            assert "constants: calibrated on this machine" in text
            assert "x0.50 fixed, x2.00 compute" in text
            assert "calibrated on this machine" in selector.cost_model_source()
        # the same fit, made on other sources: ignored, and said so
        _cal_file(tmp_path, {"direct": fit | {"digest": "0123456789abcdef"}})
        assert selector.cost_constants(str(tmp_path))["direct"] == shipped
        factors, notes = calibration.stored_factors(str(tmp_path))
        assert factors == {} and "other kernel sources" in notes["direct"]
        with fastconv.set_config(cache_dir=str(tmp_path)):
            assert "ignored: direct" in selector.cost_model_source()
            text = repr(fastconv.explain(fastconv.conv2d, x, w, method="direct"))
            assert "calibrated on other kernel sources" in text
        # ... or against other shipped constants (a refit since): ignored too
        _cal_file(tmp_path, {"direct": fit | {"shipped": "0123456789abcdef"}})
        assert selector.cost_constants(str(tmp_path))["direct"] == shipped
        factors, notes = calibration.stored_factors(str(tmp_path), selector.shipped_constants())
        assert factors == {} and "other shipped constants" in notes["direct"]
    finally:
        selector.reload_constants()


def _timing(key, overhead, compute, seconds, base=0.0):
    return calibration.Timing(key, "case", seconds, overhead, compute, base, {"overhead_s": 1.0})


def test_fit_factors_recovers_the_scales():
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(12):
        over, comp = 1e-5 * rng.uniform(1, 3), 1e-3 * rng.uniform(0.1, 10)
        rows.append(_timing("m", over, comp, 0.25 * over + 3.0 * comp))
    fit = calibration.fit_factors(rows)["m"]
    assert fit["overhead"] == pytest.approx(0.25, rel=1e-4)
    assert fit["compute"] == pytest.approx(3.0, rel=1e-6)
    assert fit["median_error_after"] < 1e-6 < fit["median_error_before"]
    # the shipped constants already fit: no factors
    exact = [_timing("e", 1e-5, c, 1e-5 + c) for c in (1e-3, 2e-3, 5e-3, 9e-3)]
    fit = calibration.fit_factors(exact)["e"]
    assert (fit["overhead"], fit["compute"]) == (1.0, 1.0)
    # a broken measurement stays within bounds
    wild = [_timing("w", 1e-5, 1e-3, 50 * 1e-3) for _ in range(6)]
    assert calibration.fit_factors(wild)["w"]["compute"] == calibration.FACTOR_BOUNDS[1]
    # another method's share (base) is subtracted, not scaled
    based = [_timing("b", 0.0, c, 2 * c + 1e-3, base=1e-3) for c in (1e-3, 2e-3, 5e-3, 9e-3)]
    assert calibration.fit_factors(based)["b"]["compute"] == pytest.approx(2.0, rel=1e-6)


@pytest.fixture
def learning(tmp_path):
    corrections.forget()
    corrections._loaded_from = None
    with fastconv.set_config(learn=True, cache_dir=str(tmp_path)):
        yield str(tmp_path)
    corrections.forget()
    corrections._loaded_from = None
    selector.clear_plan_cache()


def test_corrections_converge_and_ignore_outliers(learning):
    est = 1e-3
    for _ in range(corrections.MIN_CALLS - 1):
        corrections.observe("direct", est, 1.5e-3, learning)
        assert corrections.factor("direct", est, learning) == 1.0  # not enough calls yet
    replan = corrections.observe("direct", est, 1.5e-3, learning)
    assert replan  # 1.0 -> 1.5 moves the plans
    assert corrections.factor("direct", est, learning) == pytest.approx(1.5)
    # one slow call (a page fault, another process) does not move it
    assert not corrections.observe("direct", est, 20e-3, learning)
    assert corrections.factor("direct", est, learning) == pytest.approx(1.5)
    # another size band, and other methods, are untouched
    assert corrections.factor("direct", 1.0, learning) == 1.0
    assert corrections.factor("blocked", est, learning) == 1.0  # (one method timed: it may be what is off)
    # a steady change is followed, within bounds (alone in its band: the machine's)
    for _ in range(corrections.WINDOW):
        corrections.observe("direct", est, 40e-3, learning)
    assert corrections.factor("direct", est, learning) == pytest.approx(
        corrections.MACHINE_BOUNDS[1] * corrections.BOUNDS[1]
    )
    # calls too short to time usefully teach nothing
    corrections.observe("blocked", 1e-6, 1e-3, learning)
    corrections.observe("blocked", 1e-3, 1e-6, learning)
    assert ("blocked", corrections.band(1e-6)) not in corrections._ratios
    assert ("blocked", corrections.band(1e-3)) not in corrections._ratios


def test_corrections_persist_per_source_digest(learning):
    for _ in range(corrections.MIN_CALLS):
        corrections.observe("direct", 1e-3, 0.7e-3, learning)
    corrections.save()
    corrections.forget()
    corrections._load(learning)
    assert corrections.factor("direct", 1e-3, learning) == pytest.approx(0.7, rel=1e-3)
    # learned on other kernel sources: dropped
    path = f"{learning}/{corrections.FILE}"
    data = json.load(open(path, encoding="utf-8"))
    for entry in data.values():
        entry["direct"]["digest"] = "0123456789abcdef"
    json.dump(data, open(path, "w", encoding="utf-8"))
    corrections._load(learning)
    assert corrections.factor("direct", 1e-3, learning) == 1.0


def test_learned_factor_changes_the_pick(learning):
    # the chosen method measured 2x its estimate on this shape: the runner-up,
    # estimated within 2x of it, takes over (and explain says why)
    x, w = np.zeros((8, 32, 32, 32), np.float32), np.zeros((32, 32, 3, 3), np.float32)
    plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    feasible = sorted((c for c in plan.candidates if c.rejected is None and c.estimated_s is not None),
                      key=lambda c: c.estimated_s)  # fmt: skip
    first, second = feasible[0], feasible[1]
    assert second.estimated_s < 1.9 * first.estimated_s, "pick a shape with a close runner-up"
    learn = plan.learner()
    assert learn is not None
    for _ in range(corrections.MIN_CALLS + 1):  # (an executor's first call is not learned from)
        learn(4 * first.estimated_s)
    again = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    assert again.method != first.name
    assert next(c for c in again.candidates if c.name == first.name).factor == pytest.approx(4.0)
    assert "x4.00 learned" in repr(again)
    with fastconv.set_config(learn=False):  # off: the constants alone decide
        assert fastconv.explain(fastconv.conv2d, x, w, padding=1).method == first.name


def test_learned_factors_hold_around_the_machine(learning):
    """On a CPU slower than the fit's for every method (measured on a 2-core
    Zen 3 against the Zen 4 constants, 4x16x16x16 float32: blocked 3.8x its
    estimate, Winograd 4.5-4.9x, im2col 4.5x, direct 2.4x), the learned
    factors keep the methods' order: direct takes over.  Bounded at 2x around 1, every factor
    sat at 2 and the model's first pick (blocked, 1.3x slower) stayed."""
    est = 1e-4
    for key, measured in (("blocked", 3.8), ("winograd_f2", 4.9), ("winograd_f4", 4.5), ("direct", 2.4)):
        for _ in range(corrections.MIN_CALLS):
            corrections.observe(key, est, measured * est, learning)
    assert corrections.factor("direct", est, learning) == pytest.approx(2.4)
    assert corrections.factor("winograd_f2", est, learning) == pytest.approx(4.9)
    assert corrections.factor("im2col", est, learning) == corrections.BOUNDS[1]  # (not timed: the machine's, bounded)
    # far from the others, a method's own factor is bounded around the machine's
    for _ in range(corrections.WINDOW):
        corrections.observe("im2col", est, 40 * est, learning)
    assert corrections.factor("im2col", est, learning) == pytest.approx(
        corrections.BOUNDS[1] * 4.5
    )  # (the median of 5)
    corrections.forget()
    selector.clear_plan_cache()
    x, w = np.zeros((4, 16, 16, 16), np.float32), np.zeros((16, 16, 3, 3), np.float32)
    plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    estimated = {c.name: c.estimated_s for c in plan.candidates if c.rejected is None and c.estimated_s is not None}
    for key, measured in (
        ("blocked", 3.8),
        ("winograd_f2", 4.9),
        ("winograd_f4", 4.5),
        ("direct", 2.4),
        ("im2col", 4.5),
    ):
        if key in estimated:
            for _ in range(corrections.MIN_CALLS):
                corrections.observe(key, estimated[key], measured * estimated[key], learning)
    selector.clear_plan_cache()
    assert fastconv.explain(fastconv.conv2d, x, w, padding=1).method == "direct"


def test_repeated_calls_are_learned_from(learning, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    if plan.chosen.estimated_s < corrections.MIN_SECONDS:  # pragma: no cover - a very fast machine
        pytest.skip("the layer is estimated below the learning threshold here")
    expected = fastconv.conv2d(x, w, padding=1, method="direct")
    monkeypatch.setattr(corrections, "record", lambda *a: 0)  # (no trial of another method on this shape)
    for _ in range(corrections.MIN_CALLS + 2):  # (the executor's first call is not learned from)
        y = fastconv.conv2d(x, w, padding=1)
    np.testing.assert_allclose(y, expected, rtol=0, atol=2e-5 * np.abs(expected).max())  # (Winograd: its error)
    ratios = corrections._ratios.get((plan.chosen_key, corrections.band(plan.chosen.estimated_s)))
    assert ratios is not None and len(ratios) >= corrections.MIN_CALLS
    with fastconv.set_config(learn=False):
        before = sum(len(r) for r in corrections._ratios.values())
        fastconv.conv2d(x, w, padding=1)
        fastconv.conv2d(x, w, padding=1)
        assert sum(len(r) for r in corrections._ratios.values()) == before


def test_repeated_calls_learn_from_a_sample_once_the_window_is_full(learning, monkeypatch):
    """An executor learns from its first WINDOW calls but the first, then
    from one in SAMPLE_EVERY (learning a call costs more than a small
    layer's kernel)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    if fastconv.explain(fastconv.conv2d, x, w, padding=1).chosen.estimated_s < corrections.MIN_SECONDS:
        pytest.skip("the layer is estimated below the learning threshold here")  # pragma: no cover
    seen = []
    monkeypatch.setattr(corrections, "observe", lambda key, est, seconds, cache_dir: seen.append(seconds) or False)
    monkeypatch.setattr(corrections, "record", lambda *a: 0)  # (no re-plan: one executor throughout)
    for _ in range(corrections.WINDOW + 2 * corrections.SAMPLE_EVERY):  # (the first call makes the executor)
        fastconv.conv2d(x, w, padding=1)
    assert len(seen) == corrections.WINDOW + 1  # (calls 2..WINDOW, then SAMPLE_EVERY and twice that)
    assert all(s > 0 for s in seen)


def test_calibrate_fits_and_stores(tmp_path, monkeypatch, capsys):
    from fastconv import _calibrate, cli

    def few(quick=False):
        z = np.zeros
        return [
            ("a", fastconv.conv2d, (z((1, 8, 24, 24), np.float32), z((8, 8, 3, 3), np.float32)), dict(padding=1)),
            ("b", fastconv.conv2d, (z((2, 8, 32, 32), np.float32), z((8, 8, 3, 3), np.float32)), dict(padding=1)),
            ("c", fastconv.conv2d, (z((1, 16, 16, 16), np.float32), z((16, 16, 3, 3), np.float32)), dict(padding=1)),
        ]

    monkeypatch.setattr(_calibrate, "calls", few)
    try:
        with fastconv.set_config(cache_dir=str(tmp_path)):
            assert cli.main(["calibrate", "--threads", "1"]) == 0
            out = capsys.readouterr().out
            assert "calibrated on this machine" in out
            factors, notes = calibration.stored_factors(str(tmp_path))
            assert factors and not notes
            for key, fit in factors.items():
                assert calibration.OVERHEAD_BOUNDS[0] <= fit["overhead"] <= calibration.OVERHEAD_BOUNDS[1]
                assert calibration.FACTOR_BOUNDS[0] <= fit["compute"] <= calibration.FACTOR_BOUNDS[1]
                assert fit["digest"] == calibration.digest(key) and math.isfinite(fit["median_error_after"])
                assert fit["shipped"] == calibration.constants_digest(selector.shipped_constants()[key])
    finally:
        selector.reload_constants()


def test_a_shape_returns_to_the_fastest_method_it_ran(learning, monkeypatch):
    """Band factors mix shapes, and one learned on other layers can move a
    shape onto a slower method (the 2-core Zen 3 sweep: conv1d 16x32x1024 on
    ``direct`` at 1.97x torch, ``blocked`` at 1.02x).  The timings of a shape's
    own calls stand in for its estimates: a method rated below the chosen
    one's measured time is tried once, and the faster of the two stays."""
    monkeypatch.setattr(corrections, "observe", lambda *a: False)  # (the band factors out of the way)
    x, w = np.zeros((8, 32, 32, 32), np.float32), np.zeros((32, 32, 3, 3), np.float32)
    plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    others = sorted(
        (c for c in plan.candidates if c.rejected is None and c.estimated_s is not None and c.name != plan.method),
        key=lambda c: c.estimated_s,
    )
    second, third = others[0], others[1]
    assert third.estimated_s > second.estimated_s, "pick a shape whose runners-up differ"
    slow = (second.estimated_s + third.estimated_s) / 2  # the first pick's time here: above the runner-up's estimate
    learn = plan.learner()
    learn(100 * slow)  # (an executor's first call is not the shape's time: left out)
    for _ in range(corrections.SHAPE_CALLS - 1):
        learn(slow)
    assert fastconv.explain(fastconv.conv2d, x, w, padding=1) is plan  # (not enough calls to decide)
    learn(slow)
    tried = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    assert tried.method == second.name
    assert "tried" in tried.reason
    assert f"measured {slow * 1e3:.3f} ms" in repr(tried)
    # while the tried kernel compiles, the first pick runs (not tier 0)
    assert tried.incumbent == plan.method
    from fastconv._spec import operands_maker

    rng = np.random.default_rng(2)
    xr, wr = rng.standard_normal(x.shape).astype(np.float32), rng.standard_normal(w.shape).astype(np.float32)
    out = np.empty((8, 32, 32, 32), np.float32)
    tried._stand_in(operands_maker(tried.spec)(xr, wr, None), out.reshape(8, 32, 1, 32, 32))
    np.testing.assert_allclose(out, fastconv.conv2d(xr, wr, padding=1, method=plan.method), rtol=1e-6, atol=1e-6)
    assert fastconv._warm.last_tier() == "kernel"
    # the runner-up turns out slower on this shape: back to the first pick, to stay
    learn = tried.learner()
    for _ in range(corrections.SHAPE_CALLS + 1):
        learn(2 * slow)
    back = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    assert back.method == plan.method
    assert back.reason.startswith("fastest measured on this call shape")
    learn = back.learner()
    for _ in range(corrections.WINDOW):
        learn(slow)
    assert fastconv.explain(fastconv.conv2d, x, w, padding=1) is back
    # a method's time on a shape is its fastest recent call (slow calls are other work's)
    times = (3.0, 9.0, 1.0, 2.0, 5.0)[-corrections.SHAPE_CALLS :]
    for t in times[:-1]:
        corrections.record(("a shape",), "m", t)
    assert corrections.measured(("a shape",)) == {}  # (not enough calls)
    corrections.record(("a shape",), "m", times[-1])
    assert corrections.measured(("a shape",)) == {"m": 1.0}
    # within the margin, two measured methods do not alternate; beyond it they do
    assert not back._beaten({plan.method: slow, second.name: slow / 1.01})
    assert back._beaten({plan.method: slow, second.name: slow / 1.2})
    # on a CPU slower than the constants' every estimate is below every measured time: only the
    # methods the constants put near the fastest one run there are tried, not all of them
    far = [c for c in plan.candidates if c.rejected is None and (c.estimated_s or 0) > 2 * plan.chosen.estimated_s]
    assert far and not any(selector._worth_a_try(c, plan.chosen, corrections.TRY_WITHIN) for c in far)
    assert selector._worth_a_try(second, plan.chosen, corrections.TRY_WITHIN)
    # a close method measured on few calls (maybe in a noisy moment) runs again before the pick settles
    corrections.forget()
    selector.clear_plan_cache()
    key = plan.key
    for _ in range(corrections.REMATCH_CALLS):
        corrections.record(key, plan.method, slow)
    for _ in range(corrections.SHAPE_CALLS):
        corrections.record(key, second.name, 1.2 * slow)
    again = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    assert (again.method, again.rematch, again.incumbent) == (second.name, True, plan.method)
    assert again.reason.startswith("run again on this call shape")
    assert not again._beaten(corrections.measured(key), corrections.calls(key))  # (judged once it has its calls)
    for _ in range(corrections.REMATCH_CALLS - corrections.SHAPE_CALLS):
        corrections.record(key, second.name, 1.2 * slow)
    assert again._beaten(corrections.measured(key), corrections.calls(key))
    selector.clear_plan_cache()
    settled = fastconv.explain(fastconv.conv2d, x, w, padding=1)
    assert (settled.method, settled.rematch) == (plan.method, False)
    assert not settled._beaten(corrections.measured(key), corrections.calls(key))
    # the executors held the dropped plans: calls still give the right answer
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x.shape).astype(np.float32), rng.standard_normal(w.shape).astype(np.float32)
    expected = fastconv.conv2d(x, w, padding=1, method="direct")
    got = fastconv.conv2d(x, w, padding=1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())  # (Winograd: its error)
    # learning off: the estimates alone decide
    with fastconv.set_config(learn=False):
        assert fastconv.explain(fastconv.conv2d, x, w, padding=1).method == plan.method
    corrections.forget()
    selector.clear_plan_cache()
    assert fastconv.explain(fastconv.conv2d, x, w, padding=1).method == plan.method


def test_autotune_picks_without_shape_trials(learning):
    """With autotune the tuner's measurements pick: repeated calls keep no
    shape timings, so no trial re-plans a tuned shape again and again."""
    x, w = np.zeros((4, 16, 16, 16), np.float32), np.zeros((16, 16, 3, 3), np.float32)
    with fastconv.set_config(autotune=True):
        plan = fastconv.explain(fastconv.conv2d, x, w, padding=1)
        learn = plan.learner()
        for _ in range(2 * corrections.REMATCH_CALLS):
            learn(10.0 * (plan.chosen.estimated_s or 1e-3))
        assert corrections.calls(plan.key) == {}
        assert fastconv.explain(fastconv.conv2d, x, w, padding=1).method == plan.method
