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
    """``make(a)``, remembered for the values of the last array seen -- or
    the last ``entries`` distinct ones (a filter whose passes alternate two
    sets of weights through one executor) -- compared by their bytes, so
    values changed in the same buffer are seen; arrays above ``limit`` bytes
    are not kept.  ``make`` must return something that does not alias ``a``
    (a later call may pass another array with the same values while ``a``
    itself has changed).  Safe to share between threads: the entries are
    replaced as a whole."""

    __slots__ = ("entries", "last", "limit", "make", "older")

    def __init__(self, make: Callable[[np.ndarray], Any], limit: int = KEEP_BYTES, entries: int = 1) -> None:
        self.make = make
        self.limit = limit
        self.entries = entries
        self.last: tuple[bytes, Any] | None = None
        self.older: tuple = ()

    def __call__(self, a: np.ndarray) -> Any:
        if a.nbytes > self.limit:
            return self.make(a)
        raw = a.tobytes()
        last = self.last
        if last is not None and last[0] == raw:
            return last[1]
        for entry in self.older:
            if entry[0] == raw:
                if last is not None:
                    self.older = (*(e for e in self.older if e is not entry), last)
                self.last = entry
                return entry[1]
        made = self.make(a)
        if last is not None and self.entries > 1:
            self.older = (last, *self.older)[: self.entries - 1]
        self.last = (raw, made)
        return made
