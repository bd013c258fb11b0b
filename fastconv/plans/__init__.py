"""Planning, one module per algorithm: each declares its :class:`Method`
records (``METHODS``: guards, workspace, cost features, variants, parts) and
the geometry its kernel module runs with.  Nothing here imports Numba, so
``fastconv.explain`` plans any call without compiling or loading a kernel;
the kernels (:mod:`fastconv.kernels`) import their plans, never the reverse."""
