"""VariationForm driven as a user would: set values, click, wait for the result.

No frontend is needed: ipywidgets keeps widget state in Python without a kernel. Runs go
to the embedded engine or to the real loopback HTTP server (tests/loopback.py).
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import ipywidgets as widgets
import pytest
from loopback import Fault, LoopbackServer
from PIL import Image, ImageDraw

import ipy_images as ii
from ipy_images.widget import MAX_UPLOAD_BYTES, VariationForm

RUN_TIMEOUT = 240  # seconds; the engine shares 2 cores with everything else in CI


def sample_png(size: tuple[int, int] = (240, 200)) -> bytes:
    """A small non-square picture with structure for the engine to vary."""
    picture = Image.new("RGB", size, (40, 90, 150))
    draw = ImageDraw.Draw(picture)
    for i in range(0, size[0], 24):
        draw.ellipse((i, i // 2, i + 40, i // 2 + 40), fill=(200, 120 + i % 100, 40))
    draw.rectangle((20, size[1] - 60, size[0] - 20, size[1] - 20), fill=(230, 230, 210))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def image_path(tmp_path: Path) -> Path:
    path = tmp_path / "sample.png"
    path.write_bytes(sample_png())
    return path


@pytest.fixture
def form(monkeypatch: pytest.MonkeyPatch) -> Iterator[VariationForm]:
    # The environment must not pick the backend or server behind the tests' back.
    for name in ("IPY_IMAGES_BACKEND", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    form = VariationForm()
    yield form
    if form.running:
        form.cancel()
        concurrent.futures.wait([form.future], timeout=30)


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def row_html(row: widgets.VBox) -> str:
    """The heading and grid of a history row (its first child; actions follow)."""
    return row.children[0].value


def history_html(form: VariationForm) -> str:
    return "".join(row_html(row) for row in form.history.children)


def status_text(form: VariationForm) -> str:
    return form.status.value


def is_error(form: VariationForm) -> bool:
    return "color:#d32f2f" in form.status.value


def use_loopback(form: VariationForm, server: LoopbackServer) -> None:
    form.backend.value = "variations"
    form.base_url.value = server.base_url


def click_and_wait(form: VariationForm) -> ii.ImagesResponse:
    form.generate_button.click()
    assert form.future is not None
    return form.future.result(timeout=RUN_TIMEOUT)


def test_local_run_fills_the_grid_and_progress(form: VariationForm, image_path: Path) -> None:
    form.source_text.value = str(image_path)
    form.n.value = 2
    form.size.value = "256x256"
    form.backend.value = "local"
    form.seed.value = "11"

    response = click_and_wait(form)

    assert form.result is response and form.results == [response]
    assert len(response.data) == 2 and response.backend == "local"
    assert response.request is not None and response.request.seed == 11
    assert [image.size for image in response.images] == [(256, 256)] * 2
    html = history_html(form)
    assert len(form.history.children) == 1
    assert html.count("<img") == 3  # the original and two variations
    assert "Run 1 · 2 of 2 images · done" in html and "seed 11" in html
    assert form.progress.value == 2 and form.progress.max == 2
    assert not form.generate_button.disabled and form.cancel_button.disabled
    assert not is_error(form) and "Done: 2 images" in status_text(form)
    # the preview describes the file as given (the prepared square is what the grid shows)
    assert "sample.png · 240x200 PNG, 2 KB" in form.preview.value


def test_loopback_runs_add_rows_to_the_history(
    form: VariationForm, image_path: Path, loopback: LoopbackServer
) -> None:
    use_loopback(form, loopback)
    form.source_text.value = str(image_path)
    form.n.value = 3
    form.size.value = "256x256"
    form.response_format.value = "url"

    first = click_and_wait(form)
    form.n.value = 1
    form.response_format.value = "b64_json"
    second = click_and_wait(form)

    assert [len(r.data) for r in form.results] == [3, 1] and form.result is second
    assert all(item.url for item in first.data)  # URL results, downloaded into memory
    assert [image.size for image in first.images] == [(256, 256)] * 3
    sent = loopback.requests[0]
    assert sent.fields["n"] == "3" and sent.fields["size"] == "256x256"
    assert sent.file("image").content_type == "image/png"
    assert sent.file("image").image.size == (200, 200)
    rows = [row_html(row) for row in form.history.children]
    assert "Run 2 · 1 of 1 images" in rows[0] and "Run 1 · 3 of 3 images" in rows[1]
    assert history_html(form).count("<img") == (1 + 3) + (1 + 1)

    form.clear_button.click()
    assert form.history.children == () and form.results == [] and form.result is None


def test_edits_options_are_offered_for_edits_and_reach_the_server(
    form: VariationForm,
    image_path: Path,
    loopback: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert form.quality.disabled and form.prompt.disabled  # the local engine takes neither
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "test-widget-edits-0000")
    form.backend.value = "edits"
    form.base_url.value = loopback.base_url
    assert not form.quality.disabled and not form.prompt.disabled
    form.source_text.value = str(image_path)
    form.n.value = 1
    form.quality.value = "low"
    form.output_format.value = "webp"
    form.prompt.value = "the same scene at dusk"

    response = click_and_wait(form)

    sent = loopback.requests[-1].fields
    assert sent["quality"] == "low" and sent["output_format"] == "webp"
    assert sent["prompt"] == "the same scene at dusk"
    assert "background" not in sent  # left at "default": not sent
    assert response.output_format == "webp" and response.usage is not None
    assert "gpt-image-2" in history_html(form)


def test_bad_path_shows_one_red_line_and_the_form_stays_usable(
    form: VariationForm, image_path: Path, loopback: LoopbackServer
) -> None:
    use_loopback(form, loopback)
    form.n.value = 1
    form.size.value = "256x256"
    form.source_text.value = str(image_path.with_name("missing.png"))

    form.generate_button.click()
    with pytest.raises(ii.InvalidImageError):
        form.future.result(timeout=RUN_TIMEOUT)

    assert is_error(form) and "missing.png" in status_text(form)
    assert status_text(form).count("<div") == 1 and "Traceback" not in status_text(form)
    assert form.history.children == () and form.results == []
    assert not form.generate_button.disabled
    assert loopback.requests == []  # refused before anything was sent

    form.source_text.value = str(image_path)
    response = click_and_wait(form)
    assert len(response.data) == 1 and not is_error(form)


def test_no_image_chosen_is_an_inline_error(form: VariationForm) -> None:
    form.generate_button.click()
    with pytest.raises(ii.InvalidParameterError):
        form.future.result(timeout=RUN_TIMEOUT)
    assert is_error(form) and "no image chosen" in status_text(form)


def test_server_error_keeps_the_row_and_never_shows_the_key(
    form: VariationForm,
    image_path: Path,
    loopback_with_key: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong_key = "sk-" + "wrong-0123456789abcdef0123456789"
    monkeypatch.setenv("MY_IMAGES_KEY", wrong_key)
    form.settings["api_key_env"] = "MY_IMAGES_KEY"
    use_loopback(form, loopback_with_key)
    form.source_text.value = str(image_path)
    form.size.value = "256x256"

    form.generate_button.click()
    with pytest.raises(ii.AuthenticationError):
        form.future.result(timeout=RUN_TIMEOUT)

    assert loopback_with_key.requests[-1].authorization == f"Bearer {wrong_key}"
    assert is_error(form) and status_text(form).count("<div") == 1
    assert "401" in status_text(form)
    assert "failed" in history_html(form)

    def states(widget: widgets.Widget) -> Iterator[str]:
        yield json.dumps(widget.get_state(), default=str)
        for child in getattr(widget, "children", ()):
            yield from states(child)

    saved = "".join(states(form))  # what a notebook would store
    assert wrong_key not in saved and "MY_IMAGES_KEY" not in saved


def test_failed_batch_keeps_the_images_that_arrived(
    form: VariationForm, image_path: Path, loopback: LoopbackServer
) -> None:
    use_loopback(form, loopback)
    form.source_text.value = str(image_path)
    form.size.value = "256x256"
    form.n.value = 12  # two requests: 10 + 2; one of them is refused
    loopback.enqueue(Fault.status(400, message="Batch refused for the test."))

    form.generate_button.click()
    with pytest.raises(ii.BadRequestError) as caught:
        form.future.result(timeout=RUN_TIMEOUT)

    arrived = len(caught.value.partial.data)
    assert arrived in (2, 10)
    assert is_error(form) and "Batch refused for the test." in status_text(form)
    row = history_html(form)
    assert f"{arrived} of 12 images · failed" in row and row.count("<img") == 1 + arrived
    assert form.progress.value == arrived and form.results == []


def test_cancel_stops_the_run_and_reenables_generate(
    form: VariationForm, image_path: Path, loopback: LoopbackServer
) -> None:
    use_loopback(form, loopback)
    form.source_text.value = str(image_path)
    form.size.value = "256x256"
    loopback.latency = 60

    future = form.generate()
    assert not future.done()  # the call returned while the request is in flight
    assert form.generate_button.disabled and not form.cancel_button.disabled
    assert form.generate() is future  # no second run while one is going
    wait_until(lambda: len(loopback.requests) == 1)
    form.cancel_button.click()

    done, _ = concurrent.futures.wait([future], timeout=30)
    assert future in done  # woken once the run stopped, not at the timeout
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=30)
    assert "Cancelled." in status_text(form) and not is_error(form)
    assert not form.generate_button.disabled and form.cancel_button.disabled
    assert "cancelled" in history_html(form) and form.results == []

    loopback.latency = 0
    assert len(click_and_wait(form).data) == form.n.value


def test_upload_value_is_the_source(
    form: VariationForm, image_path: Path, loopback: LoopbackServer
) -> None:
    use_loopback(form, loopback)
    form.source_text.value = str(image_path)
    content = sample_png((300, 300))
    form.upload.value = (
        {
            "name": "uploaded.png",
            "type": "image/png",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.now(timezone.utc),
        },
    )
    assert form.source_text.value == ""  # the upload took over from the typed path
    wait_until(lambda: "uploaded.png" in form.preview.value)
    form.n.value = 1
    form.size.value = "256x256"

    response = click_and_wait(form)

    assert response.source is not None and response.source.name == "uploaded.png"
    assert loopback.requests[-1].file("image").image.size == (300, 300)
    form.source_text.value = str(image_path)
    assert form.upload.value == ()  # and typing a path takes over from the upload


def test_too_large_upload_gets_a_clear_message(form: VariationForm) -> None:
    size = MAX_UPLOAD_BYTES + 1
    form.upload.value = (
        {
            "name": "huge.png",
            "type": "image/png",
            "size": size,
            "content": memoryview(bytes(size)),
            "last_modified": datetime.now(timezone.utc),
        },
    )
    assert is_error(form)
    assert "huge.png" in status_text(form) and "8 MB" in status_text(form)
    assert "path" in status_text(form)
    assert form.upload.value == ()
    assert "8 MB" in form.upload.tooltip and "8 MB" in form.upload_hint.value


def test_settings_default_to_the_magic_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    plain = VariationForm()
    assert plain.n.value == 1 and plain.backend.value == "auto" and plain.size.value == ""

    shell = InteractiveShell.instance()
    try:
        shell.extension_manager.load_extension("ipy_images")
        magics = shell.magics_manager.registry["VariationMagics"]
        monkeypatch.setattr(magics, "n", 7)
        monkeypatch.setattr(magics, "backend", "local")
        monkeypatch.setattr(magics, "size", "512x512")
        configured = VariationForm()
        assert (configured.n.value, configured.backend.value) == (7, "local")
        assert configured.size.value == "512x512"
        assert VariationForm(n=2).n.value == 2  # arguments win over the magic
    finally:
        InteractiveShell.clear_instance()


def test_backend_choice_sets_the_size_options() -> None:
    form = VariationForm(backend="edits", size="1536x1024")

    def sizes() -> list[str]:
        return [value for _, value in form.size.options]

    assert sizes() == ["", "1024x1024", "1536x1024", "1024x1536", "auto"]
    assert form.size.value == "1536x1024" and form.seed.disabled
    form.backend.value = "local"
    assert sizes() == ["", "256x256", "512x512", "1024x1024"] and not form.seed.disabled
    assert form.size.value == ""  # 1536x1024 is not a local size: back to the default
    assert form.base_url.disabled


def chelsea_upload() -> tuple[dict[str, object], ...]:
    content = (Path(__file__).parent.parent / "notebooks" / "data" / "chelsea.jpg").read_bytes()
    item = {"name": "chelsea.jpg", "type": "image/jpeg", "size": len(content)}
    return ({**item, "content": memoryview(content), "last_modified": datetime.now(timezone.utc)},)


def test_a_valid_upload_clears_an_old_error_and_is_described_as_uploaded(
    form: VariationForm,
) -> None:
    size = MAX_UPLOAD_BYTES + 1
    huge = {"name": "poster.png", "type": "image/png", "size": size}
    when = datetime.now(timezone.utc)
    form.upload.value = ({**huge, "content": memoryview(bytes(size)), "last_modified": when},)
    assert is_error(form) and "poster.png" in form.status_text

    form.upload.value = chelsea_upload()
    assert not is_error(form) and "poster.png" not in form.status_text
    assert "<" not in form.status_text  # plain text, unlike the status widget's HTML
    wait_until(lambda: "chelsea.jpg ·" in form.preview.value)
    size_kb = round(len(chelsea_upload()[0]["content"]) / 1024)  # type: ignore[arg-type]
    assert f"chelsea.jpg · 451x300 JPEG, {size_kb} KB" in form.preview.value


def test_dropdowns_follow_the_backend_a_run_would_use(
    form: VariationForm, loopback: LoopbackServer
) -> None:
    def offered(dropdown: widgets.Dropdown) -> list[str]:
        return [value for _, value in dropdown.options]

    # "auto" without key or server is the local engine: its sizes, and nothing blank.
    assert form.backend.value == "auto"
    assert offered(form.size) == ["", "256x256", "512x512", "1024x1024"]
    for dropdown in (form.quality, form.image_background, form.output_format):
        assert dropdown.index == 0 and dropdown.value == "" and dropdown.disabled
    assert offered(form.response_format) == ["", "b64_json"]

    form.base_url.value = loopback.base_url  # "auto" with a server is the variations contract
    assert offered(form.response_format) == ["", "url", "b64_json"]
    assert form.seed.disabled and not form.base_url.disabled

    form.backend.value = "edits"
    assert offered(form.size) == ["", "1024x1024", "1536x1024", "1024x1536", "auto"]
    assert not form.quality.disabled and form.quality.index == 0
    form.size.value = "1536x1024"
    form.backend.value = "local"  # a size the new backend refuses is not kept
    assert form.size.value == "" and "1536x1024" not in offered(form.size)


def test_an_unset_key_variable_is_refused_not_replaced(
    form: VariationForm, image_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "the-default-key-0000")
    named = VariationForm(api_key_env="NO_SUCH_VARIABLE", backend="edits")
    named.source_text.value = str(image_path)
    named.generate_button.click()
    with pytest.raises(ii.InvalidParameterError, match="NO_SUCH_VARIABLE"):
        named.future.result(timeout=RUN_TIMEOUT)
    assert "not set" in named.status_text


def test_history_rows_vary_a_result_and_explore_a_run(
    form: VariationForm, image_path: Path, loopback: LoopbackServer
) -> None:
    from ipy_images.explorer import VariationExplorer

    use_loopback(form, loopback)
    form.source_text.value = str(image_path)
    form.n.value = 3
    form.size.value = "256x256"
    first = click_and_wait(form)
    row = form.history.children[0]
    pick, vary, explore = row.children[1].children[0].children
    assert pick.options == (("#1", 0), ("#2", 1), ("#3", 2))

    pick.value = 1
    form.n.value = 2
    vary.click()  # a new run from #2 of run 1, with the form's options
    assert form.future is not None
    second = form.future.result(timeout=RUN_TIMEOUT)
    assert second.parent is first and second.parent_index == 1
    assert second.lineage == [first, second]
    uploaded = loopback.requests[-1].file("image").image.convert("RGB")
    assert uploaded.tobytes() == first.images[1].convert("RGB").tobytes()
    assert loopback.requests[-1].fields["n"] == "2"
    assert "Run 2 · 2 of 2 images" in row_html(form.history.children[0])
    assert "source sample-2.png" in row_html(form.history.children[0])
    assert "sample-2.png" in form.preview.value

    explore.click()  # the run opens in an explorer under its row
    explorer = row.children[1].children[-1]
    assert isinstance(explorer, VariationExplorer) and explorer.responses == [first]
    assert explore.disabled

    form.source_text.value = str(image_path)  # typing a path replaces the picked result
    assert click_and_wait(form).parent is None
