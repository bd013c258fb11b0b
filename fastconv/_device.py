"""Where a call computes: GPU arrays are recognised here without importing numba.cuda.

A GPU array is any object with ``__cuda_array_interface__`` (numba device
arrays, CuPy arrays, torch CUDA tensors) or a device array of numba's CUDA
simulator.  Validation runs on a *proxy*: a read-only NumPy view of one
element with the GPU array's shape and dtype (zero strides), so the same
argument checks serve both devices and no data crosses to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_gpu_array(value: Any) -> bool:
    if type(value) is np.ndarray:  # the common case, answered without attribute lookups
        return False
    return hasattr(value, "__cuda_array_interface__") or type(value).__name__ == "FakeCUDAArray"


def gpu_dtype(value: Any) -> np.dtype:
    iface = getattr(value, "__cuda_array_interface__", None)
    if iface is not None:
        return np.dtype(iface["typestr"])
    return np.dtype(value.dtype)


def proxy(value: Any) -> np.ndarray:
    """A zero-stride, read-only stand-in with the GPU array's shape and dtype."""
    shape = tuple(int(s) for s in value.shape)
    base = np.zeros(1, dtype=gpu_dtype(value))
    view = np.lib.stride_tricks.as_strided(base, shape=shape, strides=(0,) * len(shape))
    view.flags.writeable = False
    return view


def check_device(device: Any, *arrays: Any) -> str:
    """``"cpu"`` or ``"cuda"``: ``device=None`` computes where the input lives."""
    on_gpu = any(is_gpu_array(a) for a in arrays)
    if device is None:
        return "cuda" if on_gpu else "cpu"
    if device == "cpu":
        if on_gpu:
            raise ValueError("device='cpu' was given GPU arrays; copy them to the host (NumPy) or use device=None")
        return "cpu"
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:")):
        return "cuda"
    raise ValueError(f"device must be None, 'cpu' or 'cuda', got {device!r}")
