"""GPU offload with numba.cuda kernels, imported lazily.

``import fastconv`` never imports this package; it is imported when a call
gets a GPU array (anything with ``__cuda_array_interface__``: numba device
arrays, CuPy arrays, torch CUDA tensors) or ``device="cuda"``.  The kernels
themselves are compiled on first use.

Examples
--------
>>> import fastconv.cuda
>>> isinstance(fastconv.cuda.is_available(), bool)
True
"""

from __future__ import annotations

__all__ = ["is_available", "unavailable_reason"]


def unavailable_reason() -> str | None:
    """Why GPU calls cannot run here (None when they can).

    Examples
    --------
    >>> import fastconv.cuda
    >>> r = fastconv.cuda.unavailable_reason()
    >>> r is None or isinstance(r, str)
    True
    """
    try:
        from numba import cuda
    except Exception as exc:  # numba built without CUDA support, broken toolkit, ...
        return (
            f"CUDA support cannot be imported ({type(exc).__name__}); install the extra: pip install 'fastconv[cuda]'"
        )
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # pragma: no cover - driver errors
        return f"the CUDA driver could not initialise the GPU ({type(exc).__name__})"
    return "no CUDA GPU is usable here (no NVIDIA driver or device found)"


def is_available() -> bool:
    """True when numba.cuda sees a usable NVIDIA GPU (or its simulator,
    ``NUMBA_ENABLE_CUDASIM=1``).

    Examples
    --------
    >>> import fastconv.cuda
    >>> fastconv.cuda.is_available() in (True, False)
    True
    """
    return unavailable_reason() is None
