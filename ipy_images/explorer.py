"""`VariationExplorer`: inspect variations at full resolution, compare two, vary the best.

    >>> explorer = response.explore()      # or ii.VariationExplorer(response, better)
    >>> explorer                           # one row of thumbnails per generation
    >>> explorer.inspect("1.2")            # what clicking thumbnail 1.2 does
    >>> explorer.compare("1.2", "2.1", position=40)
    >>> explorer.vary()                    # "Vary this": a new row under 1.2
    >>> explorer.save_selected("picked")   # the ticked images, with their lineage

Images are labelled `row.index` ("2.3" is #3 of row 2); first sources are "source".
Built from core ipywidgets only, with no front-end code, so it works wherever ipywidgets
do (JupyterLab, Notebook 7, VS Code, Colab) without loading anything. Thumbnails go to
the browser display-sized (JPEG for photos); only the inspected image goes at full
resolution, as PNG. The A/B wipe is composed in the kernel with numpy at full resolution
and sent as JPEG; slider moves are coalesced so only the newest position is rendered.
Runs go on the shared background loop (`ipy_images._sync`), as the form's do, so the
kernel stays free; all their widget updates happen on that loop's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ._config import key_from_env
from ._encode import encode
from ._sync import background_loop
from ._ui import OneRunAtATime, line
from .errors import APIError, InvalidParameterError, IpyImagesError, one_line
from .grid import _thumbnail
from .models import CLIENT_OPTIONS, ImageData, ImagesResponse, ResultImage

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["VariationExplorer", "result_actions"]

WIPE_DEBOUNCE = 0.03  # s; slider moves closer together than this are rendered once
_WIPE_JPEG_QUALITY = 90
# Full-size views are shown 1:1, shrunk only to fit the notebook's width (aspect kept).
_FIT_WIDTH = {"max_width": "100%", "height": "auto"}
_SOURCE = "source"
_ORIGINAL_COLOUR = "#e8710a"  # as in the grids
_SELECTED_COLOUR = "#1976d2"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _line(text: str, *, error: bool = False) -> str:
    return line(text, error=error, quiet="opacity:0.75;font-size:12px")


class _Cell:
    """One image of the tree: its thumbnail, its inspect buttons and its save tick.

    Core widgets have no clickable image, so a transparent button of the thumbnail's size
    is laid over it (a negative top margin); the label button below does the same.
    """

    def __init__(
        self, label: str, encoded: bytes, image: Image.Image, source: _Cell | None, thumb_size: int
    ) -> None:
        self.label = label
        self.encoded = encoded  # as the backend sent it
        self.image = image  # full resolution
        self.source = source  # the image it varied; None for a first source
        self.result: ResultImage | None = None  # set once its response is complete
        thumb = _thumbnail(image, thumb_size, "auto")
        self.thumb = widgets.Image(
            value=thumb.content, format=thumb.format, width=thumb.width, height=thumb.height
        )
        tooltip = f"Inspect {label} at full resolution"
        width, height = f"{thumb.width}px", f"{thumb.height}px"
        layout = widgets.Layout(width=width, height=height, margin=f"-{height} 0 0 0", padding="0")
        self.overlay = widgets.Button(
            tooltip=tooltip, style={"button_color": "transparent"}, layout=layout
        )
        self.overlay.add_class("ipy-images-thumb-button")
        self.button = widgets.Button(
            description=label,
            tooltip=tooltip,
            layout=widgets.Layout(width=f"{max(thumb.width - 28, 48)}px"),
        )
        self.selected = widgets.Checkbox(
            value=False, indent=False, tooltip=f"Save {label}", layout=widgets.Layout(width="24px")
        )
        self.widget = widgets.VBox(
            [self.thumb, self.overlay, widgets.HBox([self.button, self.selected])],
            layout=widgets.Layout(width=f"{max(thumb.width, 76) + 4}px", margin="0 6px 6px 0"),
        )
        self.widget.add_class("ipy-images-cell")
        self.mark(selected=False)

    @functools.cached_property
    def png(self) -> bytes:
        """The full-resolution PNG: the backend's own bytes when they are PNG already."""
        if self.encoded.startswith(_PNG_SIGNATURE):
            return self.encoded
        return encode(self.image, "png")

    def mark(self, *, selected: bool) -> None:
        """Outline the inspected image in blue, first sources in the grids' orange."""
        colour = _SELECTED_COLOUR if selected else _ORIGINAL_COLOUR if self.source is None else ""
        self.widget.layout.border = f"2px solid {colour}" if colour else "2px solid transparent"


class _Row:
    """One generation: the response (once complete) and the cells of its images."""

    def __init__(self, number: int, parent: _Cell | None, depth: int, total: int) -> None:
        self.number = number
        self.parent = parent
        self.depth = depth
        self.total = total
        self.response: ImagesResponse | None = None
        self.cells: dict[int, _Cell] = {}
        self.source_cell: _Cell | None = None
        self.heading = widgets.HTML()
        self.strip = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox(
            [self.heading, self.strip], layout=widgets.Layout(margin=f"0 0 8px {24 * depth}px")
        )
        self.widget.add_class("ipy-images-row")

    def show(self, state: str) -> None:
        origin = f" · from {self.parent.label}" if self.parent else ""
        count = f"{len(self.cells)} of {self.total}"
        self.heading.value = _line(f"Row {self.number}{origin} · {count} images · {state}")
        first = [self.source_cell.widget] if self.source_cell else []
        self.strip.children = first + [self.cells[i].widget for i in sorted(self.cells)]


class _Latest:
    """Calls `render(value)` for the newest requested value only.

    Requests that arrive while a render runs, or within `delay` seconds, collapse into
    one, so a fast slider drag costs a few renders rather than one per pixel moved.
    Renders run in a worker thread started from the background loop.
    """

    _NOTHING = object()

    def __init__(self, render: Callable[[Any], None], delay: float) -> None:
        self._render = render
        self._delay = delay
        self._lock = threading.Lock()
        self._pending: Any = self._NOTHING
        self._task: asyncio.Task[None] | None = None
        self.renders = 0

    def request(self, value: Any) -> None:
        with self._lock:
            idle = self._pending is self._NOTHING and self._task is None
            self._pending = value
        if idle:
            loop = background_loop()
            loop.call_soon_threadsafe(self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None:
            self._task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._delay)
                with self._lock:
                    value, self._pending = self._pending, self._NOTHING
                    if value is self._NOTHING:
                        self._task = None
                        return
                await asyncio.to_thread(self._render, value)
                self.renders += 1
        finally:
            with self._lock:
                self._task = None


class Wipe:
    """The A/B wipe of two images at full resolution: A left of the line, B right of it.

    The smaller of the two is resized to the larger's size once, when the pair is chosen;
    each frame then costs one numpy copy and one JPEG encoding.
    """

    def __init__(self, a: Image.Image, b: Image.Image) -> None:
        import numpy as np
        from PIL import Image

        size = max(a.size, b.size, key=lambda wh: wh[0] * wh[1])
        a, b = (
            p.convert("RGB").resize(size, Image.Resampling.LANCZOS)
            if p.size != size
            else p.convert("RGB")
            for p in (a, b)
        )
        self.a, self.b = np.asarray(a), np.asarray(b)

    def frame(self, position: float) -> np.ndarray:
        """The composite with a white line at `position` percent of the width."""
        width = self.a.shape[1]
        split = min(width, max(0, round(width * position / 100)))
        frame = self.b.copy()
        frame[:, :split] = self.a[:, :split]
        frame[:, max(split - 1, 0) : split + 1] = 255
        return frame

    def jpeg(self, position: float) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(self.frame(position)).save(
            buffer, "JPEG", quality=_WIPE_JPEG_QUALITY, subsampling=0
        )
        return buffer.getvalue()


class VariationExplorer(OneRunAtATime[ImagesResponse], widgets.VBox):
    """Rows of thumbnails, one per generation, each under the image it varied.

    Click a thumbnail (or its label) to see it at full resolution beside its source; pick any
    two as A and B and drag the wipe; "Vary this" makes variations of the inspected
    image with the options that made it (n from the box), as a new row under it; tick
    images and "Save selected" writes them with their lineage.

    Args:
        responses: the responses to show, with every generation of their lineage.
        thumb_size: largest side of the thumbnails, in pixels.

    Attributes:
        selected: label of the inspected image. future: the latest "Vary this" run.
    """

    def __init__(self, *responses: ImagesResponse, thumb_size: int = 128) -> None:
        if not responses or not all(isinstance(r, ImagesResponse) for r in responses):
            raise InvalidParameterError(
                "VariationExplorer takes one or more ImagesResponse objects, e.g. "
                "VariationExplorer(response) or response.explore()."
            )
        if isinstance(thumb_size, bool) or not isinstance(thumb_size, int) or thumb_size < 16:
            raise InvalidParameterError(
                f"thumb_size must be a whole number of pixels, at least 16, not {thumb_size!r}."
            )
        self.thumb_size = thumb_size
        self.selected: str | None = None
        self._rows: list[_Row] = []
        self._cells: dict[str, _Cell] = {}
        self._wipe: Wipe | None = None

        self.rows = widgets.VBox()
        self.source_view = widgets.Image(format="jpeg", layout=_FIT_WIDTH)
        self.source_caption = widgets.HTML()
        self.inspected = widgets.Image(format="png", layout=_FIT_WIDTH)
        self.inspected_caption = widgets.HTML(
            _line("Click a thumbnail to see it at full resolution.")
        )
        self.inspected.add_class("ipy-images-inspected")
        self.vary_button = widgets.Button(
            description="Vary this", icon="random", button_style="primary", disabled=True
        )
        first_n = responses[0].request.n if responses[0].request else 4
        self.n = widgets.BoundedIntText(
            value=min(first_n, 10), min=1, max=10, description="n",
            style={"description_width": "20px"}, layout=widgets.Layout(width="90px"),
        )  # fmt: skip
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1)
        self.status = widgets.HTML()
        self.folder = widgets.Text(value="explored", description="folder")
        self.save_button = widgets.Button(description="Save selected", icon="save")
        self.a = widgets.Dropdown(description="A", layout=widgets.Layout(width="160px"))
        self.b = widgets.Dropdown(description="B", layout=widgets.Layout(width="160px"))
        self.position = widgets.FloatSlider(
            value=50, min=0, max=100, step=0.5, description="wipe",
            continuous_update=True, readout_format=".0f",
        )  # fmt: skip
        self.position.add_class("ipy-images-wipe-slider")
        self.wipe = widgets.Image(format="jpeg", layout=_FIT_WIDTH)
        self.wipe.add_class("ipy-images-wipe")
        self._latest = _Latest(self._render_wipe, WIPE_DEBOUNCE)

        super().__init__(
            [
                self.rows,
                widgets.HBox(
                    [self.vary_button, self.n, self.cancel_button, self.progress, self.status],
                    layout=widgets.Layout(align_items="center"),
                ),
                widgets.HBox(
                    [
                        widgets.VBox(
                            [self.source_caption, self.source_view],
                            layout=widgets.Layout(margin="0 12px 0 0"),
                        ),
                        widgets.VBox([self.inspected_caption, self.inspected]),
                    ],
                    layout=widgets.Layout(flex_flow="row wrap", justify_content="flex-start"),
                ),
                widgets.HBox([self.a, self.b, self.position]),
                self.wipe,
                widgets.HBox([self.folder, self.save_button]),
            ]
        )
        self.add_class("ipy-images-explorer")
        self.rows.add_class("ipy-images-rows")
        for response in responses:
            for generation in response.lineage:
                self._add_response(generation)
        self.vary_button.on_click(lambda _: self.vary())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.save_button.on_click(lambda _: self._save_clicked())
        self.a.observe(self._on_pair, names="value")
        self.b.observe(self._on_pair, names="value")
        self.position.observe(lambda change: self._latest.request(change["new"]), names="value")
        labels = self.labels
        if labels:
            self.compare(labels[0], labels[min(1, len(labels) - 1)])

    def __repr__(self) -> str:
        images = sum(len(row.cells) for row in self._rows)
        rows = len(self._rows)
        return f"VariationExplorer({rows} row{'' if rows == 1 else 's'}, {images} images)"

    @property
    def responses(self) -> list[ImagesResponse]:
        """The complete responses shown, in row order."""
        return [row.response for row in self._rows if row.response is not None]

    @property
    def labels(self) -> list[str]:
        """Every image's label: first sources, then row by row."""
        return sorted(self._cells, key=_label_order)

    def __getitem__(self, label: str) -> Image.Image:
        """The image labelled `label` ("source", "1.2"...), at full resolution."""
        return self._cell(label).image

    # --- rows -----------------------------------------------------------------------------

    def _add_response(self, response: ImagesResponse) -> None:
        if any(row.response is response for row in self._rows):
            return
        parent = self._parent_cell(response)
        row = self._new_row(parent, len(response.data))
        self._complete(row, response)

    def _parent_cell(self, response: ImagesResponse) -> _Cell | None:
        for row in self._rows:
            if row.response is not None and row.response is response.parent:
                return row.cells.get(response.parent_index or 0)
        return None

    def _new_row(self, parent: _Cell | None, total: int) -> _Row:
        """A row placed after its parent's row and that row's descendants."""
        parent_row = next((r for r in self._rows if parent in r.cells.values()), None)
        depth = 0 if parent_row is None else parent_row.depth + 1
        row = _Row(len(self._rows) + 1, parent, depth, total)
        place = len(self._rows)
        if parent_row is not None:
            place = self._rows.index(parent_row) + 1
            while place < len(self._rows) and self._rows[place].depth > parent_row.depth:
                place += 1
        self._rows.insert(place, row)
        self.rows.children = tuple(r.widget for r in self._rows)
        return row

    def _add_cell(self, row: _Row, index: int, data: ImageData) -> _Cell:
        source = row.parent or row.source_cell
        label = f"{row.number}.{index + 1}"
        cell = _Cell(label, data.content or b"", data.image, source, self.thumb_size)
        row.cells[index] = cell
        self._register(cell)
        return cell

    def _register(self, cell: _Cell) -> None:
        self._cells[cell.label] = cell
        for button in (cell.overlay, cell.button):
            button.on_click(lambda _, label=cell.label: self.inspect(label))
        options = self.labels
        for dropdown in (self.a, self.b):
            value = dropdown.value
            dropdown.options = options
            dropdown.value = value if value in options else None

    def _complete(self, row: _Row, response: ImagesResponse, state: str = "done") -> None:
        """Fill `row` from `response` (images that arrived early keep their cells)."""
        row.response = response
        if row.parent is None and response.source is not None and row.source_cell is None:
            roots = sum(1 for r in self._rows if r.source_cell is not None)
            label = _SOURCE if roots == 0 else f"{_SOURCE} {roots + 1}"
            source = response.source
            row.source_cell = _Cell(label, source.png, source.image, None, self.thumb_size)
            self._register(row.source_cell)
        for index, item in enumerate(response.data):
            cell = row.cells.get(index) or self._add_cell(row, index, item)
            cell.result = response[index]
        row.total = len(response.data)
        row.show(state)
        self._refresh_actions()

    # --- inspecting and comparing ---------------------------------------------------------

    def _cell(self, label: str) -> _Cell:
        try:
            return self._cells[label]
        except KeyError:
            known = ", ".join(self._cells)
            raise InvalidParameterError(
                f"no image labelled {label!r}; the labels are {known}."
            ) from None

    def inspect(self, label: str) -> None:
        """Show image `label` at full resolution (PNG) beside the image it varied."""
        cell = self._cell(label)
        previous = self._cells.get(self.selected or "")
        if previous is not None:
            previous.mark(selected=False)
        cell.mark(selected=True)
        self.selected = label
        width, height = cell.image.size
        self.inspected.value = cell.png
        self.inspected.width = str(width)
        self.inspected_caption.value = _line(f"{label} · {width}x{height} · full resolution")
        if cell.source is None:
            self.source_view.value = b""
            self.source_caption.value = _line("a first source")
        else:
            # Display-sized (never larger than the inspected one), shown as large.
            small = _thumbnail(cell.source.image, max(width, height), "auto")
            self.source_view.format = small.format
            self.source_view.value = small.content
            self.source_view.width = str(width)
            self.source_caption.value = _line(f"its source: {cell.source.label}")
        self._refresh_actions()

    def compare(self, a: str, b: str, *, position: float | None = None) -> None:
        """Wipe between images `a` (left) and `b` (right), the line at `position` percent."""
        self._cell(a), self._cell(b)
        with self.hold_trait_notifications():
            self.a.value, self.b.value = a, b
        self._on_pair(None)
        if position is not None:
            self.position.value = position

    def _on_pair(self, change: Any) -> None:
        if self.a.value is None or self.b.value is None:
            return
        self._wipe = Wipe(self[self.a.value], self[self.b.value])
        self._render_wipe(self.position.value)

    def _render_wipe(self, position: float) -> None:
        wipe = self._wipe
        if wipe is None:
            return
        self.wipe.value = wipe.jpeg(position)
        self.wipe.width = str(wipe.a.shape[1])

    # --- varying ----------------------------------------------------------------------------

    def _refresh_actions(self, *, running: bool | None = None) -> None:
        running = self.running if running is None else running
        cell = self._cells.get(self.selected or "")
        self.vary_button.disabled = running or cell is None or cell.result is None
        self.cancel_button.disabled = not running

    def vary(self, label: str | None = None) -> concurrent.futures.Future[ImagesResponse]:
        """Start variations of image `label` (default: the inspected one), `n` from the box.

        Returns at once; the new row fills in as images arrive. While a run is going, this
        returns that run's future; Cancel keeps the images that already arrived.
        """
        if self.running and self.future is not None:
            return self.future
        cell = self._cell(label or self.selected or "")
        picked = cell.result
        if picked is None:
            raise InvalidParameterError(
                f"{cell.label} is a first source, or its run is not complete; "
                "vary one of the generated images."
            )
        self.progress.value, self.progress.max = 0, self.n.value
        self.status.value = _line(f"Varying {cell.label}…")
        self._refresh_actions(running=True)

        def settled(task: asyncio.Task[ImagesResponse]) -> None:
            # The buttons first, so whoever waits on the future sees the final state.
            self._refresh_actions(running=False)
            if task.cancelled():
                self.status.value = _line("Cancelled.")

        return self._start_run(lambda: self._run(cell, picked, self.n.value), settled)

    async def _run(self, cell: _Cell, picked: ResultImage, n: int) -> ImagesResponse:
        from .client import AsyncVariationClient

        options = picked.response.vary_options(n=n)
        client_options = {k: options.pop(k) for k in CLIENT_OPTIONS if k in options}
        row = self._new_row(cell, n)
        row.show("preparing…")
        arrived: dict[int, ImageData] = {}
        client = request = prepared = None

        def on_image(index: int, data: ImageData) -> None:
            arrived[index] = data
            self._add_cell(row, index, data)
            self.progress.value = len(arrived)
            row.show("generating…")

        try:
            async with AsyncVariationClient(**client_options) as client:
                request = client.build_request(**options)
                prepared = await client.prepare(picked, fit=request.fit)
                row.show("generating…")
                response = await client.generate(prepared, request, on_image=on_image)
        except (asyncio.CancelledError, Exception) as exc:
            partial = exc.partial if isinstance(exc, APIError) else None
            if partial is None and arrived and client and request and prepared:
                # Keep what arrived as a response of its own, so it can be varied and saved.
                partial = ImagesResponse(
                    created=int(time.time()),
                    data=[arrived[i] for i in sorted(arrived)],
                    backend=client.backend,
                    request=dataclasses.replace(request, n=len(arrived)),
                    source=prepared,
                    client_options=client.options,
                )
            cancelled = isinstance(exc, asyncio.CancelledError)
            if partial is not None:
                self._replace_cells(row, partial, "cancelled" if cancelled else "failed")
            else:
                row.show("cancelled" if cancelled else "failed")
            if not cancelled:
                self.status.value = _line(one_line(exc, key_from_env()), error=True)
            raise
        self._complete(row, response)
        self.status.value = _line(f"Done: {len(response.data)} variations of {cell.label}.")
        return response

    def _replace_cells(self, row: _Row, partial: ImagesResponse, state: str) -> None:
        """Renumber the cells of an interrupted row by their place in `partial`."""
        for old in row.cells.values():
            self._cells.pop(old.label, None)
        row.cells = {}
        self._complete(row, partial, state)

    # --- saving ---------------------------------------------------------------------------

    def _save_clicked(self) -> None:
        try:
            folder = self.save_selected(self.folder.value)
        except (IpyImagesError, OSError) as exc:
            self.status.value = _line(one_line(exc), error=True)
        else:
            self.status.value = _line(f"Saved to {folder}.")

    def save_selected(self, directory: str | Path) -> Path:
        """Write the ticked images as PNG, with `metadata.json` giving each one's lineage,
        into a new `run-NNN` folder of `directory` (all or nothing); returns that folder."""
        from ._files import write_run

        chosen = [cell for cell in self._cells.values() if cell.selected.value]
        if not chosen:
            raise InvalidParameterError("no image is ticked: tick the box beside a label.")
        files: dict[str, bytes] = {}
        images: dict[str, Any] = {}
        for cell in chosen:
            name = f"image-{cell.label.replace(' ', '-')}.png"
            files[name] = cell.png
            if cell.result is None:
                row = next(r for r in self._rows if r.source_cell is cell)
                assert row.response is not None and row.response.source is not None
                source = row.response.source
                images[name] = {"first source": {"name": source.name, "sha256": source.sha256}}
            else:
                images[name] = {
                    "index": cell.result.index,
                    "lineage": cell.result.response.metadata()["lineage"],
                }
        files["metadata.json"] = json.dumps({"images": images}, indent=2).encode()
        return write_run(Path(directory), files)


def result_actions(
    response: ImagesResponse, *, on_vary: Callable[[ResultImage], Any]
) -> widgets.VBox:
    """The explorer's actions for a finished run shown elsewhere (the form's history):
    pick an image and "Vary this" (`on_vary(response[i])`), or "Explore" the run below."""
    pick = widgets.Dropdown(
        options=[(f"#{i + 1}", i) for i in range(len(response.data))],
        description="image",
        style={"description_width": "initial"},
        layout=widgets.Layout(width="140px"),
    )
    vary = widgets.Button(description="Vary this", icon="random", tooltip="Vary the picked image")
    explore = widgets.Button(description="Explore", icon="search")
    box = widgets.VBox([widgets.HBox([pick, vary, explore])])
    box.add_class("ipy-images-result-actions")

    def open_explorer(_: Any) -> None:
        explore.disabled = True
        box.children = (*box.children, VariationExplorer(response))

    vary.on_click(lambda _: on_vary(response[pick.value]))
    explore.on_click(open_explorer)
    return box


def _label_order(label: str) -> tuple[int, ...]:
    """Sources first, then rows and indexes as numbers ("2.10" after "2.9")."""
    if label.startswith(_SOURCE):
        return (0, 1 if label == _SOURCE else int(label.rpartition(" ")[2]))
    row, _, index = label.partition(".")
    return (1, int(row), int(index))
