from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections.abc import Callable, Container, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from ._config import resolve
from ._download import download
from ._options import BACKENDS
from ._sync import run_sync
from .backends import backend_class
from .errors import APIError, InvalidParameterError, is_whole
from .models import CLIENT_OPTIONS, ImageData, ImagesResponse, ResultImage, VariationRequest
from .sources import PreparedImage, source_url

if TYPE_CHECKING:
    import httpx

    from ._types import (
        BackendName,
        Background,
        Fit,
        ImageSource,
        InputFidelity,
        OutputFormat,
        Quality,
        ResponseFormat,
        Size,
    )
    from .backends._base import Backend

__all__ = ["AsyncVariationClient", "VariationClient", "acreate_variation", "create_variation"]

OnImage = Callable[[int, ImageData], Any]
P = ParamSpec("P")
T = TypeVar("T")
DEFAULT_TIMEOUT = 120.0  # image models often take 10-60 s per request
_REQUEST = frozenset(field.name for field in dataclasses.fields(VariationRequest))
_CLIENT = {*CLIENT_OPTIONS, "api_key"} - {"model"}  # `model` goes with the request


def _given(values: dict[str, Any], names: Container[str]) -> dict[str, Any]:
    """The options a call set, from its `locals()`; None means the backend's default."""
    return {name: value for name, value in values.items() if name in names and value is not None}


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
        backend: BackendName | str | None = None,
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
            if not is_whole(value) or value < least:
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

    @property
    def options(self) -> dict[str, Any]:
        """This client's options without the API key: what a response remembers for `vary`."""
        return {name: getattr(self, name) for name in CLIENT_OPTIONS}

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
            if BACKENDS[self.backend].remote:
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
        return self._complete(VariationRequest(**options))

    def _complete(self, request: VariationRequest) -> VariationRequest:
        """A copy of `request` with the client's and the backend's defaults, validated."""
        backend, spec = self._get_backend(), BACKENDS[self.backend]
        request = dataclasses.replace(request, model=request.model or self.model)
        for option, accepts in spec.options.items():
            if getattr(request, option) is None and accepts.default is not None:
                setattr(request, option, accepts.default)
        if request.seed is None and "seed" in spec.options:
            # Drawn here, so the saved metadata says how to reproduce the run.
            request.seed = random.randrange(2**31)
        backend.validate(request)
        return request

    async def create_variation(
        self,
        image: ImageSource,
        *,
        n: int | None = None,
        size: Size | None = None,
        response_format: ResponseFormat | None = None,
        model: str | None = None,
        user: str | None = None,
        prompt: str | None = None,
        seed: int | None = None,
        fit: Fit | None = None,
        diversity: float | None = None,
        quality: Quality | None = None,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        output_compression: int | None = None,
        input_fidelity: InputFidelity | None = None,
        on_image: OnImage | None = None,
    ) -> ImagesResponse:
        """Make `n` variations of `image`: `prepare`, then `generate`.

        Args:
            image: a path, http(s) URL, bytes, binary file, PIL image, numpy array or
                `FileUpload` value.
            n: how many images (1 by default); above the backend's batch limit (10) the
                request fans out into concurrent requests.
            size, response_format, model, fit...: None is the backend's default; what
                each backend takes is in `ipy_images._options.BACKENDS`.
            seed: makes the local engine reproducible.
            fit: how a non-square image is made square: "crop", "pad" or "strict".
            diversity: the local engine's knob (1.0 default; higher differs more).
            on_image: called as `on_image(index, ImageData)` as each image arrives.

        Raises:
            InvalidImageError, InvalidParameterError: before any request is sent.
            APIError: its `partial` holds every image that did arrive.
        """
        request = self.build_request(**_given(locals(), _REQUEST))
        prepared = await self.prepare(image, fit=request.fit)
        return await self.generate(prepared, request, on_image=on_image)

    async def prepare(self, image: ImageSource, *, fit: Fit | str = "crop") -> PreparedImage:
        """Load and prepare `image` for this client's backend, in a worker thread.

        Front ends call this first to report a bad source before any request is sent.
        A `PreparedImage` that already suits the backend is returned as it is. A URL is
        downloaded here, on the event loop, within `timeout`: cancelling closes it at once,
        so no worker thread is left waiting on a stalled server.
        """
        url = source_url(image)
        source = image if url is None else await download(url, timeout=self.timeout)
        prepared = await asyncio.to_thread(self._get_backend().prepare, source, fit)
        # A result `response[i]` stays the origin of what is made from it: the lineage.
        origin = image.origin if isinstance(image, PreparedImage) else image
        if isinstance(origin, ResultImage) and prepared.origin is None:
            prepared = dataclasses.replace(prepared, origin=origin)
        return prepared

    async def generate(
        self,
        prepared: PreparedImage,
        request: VariationRequest | None = None,
        *,
        on_image: OnImage | None = None,
        **options: Any,
    ) -> ImagesResponse:
        """Make variations of a prepared image, as `request` and `options` (the keyword
        options of `create_variation`) ask."""
        if on_image is not None and not callable(on_image):
            raise InvalidParameterError(
                f"on_image must be a function taking (index, data), not {type(on_image).__name__}."
            )
        given = dataclasses.replace(request, **options) if request else VariationRequest(**options)
        request = self._complete(given)
        prepared = await self.prepare(prepared, fit=request.fit)
        return await self._fan_out(self._get_backend(), prepared, request, on_image)

    async def _fan_out(
        self,
        backend: Backend,
        prepared: PreparedImage,
        request: VariationRequest,
        on_image: OnImage | None,
    ) -> ImagesResponse:
        limit = asyncio.Semaphore(self.max_concurrency)
        emit = on_image or (lambda index, item: None)

        async def batch(first: int, count: int) -> ImagesResponse:
            async with limit:
                return await backend.create(prepared, request, count, first=first, emit=emit)

        tasks = [
            asyncio.ensure_future(batch(first, min(backend.max_batch, request.n - first)))
            for first in range(0, request.n, backend.max_batch)
        ]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # Cancellation of the caller reaches every batch, so connections close at once.
            for task in tasks:
                task.cancel()
        for result in results:
            # Partial results too, so `vary` works on whatever arrived.
            part = getattr(result, "partial", result)
            if isinstance(part, ImagesResponse):
                part.client_options = self.options
        return _merge_or_raise(results)


def _merge_or_raise(results: list[ImagesResponse | BaseException]) -> ImagesResponse:
    """The merged response, or the first failure carrying every image that did arrive."""
    done = [r for r in results if isinstance(r, ImagesResponse)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if not failures:
        return ImagesResponse.merge(done)
    error = next((f for f in failures if not isinstance(f, Exception)), failures[0])
    if not isinstance(error, APIError):
        raise error
    found = [r if isinstance(r, ImagesResponse) else getattr(r, "partial", None) for r in results]
    partials = [p for p in found if isinstance(p, ImagesResponse)]
    error.partial = ImagesResponse.merge(partials) if partials else None
    raise error


def _synchronous(function: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """`function` run to completion from synchronous code, with the same signature."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(function(*args, **kwargs))

    return run


def _blocking(
    method: Callable[Concatenate[AsyncVariationClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[VariationClient, P], T]:
    """An `AsyncVariationClient` method as the same `VariationClient` method, blocking."""

    @functools.wraps(method)
    def run(self: VariationClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(method(self._client, *args, **kwargs))

    return run


class VariationClient:
    """The synchronous form of `AsyncVariationClient`; works inside Jupyter cells too.

    Example:
        >>> with VariationClient(backend="local") as client:
        ...     response = client.create_variation("photo.jpg", n=4, seed=7)
    """

    def __init__(
        self,
        backend: BackendName | str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        model: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        max_concurrency: int = 4,
    ) -> None:
        self._client = AsyncVariationClient(**{k: v for k, v in locals().items() if k != "self"})

    @property
    def backend(self) -> str:
        return self._client.backend

    def __repr__(self) -> str:
        return repr(self._client).replace("AsyncVariationClient", "VariationClient", 1)

    def __enter__(self) -> VariationClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        run_sync(self._client.aclose())

    create_variation = _blocking(AsyncVariationClient.create_variation)


async def acreate_variation(
    image: ImageSource,
    *,
    n: int | None = None,
    size: Size | None = None,
    response_format: ResponseFormat | None = None,
    model: str | None = None,
    user: str | None = None,
    prompt: str | None = None,
    seed: int | None = None,
    fit: Fit | None = None,
    diversity: float | None = None,
    quality: Quality | None = None,
    background: Background | None = None,
    output_format: OutputFormat | None = None,
    output_compression: int | None = None,
    input_fidelity: InputFidelity | None = None,
    on_image: OnImage | None = None,
    backend: BackendName | str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    max_concurrency: int | None = None,
) -> ImagesResponse:
    """One-shot async form: takes the client's options and the request's together.

    Example:
        >>> response = await acreate_variation("cat.png", n=4, backend="local", seed=1)
    """
    options = locals()
    async with AsyncVariationClient(**_given(options, _CLIENT)) as client:
        return await client.create_variation(image, **_given(options, {*_REQUEST, "on_image"}))


create_variation = _synchronous(acreate_variation)
create_variation.__doc__ = """One-shot synchronous form; safe inside a running event loop (a cell).

Example:
    >>> response = create_variation(sample_image("coffee"), n=4, size="256x256")
    >>> response            # displays as a grid in a notebook
"""
