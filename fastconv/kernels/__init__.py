"""One module per algorithm.  Kernel modules import numba and are loaded
lazily by the dispatcher on first use, never by ``import fastconv``."""
