"""The legacy `POST /images/variations` contract, spoken by any compatible server."""

from __future__ import annotations

from typing import ClassVar

from ..models import VariationRequest, check_choice, refuse_unsupported
from ._http import HTTPBackend

SIZES = ("256x256", "512x512", "1024x1024")
RESPONSE_FORMATS = ("url", "b64_json")
_NOT_IN_CONTRACT = (
    "prompt",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "input_fidelity",
    "diversity",
    "seed",  # the contract has no seed; servers refuse unknown fields
)


class VariationsBackend(HTTPBackend):
    """Square PNG under 4 MB in, `n` variations of a fixed size out."""

    name: ClassVar[str] = "variations"
    endpoint = "images/variations"
    default_size: ClassVar[str] = "1024x1024"

    def validate(self, request: VariationRequest) -> None:
        request.check_common()
        check_choice("size", request.size, SIZES, backend=self.name)
        check_choice(
            "response_format", request.response_format, RESPONSE_FORMATS, backend=self.name
        )
        refuse_unsupported(request, _NOT_IN_CONTRACT, backend=self.name)

    def form_fields(self, request: VariationRequest, n: int) -> dict[str, str]:
        fields = {
            "n": str(n),
            "size": str(request.size),
            "response_format": request.response_format,
        }
        if request.model:
            fields["model"] = request.model
        if request.user:
            fields["user"] = request.user
        return fields
