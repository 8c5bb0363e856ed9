"""The embedded backend: variations made on this machine by the patch engine.

No network, no key. Samples run on a small thread pool (one per core) off the event
loop, so the kernel stays responsive; cancelling stops them within milliseconds.
Sample ``i`` of a request draws from the random stream named by ``(seed, i)``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import threading
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from .._encode import encode
from .._options import BACKENDS
from ..errors import InvalidParameterError
from ..models import ImageData, ImagesResponse, VariationRequest
from ..sources import PreparedImage
from ._base import Backend, Emit

_DIVERSITY = BACKENDS["local"].default("diversity")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> ThreadPoolExecutor:
    """One process-wide pool, so concurrent requests share the cores instead of fighting."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="ipy-images-engine")
        return _pool


class LocalBackend(Backend):
    """Variations from the embedded GPNN engine; returns `b64_json` PNGs."""

    name: ClassVar[str] = "local"  # takes model "dall-e-2" too, so legacy clients work unchanged

    def __init__(self, **_: object) -> None:
        """Takes (and ignores) the HTTP options, so every backend is built alike."""

    def validate(self, request: VariationRequest) -> None:
        if request.response_format != "b64_json":
            raise InvalidParameterError(
                f"response_format={request.response_format!r}: the local backend returns "
                "images inline, so use 'b64_json'; URLs come from a server "
                "(ipy-images serve, then backend='variations').",
                param="response_format",
            )
        super().validate(request)
        if request.diversity is not None and not request.diversity > 0:
            raise InvalidParameterError(
                f"diversity must be a positive number ({_DIVERSITY} is the default), "
                f"not {request.diversity!r}.",
                param="diversity",
            )

    async def create(
        self, image: PreparedImage, request: VariationRequest, n: int, *, first: int, emit: Emit
    ) -> ImagesResponse:
        from ..engine import generate_variation

        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        side = int(str(request.size).split("x")[0])
        seed = request.seed or 0
        diversity = _DIVERSITY if request.diversity is None else request.diversity
        picture = image.image.convert("RGB")

        def one(index: int) -> ImageData:
            variation = generate_variation(
                picture, size=side, seed=seed, index=index, diversity=diversity, cancel=cancel
            )
            png = encode(variation, "png")
            return ImageData(b64_json=base64.b64encode(png).decode(), content=png)

        def report(index: int, job: futures.Future[ImageData]) -> None:
            """Emit a finished job's image on the event loop's thread."""
            if not job.cancelled() and job.exception() is None:
                loop.call_soon_threadsafe(emit, index, job.result())

        jobs = [_workers().submit(one, first + i) for i in range(n)]
        for job_index, job in enumerate(jobs):
            job.add_done_callback(functools.partial(report, first + job_index))
        try:
            data = await asyncio.gather(*(asyncio.wrap_future(job) for job in jobs))
        except BaseException:
            # Stop the engine at its next level and wait, so no sample outlives the call.
            cancel.set()
            for job in jobs:
                job.cancel()
            await loop.run_in_executor(None, futures.wait, jobs)
            raise
        return ImagesResponse(
            created=int(time.time()),
            data=list(data),
            backend=self.name,
            request=request,
            source=image,
        )
