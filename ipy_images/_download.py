"""Downloading a source image from an http(s) URL: bounded in bytes and in time.

The download runs on an event loop, never in a worker thread: cancelling it (a kernel
interrupt, the form's Cancel) closes the connection at once, so an abandoned download
holds no thread that later runs would wait for. Its deadline covers the whole download,
since a server that trickles a byte at a time never trips a per-read timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from .errors import InvalidImageError

MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT = 60.0
"""Seconds for a whole download when no client timeout applies."""
_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Download:
    """A downloaded source: its bytes and what the server said they are."""

    url: str
    content: bytes
    content_type: str

    @property
    def name(self) -> str:
        """The file name in the URL's path, for messages and the upload filename."""
        return PurePosixPath(unquote(urlsplit(self.url).path)).name or "image"

    def __repr__(self) -> str:
        return f"Download({self.url!r}, {len(self.content):,} bytes {self.content_type})"


async def download(url: str, *, timeout: float = DOWNLOAD_TIMEOUT) -> Download:
    """Fetch `url`, refusing bodies over `MAX_DOWNLOAD_BYTES` and downloads over `timeout` s.

    Every failure is an InvalidImageError naming the URL and what to do.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidImageError(
            f"'{scheme}:' URLs are not downloaded; give an http(s) URL, or for a local file "
            "its plain path."
        )
    try:
        return await asyncio.wait_for(_fetch(url, timeout), timeout)
    except asyncio.TimeoutError:
        raise InvalidImageError(
            f"{url} did not finish downloading within {timeout:g} s; check the URL, or "
            "download the image yourself and give its path."
        ) from None


async def _fetch(url: str, timeout: float) -> Download:
    import httpx

    try:
        async with (
            httpx.AsyncClient(
                follow_redirects=True,
                max_redirects=_MAX_REDIRECTS,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            ) as client,
            client.stream("GET", url) as answer,
        ):
            if answer.status_code >= 400:
                raise InvalidImageError(
                    f"{url} answered HTTP {answer.status_code} {answer.reason_phrase}; "
                    "check the URL."
                )
            declared = answer.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_DOWNLOAD_BYTES:
                raise _too_large(url)
            chunks, received = [], 0
            async for chunk in answer.aiter_bytes():
                received += len(chunk)
                if received > MAX_DOWNLOAD_BYTES:
                    raise _too_large(url)
                chunks.append(chunk)
            kind = answer.headers.get("content-type", "").split(";")[0].strip()
    except httpx.TooManyRedirects:
        raise InvalidImageError(f"{url} redirects too many times; check the URL.") from None
    except httpx.HTTPError as exc:
        raise InvalidImageError(
            f"could not download {url}: {type(exc).__name__}; check the URL and the network."
        ) from None
    return Download(url, b"".join(chunks), kind)


def _too_large(url: str) -> InvalidImageError:
    limit = MAX_DOWNLOAD_BYTES // (1024 * 1024)
    return InvalidImageError(f"{url} is larger than {limit} MB; download and downscale it first.")
