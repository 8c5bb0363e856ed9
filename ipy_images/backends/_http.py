"""The HTTP side shared by the `variations` and `edits` backends.

One POST with retries (408/409/429/5xx, connection errors, timeouts and unreadable
bodies), honouring `retry-after-ms`, `Retry-After` and `x-should-retry`; URL results
downloaded at once; error bodies turned into typed errors with any key redacted.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import email.utils
import io
import json
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from .._version import __version__
from ..errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    status_error,
)
from ..models import ImageData, ImagesResponse, VariationRequest
from ..sources import PreparedImage
from ._base import Backend, Emit

T = TypeVar("T")

MAX_RETRY_DELAY = 60.0
_RETRY_STATUSES = frozenset({408, 409, 429})


class UnusableAnswer(Exception):
    """The server answered 2xx but the body cannot be used; worth another try."""


class HTTPBackend(Backend):
    """A backend that POSTs multipart forms to an OpenAI-compatible server."""

    endpoint: str

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str,
        timeout: float,
        max_retries: int,
        http: httpx.AsyncClient,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._http = http

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"ipy-images/{__version__} httpx/{httpx.__version__}"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def redact(self, text: str) -> str:
        """`text` with the API key, if it appears, masked."""
        return text.replace(self._api_key, "sk-***") if self._api_key else text

    @abc.abstractmethod
    def form_fields(self, request: VariationRequest, n: int) -> dict[str, str]:
        """The multipart text fields of one request."""

    def expected_size(self, request: VariationRequest) -> tuple[int, int] | None:
        """The pixel size every result must have, when the request fixes one ("WxH")."""
        width, _, height = str(request.size).partition("x")
        return (int(width), int(height)) if width.isdigit() and height.isdigit() else None

    async def create(
        self,
        image: PreparedImage,
        request: VariationRequest,
        n: int,
        *,
        first_index: int,
        emit: Emit,
    ) -> ImagesResponse:
        fields = self.form_fields(request, n)
        files = {"image": (image.filename, image.png, image.mime)}

        def parse(body: bytes) -> ImagesResponse:
            response = self._parse(body, request, image)
            if len(response.data) != n:
                raise UnusableAnswer(f"{len(response.data)} images came back, {n} were asked")
            return response

        response = await self.with_retries(lambda: self._post(fields, files), parse)
        expected = self.expected_size(request)

        async def deliver(offset: int, item: ImageData) -> None:
            """Download a URL result at once (URLs expire), check it, report it."""
            if item.content is None and item.url:
                item.content = await self._download(item.url)
            if expected is not None and item.image.size != expected:
                got = "x".join(map(str, item.image.size))
                # A server that ignores the asked size breaks the contract: no retry helps.
                raise APIError(
                    f"{self.base_url} returned a {got} image where {request.size} was asked"
                )
            emit(first_index + offset, item)

        outcomes = await asyncio.gather(
            *(deliver(offset, item) for offset, item in enumerate(response.data)),
            return_exceptions=True,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            error = next((f for f in failures if not isinstance(f, APIError)), failures[0])
            if not isinstance(error, APIError):
                raise error  # cancellation, interrupts and bugs go through untouched
            kept = [item for item, o in zip(response.data, outcomes, strict=True) if o is None]
            error.partial = dataclasses.replace(response, data=kept) if kept else None
            raise error
        return response

    async def _post(self, fields: dict[str, str], files: dict[str, Any]) -> httpx.Response:
        return await self._http.post(
            f"{self.base_url}/{self.endpoint}", data=fields, files=files, headers=self.headers
        )

    def _parse(
        self, body: bytes, request: VariationRequest, image: PreparedImage
    ) -> ImagesResponse:
        try:
            raw = json.loads(body)
            response = ImagesResponse.from_dict(
                raw, backend=self.name, request=request, source=image
            )
        except ValueError as exc:  # JSONDecodeError and bad base64 are ValueErrors
            raise UnusableAnswer(f"the answer is not a valid ImagesResponse ({exc})") from None
        for item in response.data:
            if item.content is not None:
                check_image(item.content)
            elif item.url is None:
                raise UnusableAnswer("an image came back with neither b64_json nor url")
        return response

    async def with_retries(self, send: Callable[[], Any], parse: Callable[[bytes], T]) -> T:
        """Send, and parse a 2xx answer, retrying what is worth retrying.

        Each attempt, body included, is bounded by the timeout, since a server that
        trickles its body would never trip httpx's per-read timeout.
        """
        attempt = 0
        while True:
            answer: httpx.Response | None = None
            try:
                answer = await asyncio.wait_for(self._send_and_read(send), self.timeout)
                if answer.is_success:
                    return parse(answer.content)
                error: APIError = self._status_error(answer)
                retry = _should_retry(answer)
            except asyncio.TimeoutError:
                error = APITimeoutError(f"no answer from {self.base_url} within {self.timeout} s")
                retry = True
            except httpx.TransportError as exc:
                error = APIConnectionError(
                    f"connection to {self.base_url} failed: {type(exc).__name__}"
                )
                retry = True
            except UnusableAnswer as exc:
                error = APIConnectionError(f"unusable answer from {self.base_url}: {exc}")
                retry = True
            if not retry or attempt >= self.max_retries:
                raise error
            await asyncio.sleep(_retry_delay(attempt, answer))
            attempt += 1

    @staticmethod
    async def _send_and_read(send: Callable[[], Any]) -> httpx.Response:
        answer: httpx.Response = await send()
        await answer.aread()
        return answer

    def _status_error(self, answer: httpx.Response) -> APIStatusError:
        try:
            body = answer.json()
        except ValueError:
            body = None
        error = status_error(
            answer.status_code, body, request_id=answer.headers.get("x-request-id")
        )
        error.message = self.redact(error.message)
        error.args = (error.message,)
        return error

    async def _download(self, url: str) -> bytes:
        def parse(body: bytes) -> bytes:
            check_image(body)
            return body

        async def fetch() -> httpx.Response:
            # Result URLs are pre-signed: the API key must not travel to their host.
            return await self._http.get(url)

        try:
            return await self.with_retries(fetch, parse)
        except APIStatusError as exc:
            raise type(exc)(
                f"a result image could not be downloaded from its URL ({exc.status_code})",
                status_code=exc.status_code,
                request_id=exc.request_id,
            ) from None


def check_image(content: bytes) -> None:
    """Raise UnusableAnswer unless `content` decodes as an image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as picture:
            picture.verify()
    except Exception as exc:
        raise UnusableAnswer(f"a result is not a readable image ({type(exc).__name__})") from None


def _should_retry(answer: httpx.Response) -> bool:
    verdict = answer.headers.get("x-should-retry")
    if verdict in ("true", "false"):
        return verdict == "true"
    return answer.status_code in _RETRY_STATUSES or answer.status_code >= 500


def _retry_delay(attempt: int, answer: httpx.Response | None) -> float:
    """The server's asked-for delay if it gave one, else backoff with jitter."""
    if answer is not None:
        asked = _asked_delay(answer.headers)
        if asked is not None and 0 <= asked <= MAX_RETRY_DELAY:
            return asked
    backoff = min(0.5 * 2**attempt, 8.0)
    return backoff * (1 - 0.25 * random.random())


def _asked_delay(headers: httpx.Headers) -> float | None:
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
