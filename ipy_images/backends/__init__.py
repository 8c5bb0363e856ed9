"""The backends behind the client: where variations are actually made."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .._options import BACKENDS

if TYPE_CHECKING:
    from ._base import Backend


def backend_class(name: str) -> type[Backend]:
    """The backend class called `name` (a key of BACKENDS), imported on first use."""
    module, _, attribute = BACKENDS[name].load.partition(":")
    return getattr(importlib.import_module(module, __name__), attribute)
