import os

# the kernels under test run themselves: no tier 0 while they compile (the
# tests of tiers turn it on where they need it; subprocesses inherit this)
os.environ.setdefault("FASTCONV_BACKGROUND_COMPILE", "0")
# plans made from the constants alone (the tests of corrections turn learning on)
os.environ.setdefault("FASTCONV_LEARN", "0")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("FASTCONV_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    return torch


@pytest.fixture(scope="session")
def torch():
    t = _torch()
    if t is None:
        pytest.skip("torch is not installed (pip install torch==2.13.0 to cross-check against it)")
    return t


@pytest.fixture
def tuning_dir(tmp_path):
    """Autotune on, with a fresh tuning cache in ``tmp_path`` (memory and
    plans cleared before and after)."""
    import fastconv
    from fastconv.dispatch import clear_plan_cache, tuning

    tuning.clear_memory()
    clear_plan_cache()
    with fastconv.set_config(autotune=True, cache_dir=str(tmp_path)):
        yield tmp_path
    tuning.clear_memory()
    clear_plan_cache()
