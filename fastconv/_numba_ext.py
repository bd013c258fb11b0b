"""fastconv's functions inside Numba-compiled code.

Numba runs :func:`init` (the ``numba_extensions`` entry point in
pyproject.toml) when it first compiles something, so ``import fastconv``
imports no Numba; :func:`init` registers an ``overload`` for each function
below, whose work is :mod:`fastconv.kernels.injit`'s.  The arguments,
defaults and results are the Python functions'; the types a compiled call
accepts are narrower (float32/float64 arrays -- integer and bool ones
computed in float64 -- one mode; ``out=`` /
``output=`` an array, or for ``output=`` a float dtype, filled with a copy
of the result: :func:`delivering`), and a call outside them fails at
compile time with a message naming the argument.  Values are checked when the call runs (ValueError,
as in Python).

Served: ``conv1d/2d/3d``, ``conv_transpose1d/2d/3d``, ``max_pool1d/2d/3d``,
``avg_pool1d/2d/3d``, ``adaptive_max_pool1d/2d/3d``,
``adaptive_avg_pool1d/2d/3d``; ``ndimage.correlate``, ``convolve``,
``correlate1d``, ``convolve1d``, ``gaussian_filter``, ``gaussian_filter1d``,
``uniform_filter``, ``uniform_filter1d``, ``sobel``, ``prewitt``,
``laplace``, ``gaussian_laplace``, ``gaussian_gradient_magnitude``;
``signal.convolve``, ``correlate``, ``convolve2d``, ``correlate2d``,
``fftconvolve``, ``oaconvolve``.  A large convolution, transposed
convolution or ``signal.convolve/correlate`` (``method="auto"``) made from
serial compiled code runs the Python path's entry in an object-mode block
(:func:`_python_entry`; ``kernels.injit.routed``): the dispatcher picks the
method with the cost model, FFT included, and honours the workspace limit,
where that wins over the direct kernel (measured: 8M multiply-adds and
more; the Python call costs 30-150 us).  So do, at any size, what only the
Python path has: a method named other than "auto"/"direct" (as in Python),
a ``padding_mode`` other than "zeros", ``return_indices=True`` and,
without rocket-fft, the FFTs -- from serial code, and a ValueError saying
so inside a ``prange`` body (:func:`python_entry`).  With rocket-fft (the
``njit`` extra: NumPy's FFT in compiled code) ``fftconvolve``,
``oaconvolve`` and ``method="fft"`` run compiled (``injit.fft_convolve3``,
its FFT a build), in a ``prange`` body too; a large one from serial code
runs the Python path's FFT on Numba's threads.  Integer and bool arrays:
the torch-style functions compute them in float64, as in Python; ndimage
and signal compute them in float64 and return scipy's dtype with scipy's
rules (:func:`integers_too`: ndimage truncates after every pass of a
multi-pass filter, signal's direct sums are rounded, the FFTs' results
stay float64).
Elsewhere -- inside a ``prange`` body, below ``injit.ROUTE_PAYS``, with
``method="direct"`` -- the convolutions run the Python path's direct
kernel (or, for small work, direct loops), except that on one thread (a
``prange`` body, small work) with ``method="auto"`` a convolution of 18
multiply-adds per output or more runs its register-blocked kernel
(``injit.blocked_run``: ``blocked``'s plane windows, 0.33-0.75 of the
direct kernel's time on one thread), pooling the Python path's
kernels (or loops), the filters the filters' sweep and the direct
correlation; a large call runs on Numba's threads from serial code and on
the calling thread inside a ``prange`` body (``injit.threads_for``).

All that work is machine code compiled once and called by address
(``injit.BUILDS``): loaded from the disk cache when a call is typed, and
again when Numba loads a user's function from its own disk cache in a new
process (:func:`_reload_hook`); one that is not there is built by a
background process (:func:`_need_build`).  What a user's function compiles
and links is the argument handling and small plain loops that stand in
while a build is missing, so a first use with an empty cache waits for no
kernel and every later compile of a user's function is short."""

from __future__ import annotations

import threading

_done = False
#: the table compiled calls read to choose their threads (``kernels.injit.THREAD_TABLE``)
_thread_table = None


def init() -> None:
    """Register the overloads and the threads table (once; Numba calls this,
    also before it loads a user's function from its disk cache)."""
    global _done
    if _done:
        return
    _done = True
    _register_thread_table()
    _register()


def _register_thread_table() -> None:
    """The table's memory, by its symbol, zeroed (every compiled call on its
    calling thread) until :func:`_fill_thread_table`: cheap, as ``init`` runs
    in every process that compiles anything."""
    import ctypes
    import os

    import llvmlite.binding as ll

    global _thread_table
    _thread_table = (ctypes.c_int64 * 64)()  # (kernels.injit.SLOTS of them used)
    ll.add_symbol("fastconv_injit_threads", ctypes.addressof(_thread_table))
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    """A forked child of a process whose compiled calls asked OpenMP: that
    runtime cannot run a parallel region there (``_config._serial_only``).
    The parent's background builds do not run here: typing asks again."""
    global _filling, _filling_lock
    from .kernels.injit import MODE

    if _thread_table is not None and _thread_table[MODE] == 2:
        _thread_table[MODE] = 0
    _wanted.clear()
    _filling, _filling_lock = False, threading.Lock()


def _fill_thread_table() -> None:
    """What :func:`fastconv.kernels.injit.threads_for` needs, for the
    threading layer Numba runs (its threads started here, as Numba starts
    them when it compiles a parallel function): OpenMP's ``omp_in_parallel``,
    or ``pthread_self`` and the main thread's; left zero (calling thread
    only) where neither is found.  The parallel builds' addresses are added
    by :func:`_need_build`."""
    import ctypes
    import threading
    from importlib import import_module

    import numba
    from numba.np.ufunc import parallel

    from . import _config
    from .kernels.injit import IN_PARALLEL, MAIN_THREAD, MODE, NUM_THREADS, SERIAL_BELOW, SLOTS, THREAD_SELF

    table = _thread_table
    if table is None or table[MODE] != 0 or _config._serial_only:
        return
    assert SLOTS <= len(table)
    parallel._launch_threads()
    layer = numba.threading_layer()

    def address(library: str | None, name: str) -> int | None:
        try:
            return ctypes.cast(getattr(ctypes.CDLL(library), name), ctypes.c_void_p).value
        except (OSError, AttributeError):
            return None

    table[SERIAL_BELOW] = int(_config.serial_below(400_000))  # (the filters' direct kernel's threshold)
    layer_module = import_module(f"numba.np.ufunc.{layer}" + ("" if layer == "workqueue" else "pool"))
    table[NUM_THREADS] = layer_module.get_num_threads
    if layer == "omp":
        found = address(layer_module.__file__, "omp_in_parallel")  # (the OpenMP runtime Numba's layer links)
        elsewhere = address(None, "omp_in_parallel")  # (one loaded into the process's global scope: torch's)
        if found and elsewhere and elsewhere != found:
            found = _omp_in_use(found, elsewhere)
        if found:
            table[IN_PARALLEL] = found
            table[MODE] = 2
        return
    found = address(None, "pthread_self")
    main = threading.main_thread().ident
    if found and main is not None:
        table[THREAD_SELF] = found
        table[MAIN_THREAD] = ctypes.c_int64(main).value
        table[MODE] = 1


def _omp_in_use(first: int, second: int) -> int:
    """Of two OpenMP runtimes' ``omp_in_parallel`` (addresses), the one that
    knows Numba's parallel regions, asked inside one (0: neither).  Two
    runtimes are loaded where, say, torch brought its own libgomp into the
    global scope before Numba's layer bound its calls: Numba's regions then
    run on torch's runtime, and the one Numba's layer links says "not in a
    region" inside them (measured: every prange body launched nested
    threads, and ran 2.4x slower)."""
    import numba

    from .kernels.injit import omp_probe

    threads = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # (a region of one thread is not "in parallel")
    try:
        said = omp_probe(first, second)
    finally:
        numba.set_num_threads(threads)
    return first if said[0] else (second if said[1] else 0)


def _need_build(build: int, dtype) -> None:
    """Put build ``build`` (``kernels.injit.BUILDS``) for ``dtype`` (a numba
    or NumPy float dtype) in the table, once per process, when a compiled
    call that can use it is typed: loaded from fastconv's disk cache where it
    is there; else compiled in a background process (as the Python path's
    kernels are, ``fastconv._warm``) while the user's function compiles and
    runs on the plain loops compiled into it, the table filled when the build is
    on disk (:func:`_fill_builds`).  With ``background_compile`` off (or a
    build that failed in the background), compiled here, before the user's
    function."""
    import numpy as np

    from . import _warm
    from ._config import get_config

    table = _thread_table
    dt = np.dtype(dtype.name)
    slot = _slot_of(build, dt)
    if table is None or table[slot] or (build, dt.name) in _wanted:
        return
    if not get_config().background_compile:
        table[slot] = _address(build, dt)
        return
    try:
        with _warm.no_compile():
            table[slot] = _address(build, dt)
    except _warm.NotCompiled:
        global _filling
        with _filling_lock:
            _wanted.add((build, dt.name))
            if not _filling:
                _filling = True
                _warm.in_background("fastconv-njit-builds", _fill_builds)


class _Reload(tuple):
    """The builds ((name in ``kernels.injit``, dtype name) pairs) a user's
    compiled function calls by address, put in the table when Numba loads
    that function from its disk cache in a new process (Numba runs a
    library's ``reload_init`` then: :func:`_reload_hook`); else the function
    would run the loops compiled into it, with no routing, until a fastconv
    call is typed in that process.  A tuple: hashable, and pickled by value
    into the user's cache."""

    def __call__(self) -> None:
        from .kernels import injit

        init()
        _fill_thread_table()
        for name, dtype in self:
            if hasattr(injit, name):  # (a cache written by another fastconv: what is still there)
                _need_build(getattr(injit, name), _np_dtype(dtype))


def _np_dtype(name: str):
    import numpy as np

    return np.dtype(name)


def _reload_hook(builds: tuple):
    """A compiled no-op whose lowering puts ``_Reload(builds)`` in the
    library being built (the overload's implementation); Numba hands it on to
    every library that links it, the user's function's, and saves it in that
    function's disk cache."""
    from numba.core import types
    from numba.extending import intrinsic

    loader = _Reload(builds)

    @intrinsic
    def hook(typingctx):
        def codegen(context, builder, signature, args):
            context.active_code_library._reload_init.add(loader)
            return context.get_dummy_value()

        return types.none(), codegen

    return hook


def _slot_of(build: int, dtype) -> int:
    """The table's slot of build ``build`` for NumPy ``dtype`` (float32 then
    float64: ``kernels.injit.build_at``)."""
    from .kernels.injit import BUILDS_AT

    return BUILDS_AT + 2 * build + dtype.itemsize // 8


def _address(build: int, dtype) -> int:
    """Build ``build``'s machine code for NumPy ``dtype``: compiled, or loaded
    from the disk cache."""
    from .kernels.injit import BUILDS

    linkage, dispatcher = BUILDS[build]
    return linkage.address(dispatcher, dtype)


#: (build, dtype name) that compiled calls were typed with and whose machine code a background process builds
_wanted: set = set()
#: whether :func:`_fill_builds` runs (under ``_filling_lock``)
_filling = False
_filling_lock = threading.Lock()


class Builds:
    """The build process's work for :func:`_need_build`: compile builds
    ``builds`` ((index in ``kernels.injit.BUILDS``, dtype name) pairs) into
    the disk cache (``fastconv._warmup.run_job``)."""

    def __init__(self, builds) -> None:
        self.builds = tuple(builds)

    family = "njit"

    def run(self) -> None:
        import numpy as np

        for build, dtype in self.builds:
            _address(build, np.dtype(dtype))


def _fill_builds() -> None:
    """(A background thread) build what :data:`_wanted` names in a child
    process and put it in the table, loaded from the disk cache; what the
    child could not build is compiled here.  Until then the user's compiled
    calls run the plain loops compiled into them (or another build)."""
    import time

    import numpy as np

    from . import _warm

    global _filling
    time.sleep(0.2)  # (the builds typed in the same function: one child for them all)
    while True:
        with _filling_lock:
            wanted = sorted(_wanted)
            if not wanted or _warm.stopping():
                _wanted.clear()  # (stopped: the next typing asks again)
                _filling = False
                return
        ok, err = _warm.build([Builds(wanted)])
        if not ok and _warm.stopping():
            continue
        for build, name in wanted:
            dtype = np.dtype(name)
            try:
                with _warm.no_compile():
                    address = _address(build, dtype)
            except _warm.NotCompiled:
                _warm.note_failure(err)
                address = _address(build, dtype)  # (as without background builds)
            _thread_table[_slot_of(build, dtype)] = address
            _wanted.discard((build, name))


def _python_entry(name: str, dtype: str, keywords: tuple, *args):
    """A compiled call routed through the Python path (``kernels.injit``'s
    ``routed``: a large call from serial compiled code; or a method,
    padding mode or function only the Python path has): fastconv's function
    ``name`` ("conv2d", "signal.fftconvolve") on ``args``, as the
    C-contiguous ``dtype`` array the compiled code expects; the last
    ``len(keywords)`` arguments passed by those names.  The dispatcher
    picks the method with the cost model (or runs the one named), honours
    the workspace limit and learns, as for a call from Python."""
    import numpy as np

    import fastconv

    module, _, func = name.rpartition(".")
    given = len(args) - len(keywords)
    result = getattr(getattr(fastconv, module) if module else fastconv, func)(
        *args[:given], **dict(zip(keywords, args[given:]))
    )
    if isinstance(result, tuple):  # (max pooling's values and indices)
        return np.ascontiguousarray(result[0], dtype=dtype), np.ascontiguousarray(result[1], dtype=np.int64)
    return np.ascontiguousarray(result, dtype=dtype)


#: what a ``prange`` body's refusal of an FFT adds (:func:`_register`'s ``compiled_fft``)
_WITHOUT_FFT = " without rocket-fft (pip install 'fastconv[njit]' compiles the FFTs into your function)"

#: the run-time error of a call only the Python path can serve, made inside a ``prange`` body
_NOT_HERE = (
    "{what} inside @njit runs through the Python path (object mode): from serial compiled code, "
    "not inside a prange body"
)


def _register() -> None:
    import numpy as np
    from numba import from_dtype, njit, objmode
    from numba.core import types
    from numba.core.errors import TypingError
    from numba.extending import overload

    import fastconv
    from fastconv import ndimage, signal

    k = None  # (fastconv.kernels.injit, imported when a compiled call first needs it: see kernels())

    def kernels() -> None:
        """Import the kernels (and scipy, and Numba's compiled helpers) when
        the first compiled call is typed, not when Numba loads this module:
        every process that compiles anything with fastconv installed runs
        :func:`init`.  The overloads' code reads ``k`` when it compiles."""
        nonlocal k
        if k is None:
            from .kernels import injit

            k = injit
            _fill_thread_table()

    def parallel(dtype, *names: str):
        """The builds ``names`` (``kernels.injit``'s indices) for ``dtype`` in
        the table (after the checks: a valid dtype); returns the hook the
        implementation calls first, which puts them there again when the
        user's function is loaded from Numba's disk cache (:func:`_reload_hook`)."""
        for name in names:
            _need_build(getattr(k, name), dtype)
        return _reload_hook(tuple((name, np.dtype(dtype.name).name) for name in names))

    floats = (types.float32, types.float64)

    # (an argument left out arrives as its default's value, not a type)
    def absent(v) -> bool:
        return v is None or (isinstance(v, (types.NoneType, types.Omitted)) and getattr(v, "value", None) is None)

    def given(v) -> bool:
        return isinstance(v, types.Type) and not isinstance(v, types.Omitted)

    def array(v, name: str, fname: str, ndims: tuple[int, ...], integers: bool = False) -> None:
        """A float32/float64 array of ``ndims`` dimensions; with ``integers``
        (the torch-style functions) integer and bool arrays too, computed in
        float64 as in Python (:func:`nn_dtype`)."""
        kinds = (types.Integer, types.Boolean) if integers else ()
        if (
            not isinstance(v, types.Array)
            or v.ndim not in ndims
            or not (v.dtype in floats or isinstance(v.dtype, kinds))
        ):
            what = "a float32, float64, integer or bool array" if integers else "a float32 or float64 array"
            raise TypingError(
                f"fastconv.{fname} inside @njit: {name} must be {what} with "
                f"{' or '.join(map(str, ndims))} dimensions, got {v}"
            )

    def integer_or_tuple(v, name: str, fname: str, n: int, none_ok: bool = False) -> None:
        if (none_ok and absent(v)) or not given(v):
            return
        ok = isinstance(v, types.Integer) or (
            isinstance(v, types.BaseTuple) and len(v) in (1, n) and all(isinstance(t, types.Integer) for t in v)
        )
        if not ok:
            raise TypingError(f"fastconv.{fname} inside @njit: {name} must be an int or a tuple of {n} ints, got {v}")

    def string(v, name: str, fname: str) -> None:
        if not given(v):
            return
        if not isinstance(v, (types.UnicodeType, types.StringLiteral)):
            raise TypingError(
                f"fastconv.{fname} inside @njit: {name} must be a string (one mode for every axis), got {v}"
            )

    def number(v, name: str, fname: str) -> None:
        if not given(v):
            return
        if not isinstance(v, (types.Integer, types.Float)) or isinstance(v, types.Boolean):
            raise TypingError(f"fastconv.{fname} inside @njit: {name} must be a real number, got {v}")

    def unsupported(v, name: str, fname: str, what: str = "None") -> None:
        if not absent(v):
            raise TypingError(f"fastconv.{fname} inside @njit: {name} must be {what} here, got {v}")

    # --- argument helpers (overloaded themselves: one body per argument type) -------------------

    def per_axis(v, n):  # pragma: no cover
        raise NotImplementedError

    @overload(per_axis)
    def _per_axis(v, n):
        if isinstance(v, (types.Integer, types.Float)):
            return lambda v, n: np.full(n, v, np.float64)
        return lambda v, n: np.array(v, np.float64)

    def given_or(v, default):  # pragma: no cover
        raise NotImplementedError

    @overload(given_or)
    def _given_or(v, default):
        if absent(v):
            return lambda v, default: default
        return lambda v, default: v

    def bias_like(b, like):  # pragma: no cover
        raise NotImplementedError

    @overload(bias_like)
    def _bias_like(b, like):
        if absent(b):
            return lambda b, like: np.empty(0, like.dtype)
        return lambda b, like: b.astype(like.dtype)

    def triple(v, n):  # pragma: no cover - compiled code runs its overload
        raise NotImplementedError

    @overload(triple)
    def _triple(v, n):
        """An int or a tuple of ``n`` (or 1) ints as 3 values for the lifted
        (D, H, W) axes: the missing leading ones 1."""
        if isinstance(v, types.Integer):
            return lambda v, n: (1, 1, v) if n == 1 else ((1, v, v) if n == 2 else (v, v, v))
        if len(v) == 1:
            return lambda v, n: (1, 1, v[0]) if n == 1 else ((1, v[0], v[0]) if n == 2 else (v[0], v[0], v[0]))
        if len(v) == 2:
            return lambda v, n: (1, v[0], v[1])
        return lambda v, n: (v[0], v[1], v[2])

    def pads(padding, stride, kernel, dilation, n):  # pragma: no cover
        raise NotImplementedError

    @overload(pads)
    def _pads(padding, stride, kernel, dilation, n):
        """Zero padding before and after each lifted axis (6 values): an int or
        ints per axis, or torch's "valid" / "same" (the extra pad after)."""
        if isinstance(padding, (types.UnicodeType, types.StringLiteral)):

            def impl(padding, stride, kernel, dilation, n):
                out = np.zeros(6, np.int64)
                if padding == "valid":
                    return out
                if padding != "same":
                    raise ValueError("padding must be 'same', 'valid', an int or a tuple of ints")
                for a in range(3):
                    if stride[a] != 1:
                        raise ValueError("padding='same' is not supported for strided convolutions")
                    total = dilation[a] * (kernel[a] - 1)
                    out[2 * a], out[2 * a + 1] = total // 2, total - total // 2
                return out

            return impl

        def impl(padding, stride, kernel, dilation, n):
            p = triple(padding, n)
            out = np.zeros(6, np.int64)
            for a in range(3 - n, 3):
                out[2 * a] = out[2 * a + 1] = p[a]
            return out

        return impl

    def result_dtype(*arrays):
        return np.dtype(np.result_type(*[a.dtype.name for a in arrays if isinstance(a, types.Array)]))

    def nn_dtype(*arrays):
        """The torch-style functions' computing dtype: the Python path's rule
        (``_spec.compute_dtype``), on the arrays' dtypes."""
        from ._spec import compute_dtype

        dtypes = [np.dtype(a.dtype.name) for a in arrays if isinstance(a, types.Array)]
        return compute_dtype(*dtypes, names=("array",) * len(dtypes))

    def floated(x):  # pragma: no cover - compiled code runs its overload
        raise NotImplementedError

    @overload(floated)
    def _floated(x):
        """``x`` itself where it is float, else as float64 (a copy)."""
        if x.dtype in floats:
            return lambda x: x
        return lambda x: x.astype(np.float64)

    # lifting to the kernels' 5-D (N, C, D, H, W) and back, per (rank, batched): (up, down, weights up)
    _lifts = {
        (1, True): (njit(lambda x: x.reshape((x.shape[0], x.shape[1], 1, 1, x.shape[2]))),
                    njit(lambda y: y.reshape((y.shape[0], y.shape[1], y.shape[4])))),
        (1, False): (njit(lambda x: x.reshape((1, x.shape[0], 1, 1, x.shape[1]))),
                     njit(lambda y: y.reshape((y.shape[1], y.shape[4])))),
        (2, True): (njit(lambda x: x.reshape((x.shape[0], x.shape[1], 1, x.shape[2], x.shape[3]))),
                    njit(lambda y: y.reshape((y.shape[0], y.shape[1], y.shape[3], y.shape[4])))),
        (2, False): (njit(lambda x: x.reshape((1, x.shape[0], 1, x.shape[1], x.shape[2]))),
                     njit(lambda y: y.reshape((y.shape[1], y.shape[3], y.shape[4])))),
        (3, True): (njit(lambda x: x), njit(lambda y: y)),
        (3, False): (njit(lambda x: x.reshape((1, x.shape[0], x.shape[1], x.shape[2], x.shape[3]))),
                     njit(lambda y: y.reshape((y.shape[1], y.shape[2], y.shape[3], y.shape[4])))),
    }  # fmt: skip

    def python_entry(name: str, dt, ndim: int, what: str, keywords: tuple = (), indices: bool = False):
        """A compiled function running :func:`_python_entry` for fastconv's
        ``name`` on its argument tuple (the last ones by the names
        ``keywords``), in an object-mode block, its result a C-contiguous
        ``ndim``-D array of ``dt``, with ``indices`` an int64 array of
        indices beside it.  Where the entry may not run -- a ``prange`` body,
        where the Python path would launch threads, or a process whose table
        is empty (``injit.routed`` at any size) -- a ValueError saying that
        ``what`` (the call) needs serial compiled code."""
        result = types.Array(from_dtype(dt), ndim, "C")
        if indices:
            result = types.Tuple((result, types.Array(types.int64, ndim, "C")))
        dtype = np.dtype(dt).name
        refused = _NOT_HERE.format(what=f"fastconv.{name}{what}")

        @njit
        def call(args):
            if not k.routed(k.ROUTE_PAYS):
                raise ValueError(refused)
            with objmode(y=result):
                y = _python_entry(name, dtype, keywords, *args)
            return y

        return call

    def deliver(y, target, shape_message):  # pragma: no cover - compiled code runs its overload
        raise NotImplementedError

    @overload(deliver, prefer_literal=True)
    def _deliver(y, target, shape_message):
        message = shape_message.literal_value  # (a constant: compiled code raises constant messages)
        if isinstance(target, types.Array):

            def into(y, target, shape_message):
                if target.shape != y.shape:
                    raise ValueError(message)
                target[...] = y  # (cast to the target's dtype, as scipy.ndimage does)
                return target

            return into
        return lambda y, target, shape_message: y.astype(target)  # (ndimage's output=<a dtype>)

    def delivering(impl, name: str, target, fname: str):
        """``impl`` (an overload's implementation); where the call passes an
        array (or, for ``output``, a dtype) as ``name``, an implementation
        of the same signature that runs ``impl`` and writes its result
        there, returning it (the Python functions' semantics: the result is
        computed, then copied)."""
        if absent(target):
            return impl
        import inspect

        params = list(inspect.signature(impl).parameters.values())
        message = f"fastconv.{fname}: {name} must have the result's shape"
        source = (f"def delivered({', '.join(map(str, params))}):\n"
                  f"    return deliver(inner({', '.join(p.name for p in params)}), {name}, {message!r})\n")  # fmt: skip
        scope = {"inner": njit(impl), "deliver": deliver}
        exec(source, scope)  # (an overload's implementation must repeat the function's parameters)
        return scope["delivered"]

    def cast_to(y, like, rounded):  # pragma: no cover - compiled code runs its overload
        raise NotImplementedError

    @overload(cast_to, prefer_literal=True)
    def _cast_to(y, like, rounded):
        """The float result ``y`` in the dtype of ``like`` (an array or a
        dtype) with scipy's rules (``_execute.in_dtype``): integers truncated
        toward zero (``rounded``, a literal: to the nearest) and wrapped,
        bool a non-zero low byte of the truncated value (``rounded``: non-zero)."""
        target = like.dtype if isinstance(like, types.Array) else getattr(like, "dtype", like)
        kind = np.dtype(target.name).type
        if isinstance(target, types.Boolean):  # (ndimage: scipy's C cast, a non-zero low byte; signal: non-zero)
            if rounded.literal_value:
                return lambda y, like, rounded: y != 0
            return lambda y, like, rounded: np.trunc(y).astype(np.int64).astype(np.uint8) != 0
        if isinstance(target, types.Integer):
            if rounded.literal_value:
                return lambda y, like, rounded: np.rint(y).astype(np.int64).astype(kind)
            return lambda y, like, rounded: np.trunc(y).astype(np.int64).astype(kind)
        return lambda y, like, rounded: y.astype(kind)

    def integral_or_bool(v) -> bool:
        return isinstance(v, types.Array) and isinstance(v.dtype, (types.Integer, types.Boolean))

    def integers_too(pyfunc, kind: str, passes=None):
        """``overload(pyfunc)`` for an ndimage (``kind`` "ndimage": ``input``,
        ``output``) or signal function (``in1``, ``in2``; "fft": the result
        stays float64, as scipy's) whose overload takes float arrays: an
        integer or bool array is computed in float64 by the same function
        and the result cast back with scipy's rules (:func:`cast_to`; ndimage
        truncates, signal rounds), as in Python.  ``passes`` -- (a compiled
        function, its arguments) -- computes a filter whose passes scipy
        writes in an integer result dtype (each truncated: gaussian, uniform
        and their derivative sums); its last argument is what the result's
        dtype is taken from (``like``)."""
        import inspect

        def register(over):
            params = list(inspect.signature(over).parameters.values())
            names = [p.name for p in params]
            arrays = ("input",) if kind == "ndimage" else ("in1", "in2")
            scope = {"choose": None}
            exec(f"def typer({', '.join(map(str, params))}):\n"
                 f"    return choose({{{', '.join(f'{n!r}: {n}' for n in names)}}})\n", scope)  # fmt: skip

            def choose(args):
                if not any(integral_or_bool(args[n]) for n in arrays):
                    return over(**args)
                kernels()
                fname = f"{kind if kind == 'ndimage' else 'signal'}.{pyfunc.__name__}"
                call = ", ".join(f"floated({n})" if n in arrays else ("output=None" if n == "output" else f"{n}={n}")
                                 for n in names)  # fmt: skip
                compute = f"pyfunc({call})"
                inner = {"pyfunc": pyfunc, "floated": floated, "cast_to": cast_to, "deliver": deliver,
                         "per_axis": per_axis, "given_or": given_or}  # fmt: skip
                if kind == "ndimage":
                    output = args["output"]
                    target = args["input"].dtype if absent(output) else getattr(output, "dtype", None)
                    if passes is not None and isinstance(target, (types.Integer, types.Boolean)):
                        inner["passes"] = passes[0]  # (its result is in the result dtype already)
                        compute = "passes(" + passes[1].replace("like", "input" if absent(output) else "output") + ")"
                    if absent(output):
                        result = "cast_to(y, input, False)"
                    elif isinstance(output, types.Array) and output.ndim == args["input"].ndim:
                        message = f"fastconv.{fname}: output must have the result's shape"
                        result = f"deliver(cast_to(y, output, False), output, {message!r})"
                    elif isinstance(output, (types.NumberClass, types.DType)):
                        result = "cast_to(y, output, False)"
                    else:
                        raise TypingError(f"fastconv.{fname} inside @njit: output must be None, an array with "
                                          f"{args['input'].ndim} dimensions or a dtype, got {output}")  # fmt: skip
                else:
                    both = [np.dtype(args[n].dtype.name) for n in arrays if isinstance(args[n], types.Array)]
                    target = np.result_type(*both)
                    # (scipy: the direct sums of integers are integers; the FFTs' results float64)
                    result = "cast_to(y, target, True)" if kind == "signal" and target.kind in "biu" else "y"
                    inner["target"] = target.type
                exec(f"def impl({', '.join(map(str, params))}):\n"
                     f"    y = {compute}\n"
                     f"    return {result}\n", inner)  # fmt: skip
                return inner["impl"]

            scope["choose"] = choose
            overload(pyfunc)(scope["typer"])
            return over

        return register

    def output_array(v, name: str, fname: str, dt, ndim: int, dtypes_too: bool) -> None:
        """``out=`` (``dt``, ``ndim`` dimensions: the result's) or ndimage's
        ``output=`` (any float array of ``ndim`` dimensions, or a float dtype)."""
        if absent(v):
            return
        if isinstance(v, types.Array) and v.ndim == ndim and (v.dtype in floats if dtypes_too else v.dtype == dt):
            return
        if dtypes_too and isinstance(v, (types.NumberClass, types.DType)) and getattr(v, "dtype", None) in floats:
            return
        what = f"a float32 or float64 array with {ndim} dimensions, or such a dtype" if dtypes_too else (
            f"a {dt} array with {ndim} dimensions (the result's dtype)")  # fmt: skip
        raise TypingError(f"fastconv.{fname} inside @njit: {name} must be None or {what}, got {v}")

    # the (D, H, W) of a shape's last nd axes, 1 for the missing leading ones
    _spatial = {
        1: njit(lambda shape: (1, 1, shape[-1])),
        2: njit(lambda shape: (1, shape[-2], shape[-1])),
        3: njit(lambda shape: (shape[-3], shape[-2], shape[-1])),
    }
    _weights_up = {
        1: njit(lambda w: w.reshape((w.shape[0], w.shape[1], 1, 1, w.shape[2]))),
        2: njit(lambda w: w.reshape((w.shape[0], w.shape[1], 1, w.shape[2], w.shape[3]))),
        3: njit(lambda w: w),
    }

    # --- conv1d / conv2d / conv3d -----------------------------------------------------------------------

    def conv_checks(fname, nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, method, device,
                    out) -> None:  # fmt: skip
        array(input, "input", fname, (nd + 1, nd + 2), integers=True)
        array(weight, "weight", fname, (nd + 2,), integers=True)
        if not absent(bias):
            array(bias, "bias", fname, (1,), integers=True)
        integer_or_tuple(stride, "stride", fname, nd)
        integer_or_tuple(dilation, "dilation", fname, nd)
        if not isinstance(padding, (types.UnicodeType, types.StringLiteral)):
            integer_or_tuple(padding, "padding", fname, nd)
        if given(groups) and not isinstance(groups, types.Integer):
            raise TypingError(f"fastconv.{fname} inside @njit: groups must be an int, got {groups}")
        string(padding_mode, "padding_mode", fname)
        string(method, "method", fname)
        unsupported(device, "device", fname)

    def conv_impl(nd):
        fname = f"conv{nd}d"

        def overload_conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                          method="auto", device=None, out=None):  # fmt: skip
            kernels()
            conv_checks(fname, nd, input, weight, bias, stride, padding, dilation, groups, padding_mode, method,
                        device, out)  # fmt: skip
            dt = nn_dtype(input, weight, bias)
            output_array(out, "out", fname, from_dtype(dt), input.ndim, False)
            hook = parallel(
                dt, "DIRECT_RUN", "DIRECT_PART", "DIRECT_KERNEL", "DIRECT_LOOPS", "BLOCKED_RUN", "PLANE_PART"
            )
            batched = input.ndim == nd + 2
            up, down = _lifts[(nd, batched)]
            lift_weight, spatial = _weights_up[nd], _spatial[nd]
            entry = python_entry(fname, dt, input.ndim, " with a padding_mode other than 'zeros' or a method other "
                                 "than 'auto' or 'direct'", ("padding_mode", "method"))  # fmt: skip

            def impl(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                     method="auto", device=None, out=None):  # fmt: skip
                hook()
                args = (input, weight, bias, stride, padding, dilation, groups, padding_mode, method)
                if padding_mode != "zeros" or (method != "auto" and method != "direct"):
                    return entry(args)  # (a method or padding mode of the Python path's, named)
                s, d, kernel = triple(stride, nd), triple(dilation, nd), spatial(weight.shape)
                p = pads(padding, s, kernel, d, nd)
                n = input.shape[0] if batched else 1
                work = k.conv_work(n, weight.shape[0], weight.shape[1], spatial(input.shape), kernel, s, p, d)
                if method == "auto" and k.routed(work):  # (serial code, a large call: the Python path's dispatcher)
                    return entry(args)
                x5 = up(np.ascontiguousarray(input).astype(dt))
                w5 = lift_weight(np.ascontiguousarray(weight).astype(dt))
                return down(k.conv3d_direct(x5, w5, bias_like(bias, x5), s, p, d, groups, method == "auto"))

            return delivering(impl, "out", out, fname)

        return overload_conv

    for _nd in (1, 2, 3):
        overload(getattr(fastconv, f"conv{_nd}d"))(conv_impl(_nd))

    def transpose_impl(nd):
        fname = f"conv_transpose{nd}d"

        def overload_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                               dilation=1, method="auto", device=None, out=None):  # fmt: skip
            kernels()
            conv_checks(fname, nd, input, weight, bias, stride, 0, dilation, groups, "zeros", method, device, out)
            if isinstance(padding, (types.UnicodeType, types.StringLiteral)):
                raise TypingError(f"fastconv.{fname} inside @njit: padding must be an int or a tuple of {nd} ints "
                                  f"(no 'same'/'valid' for transposed convolutions), got {padding}")  # fmt: skip
            integer_or_tuple(padding, "padding", fname, nd)
            integer_or_tuple(output_padding, "output_padding", fname, nd)
            dt = nn_dtype(input, weight, bias)
            output_array(out, "out", fname, from_dtype(dt), input.ndim, False)
            hook = parallel(dt, "TRANSPOSE_KERNEL", "TRANSPOSE_PART", "TRANSPOSE_LOOPS")
            batched = input.ndim == nd + 2
            up, down = _lifts[(nd, batched)]
            lift_weight, spatial = _weights_up[nd], _spatial[nd]
            entry = python_entry(fname, dt, input.ndim, " with a method other than 'auto' or 'direct'", ("method",))

            def impl(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     method="auto", device=None, out=None):  # fmt: skip
                hook()
                args = (input, weight, bias, stride, padding, output_padding, groups, dilation, method)
                if method != "auto" and method != "direct":
                    return entry(args)
                kernel = spatial(weight.shape)
                if method == "auto" and k.routed(input.size * weight.shape[1] * kernel[0] * kernel[1] * kernel[2]):
                    return entry(args)
                x5 = up(np.ascontiguousarray(input).astype(dt))
                w5 = lift_weight(np.ascontiguousarray(weight).astype(dt))
                s, d = triple(stride, nd), triple(dilation, nd)
                p, op = triple(padding, nd), triple(output_padding, nd)
                p0 = (0 if nd < 3 else p[0], 0 if nd < 2 else p[1], p[2])
                op0 = (0 if nd < 3 else op[0], 0 if nd < 2 else op[1], op[2])
                return down(k.conv_transpose3d_direct(x5, w5, bias_like(bias, x5), s, p0, op0, d, groups))

            return delivering(impl, "out", out, fname)

        return overload_transpose

    for _nd in (1, 2, 3):
        overload(getattr(fastconv, f"conv_transpose{_nd}d"))(transpose_impl(_nd))

    # --- pooling ---------------------------------------------------------------------------------------

    #: the pooling kernels' builds (``kernels.injit``), beside each family's windows and loops
    _POOL_KERNELS = ("MAX_POOL", "MAX_POOL_SERIAL", "AVG_POOL", "AVG_POOL_SERIAL")

    def pool_checks(fname, nd, input, kernel_size, stride, padding, dilation, device):
        array(input, "input", fname, (nd + 1, nd + 2), integers=True)
        integer_or_tuple(kernel_size, "kernel_size", fname, nd)
        integer_or_tuple(stride, "stride", fname, nd, none_ok=True)
        integer_or_tuple(padding, "padding", fname, nd)
        integer_or_tuple(dilation, "dilation", fname, nd)
        unsupported(device, "device", fname)

    def pool_runner(nd, batched, hook):
        up, down = _lifts[(nd, batched)]

        @njit
        def run(input, kernel_size, stride, padding, dilation, ceil_mode, is_max, include_pad, divisor):
            hook()
            x = up(np.ascontiguousarray(floated(input)))
            kk = triple(kernel_size, nd)
            ss = triple(given_or(stride, kernel_size), nd)
            pp = triple(padding, nd)
            pp = (0 if nd < 3 else pp[0], 0 if nd < 2 else pp[1], pp[2])
            dd = triple(dilation, nd)
            v = x.reshape((x.shape[0] * x.shape[1], x.shape[2], x.shape[3], x.shape[4]))
            y = k.pool3d(v, kk, ss, pp, dd, ceil_mode, is_max, include_pad, divisor)
            return down(y.reshape((x.shape[0], x.shape[1], y.shape[1], y.shape[2], y.shape[3])))

        return run

    def max_impl(nd):
        fname = f"max_pool{nd}d"

        def overload_max(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                         return_indices=False, device=None):  # fmt: skip
            kernels()
            pool_checks(fname, nd, input, kernel_size, stride, padding, dilation, device)
            hook = parallel(nn_dtype(input), *_POOL_KERNELS, "POOL_WINDOWS", "POOL_LOOPS")
            literal = getattr(return_indices, "literal_value", return_indices) if given(return_indices) else False
            if literal is True:  # (the Python path's, through its entry: values and indices)
                entry = python_entry(fname, nn_dtype(input), input.ndim, " with return_indices=True",
                                     indices=True)  # fmt: skip

                def with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                                 return_indices=False, device=None):  # fmt: skip
                    return entry((input, kernel_size, stride, padding, dilation, ceil_mode, True))

                return with_indices
            if literal is not False:
                raise TypingError(f"fastconv.{fname} inside @njit: return_indices must be a constant True or False, "
                                  f"got {return_indices}")  # fmt: skip
            run = pool_runner(nd, input.ndim == nd + 2, hook)

            def impl(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
                     device=None):  # fmt: skip
                return run(input, kernel_size, stride, padding, dilation, ceil_mode, True, True, 0)

            return impl

        return overload_max

    def avg_impl(nd):
        fname = f"avg_pool{nd}d"

        def overload_avg(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                         divisor_override=None, device=None):  # fmt: skip
            kernels()
            pool_checks(fname, nd, input, kernel_size, stride, padding, 1, device)
            hook = parallel(nn_dtype(input), *_POOL_KERNELS, "POOL_WINDOWS", "POOL_LOOPS")
            run = pool_runner(nd, input.ndim == nd + 2, hook)

            def impl(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                     divisor_override=None, device=None):  # fmt: skip
                divisor = given_or(divisor_override, -1)
                if divisor == 0:
                    raise ValueError("divisor_override must be a non-zero int or None")
                return run(input, kernel_size, stride, padding, 1, ceil_mode, False, count_include_pad, max(divisor, 0))

            return impl

        return overload_avg

    def adaptive_impl(nd, is_max):
        fname = f"adaptive_{'max' if is_max else 'avg'}_pool{nd}d"

        def checked_run(input, output_size, device):
            """The compiled body for ``input``'s type, its arguments checked."""
            kernels()
            array(input, "input", fname, (nd + 1, nd + 2), integers=True)
            integer_or_tuple(output_size, "output_size", fname, nd)
            unsupported(device, "device", fname)
            hook = parallel(nn_dtype(input), *_POOL_KERNELS, "ADAPTIVE_WINDOWS", "ADAPTIVE_LOOPS")
            up, down = _lifts[(nd, input.ndim == nd + 2)]

            @njit
            def run(input, output_size):
                hook()
                x = up(np.ascontiguousarray(floated(input)))
                o = triple(output_size, nd)
                v = x.reshape((x.shape[0] * x.shape[1], x.shape[2], x.shape[3], x.shape[4]))
                y = k.adaptive3d(v, o[0], o[1], o[2], is_max)
                return down(y.reshape((x.shape[0], x.shape[1], y.shape[1], y.shape[2], y.shape[3])))

            return run

        def overload_adaptive_max(input, output_size, return_indices=False, device=None):
            run = checked_run(input, output_size, device)
            if given(return_indices) and getattr(return_indices, "literal_value", None) is not False:
                raise TypingError(f"fastconv.{fname} inside @njit: return_indices must be False (the default) here")
            return lambda input, output_size, return_indices=False, device=None: run(input, output_size)

        def overload_adaptive_avg(input, output_size, device=None):
            run = checked_run(input, output_size, device)
            return lambda input, output_size, device=None: run(input, output_size)

        return overload_adaptive_max if is_max else overload_adaptive_avg

    for _nd in (1, 2, 3):
        overload(getattr(fastconv, f"max_pool{_nd}d"))(max_impl(_nd))
        overload(getattr(fastconv, f"avg_pool{_nd}d"))(avg_impl(_nd))
        overload(getattr(fastconv, f"adaptive_max_pool{_nd}d"))(adaptive_impl(_nd, True))
        overload(getattr(fastconv, f"adaptive_avg_pool{_nd}d"))(adaptive_impl(_nd, False))

    # --- ndimage ---------------------------------------------------------------------------------------

    def filter_checks(fname, input, output, mode, cval, axes=None):
        array(input, "input", f"ndimage.{fname}", (1, 2, 3), integers=True)  # (integers: :func:`integers_too`)
        output_array(output, "output", f"ndimage.{fname}", None, input.ndim, True)
        string(mode, "mode", f"ndimage.{fname}")
        number(cval, "cval", f"ndimage.{fname}")
        unsupported(axes, "axes", f"ndimage.{fname}", "None (every axis)")

    _lift = {
        1: njit(lambda a: np.ascontiguousarray(a).reshape((1, 1, a.shape[0]))),
        2: njit(lambda a: np.ascontiguousarray(a).reshape((1, a.shape[0], a.shape[1]))),
        3: njit(lambda a: np.ascontiguousarray(a)),
    }
    _flip = {1: njit(lambda w: w[::-1]), 2: njit(lambda w: w[::-1, ::-1]), 3: njit(lambda w: w[::-1, ::-1, ::-1])}

    def origins(v, n):  # pragma: no cover
        raise NotImplementedError

    @overload(origins)
    def _origins(v, n):
        if isinstance(v, types.Integer):
            return lambda v, n: np.full(n, v, np.int64)
        if len(v) == 1:
            return lambda v, n: np.full(n, v[0], np.int64)
        return lambda v, n: np.array(v, np.int64)

    def correlate_impl(flip):
        fname = "convolve" if flip else "correlate"

        def overload_correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, axes=None,
                               method="auto"):  # fmt: skip
            kernels()
            filter_checks(fname, input, output, mode, cval, axes)
            if not isinstance(weights, types.Array) or weights.ndim != input.ndim:
                raise TypingError(f"fastconv.ndimage.{fname} inside @njit: weights must be an array with as many "
                                  f"dimensions as input ({input.ndim}), got {weights}")  # fmt: skip
            integer_or_tuple(origin, "origin", f"ndimage.{fname}", input.ndim)
            string(method, "method", f"ndimage.{fname}")
            hook = parallel(input.dtype, "BANDS", "BANDS_SERIAL")
            nd, dt = input.ndim, np.dtype(input.dtype.name)
            lift, flipped = _lift[nd], _flip[nd]

            def impl(input, weights, output=None, mode="reflect", cval=0.0, origin=0, axes=None, method="auto"):
                hook()
                w = weights.astype(dt)
                if flip:
                    w = flipped(w)
                w3 = lift(w)
                o = origins(origin, nd)
                lifted = np.zeros(3, np.int64)
                for a in range(nd):
                    taps = w3.shape[3 - nd + a]
                    lifted[3 - nd + a] = -o[a] - (1 - taps % 2) if flip else o[a]
                y = k.correlate3(lift(input), w3, mode, cval, lifted[0], lifted[1], lifted[2])
                return y.reshape(input.shape)

            return delivering(impl, "output", output, f"ndimage.{fname}")

        return overload_correlate

    integers_too(ndimage.correlate, "ndimage")(correlate_impl(False))
    integers_too(ndimage.convolve, "ndimage")(correlate_impl(True))

    def correlate1d_impl(flip):
        fname = "convolve1d" if flip else "correlate1d"

        def overload_correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
            kernels()
            filter_checks(fname, input, output, mode, cval)
            if not isinstance(weights, types.Array) or weights.ndim != 1:
                raise TypingError(f"fastconv.ndimage.{fname} inside @njit: weights must be a 1-D array, got {weights}")
            hook = parallel(input.dtype, "SWEEP", "SWEEP_SERIAL")
            for v, name in ((axis, "axis"), (origin, "origin")):
                if given(v) and not isinstance(v, types.Integer):
                    raise TypingError(f"fastconv.ndimage.{fname} inside @njit: {name} must be an int, got {v}")
            dt = np.dtype(input.dtype.name)

            def impl(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
                hook()
                w = weights.astype(dt)
                if flip:
                    return k.along(input, w[::-1].copy(), axis, mode, cval, -origin - (1 - len(w) % 2))
                return k.along(input, w, axis, mode, cval, origin)

            return delivering(impl, "output", output, f"ndimage.{fname}")

        return overload_correlate1d

    integers_too(ndimage.correlate1d, "ndimage")(correlate1d_impl(False))
    integers_too(ndimage.convolve1d, "ndimage")(correlate1d_impl(True))

    def smoothing_checks(fname, input, output, mode, cval, axes, order=None, radius=None):
        filter_checks(fname, input, output, mode, cval, axes)
        hook = parallel(input.dtype, "SWEEP", "SWEEP_SERIAL")
        if given(order) and not isinstance(order, types.Integer):
            raise TypingError(f"fastconv.ndimage.{fname} inside @njit: order must be an int, got {order}")
        if given(radius) and not absent(radius) and not isinstance(radius, types.Integer):
            raise TypingError(f"fastconv.ndimage.{fname} inside @njit: radius must be an int or None, got {radius}")
        return hook

    _separable = {
        1: njit(lambda x, w0, w1, w2, mode, cval, origin: k.along(x, w0, 0, mode, cval, origin)),
        2: njit(lambda x, w0, w1, w2, mode, cval, origin: k.pair(x, w0, mode, origin, w1, mode, origin, cval, True)),
        3: njit(lambda x, w0, w1, w2, mode, cval, origin: k.pair(k.along(x, w0, 0, mode, cval, origin), w1, mode,
                                                                 origin, w2, mode, origin, cval, True)),
    }  # fmt: skip

    @njit
    def gaussian_or_one(sigma, order, truncate, radius, single):
        """An axis's weights, the identity where sigma is 0 (scipy leaves that axis alone)."""
        if sigma > 1e-15:
            return k.gaussian_weights(sigma, order, truncate, radius, single)
        return np.ones(1)

    # integer and bool results, pass by pass as scipy writes them (:func:`integers_too`'s ``passes``)

    @njit
    def gaussian_passes(input, s, o, mode, cval, truncate, radius, like):
        """gaussian_filter of integer or bool data into ``like``'s dtype: a
        float64 pass per axis, each truncated into that dtype."""
        if len(s) != input.ndim or len(o) != input.ndim:
            raise ValueError("sigma and order must be a number or one per axis")
        x = input.astype(np.float64)
        for a in range(input.ndim):
            w = gaussian_or_one(s[a], int(o[a]), truncate, radius, False)
            x = cast_to(ndimage.correlate1d(x, w, a, None, mode, cval, 0), like, False).astype(np.float64)
        return cast_to(x, like, False)

    @njit
    def uniform_passes(input, size, mode, cval, origin, like):
        """uniform_filter of integer or bool data into ``like``'s dtype: per
        axis the windows' float64 sums over the size, truncated."""
        n = per_axis(size, input.ndim)
        x = input.astype(np.float64)
        for a in range(input.ndim):
            if n[a] > 1:
                sums = ndimage.correlate1d(x, np.ones(int(n[a])), a, None, mode, cval, origin)
                x = cast_to(sums / n[a], like, False).astype(np.float64)
        return cast_to(x, like, False)

    @njit
    def gaussian_sum_passes(input, sigma, mode, cval, truncate, radius, like, derivative, square):
        """gaussian_laplace (the terms' sum) and gaussian_gradient_magnitude
        (``square``: the root of the squares' sum) of integer data: each
        term, square and sum in ``like``'s dtype (wrapping), the root truncated."""
        nd = input.ndim
        s = per_axis(sigma, nd)
        total = cast_to(np.zeros(input.shape), like, False)
        for a in range(nd):
            o = np.zeros(nd)
            o[a] = derivative
            term = gaussian_passes(input, s, o, mode, cval, truncate, radius, like)
            if square:
                term *= term
            total += term
        if square:
            return cast_to(np.sqrt(total.astype(np.float64)), like, False)
        return total

    @integers_too(ndimage.gaussian_filter, "ndimage", (gaussian_passes, "input, per_axis(sigma, input.ndim), "
                  "per_axis(order, input.ndim), mode, cval, truncate, given_or(radius, -1), like"))  # fmt: skip
    def _gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0, radius=None,
                         axes=None):  # fmt: skip
        kernels()
        hook = smoothing_checks("gaussian_filter", input, output, mode, cval, axes)
        integer_or_tuple(order, "order", "ndimage.gaussian_filter", input.ndim)
        nd, single = input.ndim, input.dtype == types.float32
        run = _separable[nd]

        def impl(input, sigma, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0, radius=None, axes=None):
            hook()
            s, o = per_axis(sigma, nd), per_axis(order, nd)
            if len(s) != nd or len(o) != nd:
                raise ValueError("sigma and order must be a number or one per axis")
            r = given_or(radius, -1)
            ws = [gaussian_or_one(s[a], int(o[a]), truncate, r, single) for a in range(nd)]
            ws.append(np.ones(1))
            ws.append(np.ones(1))
            return run(input, ws[0], ws[1], ws[2], mode, cval, 0)

        return delivering(impl, "output", output, "ndimage.gaussian_filter")

    def gaussian_terms(derivative, square):
        fname = "gaussian_laplace" if derivative == 2 else "gaussian_gradient_magnitude"

        def overload_terms(input, sigma, output=None, mode="reflect", cval=0.0, axes=None, truncate=4.0,
                           radius=None):  # fmt: skip
            kernels()
            hook = smoothing_checks(fname, input, output, mode, cval, axes, None, radius)
            nd, single = input.ndim, input.dtype == types.float32
            run = _separable[nd]

            def impl(input, sigma, output=None, mode="reflect", cval=0.0, axes=None, truncate=4.0, radius=None):
                hook()
                s = per_axis(sigma, nd)
                if len(s) != nd:
                    raise ValueError("sigma must be a number or one per axis")
                r = given_or(radius, -1)
                total = np.zeros(input.shape, input.dtype)
                for a in range(nd):
                    ws = [gaussian_or_one(s[b], derivative if b == a else 0, truncate, r, single) for b in range(nd)]
                    ws.append(np.ones(1))
                    ws.append(np.ones(1))
                    term = run(input, ws[0], ws[1], ws[2], mode, cval, 0)
                    if square:
                        total += term * term
                    else:
                        total += term
                if square:
                    return np.sqrt(total)
                return total

            return delivering(impl, "output", output, f"ndimage.{fname}")

        return overload_terms

    _terms = "input, sigma, mode, cval, truncate, given_or(radius, -1), like, {}"
    integers_too(ndimage.gaussian_laplace, "ndimage", (gaussian_sum_passes, _terms.format("2, False")))(
        gaussian_terms(2, False))  # fmt: skip
    integers_too(ndimage.gaussian_gradient_magnitude, "ndimage", (gaussian_sum_passes, _terms.format("1, True")))(
        gaussian_terms(1, True))  # fmt: skip

    @integers_too(ndimage.gaussian_filter1d, "ndimage")
    def _gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0,
                           radius=None):  # fmt: skip
        kernels()
        hook = smoothing_checks("gaussian_filter1d", input, output, mode, cval, None, order, radius)
        single = input.dtype == types.float32

        def impl(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0, radius=None):
            hook()
            w = k.gaussian_weights(float(sigma), order, truncate, given_or(radius, -1), single)
            return k.along(input, w, axis, mode, cval, 0)

        return delivering(impl, "output", output, "ndimage.gaussian_filter1d")

    @integers_too(ndimage.uniform_filter, "ndimage", (uniform_passes, "input, size, mode, cval, origin, like"))
    def _uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, axes=None):
        kernels()
        hook = smoothing_checks("uniform_filter", input, output, mode, cval, axes)
        integer_or_tuple(size, "size", "ndimage.uniform_filter", input.ndim)
        if given(origin) and not isinstance(origin, types.Integer):
            raise TypingError("fastconv.ndimage.uniform_filter inside @njit: origin must be an int here")
        nd = input.ndim
        run = _separable[nd]

        def impl(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, axes=None):
            hook()
            n = per_axis(size, nd)
            ws = [np.full(int(n[a]), 1.0 / n[a]) if n[a] > 1 else np.ones(1) for a in range(nd)]
            ws.append(np.ones(1))
            ws.append(np.ones(1))
            return run(input, ws[0], ws[1], ws[2], mode, cval, origin)

        return delivering(impl, "output", output, "ndimage.uniform_filter")

    @integers_too(ndimage.uniform_filter1d, "ndimage")
    def _uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
        kernels()
        hook = smoothing_checks("uniform_filter1d", input, output, mode, cval, None)

        def impl(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
            hook()
            if size < 1:
                raise ValueError("size must be at least 1")
            return k.along(input, np.full(size, 1.0 / size), axis, mode, cval, origin)

        return delivering(impl, "output", output, "ndimage.uniform_filter1d")

    def difference(smooth):
        fname = "sobel" if smooth[1] == 2.0 else "prewitt"

        def overload_difference(input, axis=-1, output=None, mode="reflect", cval=0.0):
            kernels()
            filter_checks(fname, input, output, mode, cval)
            hook = parallel(input.dtype, "SWEEP", "SWEEP_SERIAL")
            nd = input.ndim

            def impl(input, axis=-1, output=None, mode="reflect", cval=0.0):
                hook()
                a = axis + nd if axis < 0 else axis
                if a < 0 or a >= nd:
                    raise ValueError("axis is out of range for the input's dimensions")
                diff = np.array([-1.0, 0.0, 1.0])
                sm = np.array(smooth)
                if nd == 2:
                    if a == 0:
                        return k.pair(input, diff, mode, 0, sm, mode, 0, cval, True)
                    return k.pair(input, sm, mode, 0, diff, mode, 0, cval, False)
                y = k.along(input, diff, a, mode, cval, 0)
                for b in range(nd):
                    if b != a:
                        y = k.along(y, sm, b, mode, cval, 0)
                return y

            return delivering(impl, "output", output, f"ndimage.{fname}")

        return overload_difference

    integers_too(ndimage.sobel, "ndimage")(difference((1.0, 2.0, 1.0)))
    integers_too(ndimage.prewitt, "ndimage")(difference((1.0, 1.0, 1.0)))

    @integers_too(ndimage.laplace, "ndimage")
    def _laplace(input, output=None, mode="reflect", cval=0.0, axes=None):
        kernels()
        filter_checks("laplace", input, output, mode, cval, axes)
        hook = parallel(input.dtype, "SWEEP", "SWEEP_SERIAL")
        nd = input.ndim

        def impl(input, output=None, mode="reflect", cval=0.0, axes=None):
            hook()
            second = np.array([1.0, -2.0, 1.0])
            y = k.along(input, second, 0, mode, cval, 0)
            for a in range(1, nd):
                y += k.along(input, second, a, mode, cval, 0)
            return y

        return delivering(impl, "output", output, "ndimage.laplace")

    # --- signal ----------------------------------------------------------------------------------------

    _unlift = {
        1: njit(lambda y: y.reshape((y.shape[2],))),
        2: njit(lambda y: y.reshape((y.shape[1], y.shape[2]))),
        3: njit(lambda y: y),
    }
    _reverse = {1: njit(lambda y: y[:, :, ::-1].copy()), 2: njit(lambda y: y[:, ::-1, ::-1].copy()),
                3: njit(lambda y: y[::-1, ::-1, ::-1].copy())}  # fmt: skip

    @njit
    def swap_needed(mode, a, b):
        """scipy's ``_inputs_swap_needed``: "valid" mode with in2 the larger in every axis."""
        if mode != "valid":
            return False
        ok1, ok2 = True, True
        for i in range(3):
            ok1 = ok1 and a.shape[i] >= b.shape[i]
            ok2 = ok2 and b.shape[i] >= a.shape[i]
        if not (ok1 or ok2):
            raise ValueError("For 'valid' mode, one must be at least as large as the other in every dimension")
        return not ok1

    def signal_checks(fname, in1, in2, mode, extra_strings, ndims=(1, 2, 3)):
        """The arrays, their ranks and the string arguments of ``signal.fname``;
        (rank, result dtype)."""
        for v, name in ((in1, "in1"), (in2, "in2")):
            array(v, name, f"signal.{fname}", ndims, integers=True)  # (integers: :func:`integers_too`)
        if in1.ndim != in2.ndim:
            raise TypingError(f"fastconv.signal.{fname} inside @njit: in1 and in2 must have the same number of "
                              f"dimensions, got {in1.ndim} and {in2.ndim}")  # fmt: skip
        string(mode, "mode", f"signal.{fname}")
        for v, name in extra_strings:
            string(v, name, f"signal.{fname}")
        return in1.ndim, result_dtype(in1, in2)

    def signal_impl(flip, two_d):
        fname = ("convolve" if flip else "correlate") + ("2d" if two_d else "")

        def checks(in1, in2, mode, extra_strings):
            return signal_checks(fname, in1, in2, mode, extra_strings, (2,) if two_d else (1, 2, 3))

        def body(nd, dt, hook):
            lift, unlift, reverse = _lift[nd], _unlift[nd], _reverse[3]

            @njit
            def run(in1, in2, mode, code, cval):
                hook()
                a, b = lift(in1.astype(dt)), lift(in2.astype(dt))
                swap = swap_needed(mode, a, b)
                if swap:
                    a, b = b, a
                if flip:
                    y = k.signal_correlate3(a, reverse(b), mode, code, cval, False)
                else:
                    y = k.signal_correlate3(a, b, mode, code, cval, two_d)
                    if swap:
                        y = reverse(y)
                return unlift(y)

            return run

        if two_d:

            def overload_2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
                kernels()
                nd, dt = checks(in1, in2, mode, ((boundary, "boundary"),))
                hook = parallel(dt, "BANDS", "BANDS_SERIAL")
                number(fillvalue, "fillvalue", f"signal.{fname}")
                run = body(nd, dt, hook)

                def impl(in1, in2, mode="full", boundary="fill", fillvalue=0):
                    if boundary == "fill":
                        code = 4
                    elif boundary == "wrap" or boundary == "circular":
                        code = 3
                    elif boundary == "symm" or boundary == "symmetric":
                        code = 0
                    else:
                        raise ValueError("boundary must be 'fill', 'wrap' or 'symm'")
                    return run(in1, in2, mode, code, fillvalue)

                return impl

            return overload_2d

        def overload_nd(in1, in2, mode="full", method="auto"):
            kernels()
            nd, dt = checks(in1, in2, mode, ((method, "method"),))
            hook = parallel(dt, "BANDS", "BANDS_SERIAL")
            run = body(nd, dt, hook)
            entry = python_entry(f"signal.{fname}", dt, nd, " with method='fft'" + _WITHOUT_FFT)
            if compiled_fft():  # (method="fft" compiled: correlation is convolution with in2 reversed, as scipy's)
                fft_run, flipped = fft_body(nd, dt), _flip[nd]

                def with_fft(in1, in2, mode="full", method="auto"):
                    if method == "fft" and not k.routed(in1.size * in2.size):
                        return fft_run(in1, in2 if flip else flipped(in2), mode)
                    if method != "auto" and method != "direct":
                        return entry((in1, in2, mode, method))
                    if method == "auto" and k.routed(in1.size * in2.size):
                        return entry((in1, in2, mode, method))
                    return run(in1, in2, mode, 4, 0.0)

                return with_fft

            def impl(in1, in2, mode="full", method="auto"):
                if method != "auto" and method != "direct":
                    return entry((in1, in2, mode, method))  # (FFT: the Python path's)
                if method == "auto" and k.routed(in1.size * in2.size):  # (serial code: the dispatcher, FFT too)
                    return entry((in1, in2, mode, method))
                return run(in1, in2, mode, 4, 0.0)

            return impl

        return overload_nd

    integers_too(signal.convolve, "signal")(signal_impl(True, False))
    integers_too(signal.correlate, "signal")(signal_impl(False, False))
    integers_too(signal.convolve2d, "signal")(signal_impl(True, True))
    integers_too(signal.correlate2d, "signal")(signal_impl(False, True))

    def compiled_fft() -> bool:
        """Whether rocket-fft (``pip install "fastconv[njit]"``) is there: it
        gives compiled code NumPy's FFT (its own ``numba_extensions`` entry
        point registers it), and the FFT convolutions then run compiled."""
        import importlib.util

        return importlib.util.find_spec("rocket_fft") is not None

    def fft_body(nd, dt):
        """scipy.signal.fftconvolve of two ``nd``-D arrays as ``dt``, compiled:
        ``injit.fft_convolve3``, whose FFT (rocket-fft's ``numpy.fft``) is a
        build called by address, put in the table here."""
        lift, unlift = _lift[nd], _unlift[nd]
        hook = parallel(dt, "FFT_FULL", "BANDS", "BANDS_SERIAL")  # (the direct correlation where it wins)

        @njit
        def run(in1, in2, mode):
            hook()
            return unlift(k.fft_convolve3(lift(in1.astype(dt)), lift(in2.astype(dt)), mode))

        return run

    def fft_impl(fname):
        """``fftconvolve``/``oaconvolve``: compiled (:func:`fft_body`) where
        rocket-fft is installed, in a ``prange`` body too; from serial code
        a large one (``injit.routed``) runs the Python path's FFT on Numba's
        threads.  Without rocket-fft: the Python path's entry, from serial
        code only."""

        def overload_fft(in1, in2, mode="full", axes=None):
            kernels()
            nd, dt = signal_checks(fname, in1, in2, mode, ())
            unsupported(axes, "axes", f"signal.{fname}", "None (every axis)")
            entry = python_entry(f"signal.{fname}", dt, nd, _WITHOUT_FFT)
            if not compiled_fft():

                def through_python(in1, in2, mode="full", axes=None):
                    return entry((in1, in2, mode))

                return through_python
            run = fft_body(nd, dt)

            def impl(in1, in2, mode="full", axes=None):
                full = 1
                for i in range(nd):
                    full *= in1.shape[i] + in2.shape[i] - 1
                if k.routed(64 * full):  # (~the three FFTs' work: from 131k points Numba's threads pay)
                    return entry((in1, in2, mode))
                return run(in1, in2, mode)

            return impl

        return overload_fft

    integers_too(signal.fftconvolve, "fft")(fft_impl("fftconvolve"))
    integers_too(signal.oaconvolve, "fft")(fft_impl("oaconvolve"))

    @overload(signal.choose_conv_method)
    def _choose_conv_method(in1, in2, mode="full", measure=False):
        raise TypingError("fastconv.signal.choose_conv_method is not callable from compiled code: compiled code "
                          "always runs 'direct'")  # fmt: skip
