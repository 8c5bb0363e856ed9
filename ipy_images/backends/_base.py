"""What every backend provides to the client."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from .._options import BACKENDS
from ..errors import InvalidParameterError
from ..models import ImageData, ImagesResponse, VariationRequest
from ..sources import PreparedImage, prepare_image

Emit = Callable[[int, ImageData], None]


class Backend(abc.ABC):
    """One way of making variations.

    The client calls `validate` and `prepare` before anything is sent, then `create`
    once per batch of at most `max_batch` images, concurrently.
    """

    name: ClassVar[str]  # its key in the table of what each backend accepts
    max_batch: ClassVar[int] = 10
    needs_square: ClassVar[bool] = True
    max_upload_bytes: ClassVar[int] = 4 * 1024 * 1024

    def validate(self, request: VariationRequest) -> None:
        """Raise InvalidParameterError for any option this backend cannot honour."""
        request.check_common()
        self.refuse_unsupported(request)
        self.check_choices(request)

    def refuse_unsupported(self, request: VariationRequest) -> None:
        """Refuse the options this backend's table entry does not list, which it would
        otherwise silently ignore."""
        taken = BACKENDS[self.name].options
        names = [f.name for f in dataclasses.fields(request) if f.name not in taken]
        given = [name for name in names if getattr(request, name) is not None]
        if given:
            raise InvalidParameterError(
                f"the {self.name} backend does not take {', '.join(given)}; "
                "leave it out or choose another backend.",
                param=given[0],
            )

    def check_choices(self, request: VariationRequest, *, by: str | None = None) -> None:
        """Refuse values outside the choices of this backend's table entry, naming them all."""
        spec = BACKENDS[self.name]
        for option in spec.options:
            value, choices = getattr(request, option), spec.choices(option)
            if value is not None and choices and value not in choices:
                listed = ", ".join(repr(c) for c in choices)
                raise InvalidParameterError(
                    f"{option}={value!r} is not accepted by the {by or self.name} backend; "
                    f"use one of {listed}.",
                    param=option,
                )

    def prepare(self, source: Any, fit: str) -> PreparedImage:
        """Load and prepare the source for this backend (runs in a worker thread)."""
        if isinstance(source, PreparedImage):
            if not self.needs_square or source.image.width == source.image.height:
                return source
            source = source.image
        return prepare_image(
            source,
            fit=fit,
            square=self.needs_square,
            max_bytes=self.max_upload_bytes,
            max_side=1024 if self.needs_square else 2048,
        )

    @abc.abstractmethod
    async def create(
        self, image: PreparedImage, request: VariationRequest, n: int, *, first: int, emit: Emit
    ) -> ImagesResponse:
        """Make `n` images, numbered from `first`; call `emit(first + i, data)` as each is ready."""
