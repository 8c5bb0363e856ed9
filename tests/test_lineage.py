"""`response.vary`, `response[i]`, `lineage` and lineage in saved metadata.

Runs go to the real loopback HTTP server (tests/loopback.py), whose image `i` is the input
tinted with `TINTS[i]`, so which picture was uploaded can be checked, and to the embedded
engine where its own options (the seed) matter.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FAKE_API_KEY
from loopback import Fault, LoopbackServer
from PIL import Image

import ipy_images as ii
from ipy_images._sync import background_loop


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IPY_IMAGES_BACKEND"):
        monkeypatch.delenv(name, raising=False)


def photo(size: int = 96) -> Image.Image:
    """A small picture with structure, named like a file so lineage names can be read."""
    y, x = np.mgrid[0:size, 0:size]
    pixels = np.stack([x * 255 // size, y * 255 // size, ((x // 8 + y // 8) % 2) * 200], -1)
    picture = Image.fromarray(pixels.astype(np.uint8))
    picture.filename = "photo.png"  # type: ignore[attr-defined]
    return picture


def first_run(server: LoopbackServer, **options: object) -> ii.ImagesResponse:
    defaults = {"size": "256x256", "n": 2, "user": "tester", "max_retries": 0}
    return ii.create_variation(
        photo(), backend="variations", base_url=server.base_url, **{**defaults, **options}
    )


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_vary_reuses_backend_server_and_options_and_links_the_parent(
    loopback: LoopbackServer,
) -> None:
    first = first_run(loopback)
    second = first.vary(1)

    sent = loopback.requests[-1]
    assert len(loopback.requests) == 2
    assert sent.fields["n"] == "2"
    assert sent.fields["size"] == "256x256"
    assert sent.fields["user"] == "tester"
    assert same_pixels(sent.file("image").image, first.images[1])  # the picked image went up
    assert second.backend == "variations"
    assert second.client_options["base_url"] == loopback.base_url
    assert second.client_options["max_retries"] == 0
    assert second.parent is first
    assert second.parent_index == 1
    assert first.parent is None and first.parent_index is None


def test_vary_options_override_the_remembered_ones(loopback: LoopbackServer) -> None:
    first = first_run(loopback)
    first.vary(0, n=1, size="512x512", user="someone-else")
    sent = loopback.requests[-1].fields
    assert (sent["n"], sent["size"], sent["user"]) == ("1", "512x512", "someone-else")


def test_lineage_walks_back_to_the_first_source(loopback: LoopbackServer) -> None:
    first = first_run(loopback)
    second = first.vary(1)
    third = second[0].vary(n=1)  # a result image varies itself too

    assert third.lineage == [first, second, third]
    assert [g.parent_index for g in third.lineage] == [None, 1, 0]
    assert third.lineage[0].source.name == "photo.png"
    # Names tell the lineage: #1 of the variations of #2 of photo.png.
    assert [g.source.name for g in third.lineage] == ["photo.png", "photo-2.png", "photo-2-1.png"]


def test_indexing_gives_the_image_with_its_origin(loopback: LoopbackServer) -> None:
    first = first_run(loopback)
    picked = first[-1]
    assert picked.response is first and picked.index == 1
    assert same_pixels(picked.image, first.images[1])
    assert repr(picked) == "ResultImage(#2 of 2, 'photo-2.png')"
    bundle = picked._repr_mimebundle_()
    assert "<img" in bundle["text/html"] and "base64" not in bundle["text/plain"]
    # Any source argument takes it, and the new response knows where it came from.
    other = ii.create_variation(picked, backend="variations", base_url=loopback.base_url, n=1)
    assert other.parent is first and other.parent_index == 1


def test_bad_indexes_are_refused_before_any_request(loopback: LoopbackServer) -> None:
    first = first_run(loopback)
    with pytest.raises(IndexError, match=r"index 2 is out of range: this response holds 2"):
        first[2]
    with pytest.raises(ii.InvalidParameterError, match="index -3 is out of range"):
        first.vary(-3)
    with pytest.raises(ii.InvalidParameterError, match="a whole number"):
        first.vary("1")  # type: ignore[arg-type]
    with pytest.raises(ii.InvalidParameterError, match="n must be between"):
        first.vary(0, n=0)
    assert len(loopback.requests) == 1


def test_the_api_key_is_never_remembered(
    loopback_with_key: LoopbackServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = first_run(loopback_with_key, api_key=FAKE_API_KEY)
    saved = first.save(tmp_path)
    for text in (
        repr(first),
        repr(first.client_options),
        repr(first.vary_options()),
        json.dumps(first.metadata()),
        (saved / "metadata.json").read_text(),
        repr(first[0]),
    ):
        assert FAKE_API_KEY not in text and FAKE_API_KEY[-8:] not in text
    # So a variation needs the key again: from the environment, or passed in.
    with pytest.raises(ii.AuthenticationError):
        first.vary(0)
    assert first.vary(0, api_key=FAKE_API_KEY).parent is first
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    assert first.vary(1).parent_index == 1


def test_saved_metadata_records_the_lineage(loopback: LoopbackServer, tmp_path: Path) -> None:
    first = first_run(loopback)
    second = first.vary(1, n=1)
    metadata = json.loads((second.save(tmp_path) / "metadata.json").read_text())

    lineage = metadata["lineage"]
    assert [step["parent_index"] for step in lineage] == [None, 1]
    assert lineage[0]["source"] == {"name": "photo.png", "sha256": first.source.sha256}
    assert lineage[1]["source"] == {"name": "photo-2.png", "sha256": second.source.sha256}
    assert [step["params"]["n"] for step in lineage] == [2, 1]
    assert metadata["parent_index"] == 1 and metadata["source"]["name"] == "photo-2.png"


def test_what_arrived_before_a_failure_can_be_varied(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.url_404(index=1))
    with pytest.raises(ii.APIError) as caught:
        first_run(loopback, response_format="url")  # image #2 cannot be downloaded
    partial = caught.value.partial
    assert partial is not None and len(partial.data) == 1
    second = partial.vary(0, n=1)
    assert second.parent is partial and second.backend == "variations"
    assert loopback.requests[-1].fields["user"] == "tester"


def test_avary_from_async_code(loopback: LoopbackServer) -> None:
    first = first_run(loopback)

    async def vary_twice() -> ii.ImagesResponse:
        second = await first.avary(0, n=1)
        return await second[0].avary()

    third = asyncio.run(vary_twice())
    assert [g.parent_index for g in third.lineage] == [None, 0, 0]


def test_sync_vary_on_the_background_loop_is_refused_not_hung(loopback: LoopbackServer) -> None:
    first = first_run(loopback)

    async def in_a_callback() -> None:
        first.vary(0)

    future = asyncio.run_coroutine_threadsafe(in_a_callback(), background_loop())
    with pytest.raises(RuntimeError, match="await the async form"):
        future.result(timeout=30)
    assert len(loopback.requests) == 1


def test_local_vary_keeps_the_seed_and_size() -> None:
    first = ii.create_variation(photo(), n=1, size="256x256", backend="local", seed=11)
    second = first.vary(0)
    assert second.backend == "local"
    assert (second.request.seed, second.request.size, second.request.n) == (11, "256x256", 1)
    assert second.images[0].size == (256, 256)
    assert second.parent is first
