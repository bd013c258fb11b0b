"""One module per algorithm.  Kernel modules import numba and are loaded
lazily by the dispatcher on first use, never by ``import fastconv``."""


class NonFiniteInput(Exception):
    """Raised by a ``finite_only`` method whose kernel checks its input (or
    weights) as it reads them (``Method.checks_input``,
    ``Method.checks_weights``) and found NaN or Inf: the dispatcher
    runs a method that keeps them within their windows instead.  Whatever the
    kernel wrote to the output is overwritten by that method."""
