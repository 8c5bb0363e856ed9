"""The exceptions ipy_images raises.

```
IpyImagesError
├── InvalidImageError        (also ValueError)  the source cannot be read or prepared
├── InvalidParameterError    (also ValueError)  an option is outside what the backend takes
└── APIError                                    a backend failed; carries `partial`
    ├── APIStatusError                          the server answered with an error status
    │   ├── BadRequestError          400
    │   ├── AuthenticationError      401
    │   ├── PermissionDeniedError    403
    │   ├── NotFoundError            404
    │   ├── RateLimitError           429
    │   └── InternalServerError      >= 500
    └── APIConnectionError                      no usable answer (network, bad body)
        └── APITimeoutError
```

Invalid input is always raised before any request is sent. Every `APIError` keeps the
images that did arrive in `partial` (an `ImagesResponse`, or None), so a failure late in
a fan-out never throws away finished work. No exception text ever contains an API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

from ._redact import redact

if TYPE_CHECKING:
    from .models import ImagesResponse

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "InternalServerError",
    "InvalidImageError",
    "InvalidParameterError",
    "IpyImagesError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
]


class IpyImagesError(Exception):
    """Base class of every error raised by ipy_images."""


class InvalidImageError(IpyImagesError, ValueError):
    """The image source cannot be loaded or prepared for the chosen backend."""


class InvalidParameterError(IpyImagesError, ValueError):
    """A request option is outside what the chosen backend accepts; `param` names it."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class APIError(IpyImagesError):
    """A backend could not deliver every image asked for."""

    def __init__(self, message: str, *, partial: ImagesResponse | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.partial = partial


class APIStatusError(APIError):
    """The server answered with an error status and (usually) an OpenAI error body."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        partial: ImagesResponse | None = None,
    ) -> None:
        super().__init__(message, partial=partial)
        self.status_code = status_code
        self.type = type
        self.param = param
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        kind = f" {self.type}" if self.type else ""
        param = f" (param: {self.param})" if self.param else ""
        return f"{self.status_code}{kind}{param}: {self.message}"


class BadRequestError(APIStatusError):
    """400: the server refused the request as invalid."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or endpoint."""


class NotFoundError(APIStatusError):
    """404: wrong base URL, endpoint or model."""


class RateLimitError(APIStatusError):
    """429: too many requests or images per minute, still refused after the retries."""


class InternalServerError(APIStatusError):
    """500 and above: the server failed, still after the retries."""


class APIConnectionError(APIError):
    """No usable answer: the connection failed, dropped, or the body was unreadable."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the timeout, still after the retries."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def status_error(status_code: int, body: Any, *, request_id: str | None) -> APIStatusError:
    """The typed error for an HTTP error answer, read from an OpenAI error body if any."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"the server answered HTTP {status_code} without an error message"
    fallback = InternalServerError if status_code >= 500 else APIStatusError
    cls = _STATUS_ERRORS.get(status_code, fallback)
    return cls(
        message,
        status_code=status_code,
        type=_text_or_none(error.get("type")),
        param=_text_or_none(error.get("param")),
        code=_text_or_none(error.get("code")),
        request_id=request_id,
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def is_whole(value: object) -> TypeGuard[int]:
    """Whether `value` is a whole number; a bool, though an int, is not one."""
    return isinstance(value, int) and not isinstance(value, bool)


def one_line(error: BaseException, secret: str | None = None) -> str:
    """`error` as one line for a person, with any piece of `secret` masked: our errors
    speak for themselves, others are prefixed with their type."""
    text = " ".join(str(error).split())
    if not isinstance(error, IpyImagesError) or not text:
        text = f"{type(error).__name__}: {text}".rstrip(": ")
    return redact(text, secret)
