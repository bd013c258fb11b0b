"""fastconv: Numba-compiled convolution kernels with torch and scipy semantics.

``import fastconv`` imports neither numba nor any kernel; kernels compile on
first use and are cached on disk.
"""

from . import ndimage, signal
from ._config import get_config, set_config
from ._plan_api import available_methods, explain
from ._version import __version__
from .nn import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)

__all__ = [
    "__version__",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "available_methods",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "explain",
    "get_config",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "ndimage",
    "set_config",
    "signal",
]
