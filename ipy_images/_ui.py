"""What the widget front ends, the form and the explorer, share: their status lines, and
their runs, one at a time on the background loop, with a Cancel button."""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from ._sync import background_loop

T = TypeVar("T")

_ERROR_COLOUR = "#d32f2f"


def line(text: str, *, error: bool = False, quiet: str = "opacity:0.75") -> str:
    """`text` as one line of HTML: `quiet`-styled, or in bold red for an `error`."""
    style = f"color:{_ERROR_COLOUR};font-weight:bold" if error else quiet
    return f'<div style="{style};line-height:1.4">{html.escape(text)}</div>'


class OneRunAtATime(Generic[T]):
    """A front end's runs: `future` is the latest's, `running` whether it is still going.

    Unlike `asyncio.run_coroutine_threadsafe`, the run's task is kept, so Cancel reaches it;
    and the future settles only after `settled(task)` has reset the front end, so code that
    waits on it sees the final state. The reset is a done callback rather than a `finally`,
    because a task cancelled before its first step never runs its body at all. Cancelling
    the future cancels the run.
    """

    future: concurrent.futures.Future[T] | None = None
    _task: asyncio.Task[T] | None = None

    @property
    def running(self) -> bool:
        return self.future is not None and not self.future.done()

    def cancel(self) -> None:
        """Stop the running run, if any; the images that already arrived stay in its row."""
        # Runs on the loop after the task was created: `_start_run` schedules creation first.
        background_loop().call_soon_threadsafe(
            lambda: self._task is not None and self._task.cancel()
        )

    def _start_run(
        self, run: Callable[[], Coroutine[Any, Any, T]], settled: Callable[[asyncio.Task[T]], None]
    ) -> concurrent.futures.Future[T]:
        """Start `run()` as a task on the background loop; returns (and keeps) its future."""
        loop = background_loop()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def settle(task: asyncio.Task[T]) -> None:
            settled(task)
            if future.cancelled() or task.cancelled():
                future.cancel()  # nothing new if its holder cancelled it
                # Only this wakes `concurrent.futures.wait` and `as_completed` (an executor's
                # step, and no executor runs this future): else they wait out their timeout.
                future.set_running_or_notify_cancel()
            elif task.exception() is not None:
                future.set_exception(task.exception())
            else:
                future.set_result(task.result())

        def start() -> None:
            self._task = loop.create_task(run())
            self._task.add_done_callback(settle)

        loop.call_soon_threadsafe(start)
        future.add_done_callback(lambda done: self.cancel() if done.cancelled() else None)
        self.future = future
        return future
