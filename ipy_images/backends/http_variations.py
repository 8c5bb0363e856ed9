"""The legacy `POST /images/variations` contract, spoken by any compatible server."""

from __future__ import annotations

from typing import ClassVar

from ..models import VariationRequest
from ._http import HTTPBackend


class VariationsBackend(HTTPBackend):
    """Square PNG under 4 MB in, `n` variations of a fixed size out."""

    name: ClassVar[str] = "variations"
    endpoint = "images/variations"

    def form_fields(self, request: VariationRequest, n: int) -> dict[str, str]:
        fields = {"n": str(n), "size": str(request.size)}
        for name in ("response_format", "model", "user"):
            value = getattr(request, name)
            if value:
                fields[name] = value
        return fields
