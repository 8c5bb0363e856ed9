"""The response objects: parsing, round trips, decoded images, saving, and error text."""

from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spec
from loopback import png_bytes

from ipy_images import (
    APIStatusError,
    BadRequestError,
    ImageData,
    ImagesResponse,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    Usage,
    VariationRequest,
    prepare_image,
)
from ipy_images.errors import status_error

RED = (200, 80, 40)
BLUE = (20, 60, 220)


def b64(color: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> str:
    return base64.b64encode(png_bytes(size, color)).decode()


LEGACY_BODY: dict[str, Any] = {
    "created": 1_713_833_628,
    "data": [{"b64_json": b64(RED)}, {"b64_json": b64(BLUE), "revised_prompt": "a blue square"}],
}

GPT_IMAGE_BODY: dict[str, Any] = {
    "created": 1_713_833_628,
    "background": "opaque",
    "output_format": "png",
    "quality": "low",
    "size": "1024x1024",
    "data": [{"b64_json": b64(RED)}],
    "usage": {
        "input_tokens": 50,
        "output_tokens": 272,
        "total_tokens": 322,
        "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
        "output_tokens_details": {"image_tokens": 272, "text_tokens": 0},
    },
}


@pytest.mark.parametrize("body", [LEGACY_BODY, GPT_IMAGE_BODY], ids=["legacy", "gpt-image"])
def test_parse_and_round_trip(body: dict[str, Any]) -> None:
    spec.validate_images_response(body)
    original = copy.deepcopy(body)

    response = ImagesResponse.from_dict(body)
    assert response.created == 1_713_833_628
    assert response.to_dict() == body
    spec.validate_images_response(response.to_dict())
    assert body == original  # parsing leaves the caller's dict alone
    assert json.loads(json.dumps(response.to_dict())) == body


def test_fields_are_typed() -> None:
    response = ImagesResponse.from_dict(GPT_IMAGE_BODY)

    assert (response.background, response.output_format, response.quality, response.size) == (
        "opaque",
        "png",
        "low",
        "1024x1024",
    )
    assert response.usage == Usage(
        input_tokens=50,
        output_tokens=272,
        total_tokens=322,
        input_tokens_details={"text_tokens": 10, "image_tokens": 40},
        output_tokens_details={"image_tokens": 272, "text_tokens": 0},
    )
    (item,) = response.data
    assert isinstance(item, ImageData)
    assert item.content == png_bytes((32, 32), RED)
    assert item.url is None and item.revised_prompt is None


def test_unknown_fields_are_kept() -> None:
    body = {
        "created": 5,
        "id": "img_123",
        "moderation": {"flagged": False},
        "data": [{"b64_json": b64(RED), "seed": 42, "content_filter": None}],
    }

    response = ImagesResponse.from_dict(body)
    assert response.extra == {"id": "img_123", "moderation": {"flagged": False}}
    assert response.data[0].extra == {"seed": 42, "content_filter": None}
    assert response.to_dict() == body


def test_unknown_usage_fields_are_kept() -> None:
    usage = {
        **GPT_IMAGE_BODY["usage"],
        "cached_input_tokens": 12,
        "input_tokens_details": {"text_tokens": 10, "image_tokens": 40, "cached_tokens": 8},
    }
    body = {**GPT_IMAGE_BODY, "usage": usage}

    assert ImagesResponse.from_dict(body).to_dict() == body


def test_null_fields_read_as_absent() -> None:
    body = {
        "created": 5,
        "background": None,
        "output_format": None,
        "quality": None,
        "size": None,
        "usage": None,
        "data": [{"b64_json": b64(RED), "url": None, "revised_prompt": None}],
    }

    response = ImagesResponse.from_dict(body)
    assert response.background is response.size is response.usage is None
    assert response.data[0].url is None and response.data[0].revised_prompt is None
    assert response.to_dict() == {"created": 5, "data": [{"b64_json": b64(RED)}]}
    spec.validate_images_response(response.to_dict())
    assert ImagesResponse.from_dict({"created": 5, "data": None}).data == []


def test_usage_tolerates_missing_and_null_counts() -> None:
    usage = Usage.from_dict({"input_tokens": None, "total_tokens": 7, "input_tokens_details": None})

    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (0, 0, 7)
    spec.validate_images_response({"created": 1, "data": [], "usage": usage.to_dict()})


def test_missing_created_is_filled_in() -> None:
    response = ImagesResponse.from_dict({"data": [{"b64_json": b64(RED)}]})
    assert response.created > 1_700_000_000
    spec.validate_images_response(response.to_dict())


@pytest.mark.parametrize(
    "body",
    [[], "text", {"created": 1, "data": {"b64_json": "x"}}, {"created": 1, "data": ["x"]}],
    ids=["list", "string", "data-object", "data-of-strings"],
)
def test_bodies_that_are_no_images_response(body: Any) -> None:
    with pytest.raises(ValueError):
        ImagesResponse.from_dict(body)


def test_bad_base64_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="b64_json is not valid base64"):
        ImagesResponse.from_dict({"created": 1, "data": [{"b64_json": "not*base64="}]})


def test_images_are_decoded() -> None:
    response = ImagesResponse.from_dict(LEGACY_BODY)

    images = response.images
    assert [image.size for image in images] == [(32, 32), (32, 32)]
    assert [image.getpixel((0, 0)) for image in images] == [RED, BLUE]
    assert response.data[1].image.getpixel((3, 3)) == BLUE


def test_url_result_without_content_says_so() -> None:
    item = ImageData.from_dict({"url": "https://example.org/x.png"})
    with pytest.raises(ValueError, match="a URL that was not downloaded"):
        _ = item.image
    assert item.to_dict() == {"url": "https://example.org/x.png"}


REPR_LIMIT = 200  # characters: one line in a shell, whatever the number of images


def noise_b64(side: int = 256) -> str:
    """A PNG as large as a real result's (noise barely compresses), base64-encoded."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("count", [1, 8])
def test_repr_is_short_and_never_holds_the_base64(count: int) -> None:
    picture = noise_b64()
    assert len(picture) > 100_000
    request = VariationRequest(n=count, size="256x256", seed=7)
    body = {"created": 1_767_225_600, "data": [{"b64_json": picture}] * count}
    response = ImagesResponse.from_dict(body, backend="local", request=request)

    images = "1 image" if count == 1 else f"{count} images"
    expected = f"ImagesResponse({images}, backend local, size 256x256, seed 7, created "
    assert repr(response) == expected + "2026-01-01 00:00 UTC)"
    assert str(response) == repr(response)
    assert repr(response.data[0]) == f"ImageData(b64_json=<{len(picture):,} chars>)"
    for text in (repr(response), repr([response] * 3), repr(response.data)):
        assert picture[:40] not in text
    assert len(repr(response)) <= REPR_LIMIT
    assert len(repr(response.data)) <= count * REPR_LIMIT // 4


def test_repr_of_a_gpt_image_response_clips_long_strings() -> None:
    request = VariationRequest(model="gpt-image-2-" + "x" * 500, prompt="p" * 10_000)
    long_url = "https://example.org/" + "u" * 2_000
    response = ImagesResponse.from_dict(
        {**GPT_IMAGE_BODY, "data": [{"url": long_url, "revised_prompt": "r" * 5_000}]},
        backend="edits",
        request=request,
    )

    text = repr(response)
    assert text.startswith("ImagesResponse(1 image, backend edits, model gpt-image-2-xxx")
    assert "size 1024x1024" in text and "tokens 322 (in 50, out 272)" in text
    assert len(text) <= REPR_LIMIT
    item = repr(response.data[0])
    assert item.startswith("ImageData(url='https://example.org/uuu") and "revised_prompt=" in item
    assert len(item) <= REPR_LIMIT


def test_merge_keeps_order_and_sums_usage() -> None:
    first = ImagesResponse.from_dict(GPT_IMAGE_BODY)
    second = ImagesResponse.from_dict({**GPT_IMAGE_BODY, "created": 1_713_833_000})

    merged = ImagesResponse.merge([first, second])
    assert merged.created == 1_713_833_000
    assert len(merged.data) == 2
    assert merged.usage is not None
    assert (merged.usage.input_tokens, merged.usage.total_tokens) == (100, 644)
    assert merged.usage.input_tokens_details == {"text_tokens": 20, "image_tokens": 80}
    spec.validate_images_response(merged.to_dict())


def saved_response(source: Any = None) -> ImagesResponse:
    prepared = prepare_image(png_bytes((64, 48), RED) if source is None else source)
    request = VariationRequest(n=2, size="256x256", response_format="b64_json", user="teacher-7")
    return ImagesResponse.from_dict(
        LEGACY_BODY, backend="variations", request=request, source=prepared
    )


def test_source_is_the_prepared_input() -> None:
    response = saved_response()
    assert response.source is not None
    assert response.source.image.size == (48, 48)
    assert response.backend == "variations"


def test_save_writes_pngs_and_metadata(tmp_path: Path) -> None:
    response = saved_response()

    run = response.save(tmp_path / "out")
    assert run == tmp_path / "out" / "run-001"
    assert sorted(p.name for p in run.iterdir()) == [
        "metadata.json",
        "original.png",
        "variation-01.png",
        "variation-02.png",
    ]
    assert (run / "original.png").read_bytes() == response.source.png
    from PIL import Image

    with Image.open(run / "variation-02.png") as saved:
        assert (saved.format, saved.getpixel((0, 0))) == ("PNG", BLUE)
    metadata = json.loads((run / "metadata.json").read_text())
    assert metadata["created"] == 1_713_833_628
    assert metadata["backend"] == "variations"
    assert metadata["params"] == {
        "n": 2,
        "size": "256x256",
        "response_format": "b64_json",
        "user": "teacher-7",
        "fit": "crop",
    }
    assert metadata["source"] == {"name": "image", "sha256": response.source.sha256}
    assert metadata["revised_prompts"] == ["a blue square"]


def test_save_never_overwrites_earlier_runs(tmp_path: Path) -> None:
    first = saved_response().save(tmp_path)
    before = {p.name: p.read_bytes() for p in first.iterdir()}

    second = saved_response(png_bytes((40, 40), BLUE)).save(tmp_path)
    third = saved_response().save(tmp_path)
    assert [first.name, second.name, third.name] == ["run-001", "run-002", "run-003"]
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert (second / "original.png").read_bytes() != before["original.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-001", "run-002", "run-003"]


def test_save_without_source_or_request(tmp_path: Path) -> None:
    run = ImagesResponse.from_dict(LEGACY_BODY).save(tmp_path)

    assert not (run / "original.png").exists()
    metadata = json.loads((run / "metadata.json").read_text())
    assert (metadata["params"], metadata["source"], metadata["backend"]) == ({}, None, None)


# -- errors -------------------------------------------------------------------------------------


def test_status_error_is_one_line() -> None:
    body = {
        "error": {
            "message": "Uploaded image must be square.",
            "type": "invalid_request_error",
            "param": "image",
            "code": None,
        }
    }
    spec.validate_error_response(body)

    error = status_error(400, body, request_id="req_abc123")
    assert isinstance(error, BadRequestError)
    assert str(error) == "400 invalid_request_error (param: image): Uploaded image must be square."
    assert (error.status_code, error.type, error.param, error.code, error.request_id) == (
        400,
        "invalid_request_error",
        "image",
        None,
        "req_abc123",
    )
    assert error.message == "Uploaded image must be square."
    assert error.partial is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (404, NotFoundError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_status_codes_map_to_types(status: int, cls: type[APIStatusError]) -> None:
    error = status_error(
        status, {"error": {"message": "m", "type": "t", "code": "c"}}, request_id=None
    )
    assert type(error) is cls
    assert str(error) == f"{status} t: m"
    assert error.code == "c"


def test_status_error_without_an_error_body() -> None:
    error = status_error(502, "<html>Bad gateway</html>", request_id=None)
    assert str(error) == "502: the server answered HTTP 502 without an error message"
    assert "\n" not in str(error)
