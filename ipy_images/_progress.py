"""Progress of a command-line run on stderr: images done, time spent, time left.

Local runs take seconds per image, so silence reads as a hang. On a terminal a bar is
redrawn in place (twice a second, so the clock moves before the first image); elsewhere
(a log, CI, a pipe) a plain line is written as each image arrives, if the caller wants one.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Progress"]

_BAR_WIDTH = 24  # characters between the brackets
_REDRAW_SECONDS = 0.5


class Progress:
    """Counts images towards `total`; use as a context manager around the run.

    `lines` asks for a plain line per image when `stream` is not a terminal; on a terminal
    the bar is always drawn. `on_image(label)` gives the client's `on_image` callback.
    """

    def __init__(
        self, total: int, *, prefix: str, lines: bool, stream: TextIO | None = None
    ) -> None:
        self.total = total
        self.prefix = prefix
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self._terminal = self._stream.isatty()
        self._lines = lines and not self._terminal
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self._terminal:
            self._draw()
            self._ticker = threading.Thread(target=self._tick, name="ipy-images-progress")
            self._ticker.daemon = True
            self._ticker.start()
        elif self._lines:
            self._write(f"{self.prefix}: making {self.total} images on this machine\n")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._terminal:
            with self._lock:
                self._draw()
                self._write("\n")

    def on_image(self, label: str = "") -> Callable[[int, Any], None]:
        """A callback for `create_variation(on_image=...)` counting one image per call."""

        def image_ready(index: int, data: Any) -> None:
            with self._lock:
                self.done += 1
                if self._terminal:
                    self._draw()
                elif self._lines:
                    name = f" ({label} #{index + 1})" if label else ""
                    self._write(f"{self.prefix}: {self._status()}{name}\n")

        return image_ready

    def _status(self) -> str:
        elapsed = time.monotonic() - self._started
        counted = f"{self.done}/{self.total} images · {elapsed:.0f} s elapsed"
        if self.done >= self.total:
            return f"{counted} · done"
        if self.done == 0:
            return f"{counted} · estimating time left"
        left = elapsed / self.done * (self.total - self.done)
        return f"{counted} · about {left:.0f} s left"

    def _draw(self) -> None:
        filled = _BAR_WIDTH * min(self.done, self.total) // max(self.total, 1)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        # \r and clearing to the end of the line: the bar is redrawn over itself
        self._write(f"\r{self.prefix}: [{bar}] {self._status()}\x1b[K")

    def _tick(self) -> None:
        while not self._stopped.wait(_REDRAW_SECONDS):
            with self._lock:
                self._draw()

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
