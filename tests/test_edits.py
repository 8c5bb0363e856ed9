"""The edits backend against the loopback server speaking the GPT-image edits contract.

Every request goes through the real client and httpx to a real HTTP server on 127.0.0.1;
the forms it received are checked field by field and against the documented contract.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
import spec
from loopback import TINT_WEIGHT, TINTS, Fault, LoopbackServer, png_bytes
from PIL import Image

import ipy_images
from ipy_images import (
    AsyncVariationClient,
    AuthenticationError,
    BadRequestError,
    ImageData,
    ImagesResponse,
    InvalidImageError,
    InvalidParameterError,
)
from ipy_images.backends.http_edits import DEFAULT_MODEL, DEFAULT_PROMPT, MAX_PROMPT_CHARS
from ipy_images.sources import PreparedImage, prepare_image

KEY = "sk-" + "test-edits-SENTINEL-9c1e7b2d4f6a"
RED = (200, 80, 40)
WIDE = png_bytes((96, 64), RED)  # 3:2, so any square crop would show in the upload


def make(
    server: LoopbackServer, image: Any = WIDE, *, api_key: str = KEY, **options: Any
) -> ImagesResponse:
    """Variations from `server` through the async client, run to completion."""

    async def run() -> ImagesResponse:
        async with AsyncVariationClient(
            backend="edits", base_url=server.base_url, api_key=api_key
        ) as client:
            return await client.create_variation(image, **options)

    return asyncio.run(run())


def test_default_request_fields(loopback: LoopbackServer) -> None:
    response = make(loopback, n=2)

    (request,) = loopback.requests
    assert request.path == "/v1/images/edits"
    assert request.fields == {
        "model": DEFAULT_MODEL,
        "prompt": DEFAULT_PROMPT,
        "n": "2",
        "size": "auto",
    }
    part = request.file("image")
    assert part is not None
    assert (part.filename, part.content_type) == ("image.png", "image/png")
    assert request.authorization == f"Bearer {KEY}"
    spec.validate_edits_request(request.form)
    assert len(response.data) == 2
    assert (response.request.model, response.request.prompt) == (DEFAULT_MODEL, DEFAULT_PROMPT)


def test_every_option_is_sent_when_set(loopback: LoopbackServer) -> None:
    make(
        loopback,
        n=1,
        model="gpt-image-1.5",
        prompt="the same scene at dusk",
        size="1536x1024",
        quality="low",
        background="opaque",
        output_format="webp",
        output_compression=70,
        input_fidelity="high",
        user="teacher-7",
    )

    (request,) = loopback.requests
    assert request.fields == {
        "model": "gpt-image-1.5",
        "prompt": "the same scene at dusk",
        "n": "1",
        "size": "1536x1024",
        "quality": "low",
        "background": "opaque",
        "output_format": "webp",
        "output_compression": "70",
        "input_fidelity": "high",
        "user": "teacher-7",
    }
    assert "response_format" not in request.fields
    spec.validate_edits_request(request.form)


def test_non_square_input_is_sent_uncropped(loopback: LoopbackServer) -> None:
    tall = Image.new("RGB", (40, 100), RED)
    make(loopback, tall, n=1, quality="low")

    part = loopback.requests[0].file("image")
    assert part is not None
    assert part.image.size == (40, 100)
    assert part.data.startswith(b"\x89PNG")


def test_response_fields_are_kept_and_round_trip(loopback: LoopbackServer) -> None:
    response = make(
        loopback, n=2, size="1024x1024", quality="low", output_format="webp", output_compression=80
    )

    assert (response.background, response.output_format, response.quality, response.size) == (
        "opaque",
        "webp",
        "low",
        "1024x1024",
    )
    assert response.backend == "edits"
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + (
        response.usage.output_tokens
    )
    assert response.usage.input_tokens_details["image_tokens"] > 0
    assert [image.size for image in response.images] == [(1024, 1024)] * 2
    assert Image.open(io.BytesIO(response.data[0].content)).format == "WEBP"
    body = response.to_dict()
    spec.validate_images_response(body)
    assert ImagesResponse.from_dict(body).to_dict() == body


def test_auto_size_follows_the_input_aspect(loopback: LoopbackServer) -> None:
    response = make(loopback, n=1, quality="low")

    assert response.size == "1536x1024"
    assert response.images[0].size == (1536, 1024)


def test_transparent_background_comes_back_with_alpha(loopback: LoopbackServer) -> None:
    response = make(loopback, n=1, size="1024x1024", quality="low", background="transparent")

    assert response.background == "transparent"
    image = response.images[0]
    assert image.mode == "RGBA"
    assert image.getextrema()[3][0] == 0


def test_fan_out_sums_usage_and_keeps_order(loopback: LoopbackServer) -> None:
    options = {"size": "1024x1024", "quality": "low"}
    single = make(loopback, n=1, **options)
    assert single.usage is not None
    arrived: list[tuple[int, ImageData]] = []

    response = make(loopback, n=13, on_image=lambda i, item: arrived.append((i, item)), **options)

    fan_out = loopback.requests[1:]
    assert sorted(int(r.fields["n"]) for r in fan_out) == [3, 10]
    for request in fan_out:
        spec.validate_edits_request(request.form)
    assert response.usage is not None
    assert response.usage.output_tokens == 13 * single.usage.output_tokens
    assert response.usage.input_tokens == 2 * single.usage.input_tokens
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )
    assert len(response.data) == 13
    # Image i of a batch carries tint i: batch order shows as tint i % 10 at index i.
    assert [_tint_of(image) for image in response.images] == [i % 10 for i in range(13)]
    assert sorted(i for i, _ in arrived) == list(range(13))
    assert all(item is response.data[i] for i, item in arrived)
    spec.validate_images_response(response.to_dict())


def _tint_of(image: Image.Image) -> int:
    """The index of the loopback tint that `image`'s colour is closest to."""
    colour = image.convert("RGB").resize((1, 1)).getpixel((0, 0))

    def distance(tint: tuple[int, int, int]) -> float:
        blended = [a * (1 - TINT_WEIGHT) + b * TINT_WEIGHT for a, b in zip(RED, tint, strict=True)]
        return sum((a - b) ** 2 for a, b in zip(colour, blended, strict=True))

    return min(range(len(TINTS)), key=lambda i: distance(TINTS[i]))


def test_rate_limit_is_retried_after_the_asked_delay(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.status(429, retry_after="0"))

    response = make(loopback, n=1, quality="low")

    assert len(loopback.requests) == 2
    assert len(response.data) == 1
    assert loopback.requests[0].fields == loopback.requests[1].fields


def test_server_error_is_retried(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.status(500))

    response = make(loopback, n=1, quality="low")

    assert len(loopback.requests) == 2
    assert len(response.data) == 1


def test_bad_request_is_one_line_and_not_retried(loopback: LoopbackServer) -> None:
    message = "Invalid value for 'size': '1024x1024' is not supported for this model."
    loopback.enqueue(Fault.status(400, message=message, param="size", error_code="invalid_value"))

    with pytest.raises(BadRequestError) as caught:
        make(loopback, n=1, size="1024x1024")

    assert str(caught.value) == f"400 invalid_request_error (param: size): {message}"
    assert (caught.value.param, caught.value.code) == ("size", "invalid_value")
    assert caught.value.request_id
    assert len(loopback.requests) == 1


def test_server_refusal_of_an_unknown_model_reaches_the_caller(loopback: LoopbackServer) -> None:
    # Non-GPT models get only basic checks here, so the server has the last word.
    with pytest.raises(BadRequestError) as caught:
        make(loopback, n=1, model="flux-kontext", quality="standard")

    assert caught.value.param == "model"
    assert loopback.requests[0].fields["quality"] == "standard"


def test_wrong_key_is_never_shown(loopback_with_key: LoopbackServer) -> None:
    wrong = "sk-" + "test-WRONG-KEY-0123456789abcdef"

    with pytest.raises(AuthenticationError) as caught:
        make(loopback_with_key, n=1, api_key=wrong)

    assert caught.value.status_code == 401
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert len(loopback_with_key.requests) == 1


def test_key_echoed_by_the_server_is_redacted(loopback: LoopbackServer) -> None:
    loopback.enqueue(Fault.status(401, message=f"Incorrect API key provided: {KEY}."))

    with pytest.raises(AuthenticationError) as caught:
        make(loopback, n=1)

    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert str(caught.value).endswith("Incorrect API key provided: ***.")


def test_right_key_is_sent_as_bearer(loopback_with_key: LoopbackServer) -> None:
    response = make(loopback_with_key, n=1, quality="low", api_key=loopback_with_key.api_key)

    assert loopback_with_key.requests[0].authorization == f"Bearer {loopback_with_key.api_key}"
    assert len(response.data) == 1


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"size": "512x512"}, "'1024x1024', '1536x1024', '1024x1536', 'auto'"),
        ({"size": "big"}, "WIDTHxHEIGHT"),
        ({"quality": "standard"}, "quality='standard' is not accepted by the gpt-image-2"),
        ({"background": "clear"}, "background='clear'"),
        ({"output_format": "gif"}, "output_format='gif'"),
        ({"input_fidelity": "max"}, "input_fidelity='max'"),
        ({"output_compression": 50}, "applies to output_format 'webp' or 'jpeg' only"),
        ({"output_compression": 50, "output_format": "png"}, "PNG is lossless"),
        ({"output_compression": 101, "output_format": "jpeg"}, "from 0 to 100"),
        ({"background": "transparent", "output_format": "jpeg"}, "'png' or 'webp'"),
        ({"response_format": "url"}, "inline (b64_json) only"),
        ({"prompt": ""}, "prompt must be a non-empty text"),
        ({"prompt": "   "}, "prompt must be a non-empty text"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "at most 32,000"),
        ({"model": "dall-e-2"}, "backend='variations'"),
        ({"model": "gpt-image-1-mini", "input_fidelity": "high"}, "does not take input_fidelity"),
        ({"seed": 3}, "does not take seed"),
        ({"n": 0}, "n must be between"),
    ],
)
def test_invalid_options_are_refused_before_sending(
    loopback: LoopbackServer, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        make(loopback, **options)

    assert says in str(caught.value)
    assert len(loopback.requests) == 0


def test_longest_prompt_is_accepted(loopback: LoopbackServer) -> None:
    make(loopback, n=1, quality="low", prompt="y" * MAX_PROMPT_CHARS)

    assert len(loopback.requests[0].fields["prompt"]) == MAX_PROMPT_CHARS


def test_upload_over_50_mb_is_refused_before_sending(loopback: LoopbackServer) -> None:
    small = prepare_image(WIDE, square=False)
    huge = PreparedImage(
        b"\x89PNG" + bytes(50 * 1024 * 1024), small.image, "huge.png", small.sha256, (96, 64)
    )

    with pytest.raises(InvalidImageError, match="at most 50 MB"):
        make(loopback, huge, n=1)

    assert len(loopback.requests) == 0


def test_only_a_key_chooses_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("IPY_IMAGES_BACKEND", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    client = AsyncVariationClient()

    assert client.backend == "edits"
    assert client.base_url == "https://api.openai.com/v1"
    assert KEY not in repr(client)


def test_sync_one_shot_form(loopback: LoopbackServer) -> None:
    response = ipy_images.create_variation(
        WIDE, n=1, quality="low", backend="edits", base_url=loopback.base_url, api_key=KEY
    )

    assert response.backend == "edits"
    assert len(response.images) == 1


def test_grid_caption_shows_model_and_tokens(loopback: LoopbackServer) -> None:
    response = make(loopback, n=2, size="1024x1024", quality="low")

    html = response.to_grid()._repr_mimebundle_()["text/html"]

    assert response.usage is not None
    assert f"model {DEFAULT_MODEL}" in html
    assert f"tokens {response.usage.total_tokens}" in html
