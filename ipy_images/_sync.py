"""Running the async client from synchronous code, including inside a Jupyter cell.

A cell already runs inside the kernel's event loop, where `asyncio.run` fails. So every
synchronous call runs its coroutine on one long-lived event loop in a daemon thread
(the pattern of `jupyter_core.utils.run_sync`), and waits for it. Ctrl-C (a kernel
interrupt) cancels the coroutine, so in-flight requests are aborted, then re-raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared event loop thread, started on first use."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="ipy-images-loop", daemon=True).start()
            _loop = loop
        return _loop


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion from synchronous code and return its result."""
    loop = background_loop()
    if _running_loop() is loop:
        coroutine.close()
        # Waiting here would block the very loop that has to run the coroutine.
        raise RuntimeError(
            "a synchronous ipy_images call was made on its own event loop (in a widget "
            "callback or an on_image function); await the async form (e.g. avary) instead."
        )
    finished = threading.Event()

    async def run() -> T:
        try:
            return await coroutine
        finally:
            finished.set()

    future = asyncio.run_coroutine_threadsafe(run(), loop)
    try:
        # A short timeout keeps the main thread interruptible by Ctrl-C on every platform.
        while True:
            with contextlib.suppress(concurrent.futures.TimeoutError):
                return future.result(timeout=0.2)
    except KeyboardInterrupt:
        # The future reads as cancelled at once; wait until the task has really unwound
        # (connections closed, engine stopped) before the interrupt goes on.
        future.cancel()
        finished.wait(timeout=5)
        raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
