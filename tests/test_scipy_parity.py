"""scipy's own tests of the functions fastconv stands in for, run with
fastconv's functions in scipy's place (the plugin
tests/scipy_parity/fastconv_in_scipy.py): ``scipy.ndimage.tests.test_filters``
and ``scipy.signal.tests.test_signaltools``, every test scipy runs, skipping
only what scipy itself skips.  A failure outside :data:`KNOWN` -- each a
deliberate difference, with its reason -- fails here."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

PLUGIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scipy_parity")

#: scipy tests fastconv fails on purpose: test id -> why
KNOWN = {
    "test_gaussian_filter_float16[numpy]": "fastconv filters float16 data (computed in float32); scipy refuses the "
    "dtype with a RuntimeError, which its test expects",
}


@pytest.mark.parametrize("module", ["scipy.ndimage.tests.test_filters", "scipy.signal.tests.test_signaltools"])
def test_scipy_own_tests_pass_with_fastconv(module, tmp_path):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed with this scipy")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([PLUGIN_DIR, os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", module, "-q", "-p", "no:cacheprovider", "-p", "fastconv_in_scipy",
         "-rf", "--tb=line", "-W", "ignore::DeprecationWarning"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900,
    )  # fmt: skip
    summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-2000:]
    failed = set(re.findall(r"^FAILED \S*::(\S+)", res.stdout, re.M))
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) > 1000, summary
    assert failed <= set(KNOWN), f"{sorted(failed - set(KNOWN))[:20]}\n{summary}"
    assert "error" not in summary, summary
