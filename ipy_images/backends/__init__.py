"""The backends behind the client: where variations are actually made."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._base import Backend

BACKENDS = ("local", "variations", "edits")


def backend_class(name: str) -> type[Backend]:
    """The backend class called `name` (one of BACKENDS), imported on first use."""
    if name == "local":
        from .local import LocalBackend

        return LocalBackend
    if name == "variations":
        from .http_variations import VariationsBackend

        return VariationsBackend
    from .http_edits import EditsBackend

    return EditsBackend
