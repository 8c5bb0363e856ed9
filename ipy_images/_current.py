"""The `%%variation` magic's settings, where the form can read them without importing it.

The magic registers its instance here when the extension loads (as jupysql keeps its
current connection in `_current.py`); `settings()` gives the registered instance's values,
or the defaults before the extension is loaded or after its shell is gone.
"""

from __future__ import annotations

from typing import Any

from ._config import DEFAULT_KEY_ENV
from ._options import COMMON

DEFAULTS: dict[str, Any] = {
    "backend": None,
    "n": COMMON["n"].default,
    "size": None,
    "model": None,
    "base_url": None,
    "response_format": None,
    "thumb_size": 256,
    "timeout": 120.0,
    "api_key_env": DEFAULT_KEY_ENV,
}

magics: Any = None
"""The registered `VariationMagics`, or None."""


def settings() -> dict[str, Any]:
    """The magic's settings: the registered instance's while its shell is current."""
    from IPython import get_ipython

    if magics is not None and magics.shell is not None and magics.shell is get_ipython():
        return {name: getattr(magics, name) for name in DEFAULTS}
    return dict(DEFAULTS)
