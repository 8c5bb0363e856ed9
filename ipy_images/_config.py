"""Which backend, key and base URL to use when the caller does not say."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .backends import BACKENDS
from .errors import InvalidParameterError

OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Settings:
    """The resolved connection settings; the key never shows in its repr."""

    backend: str
    base_url: str | None
    api_key: str | None = field(default=None, repr=False)


def resolve(
    backend: str | None = None, api_key: str | None = None, base_url: str | None = None
) -> Settings:
    """Fill in what was not given, from the environment.

    Keys come from `api_key` or `OPENAI_API_KEY`, base URLs from `base_url` or
    `OPENAI_BASE_URL`. The backend is `backend`, else `IPY_IMAGES_BACKEND`, else
    `local` with neither key nor base URL, `variations` with a base URL, `edits` with
    only a key (that is OpenAI itself).
    """
    for option, value in (("backend", backend), ("api_key", api_key), ("base_url", base_url)):
        if value is not None and not isinstance(value, str):
            raise InvalidParameterError(
                f"{option} must be a string or None, not {type(value).__name__}."
            )
    # Keys pasted from files often end in a newline, which would corrupt the header.
    api_key = (api_key or os.environ.get("OPENAI_API_KEY") or "").strip() or None
    if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
        raise InvalidParameterError(
            "the API key holds spaces, control or non-ASCII characters; copy it again "
            "from the provider's dashboard."
        )
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    backend = backend or os.environ.get("IPY_IMAGES_BACKEND") or None
    if backend is None:
        backend = "variations" if base_url else "edits" if api_key else "local"
    if backend not in BACKENDS:
        raise InvalidParameterError(
            f"unknown backend {backend!r}; use one of {', '.join(repr(b) for b in BACKENDS)}."
        )
    if backend == "local":
        return Settings("local", None, None)
    base_url = base_url or OPENAI_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        raise InvalidParameterError(
            f"base_url must start with http:// or https://, like {OPENAI_BASE_URL!r}."
        )
    if api_key is None and base_url.rstrip("/") == OPENAI_BASE_URL:
        raise InvalidParameterError(
            f"the {backend} backend with OpenAI needs an API key: set the OPENAI_API_KEY "
            "environment variable before starting Jupyter (never type the key into a cell), "
            "or use backend='local', which needs none."
        )
    return Settings(backend, base_url.rstrip("/"), api_key)
