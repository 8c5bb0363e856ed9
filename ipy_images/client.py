"""The client every front end uses: one request in, one `ImagesResponse` out.

`AsyncVariationClient` is the real thing; `VariationClient`, `create_variation` and
`acreate_variation` are conveniences over it. The client validates and prepares the
input before anything is sent, fans `n` out into batches the backend accepts, runs them
concurrently, and keeps every image that arrived even when some batches fail.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._config import resolve
from ._download import download
from ._sync import run_sync
from .backends import backend_class
from .errors import APIError, InvalidParameterError
from .models import ImageData, ImagesResponse, VariationRequest
from .sources import source_url

if TYPE_CHECKING:
    import httpx

    from .backends._base import Backend
    from .sources import PreparedImage

__all__ = ["AsyncVariationClient", "VariationClient", "acreate_variation", "create_variation"]

OnImage = Callable[[int, ImageData], Any]
DEFAULT_TIMEOUT = 120.0  # image models often take 10-60 s per request


class AsyncVariationClient:
    """Makes image variations with the chosen backend.

    Args:
        backend: "local" (embedded engine), "variations" (legacy contract, any server)
            or "edits" (GPT image models). None chooses from the environment: see
            `ipy_images._config.resolve`.
        api_key: for HTTP backends; defaults to `OPENAI_API_KEY`. Never shown or logged.
        base_url: e.g. "http://127.0.0.1:8000/v1"; defaults to `OPENAI_BASE_URL`.
        model: the default model of every request.
        timeout: seconds for one HTTP attempt, body included, and for downloading a
            source URL.
        max_retries: further attempts after a retryable failure.
        max_concurrency: batches in flight at once.

    Example:
        >>> async with AsyncVariationClient(backend="local") as client:
        ...     response = await client.create_variation(sample_image("coffee"), n=4)
    """

    def __init__(
        self,
        backend: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        model: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        max_concurrency: int = 4,
    ) -> None:
        self._settings = resolve(backend, api_key, base_url)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidParameterError(
                f"timeout must be a positive number of seconds, not {timeout!r}."
            )
        for option, value, least in (
            ("max_retries", max_retries, 0),
            ("max_concurrency", max_concurrency, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidParameterError(
                    f"{option} must be at least {least} (a whole number), not {value!r}."
                )
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self._http: httpx.AsyncClient | None = None
        self._backend: Backend | None = None

    @property
    def backend(self) -> str:
        return self._settings.backend

    @property
    def base_url(self) -> str | None:
        return self._settings.base_url

    def __repr__(self) -> str:
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"AsyncVariationClient(backend={self.backend!r}{where})"

    async def __aenter__(self) -> AsyncVariationClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close connections; the client can be used again afterwards."""
        if self._http is not None:
            await self._http.aclose()
        self._http = self._backend = None

    def _get_backend(self) -> Backend:
        if self._backend is None:
            options: dict[str, Any] = {}
            if self.backend != "local":
                import httpx

                self._http = httpx.AsyncClient(
                    timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                    limits=httpx.Limits(max_connections=max(self.max_concurrency * 2, 10)),
                )
                options = {
                    "api_key": self._settings.api_key,
                    "base_url": self._settings.base_url,
                    "timeout": self.timeout,
                    "max_retries": self.max_retries,
                    "http": self._http,
                }
            self._backend = backend_class(self.backend)(**options)
        return self._backend

    def build_request(self, **options: Any) -> VariationRequest:
        """A validated request for this client's backend; raises before anything is sent."""
        backend = self._get_backend()
        request = VariationRequest(**options)
        if request.model is None:
            request.model = self.model
        if request.size is None:
            request.size = backend.default_size
        if request.seed is None and self.backend == "local":
            # Drawn here, so the saved metadata says how to reproduce the run.
            request.seed = random.randrange(2**31)
        backend.validate(request)
        return request

    async def create_variation(
        self,
        image: Any,
        *,
        n: int = 4,
        size: str | None = None,
        response_format: str = "b64_json",
        model: str | None = None,
        user: str | None = None,
        prompt: str | None = None,
        seed: int | None = None,
        fit: str = "crop",
        diversity: float | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        input_fidelity: str | None = None,
        on_image: OnImage | None = None,
    ) -> ImagesResponse:
        """Make `n` variations of `image`.

        Args:
            image: a path, http(s) URL, bytes, binary file, PIL image, numpy array or
                `FileUpload` value.
            n: how many images; above the backend's batch limit (10) the request fans
                out into concurrent requests.
            size: "256x256", "512x512" or "1024x1024" (edits: also "1536x1024",
                "1024x1536", "auto"); None is the backend's default.
            response_format: "b64_json" or "url"; URL results are downloaded at once.
            seed: makes the local engine reproducible.
            fit: how a non-square image is made square: "crop", "pad" or "strict".
            diversity: the local engine's knob (1.0 default; higher differs more).
            on_image: called as `on_image(index, ImageData)` as each image arrives.

        Raises:
            InvalidImageError, InvalidParameterError: before any request is sent.
            APIError: its `partial` holds every image that did arrive.
        """
        if on_image is not None and not callable(on_image):
            raise InvalidParameterError(
                f"on_image must be a function taking (index, data), not {type(on_image).__name__}."
            )
        request = self.build_request(
            n=n,
            size=size,
            response_format=response_format,
            model=model,
            user=user,
            prompt=prompt,
            seed=seed,
            fit=fit,
            diversity=diversity,
            quality=quality,
            background=background,
            output_format=output_format,
            output_compression=output_compression,
            input_fidelity=input_fidelity,
        )
        prepared = await self.prepare(image, request)
        return await self._fan_out(self._get_backend(), prepared, request, on_image)

    async def prepare(self, image: Any, request: VariationRequest) -> PreparedImage:
        """Load and prepare `image` for this client's backend, in a worker thread.

        Front ends call this first to report bad sources before any request is sent;
        a `PreparedImage` passed to `create_variation` is not prepared again. A URL is
        downloaded here, on the event loop, within `timeout`: cancelling closes it at once,
        so no worker thread is left waiting on a stalled server.
        """
        url = source_url(image)
        if url is not None:
            image = await download(url, timeout=self.timeout)
        return await asyncio.to_thread(self._get_backend().prepare, image, request)

    async def _fan_out(
        self, backend: Backend, prepared: Any, request: VariationRequest, on_image: OnImage | None
    ) -> ImagesResponse:
        limit = asyncio.Semaphore(self.max_concurrency)

        def emit(index: int, item: ImageData) -> None:
            if on_image is not None:
                on_image(index, item)

        async def batch(first: int, count: int) -> ImagesResponse:
            async with limit:
                return await backend.create(prepared, request, count, first_index=first, emit=emit)

        starts = range(0, request.n, backend.max_batch)
        tasks = [
            asyncio.ensure_future(batch(first, min(backend.max_batch, request.n - first)))
            for first in starts
        ]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # Cancellation of the caller reaches every batch, so connections close at once.
            for task in tasks:
                task.cancel()
        return _merge_or_raise(results)


def _merge_or_raise(results: list[ImagesResponse | BaseException]) -> ImagesResponse:
    """The merged response, or the first failure carrying every image that did arrive."""
    done = [r for r in results if isinstance(r, ImagesResponse)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if not failures:
        return ImagesResponse.merge(done)
    for failure in failures:
        if not isinstance(failure, Exception):
            raise failure
    error = failures[0]
    if not isinstance(error, APIError):
        raise error
    partials = [
        r if isinstance(r, ImagesResponse) else r.partial
        for r in results
        if isinstance(r, ImagesResponse) or (isinstance(r, APIError) and r.partial is not None)
    ]
    error.partial = ImagesResponse.merge(partials) if partials else None
    raise error


class VariationClient:
    """The synchronous form of `AsyncVariationClient`; works inside Jupyter cells too.

    Example:
        >>> with VariationClient(backend="local") as client:
        ...     response = client.create_variation("photo.jpg", n=4, seed=7)
    """

    def __init__(
        self,
        backend: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Any,
    ) -> None:
        self._client = AsyncVariationClient(backend, api_key, base_url, **options)

    def __repr__(self) -> str:
        return repr(self._client).replace("AsyncVariationClient", "VariationClient", 1)

    def __enter__(self) -> VariationClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        run_sync(self._client.aclose())

    def create_variation(self, image: Any, **options: Any) -> ImagesResponse:
        """Make variations of `image`; the options are `AsyncVariationClient.create_variation`'s."""
        return run_sync(self._client.create_variation(image, **options))


_CLIENT_OPTIONS = (
    "backend",
    "api_key",
    "base_url",
    "model",
    "timeout",
    "max_retries",
    "max_concurrency",
)


async def acreate_variation(image: Any, **options: Any) -> ImagesResponse:
    """One-shot async form: takes the client's options and the request's together.

    Example:
        >>> response = await acreate_variation("cat.png", n=4, backend="local", seed=1)
    """
    client_options = {k: options.pop(k) for k in _CLIENT_OPTIONS if k in options}
    async with AsyncVariationClient(**client_options) as client:
        return await client.create_variation(image, **options)


def create_variation(image: Any, **options: Any) -> ImagesResponse:
    """One-shot synchronous form; safe inside a running event loop (a Jupyter cell).

    Example:
        >>> response = create_variation(sample_image("coffee"), n=4, size="256x256")
        >>> response            # displays as a grid in a notebook
    """
    return run_sync(acreate_variation(image, **options))
