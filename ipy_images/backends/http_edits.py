"""`POST /images/edits` with a GPT image model and a prompt: variations from OpenAI today.

OpenAI retired DALL-E 2 and its variations endpoint; a GPT image model asked to vary the
picture is its replacement. Any aspect ratio goes in (no square crop), `b64_json` comes
back with `usage`. GPT image model names are checked against their documented options
before anything is sent; other model names (gateways, self-hosted servers) get only the
checks every edits request needs.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from .._options import BACKENDS
from ..errors import InvalidImageError, InvalidParameterError, is_whole
from ..models import VariationRequest
from ..sources import PreparedImage
from ._http import HTTPBackend

DEFAULT_MODEL = BACKENDS["edits"].default("model")
DEFAULT_PROMPT = (
    "Create a variation of this image: keep the same subject, composition style, colour "
    "palette and medium, but change the arrangement and details, as if it were another "
    "photo or picture from the same series."
)
MAX_PROMPT_CHARS = 32_000
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

# The largest picture a GPT image model returns, either way round.
_PIXEL_SIZES = [s.split("x") for s in BACKENDS["edits"].choices("size") or () if "x" in s]
LARGEST_SIZE = max(((int(w), int(h)) for w, h in _PIXEL_SIZES), key=lambda wh: wh[0] * wh[1])
_GPT_IMAGE_PREFIXES = ("gpt-image", "chatgpt-image")
_NO_FIDELITY_PREFIX = "gpt-image-1-mini"  # documented as not taking input_fidelity
_SIZE_PATTERN = re.compile(r"[1-9][0-9]*x[1-9][0-9]*")
_OPTIONAL_FIELDS = (
    "quality",
    "background",
    "output_format",
    "output_compression",
    "input_fidelity",
    "user",
)


class EditsBackend(HTTPBackend):
    """Variations by a GPT image model: the picture plus a prompt asking for a variation."""

    name: ClassVar[str] = "edits"
    endpoint = "images/edits"
    needs_square: ClassVar[bool] = False
    max_upload_bytes: ClassVar[int] = MAX_UPLOAD_BYTES

    def validate(self, request: VariationRequest) -> None:
        """Check the request, and fill in the default model and prompt.

        The defaults are written into the request, so the response, its grid caption and
        the saved metadata record what was actually sent.
        """
        request.check_common()
        request.model = request.model or DEFAULT_MODEL
        request.prompt = DEFAULT_PROMPT if request.prompt is None else request.prompt
        if request.model.startswith("dall-e"):
            raise InvalidParameterError(
                f"model={request.model!r} does not work with the edits backend; OpenAI "
                f"retired DALL-E 2. Use a GPT image model (the default is {DEFAULT_MODEL!r}), "
                "or backend='variations' for a server that still speaks the DALL-E 2 contract."
            )
        if request.response_format != "b64_json":
            raise InvalidParameterError(
                f"response_format={request.response_format!r}: GPT image models return images "
                "inline (b64_json) only; use 'b64_json' (the default). The images stay in "
                "the response, and response.save(directory) writes them to disk.",
                param="response_format",
            )
        self.refuse_unsupported(request)
        _check_basic(request)
        if request.model.startswith(_GPT_IMAGE_PREFIXES):
            self.check_choices(request, by=f"{request.model} model on the edits")
            _check_gpt_image(request)

    def prepare(self, source: Any, fit: str) -> PreparedImage:
        image = super().prepare(source, fit)
        # A PreparedImage given as the source is passed through unshrunk, so check it here.
        if len(image.png) > self.max_upload_bytes:
            raise InvalidImageError(
                f"{image.name} is {len(image.png) / 2**20:.1f} MB as PNG; the edits endpoint "
                f"takes at most {self.max_upload_bytes // 2**20} MB. Pass the picture itself "
                "(not a PreparedImage) so it is downscaled to fit."
            )
        return image

    def auto_size_limit(self, request: VariationRequest) -> tuple[int, int]:
        if str(request.model).startswith(_GPT_IMAGE_PREFIXES):
            return LARGEST_SIZE
        return super().auto_size_limit(request)

    def form_fields(self, request: VariationRequest, n: int) -> dict[str, str]:
        # response_format is never sent: GPT image models refuse it for anything but b64_json.
        fields = {
            "model": str(request.model),
            "prompt": str(request.prompt),
            "n": str(n),
            "size": str(request.size),
        }
        for name in _OPTIONAL_FIELDS:
            value = getattr(request, name)
            if value is not None:
                fields[name] = str(value)
        return fields


def _check_basic(request: VariationRequest) -> None:
    """The checks that hold for any model behind an edits endpoint."""
    prompt = request.prompt
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParameterError(
            "prompt must be a non-empty text; leave it out to use the default, which asks "
            "for a variation that keeps the subject, style and palette."
        )
    size = request.size
    if size != "auto" and not (isinstance(size, str) and _SIZE_PATTERN.fullmatch(size)):
        raise InvalidParameterError(
            f"size={size!r} is not a size; use 'auto' or WIDTHxHEIGHT such as '1024x1024'."
        )
    compression = request.output_compression
    if compression is not None and not (is_whole(compression) and 0 <= compression <= 100):
        raise InvalidParameterError(
            f"output_compression must be a whole number from 0 to 100, not {compression!r}."
        )


def _check_gpt_image(request: VariationRequest) -> None:
    """How the documented options of the GPT image models combine."""
    model = str(request.model)
    if len(str(request.prompt)) > MAX_PROMPT_CHARS:
        raise InvalidParameterError(
            f"the prompt is {len(str(request.prompt)):,} characters; {model} takes at most "
            f"{MAX_PROMPT_CHARS:,}."
        )
    output_format = request.output_format or "png"
    if request.output_compression is not None and output_format == "png":
        raise InvalidParameterError(
            "output_compression applies to output_format 'webp' or 'jpeg' only; PNG is "
            "lossless. Set output_format='webp' or 'jpeg', or leave output_compression out."
        )
    if request.background == "transparent" and output_format == "jpeg":
        raise InvalidParameterError(
            "background='transparent' needs an output format with transparency: use "
            "output_format='png' or 'webp' (JPEG has no alpha channel)."
        )
    if request.input_fidelity is not None and model.startswith(_NO_FIDELITY_PREFIX):
        raise InvalidParameterError(
            f"{model} does not take input_fidelity; leave it out, or use {DEFAULT_MODEL!r}."
        )
