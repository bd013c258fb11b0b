"""A dependency-free progress bar for the ``fastconv`` command.

On a terminal it redraws one line (``\\r``); when the output is a file or a
pipe (CI logs) it prints one line per step instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "bench") as bar: bar.step("case name")`` -- call
    :meth:`step` *before* each piece of work, so that compilation, which
    happens inside the first call of each kernel, is shown while it runs."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 24) -> None:
        self.total = max(1, int(total))
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.start = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, text: str) -> str:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        return f"{self.label} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s {text}"

    def step(self, text: str) -> None:
        """Start the next piece of work, described by ``text``."""
        msg = self.line(text)
        self.done = min(self.total, self.done + 1)
        if self.tty:
            self.stream.write("\r\033[K" + msg[:200])
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.done = self.total
        if self.tty:
            self.stream.write("\r\033[K" + self.line("done") + "\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
