"""Which backend, key and base URL to use when the caller does not say."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ._options import BACKENDS
from .errors import InvalidParameterError

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def key_from_env(name: str | None = None) -> str | None:
    """The API key held by the environment variable `name` (default OPENAI_API_KEY).

    A variable other than the default that is unset is refused, rather than quietly
    falling back to another key; the default one may be unset (the local backend needs none).
    """
    name = name or DEFAULT_KEY_ENV
    if not _ENV_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"api_key_env takes the name of an environment variable, not {name!r}.",
            param="api_key_env",
        )
    key = os.environ.get(name) or None
    if key is None and name != DEFAULT_KEY_ENV:
        raise InvalidParameterError(
            f"the environment variable {name}, named to hold the API key, is not set; "
            "set it before starting Jupyter.",
            param="api_key_env",
        )
    return key


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
    api_key = (api_key or os.environ.get(DEFAULT_KEY_ENV) or "").strip() or None
    if api_key is not None and not (api_key.isascii() and api_key.isprintable()):
        raise InvalidParameterError(
            "the API key holds spaces, control or non-ASCII characters; copy it again "
            "from the provider's dashboard."
        )
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    chosen = "variations" if base_url else "edits" if api_key else "local"
    backend = backend or os.environ.get("IPY_IMAGES_BACKEND") or chosen
    if backend not in BACKENDS:
        raise InvalidParameterError(
            f"unknown backend {backend!r}; use one of {', '.join(repr(b) for b in BACKENDS)}."
        )
    if not BACKENDS[backend].remote:
        return Settings(backend, None, None)
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
