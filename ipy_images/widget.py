"""`VariationForm`: make variations by clicking instead of typing.

    >>> import ipy_images as ii
    >>> form = ii.VariationForm()     # or `%variation_form` after `%load_ext ipy_images`
    >>> form                          # choose an image, click Generate
    >>> form.result                   # the last ImagesResponse; form.results holds every run

Every run happens on the shared background event loop (`ipy_images._sync`), so the kernel
keeps running other cells while images arrive. All widget updates of a run are made from
that loop's single thread; the click handler only snapshots the form and schedules the run.
Results are shown in `HTML` widgets (no `Output` widget: its capture context is lost in
callbacks). Settings default to those of the `%%variation` magic. The API key is read from
the environment when a run starts and is never stored in the widget, so it cannot end up
in a saved notebook.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
from typing import Any

import ipywidgets as widgets

from . import _current
from ._config import key_from_env, resolve
from ._live import LiveGrid
from ._options import BACKENDS, choices
from ._sync import background_loop
from ._ui import OneRunAtATime, line
from .client import AsyncVariationClient
from .errors import APIError, InvalidParameterError, IpyImagesError, one_line
from .grid import ImageGrid
from .models import MAX_N, ImageData, ImagesResponse, ResultImage
from .sources import PreparedImage

__all__ = ["MAX_UPLOAD_BYTES", "VariationForm"]

# Jupyter's websocket refuses messages over 10 MiB (tornado's default), and a FileUpload sends
# the whole file in one comm message, so bigger files are dropped by the frontend silently.
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
UPLOAD_HINT = "Uploads up to 8 MB; for a larger file, type its path instead."
_PREVIEW_SIZE = 160
_WIDE = {"description_width": "90px"}  # the labels' width, the same for every field
# Dropdowns cannot hold None (it means "nothing selected"), so "not given" has a value.
_AUTO_BACKEND = "auto"
_DEFAULT = ""
_ROW = '<div style="border-top:1px solid rgba(128,128,128,0.4);padding-top:6px">{}</div>'
# The form's option dropdowns: (request option, attribute, label); each offers the chosen backend's
# choices, and is disabled when that backend does not take the option.
_CHOICES = (
    ("size", "size", "size"),
    ("response_format", "response_format", "format"),
    ("quality", "quality", "quality"),
    ("background", "image_background", "background"),
    ("output_format", "output_format", "output"),
)


def _parse_seed(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidParameterError(
            f"seed must be a whole number, or empty for a random one; not {text!r}.", param="seed"
        ) from None


def _text(description: str, value: Any = None, **options: Any) -> widgets.Text:
    """A text box of the form, labelled like the others; None shows as empty."""
    value = "" if value is None else str(value)
    return widgets.Text(value=value, description=description, style=_WIDE, **options)


def _as_uploaded(source: Any, prepared: PreparedImage) -> str:
    """The file as the user gave it, e.g. "451x300 JPEG, 27 KB" (not the prepared PNG)."""
    width, height = prepared.original_size
    if isinstance(source, tuple):  # a FileUpload value
        kind, size = source[0]["type"].rpartition("/")[2], source[0]["size"]
    else:
        kind = os.path.splitext(str(source))[1].lstrip(".")
        size = os.path.getsize(source) if os.path.isfile(str(source)) else None
    described = f"{width}x{height} {kind.upper()}".rstrip()
    return described if size is None else f"{described}, {size / 1024:.0f} KB"


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """What the form said when Generate was clicked; the run never reads widgets."""

    source: Any
    source_token: int
    client: dict[str, Any]
    options: dict[str, Any]
    seed_text: str


class VariationForm(OneRunAtATime[ImagesResponse], widgets.VBox):
    """A form that makes image variations: pick an image, set the options, click Generate.

    Keyword arguments override the settings taken from the `%%variation` magic: `backend`
    (None chooses from the environment), `n`, `size`, `model`, `base_url`,
    `response_format`, `thumb_size`, `timeout`, `api_key_env` (the environment variable
    holding the key), and `seed`.

    Attributes:
        result: the last `ImagesResponse` (None before the first run).
        results: every response since the last Clear, oldest first.
        future: a `concurrent.futures.Future` of the latest run; its result is the response.
        status_text: the status line as plain text (`status` is its HTML widget).
    """

    def __init__(self, **settings: Any) -> None:
        seed = settings.pop("seed", None)
        unknown = set(settings) - set(_current.DEFAULTS)
        if unknown:
            raise TypeError(f"VariationForm() got unknown settings: {', '.join(sorted(unknown))}")
        self.settings: dict[str, Any] = {**_current.settings(), **settings}
        self.status_text, self._error_shown = "", False
        self._results: list[ImagesResponse] = []
        self._source_token = 0
        self._picked: ResultImage | None = None  # a history row's "Vary this"
        self._prepared: tuple[int, str, PreparedImage] | None = None
        self._runs = 0

        self.upload = widgets.FileUpload(
            accept="image/*",
            multiple=False,
            description="Upload image",
            tooltip=UPLOAD_HINT,
            layout=widgets.Layout(width="150px"),
        )
        self.source_text = _text(
            "or path/URL",
            placeholder="data/chelsea.jpg or https://…/cat.png, then Enter",
            continuous_update=False,
            layout=widgets.Layout(flex="1 1 auto", min_width="300px"),
        )
        self.upload_hint = widgets.HTML(line(UPLOAD_HINT))
        self.preview = widgets.HTML(
            line("No image yet."),
            layout=widgets.Layout(width=f"{_PREVIEW_SIZE + 40}px", margin="0 12px 0 0"),
        )
        self.backend = widgets.Dropdown(
            description="backend",
            options=[_AUTO_BACKEND, *BACKENDS],
            value=self.settings["backend"] or _AUTO_BACKEND,
            style=_WIDE,
        )
        self.n = widgets.BoundedIntText(
            value=self.settings["n"], min=1, max=MAX_N, description="n", style=_WIDE
        )
        self.model = _text("model", self.settings["model"], placeholder="backend default")
        self.seed = _text("seed", seed, placeholder="random")
        self.prompt = _text(
            "prompt",
            placeholder="default: a variation keeping subject, style and palette",
            layout=widgets.Layout(width="100%"),
        )
        for _, attribute, label in _CHOICES:
            setattr(self, attribute, widgets.Dropdown(description=label, style=_WIDE))
        self.base_url = _text(
            "server", self.settings["base_url"], placeholder="default: OPENAI_BASE_URL"
        )
        self.generate_button = widgets.Button(
            description="Generate", button_style="primary", icon="play"
        )
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, description="0 images", style={"description_width": "70px"}
        )
        self.status = widgets.HTML()
        self.clear_button = widgets.Button(description="Clear history", icon="trash")
        self.history = widgets.VBox()

        self._say("Choose an image, then click Generate.")
        self._sync_backend_fields({name: self.settings.get(name) for name, _, _ in _CHOICES})
        self.upload.observe(self._on_upload, names="value")
        self.source_text.observe(self._on_source_text, names="value")
        self.backend.observe(self._on_backend, names="value")
        self.base_url.observe(lambda _: self._sync_backend_fields(self._chosen()), names="value")
        self.generate_button.on_click(lambda _: self.generate())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.clear_button.on_click(lambda _: self.clear())

        settings_box = widgets.VBox(
            [
                widgets.HBox([self.n, self.size]),
                widgets.HBox([self.backend, self.response_format]),
                widgets.HBox([self.model, self.seed]),
                self.base_url,
                widgets.HBox([self.quality, self.image_background]),
                widgets.HBox([self.output_format]),
                self.prompt,
            ]
        )
        super().__init__(
            [
                widgets.HBox([self.upload, self.source_text]),
                self.upload_hint,
                widgets.HBox([self.preview, settings_box]),
                widgets.HBox(
                    [self.generate_button, self.cancel_button, self.progress],
                    layout=widgets.Layout(align_items="center"),
                ),
                self.status,
                widgets.HBox(
                    [
                        widgets.HTML("<b>History</b>", layout=widgets.Layout(margin="0 12px 0 0")),
                        self.clear_button,
                    ],
                    layout=widgets.Layout(align_items="center"),
                ),
                self.history,
            ]
        )
        # Stable hooks for page styling and browser tests; ids are stripped by JupyterLab.
        self.add_class("ipy-images-form")
        self.history.add_class("ipy-images-history")
        self.preview.add_class("ipy-images-preview")

    def __repr__(self) -> str:
        return f"VariationForm(backend={self.backend.value!r}, runs={len(self._results)})"

    @property
    def result(self) -> ImagesResponse | None:
        return self._results[-1] if self._results else None

    @property
    def results(self) -> list[ImagesResponse]:
        return list(self._results)

    def _offer_actions(self, row: widgets.VBox, response: ImagesResponse | None) -> None:
        """Under a finished run: pick an image and "Vary this", or "Explore" the run."""
        if response is not None and response.data:
            from .explorer import result_actions

            row.children = (*row.children, result_actions(response, on_vary=self.vary))

    def _say(self, text: str, *, error: bool = False) -> None:
        """Set the status line: plain text in `status_text`, one styled line in `status`."""
        self.status_text, self._error_shown = text, error
        self.status.value = line(text, error=error)

    # --- the image source -------------------------------------------------------------

    def _current_source(self) -> Any:
        """A result picked in the history, else the upload, else the typed path or URL,
        else None."""
        if self._picked is not None:
            return self._picked
        if self.upload.value:
            return self.upload.value
        return self.source_text.value.strip() or None

    def _on_upload(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if not value:
            return  # cleared: by the text box taking over, or after a refusal
        item = value[0]
        if item["size"] > MAX_UPLOAD_BYTES:
            self.upload.value = ()
            self._say(
                f"{item['name']} is {item['size'] / 1e6:.1f} MB, over the "
                f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB upload limit of the browser "
                "connection; type the file's path in the box instead.",
                error=True,
            )
            return
        self._picked = None
        self.source_text.value = ""
        self._source_changed()

    def _on_source_text(self, change: dict[str, Any]) -> None:
        if change["new"].strip():
            self._picked = None
            if self.upload.value:
                self.upload.value = ()
        self._source_changed()

    def _on_backend(self, change: dict[str, Any]) -> None:
        self._sync_backend_fields(self._chosen())
        self._source_changed()  # edits keeps the aspect ratio: the prepared image differs

    def _chosen(self) -> dict[str, Any]:
        """The option dropdowns' values: "" is the backend's default."""
        return {name: getattr(self, attribute).value for name, attribute, _ in _CHOICES}

    def _chosen_backend(self) -> str | None:
        return None if self.backend.value == _AUTO_BACKEND else self.backend.value

    def _effective_backend(self) -> str | None:
        """The backend a run would use: the chosen one, else the environment's choice."""
        try:
            return resolve(
                self._chosen_backend(), None, self.base_url.value.strip() or None
            ).backend
        except IpyImagesError:
            return self._chosen_backend()  # the run will say what is wrong

    def _sync_backend_fields(self, chosen: dict[str, Any]) -> None:
        """Offer what the backend a run would use takes, keeping each choice it accepts."""
        backend = self._effective_backend()
        spec = BACKENDS.get(backend or "")
        for name, attribute, _ in _CHOICES:
            dropdown, offered = getattr(self, attribute), choices(name, backend)
            # (label, value) pairs throughout: ipywidgets reads a mixed list as values only.
            dropdown.options = [("backend default", _DEFAULT), *((c, c) for c in offered)]
            dropdown.value = chosen.get(name) if chosen.get(name) in offered else _DEFAULT
            dropdown.disabled = spec is not None and name not in spec.options
        self.seed.disabled = spec is not None and "seed" not in spec.options
        self.prompt.disabled = spec is not None and "prompt" not in spec.options
        # With "auto", typing a server is how one leaves the local engine.
        self.base_url.disabled = self._chosen_backend() is not None and not (spec and spec.remote)

    def _source_changed(self) -> None:
        """Prepare the new source in the background, to preview exactly what will be sent."""
        self._source_token += 1
        self._prepared = None
        source = self._current_source()
        if source is None:
            self.preview.value = line("No image yet.")
            return
        if self._error_shown:  # it was about the previous image or options
            self._say("Choose the options, then click Generate.")
        self.preview.value = line("Preparing…")
        coroutine = self._refresh_preview(self._source_token, source, self._client_settings())
        asyncio.run_coroutine_threadsafe(coroutine, background_loop())

    async def _refresh_preview(self, token: int, source: Any, settings: dict[str, Any]) -> None:
        key = None
        try:
            key = key_from_env(settings["api_key_env"])
            async with AsyncVariationClient(api_key=key, **settings["client"]) as client:
                await self._prepare(client, token, source)
        except Exception as exc:  # nobody awaits a preview: every failure is shown here
            if token == self._source_token:
                self.preview.value = line("No preview.")
                self._say(one_line(exc, key), error=True)

    async def _prepare(
        self, client: AsyncVariationClient, token: int, source: Any
    ) -> PreparedImage:
        """The source prepared for `client`'s backend, reused from the preview when current."""
        cached = self._prepared
        if cached is not None and cached[:2] == (token, client.backend):
            return cached[2]
        # The client's backend decides square or not and the byte limit.
        prepared = await client.prepare(source)
        if token == self._source_token:
            self._prepared = (token, client.backend, prepared)
            self.preview.value = ImageGrid(
                original=prepared.image,
                thumb_size=_PREVIEW_SIZE,
                original_title=f"{prepared.name} · {_as_uploaded(source, prepared)}",
            ).to_html()
        return prepared

    # --- running --------------------------------------------------------------------------

    def _client_settings(self) -> dict[str, Any]:
        """The client's settings; the key is read from the environment only when used."""
        client = {
            "backend": self._chosen_backend(),
            "base_url": self.base_url.value.strip() or None,
            "timeout": self.settings["timeout"],
        }
        return {"client": client, "api_key_env": self.settings["api_key_env"]}

    def generate(self) -> concurrent.futures.Future[ImagesResponse]:
        """Start a run (what the Generate button does) and return its future.

        Returns at once; the run goes on in the background. While a run is going, this
        returns that run's future instead of starting another. The future fails with the
        run's error, which the form also shows; Cancel makes it cancelled.
        """
        if self.running and self.future is not None:
            return self.future
        options = {
            name: getattr(self, attribute).value or None
            for name, attribute, _ in _CHOICES
            if not getattr(self, attribute).disabled
        }
        snapshot = _Snapshot(
            source=self._current_source(),
            source_token=self._source_token,
            client=self._client_settings(),
            options={
                **options,
                "n": self.n.value,
                "model": self.model.value.strip() or None,
                "prompt": None if self.prompt.disabled else self.prompt.value.strip() or None,
            },
            seed_text="" if self.seed.disabled else self.seed.value,
        )
        self.generate_button.disabled = True
        self.cancel_button.disabled = False
        self.clear_button.disabled = True
        self.progress.value = 0
        self.progress.description = "0 images"
        self._say("Starting…")

        def settled(task: asyncio.Task[ImagesResponse]) -> None:
            self.generate_button.disabled = False
            self.cancel_button.disabled = True
            self.clear_button.disabled = False
            if task.cancelled():
                self._say("Cancelled.")

        return self._start_run(lambda: self._run(snapshot), settled)

    def vary(self, picked: ResultImage) -> concurrent.futures.Future[ImagesResponse]:
        """Make variations of a result with the form's options (what a history row's
        "Vary this" does); the new run records `picked` as its parent."""
        if self.running and self.future is not None:
            return self.future
        self.upload.value = ()
        self.source_text.value = ""
        self._picked = picked
        self._source_changed()
        return self.generate()

    def cancel(self) -> None:
        """Stop the running run, if any; images that already arrived stay in its row."""
        self.cancel_button.disabled = True
        super().cancel()

    def clear(self) -> None:
        """Remove every finished run from the history and from `results`."""
        if not self.running:
            self.history.children = ()
            self._results.clear()

    async def _run(self, snapshot: _Snapshot) -> ImagesResponse:
        live: LiveGrid | None = None
        key = None
        try:
            if snapshot.source is None:
                raise InvalidParameterError(
                    "no image chosen: upload one, or type a path or URL in the box."
                )
            key = key_from_env(snapshot.client["api_key_env"])
            async with AsyncVariationClient(api_key=key, **snapshot.client["client"]) as client:
                request = client.build_request(
                    **snapshot.options, seed=_parse_seed(snapshot.seed_text)
                )
                self._say("Preparing the image…")
                prepared = await self._prepare(client, snapshot.source_token, snapshot.source)
                self._runs += 1
                view = widgets.HTML()
                row = widgets.VBox([view])
                live = LiveGrid(
                    f"Run {self._runs}",
                    [prepared.name],
                    [prepared],
                    request,
                    client.backend,
                    thumb_size=self.settings["thumb_size"],
                    on_change=lambda live: setattr(view, "value", _ROW.format(live.to_html())),
                )
                live.changed()
                self.history.children = (row, *self.history.children)
                self.progress.max = request.n
                self._say(f"Generating {request.n} with {client.backend}…")

                def on_image(index: int, data: ImageData) -> None:
                    live.add(0, index, data)
                    self.progress.value += 1
                    self.progress.description = f"{self.progress.value} of {request.n}"

                response = await client.generate(prepared, request, on_image=on_image)
        except asyncio.CancelledError:
            if live is not None:
                live.finish([None], "cancelled")
            raise
        except Exception as exc:
            if live is not None:
                partial = exc.partial if isinstance(exc, APIError) else None
                live.finish([partial], "failed")
                self._offer_actions(row, partial)
            self._say(one_line(exc, key), error=True)
            raise
        else:
            self._results.append(response)
            live.finish([response], "done")
            self._offer_actions(row, response)
            count = len(response.data)
            self._say(f"Done: {count} image{'' if count == 1 else 's'}.")
            return response
