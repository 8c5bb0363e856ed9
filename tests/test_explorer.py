"""VariationExplorer driven as a user would: click buttons, move the slider, tick boxes.

No frontend is needed: ipywidgets keeps widget state in Python. Runs go to the real
loopback HTTP server (fast, image `i` is the input tinted with `TINTS[i]`) and, where
images must arrive one by one, to the embedded engine.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import FAKE_API_KEY
from loopback import LoopbackServer
from PIL import Image

import ipy_images as ii
from ipy_images.explorer import VariationExplorer, Wipe

RUN_TIMEOUT = 240  # seconds; the engine shares 2 cores with everything else in CI


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IPY_IMAGES_BACKEND"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def first(loopback: LoopbackServer) -> ii.ImagesResponse:
    return ii.create_variation(
        ii.sample_image("coffee"), backend="variations", base_url=loopback.base_url, n=3,
        size="512x512", max_retries=0,
    )  # fmt: skip


@pytest.fixture
def explorer(first: ii.ImagesResponse) -> Iterator[VariationExplorer]:
    explorer = first.explore()
    yield explorer
    if explorer.running:
        explorer.cancel()
        concurrent.futures.wait([explorer.future], timeout=30)


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def decoded(content: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(content))
    picture.load()
    return picture


def pixels(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB"), dtype=np.int16)


def test_rows_of_display_sized_thumbnails(
    explorer: VariationExplorer, first: ii.ImagesResponse
) -> None:
    assert repr(explorer) == "VariationExplorer(1 row, 3 images)"
    assert explorer.labels == ["source", "1.1", "1.2", "1.3"]
    assert explorer.a.options == ("source", "1.1", "1.2", "1.3")
    for label in explorer.labels:
        thumb = explorer._cells[label].thumb
        assert thumb.format == "jpeg"  # photos go as JPEG, never the full PNG
        assert max(decoded(thumb.value).size) == 128
    assert explorer["1.2"].size == (512, 512)


def test_clicking_a_label_shows_it_at_full_resolution_beside_its_source(
    explorer: VariationExplorer, first: ii.ImagesResponse
) -> None:
    assert explorer.vary_button.disabled  # nothing inspected yet
    explorer._cells["1.2"].overlay.click()  # the button laid over the thumbnail
    assert explorer.selected == "1.2"
    shown = decoded(explorer.inspected.value)
    assert shown.format == "PNG" and shown.size == (512, 512)
    assert np.array_equal(pixels(shown), pixels(first.images[1]))
    assert explorer.inspected.width == "512"  # shown 1:1
    beside = decoded(explorer.source_view.value)  # display-sized, shown as large
    assert beside.format == "JPEG" and beside.size == first.source.image.size == (341, 341)
    assert explorer.source_view.width == "512"
    assert np.abs(pixels(beside) - pixels(first.source.image)).mean() < 4
    assert "its source: source" in explorer.source_caption.value
    assert not explorer.vary_button.disabled
    explorer._cells["source"].button.click()  # the label; a first source: nothing beside it
    assert explorer.source_view.value == b"" and explorer.vary_button.disabled
    borders = {label: explorer._cells[label].widget.layout.border for label in ("1.2", "source")}
    assert borders == {"1.2": "2px solid transparent", "source": "2px solid #1976d2"}


def test_the_wipe_slider_changes_the_image(explorer: VariationExplorer) -> None:
    explorer.compare("source", "1.3")
    # The 341 px source is scaled to the 512 px variation's size, never the other way.
    a = pixels(explorer["source"].resize((512, 512), Image.Resampling.LANCZOS))
    b = pixels(explorer["1.3"])
    at_half = explorer.wipe.value
    explorer.position.value = 20
    wait_until(lambda: explorer.wipe.value != at_half)
    frame = pixels(decoded(explorer.wipe.value))
    assert frame.shape == a.shape  # full resolution
    split = round(512 * 0.2)
    left, right = frame[:, : split - 2], frame[:, split + 2 :]
    assert np.abs(left - a[:, : split - 2]).mean() < 4
    assert np.abs(right - b[:, split + 2 :]).mean() < 4
    assert np.abs(right - a[:, split + 2 :]).mean() > 8  # really B, not A


def test_a_drag_renders_only_the_newest_positions(explorer: VariationExplorer) -> None:
    explorer.compare("1.1", "1.2")
    renders = explorer._latest.renders
    for position in range(0, 101, 2):
        explorer.position.value = position
    expected = Wipe(explorer["1.1"], explorer["1.2"]).jpeg(100)
    wait_until(lambda: explorer.wipe.value == expected)
    time.sleep(0.2)
    assert 1 <= explorer._latest.renders - renders < 51  # coalesced, and the last one shown
    assert explorer.wipe.value == expected


def test_vary_this_adds_rows_under_their_parents(
    explorer: VariationExplorer, first: ii.ImagesResponse, loopback: LoopbackServer
) -> None:
    explorer.inspect("1.2")
    explorer.n.value = 2
    explorer.vary_button.click()
    second = explorer.future.result(RUN_TIMEOUT)
    assert second.parent is first and second.parent_index == 1
    assert loopback.requests[-1].fields["n"] == "2"
    explorer.inspect("1.1")
    explorer.vary().result(RUN_TIMEOUT)  # row 3, from 1.1
    explorer.inspect("2.1")
    third = explorer.vary().result(RUN_TIMEOUT)  # row 4, from 2.1: goes under row 2
    assert [g.parent_index for g in third.lineage] == [None, 1, 0]
    headings = [row.children[0].value for row in explorer.rows.children]
    assert ["from" in h and h.split("from ")[1].split(" ")[0] for h in headings] == [
        False, "1.2", "2.1", "1.1",
    ]  # fmt: skip
    margins = [row.layout.margin for row in explorer.rows.children]
    assert margins == ["0 0 8px 0px", "0 0 8px 24px", "0 0 8px 48px", "0 0 8px 24px"]
    assert "4.2" in explorer.b.options
    assert repr(explorer) == "VariationExplorer(4 rows, 9 images)"


def test_cancel_keeps_the_images_that_arrived() -> None:
    first = ii.create_variation(
        ii.sample_image("coffee"), backend="local", n=1, size="256x256", seed=3
    )
    explorer = first.explore()
    explorer.inspect("1.1")
    explorer.n.value = 4
    future = explorer.vary()
    wait_until(lambda: explorer.progress.value >= 1, timeout=RUN_TIMEOUT)
    explorer.cancel_button.click()
    done, _ = concurrent.futures.wait([future], timeout=60)
    assert future in done and future.cancelled()
    row = explorer._rows[-1]
    assert 1 <= len(row.cells) < 4
    assert "cancelled" in row.heading.value
    assert "Cancelled." in explorer.status.value
    kept = row.response
    assert kept is not None and kept.parent is first and len(kept.data) == len(row.cells)
    assert explorer.cancel_button.disabled and not explorer.vary_button.disabled


def test_save_selected_writes_the_ticked_images_with_lineage(
    explorer: VariationExplorer, first: ii.ImagesResponse, tmp_path: Path
) -> None:
    with pytest.raises(ii.InvalidParameterError, match="no image is ticked"):
        explorer.save_selected(tmp_path)
    explorer.inspect("1.3")
    explorer.n.value = 1
    explorer.vary().result(RUN_TIMEOUT)
    explorer._cells["2.1"].selected.value = True
    explorer._cells["source"].selected.value = True
    explorer.folder.value = str(tmp_path)
    explorer.save_button.click()
    folder = tmp_path / "run-001"
    assert f"Saved to {folder}" in explorer.status.value
    assert sorted(p.name for p in folder.iterdir()) == [
        "image-2.1.png", "image-source.png", "metadata.json",
    ]  # fmt: skip
    metadata = json.loads((folder / "metadata.json").read_text())
    lineage = metadata["images"]["image-2.1.png"]["lineage"]
    assert [step["parent_index"] for step in lineage] == [None, 2]
    assert lineage[0]["source"]["sha256"] == first.source.sha256
    assert metadata["images"]["image-source.png"]["first source"]["name"] == "coffee.png"
    saved = Image.open(folder / "image-2.1.png")
    assert np.array_equal(pixels(saved), pixels(explorer["2.1"]))


def test_an_explorer_of_a_later_generation_shows_its_lineage(
    first: ii.ImagesResponse,
) -> None:
    second = first.vary(2, n=1)
    explorer = ii.VariationExplorer(second, first)
    assert explorer.labels == ["source", "1.1", "1.2", "1.3", "2.1"]
    assert explorer.responses == [first, second]
    assert "from 1.3" in explorer._rows[1].heading.value


def test_mistakes_are_clear_errors(explorer: VariationExplorer) -> None:
    with pytest.raises(ii.InvalidParameterError, match="one or more ImagesResponse"):
        VariationExplorer()
    with pytest.raises(ii.InvalidParameterError, match="one or more ImagesResponse"):
        VariationExplorer("photo.png")  # type: ignore[arg-type]
    with pytest.raises(ii.InvalidParameterError, match=r"no image labelled '9\.9'"):
        explorer.inspect("9.9")
    with pytest.raises(ii.InvalidParameterError, match="a first source"):
        explorer.vary("source")


def test_a_failed_vary_shows_one_line_without_the_key(
    loopback_with_key: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-" + "wrong-SENTINEL-77aa88bb99cc00dd"
    first = ii.create_variation(
        ii.sample_image("coffee"), backend="variations", base_url=loopback_with_key.base_url,
        n=1, api_key=FAKE_API_KEY, max_retries=0,
    )  # fmt: skip
    explorer = first.explore()
    monkeypatch.setenv("OPENAI_API_KEY", wrong)  # the key is read again, and is wrong
    explorer.inspect("1.1")
    with pytest.raises(ii.AuthenticationError):
        explorer.vary().result(RUN_TIMEOUT)
    status = explorer.status.value
    assert "401" in status or "API key" in status
    assert wrong not in status and wrong[-8:] not in status and wrong[3:11] not in status
    assert "failed" in explorer._rows[-1].heading.value
    assert not explorer.vary_button.disabled  # ready for another try


def test_cancelling_the_future_stops_the_run(
    explorer: VariationExplorer, loopback: LoopbackServer
) -> None:
    loopback.latency = 30
    explorer.inspect("1.1")
    future = explorer.vary()
    wait_until(lambda: len(explorer._rows) == 2)
    assert future.cancel()
    done, _ = concurrent.futures.wait([future], timeout=RUN_TIMEOUT)
    assert future in done  # woken once the run stopped, not at the timeout
    wait_until(lambda: "cancelled" in explorer._rows[-1].heading.value)
    wait_until(lambda: not explorer.vary_button.disabled)
    assert "Cancelled." in explorer.status.value
