"""What every backend provides to the client."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

from ..models import ImageData, ImagesResponse, VariationRequest
from ..sources import PreparedImage, prepare_image

Emit = Callable[[int, ImageData], None]


class Backend(abc.ABC):
    """One way of making variations.

    The client calls `validate` and `prepare` before anything is sent, then `create`
    once per batch of at most `max_batch` images, concurrently.
    """

    name: ClassVar[str]
    max_batch: ClassVar[int] = 10
    default_size: ClassVar[str]
    needs_square: ClassVar[bool] = True
    max_upload_bytes: ClassVar[int] = 4 * 1024 * 1024

    @abc.abstractmethod
    def validate(self, request: VariationRequest) -> None:
        """Raise InvalidParameterError for any option this backend cannot honour."""

    def prepare(self, source: Any, request: VariationRequest) -> PreparedImage:
        """Load and prepare the source for this backend (runs in a worker thread)."""
        if isinstance(source, PreparedImage) and (
            not self.needs_square or source.image.width == source.image.height
        ):
            return source
        if isinstance(source, PreparedImage):
            source = source.image
        return prepare_image(
            source,
            fit=request.fit,
            square=self.needs_square,
            max_bytes=self.max_upload_bytes,
            max_side=1024 if self.needs_square else 2048,
        )

    @abc.abstractmethod
    async def create(
        self,
        image: PreparedImage,
        request: VariationRequest,
        n: int,
        *,
        first_index: int,
        emit: Emit,
    ) -> ImagesResponse:
        """Make `n` images; call `emit(first_index + i, data)` as each one is ready."""

    async def aclose(self) -> None:
        """Release connections or workers; nothing to release by default."""
        return None
