"""A pytest plugin that puts fastconv's functions in scipy's place, so that
scipy's own test files (``scipy.ndimage.tests.test_filters``,
``scipy.signal.tests.test_signaltools``) run against fastconv:
``python -m pytest --pyargs scipy.ndimage.tests.test_filters -p fastconv_in_scipy``
with this folder on ``PYTHONPATH`` (tests/test_scipy_parity.py does it).
The names are replaced in the public namespaces before scipy's test modules
are imported (their ``from scipy.signal import convolve`` gets fastconv's);
scipy's own internals keep calling scipy."""

from __future__ import annotations

import scipy.ndimage
import scipy.signal

from fastconv import ndimage, signal

NDIMAGE = (
    "correlate", "convolve", "correlate1d", "convolve1d", "gaussian_filter", "gaussian_filter1d", "uniform_filter",
    "uniform_filter1d", "sobel", "prewitt", "laplace", "gaussian_laplace", "gaussian_gradient_magnitude",
)  # fmt: skip
SIGNAL = ("convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d", "correlate2d")


def pytest_configure(config) -> None:
    try:  # (scipy marks its tests by the functions' array-API capabilities, keyed by function)
        from scipy._lib._array_api import xp_capabilities_table as table
    except ImportError:
        table = {}
    for module, ours, names in ((scipy.ndimage, ndimage, NDIMAGE), (scipy.signal, signal, SIGNAL)):
        for name in names:
            theirs, mine = getattr(module, name), getattr(ours, name)
            if theirs in table:
                table[mine] = table[theirs]
            setattr(module, name, mine)
