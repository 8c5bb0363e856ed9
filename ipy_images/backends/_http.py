"""The HTTP side shared by the `variations` and `edits` backends.

One POST with retries (408/409/429/5xx, connection errors, timeouts and unreadable
bodies), honouring `retry-after-ms`, `Retry-After` and `x-should-retry`; URL results
downloaded at once; error bodies turned into typed errors with any key redacted.

Nothing a server sends is trusted with memory: every body is streamed against a byte
cap derived from the request (the largest answer the contract allows for it), and every
result image's header is checked against the largest size the request allows before
anything decodes its pixels.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import email.utils
import io
import json
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from .._redact import redact
from .._version import __version__
from ..errors import APIConnectionError, APIError, APIStatusError, APITimeoutError, status_error
from ..models import ImageData, ImagesResponse, VariationRequest
from ..sources import PreparedImage
from ._base import Backend, Emit

T = TypeVar("T")

MAX_RETRY_DELAY = 60.0
_RETRY_STATUSES = frozenset({408, 409, 429})
AUTO_SIZE_LIMIT = (2048, 2048)
"""The largest result accepted for size="auto" when the model documents no sizes."""
_IMAGE_BYTES_PER_PIXEL = 5
"""Bytes a result image may take per pixel: 4 for RGBA stored without compression, the
fifth for the PNG framing around it. No real image comes close (a photo is nearer 1-2)."""
_IMAGE_BYTES_SLACK = 64 * 1024
_JSON_SLACK = 1024 * 1024
"""Room in a JSON answer for everything besides the images (usage, revised prompts)."""
MAX_ERROR_BYTES = 64 * 1024
"""What is read of an error answer: OpenAI's error bodies take a few hundred bytes."""


class UnusableAnswer(Exception):
    """The server answered 2xx but the body cannot be used; worth another try."""


class AnswerTooLarge(Exception):
    """The body runs past the byte cap; asking again would only fetch as much again."""


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
        """`text` with any recognisable piece of the API key masked."""
        return redact(text, self._api_key)

    @abc.abstractmethod
    def form_fields(self, request: VariationRequest, n: int) -> dict[str, str]:
        """The multipart text fields of one request."""

    def expected_size(self, request: VariationRequest) -> tuple[int, int] | None:
        """The pixel size every result must have, when the request fixes one ("WxH")."""
        width, _, height = str(request.size).partition("x")
        return (int(width), int(height)) if width.isdigit() and height.isdigit() else None

    def auto_size_limit(self, request: VariationRequest) -> tuple[int, int]:
        """The largest result (as "WxH", either way round) when the size is not fixed."""
        return AUTO_SIZE_LIMIT

    def max_image_bytes(self, request: VariationRequest) -> int:
        """The byte cap of one result image file (a downloaded URL result)."""
        width, height = self.expected_size(request) or self.auto_size_limit(request)
        return width * height * _IMAGE_BYTES_PER_PIXEL + _IMAGE_BYTES_SLACK

    def max_answer_bytes(self, request: VariationRequest, n: int) -> int:
        """The byte cap of a JSON answer: `n` of the largest images, base64, plus slack.

        68.5 MB for the largest legacy request (ten 1024x1024), 102 MB for ten 1536x1024
        from a GPT image model; ten real 1024 px photos take about 12 MB, so no honest
        answer comes near the cap, while a server streaming gigabytes is cut off at it.
        """
        return n * -(-self.max_image_bytes(request) * 4 // 3) + _JSON_SLACK

    def check_result_size(self, size: tuple[int, int], request: VariationRequest) -> None:
        """Refuse a result whose header claims another size than the request allows."""
        expected = self.expected_size(request)
        if expected is not None:
            fits, allowed = size == expected, f"{request.size} was asked"
        else:
            limit = self.auto_size_limit(request)
            fits = max(size) <= max(limit) and size[0] * size[1] <= limit[0] * limit[1]
            allowed = f"size={request.size!r} allows at most {limit[0]}x{limit[1]}"
        if not fits:
            # A server that ignores the asked size breaks the contract: no retry helps.
            raise APIError(
                f"{self.base_url} returned a {size[0]}x{size[1]} image where {allowed}; refused."
            )

    async def create(
        self, image: PreparedImage, request: VariationRequest, n: int, *, first: int, emit: Emit
    ) -> ImagesResponse:
        fields = self.form_fields(request, n)
        files = {"image": (image.filename, image.png, image.mime)}

        def parse(body: bytes) -> ImagesResponse:
            response = self._parse(body, request, image)
            if len(response.data) != n:
                raise UnusableAnswer(f"{len(response.data)} images came back, {n} were asked")
            return response

        response = await self.with_retries(
            lambda: self._post(fields, files), parse, limit=self.max_answer_bytes(request, n)
        )

        async def deliver(offset: int, item: ImageData) -> None:
            """Download a URL result at once (URLs expire), check it, report it."""
            if item.content is None and item.url:
                item.content = await self._download(item.url, request)
            assert item.content is not None  # _parse refuses items with neither
            self.check_result_size(check_image(item.content), request)
            emit(first + offset, item)

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
        url = f"{self.base_url}/{self.endpoint}"
        post = self._http.build_request("POST", url, data=fields, files=files, headers=self.headers)
        return await self._http.send(post, stream=True)

    def _parse(
        self, body: bytes, request: VariationRequest, image: PreparedImage
    ) -> ImagesResponse:
        try:
            response = ImagesResponse.from_dict(
                json.loads(body), backend=self.name, request=request, source=image
            )
        except RecursionError:
            raise UnusableAnswer("the answer is JSON nested too deeply to read") from None
        except ValueError as exc:  # JSONDecodeError and bad base64 are ValueErrors
            raise UnusableAnswer(f"the answer is not a valid ImagesResponse ({exc})") from None
        for item in response.data:
            if item.content is not None:
                check_image(item.content)
            elif item.url is None:
                raise UnusableAnswer("an image came back with neither b64_json nor url")
        return response

    async def with_retries(
        self, send: Callable[[], Any], parse: Callable[[bytes], T], *, limit: int
    ) -> T:
        """Send, and parse a 2xx answer, retrying what is worth retrying.

        Each attempt, body included, is bounded by the timeout, since a server that
        trickles its body would never trip httpx's per-read timeout; and every body, an
        error's included, by `limit` bytes.
        """
        attempt = 0
        while True:
            answered: httpx.Response | None = None  # its headers may ask for a delay
            try:
                answer, body = await asyncio.wait_for(_send_and_read(send, limit), self.timeout)
                answered = answer
                if answer.is_success:
                    return parse(body)
                error: APIError = self._status_error(answer, body)
                retry = _should_retry(answer)
            except AnswerTooLarge:
                raise APIConnectionError(
                    f"the answer from {self.base_url} is larger than {limit / 2**20:.1f} MB, "
                    "more than the request allows; refused without reading the rest."
                ) from None
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
            await asyncio.sleep(_retry_delay(attempt, answered))
            attempt += 1

    def _status_error(self, answer: httpx.Response, body: bytes) -> APIStatusError:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to read
            parsed = None
        request_id = answer.headers.get("x-request-id")
        error = status_error(
            answer.status_code, parsed, request_id=self.redact(request_id) if request_id else None
        )
        error.message = self.redact(error.message)
        for name in ("type", "param", "code"):
            value = getattr(error, name)
            if value is not None:
                setattr(error, name, self.redact(value))
        error.args = (error.message,)
        return error

    async def _download(self, url: str, request: VariationRequest) -> bytes:
        def parse(body: bytes) -> bytes:
            check_image(body)
            return body

        async def fetch() -> httpx.Response:
            # Result URLs are pre-signed: the API key must not travel to their host.
            return await self._http.send(self._http.build_request("GET", url), stream=True)

        try:
            return await self.with_retries(fetch, parse, limit=self.max_image_bytes(request))
        except APIStatusError as exc:
            raise type(exc)(
                f"a result image could not be downloaded from its URL ({exc.status_code})",
                status_code=exc.status_code,
                request_id=exc.request_id,
            ) from None


async def _send_and_read(send: Callable[[], Any], limit: int) -> tuple[httpx.Response, bytes]:
    """The streamed answer and its body: a 2xx body is refused as soon as it passes `limit`
    bytes; an error's is cut at `MAX_ERROR_BYTES`, since only its status must survive."""
    answer: httpx.Response = await send()
    try:
        cap = limit if answer.is_success else MAX_ERROR_BYTES
        declared = answer.headers.get("content-length", "")
        if answer.is_success and declared.isdigit() and int(declared) > cap:
            raise AnswerTooLarge
        chunks, received = [], 0
        async for chunk in answer.aiter_bytes():  # decoded: a gzip bomb counts in full
            chunks.append(chunk)
            received += len(chunk)
            if received > cap:
                if answer.is_success:
                    raise AnswerTooLarge
                break
    finally:
        await answer.aclose()
    return answer, b"".join(chunks)[:cap]


def check_image(content: bytes) -> tuple[int, int]:
    """The size an image file claims; UnusableAnswer unless it reads as an image.

    Only the header and the chunk checksums are read, never the pixels.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(content)) as picture:
            size = picture.size
            picture.verify()
    except Exception as exc:
        raise UnusableAnswer(f"a result is not a readable image ({type(exc).__name__})") from None
    return size


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
    with contextlib.suppress(ValueError):
        return float(headers.get("retry-after-ms", "")) / 1000
    value = headers.get("retry-after", "")
    with contextlib.suppress(ValueError):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
