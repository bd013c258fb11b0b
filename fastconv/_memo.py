"""What a repeated call derives from a small array's values, kept while
the values stay: the kernel-ready weights of a filter, their taps, the
packed weights of the direct convolution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: arrays up to this many bytes are kept with what was made from them (the
#: repeated-call caches must not hold large arrays; a large array's own
#: arithmetic dwarfs making its derivative again)
KEEP_BYTES = 1 << 16


class ByValue:
    """``make(a)``, remembered for the values of the last array seen
    (compared by their bytes, so values changed in the same buffer are
    seen); arrays above ``limit`` bytes are not kept.  ``make`` must return
    something that does not alias ``a`` (a later call may pass another
    array with the same values while ``a`` itself has changed).  Safe to
    share between threads: the last entry is replaced as a whole."""

    __slots__ = ("last", "limit", "make")

    def __init__(self, make: Callable[[np.ndarray], Any], limit: int = KEEP_BYTES) -> None:
        self.make = make
        self.limit = limit
        self.last: tuple[bytes, Any] | None = None

    def __call__(self, a: np.ndarray) -> Any:
        if a.nbytes > self.limit:
            return self.make(a)
        raw = a.tobytes()
        last = self.last
        if last is not None and last[0] == raw:
            return last[1]
        made = self.make(a)
        self.last = (raw, made)
        return made
