"""The live view of a run, shared by the magic and the form: a status line over one grid
per source, growing as images arrive.

`add` is called on the client's event-loop thread; it appends one thumbnail and calls
`on_change`, which sends a display update (magic) or sets a widget's value (form); both
are safe from any thread.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .grid import ComparisonGrid, ImageGrid
from .models import caption

if TYPE_CHECKING:
    from .models import ImageData, ImagesResponse, VariationRequest
    from .sources import PreparedImage


class LiveGrid:
    """`title · done of total images · state` over the grids of every source."""

    def __init__(
        self,
        title: str,
        labels: Sequence[str],
        prepared: Sequence[PreparedImage],
        request: VariationRequest,
        backend: str,
        *,
        thumb_size: int = 256,
        columns: int | None = None,
        on_change: Callable[[LiveGrid], None] | None = None,
    ) -> None:
        self.title, self.labels, self.state = title, list(labels), "generating…"
        self.started = time.monotonic()
        self.total, self.done = request.n * len(prepared), 0
        self.thumb_size, self.columns, self.on_change = thumb_size, columns, on_change
        self.grids = [
            ImageGrid(
                original=p.image,
                thumb_size=thumb_size,
                columns=columns,
                caption=caption(backend, request, p),
            )
            for p in prepared
        ]

    @property
    def view(self) -> ImageGrid | ComparisonGrid:
        if len(self.grids) == 1:
            return self.grids[0]
        return ImageGrid.compare(list(zip(self.labels, self.grids, strict=True)))

    def status(self) -> str:
        return f"{self.title} · {self.done} of {self.total} images · {self.state}"

    def to_html(self) -> str:
        status = html.escape(self.status())
        head = f'<div style="font-size:13px;font-weight:bold;margin:4px 0">{status}</div>'
        return head + self.view.to_html()

    def bundle(self) -> dict[str, str]:
        return {"text/plain": self.status(), "text/html": self.to_html()}

    def add(self, row: int, index: int, data: ImageData) -> None:
        self.grids[row].append(data.image, f"#{index + 1}")
        self.done += 1
        self.changed()

    def finish(self, responses: Sequence[ImagesResponse | None], state: str) -> None:
        """Show the final state and the time taken; each response is redrawn in index order
        with its full caption (created time, tokens), since images may arrive out of order."""
        for row, response in enumerate(responses):
            if response is not None:
                self.grids[row] = response.to_grid(thumb_size=self.thumb_size, columns=self.columns)
        self.state = f"{state} in {time.monotonic() - self.started:.1f} s"
        self.changed()

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)
