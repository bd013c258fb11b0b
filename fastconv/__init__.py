"""fastconv: Numba-compiled convolution kernels with torch and scipy semantics.

``import fastconv`` imports neither numba nor any kernel; kernels compile on
first use and are cached on disk.
"""

from ._config import get_config, set_config
from ._plan_api import available_methods, explain
from .nn import conv1d, conv2d, conv3d

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "available_methods",
    "conv1d",
    "conv2d",
    "conv3d",
    "explain",
    "get_config",
    "set_config",
]
