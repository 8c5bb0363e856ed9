"""The API key never shows: not in exception text, reprs or log lines, whatever happens.

Logging is captured at DEBUG for every logger (httpx, httpcore and ipy_images included),
and every record is searched for the key.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import FAKE_API_KEY
from loopback import Fault, LoopbackServer, png_bytes
from test_sources import free_port

import ipy_images
from ipy_images import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AsyncVariationClient,
    AuthenticationError,
    BadRequestError,
    ImagesResponse,
    InternalServerError,
    InvalidParameterError,
    NotFoundError,
    VariationClient,
)
from ipy_images._config import resolve

WRONG_KEY = "sk-" + "wrong-SENTINEL-7e3a91c0d2b4f6a8"
SQUARE = png_bytes((64, 64))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IPY_IMAGES_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG and above, from every library."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "ipy_images"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def assert_hidden(key: str, *texts: str, logs: pytest.LogCaptureFixture | None = None) -> None:
    """`key` appears in none of `texts` nor in any captured log record."""
    for text in texts:
        assert key not in text
    if logs is not None:
        # The capture must have seen the traffic, or this check would prove nothing.
        assert any(record.name.startswith("httpcore") for record in logs.records)
        for record in logs.records:
            assert key not in record.getMessage()
            assert key not in logs.handler.format(record)
            assert key not in repr(record.args)


def error_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]


def run(server: LoopbackServer, api_key: str | None, **options: Any) -> ImagesResponse:
    async def go() -> ImagesResponse:
        async with AsyncVariationClient(
            backend="variations",
            base_url=server.base_url,
            api_key=api_key,
            max_retries=options.pop("max_retries", 0),
            timeout=options.pop("timeout", 10.0),
        ) as client:
            return await client.create_variation(SQUARE, n=1, size="256x256", **options)

    return asyncio.run(go())


def test_wrong_key_gives_401_without_the_key(
    loopback_with_key: LoopbackServer, logs: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(AuthenticationError) as info:
        run(loopback_with_key, WRONG_KEY, max_retries=2)

    exc = info.value
    assert (exc.status_code, exc.code) == (401, "invalid_api_key")
    assert str(exc).startswith("401 invalid_request_error: Incorrect API key provided")
    assert len(loopback_with_key.requests) == 1  # a 401 is never retried
    assert loopback_with_key.requests[0].authorization == f"Bearer {WRONG_KEY}"
    assert_hidden(WRONG_KEY, *error_texts(exc), logs=logs)


def test_right_key_is_sent_and_never_shown(
    loopback_with_key: LoopbackServer, logs: pytest.LogCaptureFixture
) -> None:
    async def go() -> tuple[ImagesResponse, str]:
        async with AsyncVariationClient(
            "variations", FAKE_API_KEY, loopback_with_key.base_url
        ) as client:
            response = await client.create_variation(SQUARE, n=2, size="256x256")
            return response, repr(client) + repr(client._get_backend())

    response, client_reprs = asyncio.run(go())
    assert loopback_with_key.requests[0].authorization == f"Bearer {FAKE_API_KEY}"
    with VariationClient("variations", FAKE_API_KEY, loopback_with_key.base_url) as sync:
        sync_repr = repr(sync)
    texts = [client_reprs, sync_repr, repr(response), repr(response.request)]
    texts += [repr(response.source), str(response.to_dict()), str(response.metadata())]
    texts += [repr(resolve("variations", FAKE_API_KEY, loopback_with_key.base_url))]
    assert_hidden(FAKE_API_KEY, *texts, logs=logs)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(400, message=f"Key {FAKE_API_KEY} may not use this."), BadRequestError),
        (Fault.status(500, message=f"Upstream refused {FAKE_API_KEY}"), InternalServerError),
        (Fault.status(404, body=f"<html>no route for {FAKE_API_KEY}</html>"), NotFoundError),
    ],
    ids=["400", "500", "html-404"],
)
def test_key_echoed_by_the_server_is_redacted(
    loopback: LoopbackServer, logs: pytest.LogCaptureFixture, fault: Fault, error: type[APIError]
) -> None:
    loopback.enqueue(fault)

    with pytest.raises(error) as info:
        run(loopback, FAKE_API_KEY)
    assert_hidden(FAKE_API_KEY, *error_texts(info.value), logs=logs)
    if isinstance(info.value, BadRequestError):
        assert str(info.value) == "400 invalid_request_error: Key *** may not use this."


def test_connection_failures_do_not_show_the_key(logs: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        async with AsyncVariationClient(
            "variations", FAKE_API_KEY, f"http://127.0.0.1:{free_port()}/v1", max_retries=0
        ) as client:
            await client.create_variation(SQUARE, n=1, size="256x256")

    with pytest.raises(APIConnectionError) as info:
        asyncio.run(go())
    assert_hidden(FAKE_API_KEY, *error_texts(info.value), logs=logs)


def test_timeouts_do_not_show_the_key(
    loopback: LoopbackServer, logs: pytest.LogCaptureFixture
) -> None:
    loopback.enqueue(Fault.delay(2.0))

    with pytest.raises(APITimeoutError) as info:
        run(loopback, FAKE_API_KEY, timeout=0.5)
    assert_hidden(FAKE_API_KEY, *error_texts(info.value), logs=logs)


def test_partial_results_do_not_show_the_key(
    loopback: LoopbackServer, logs: pytest.LogCaptureFixture
) -> None:
    loopback.enqueue(Fault.url_404(index=0))

    with pytest.raises(NotFoundError) as info:
        asyncio.run(
            ipy_images.acreate_variation(
                SQUARE,
                backend="variations",
                base_url=loopback.base_url,
                api_key=FAKE_API_KEY,
                n=2,
                size="256x256",
                response_format="url",
            )
        )
    partial = info.value.partial
    assert partial is not None and len(partial.data) == 1
    assert_hidden(FAKE_API_KEY, *error_texts(info.value), repr(partial), logs=logs)


@pytest.mark.parametrize("backend", ["variations", "edits"])
def test_missing_key_for_openai_says_how_to_set_it(backend: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        AsyncVariationClient(backend=backend)
    message = str(info.value)
    assert "OPENAI_API_KEY" in message
    assert "environment variable" in message
    assert "backend='local'" in message
    assert "\n" not in message


def test_missing_key_is_refused_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")  # set but empty counts as missing
    with pytest.raises(InvalidParameterError, match="OPENAI_API_KEY"):
        ipy_images.create_variation(SQUARE, backend="variations", n=1)


def test_key_from_the_environment(
    loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch, logs: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", loopback.base_url)

    client = AsyncVariationClient()
    assert (client.backend, client.base_url) == ("variations", loopback.base_url)

    async def go() -> ImagesResponse:
        async with client:
            return await client.create_variation(SQUARE, n=1, size="256x256")

    response = asyncio.run(go())
    assert loopback.requests[0].authorization == f"Bearer {FAKE_API_KEY}"
    assert_hidden(FAKE_API_KEY, repr(client), repr(response), logs=logs)


@pytest.mark.parametrize("padding", ["\n", " ", "\r\n"], ids=["newline", "space", "crlf"])
def test_key_with_surrounding_whitespace(
    loopback_with_key: LoopbackServer, logs: pytest.LogCaptureFixture, padding: str
) -> None:
    # Keys pasted from a file or a web page often carry a trailing newline or space.
    outcome: ImagesResponse | APIError
    try:
        outcome = run(loopback_with_key, FAKE_API_KEY + padding)
    except APIError as exc:
        outcome = exc
    texts = error_texts(outcome) if isinstance(outcome, APIError) else []
    assert_hidden(FAKE_API_KEY, *texts, logs=logs)
    assert isinstance(outcome, ImagesResponse)
    assert loopback_with_key.requests[0].authorization == f"Bearer {FAKE_API_KEY}"
