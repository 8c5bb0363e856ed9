"""JSON-schema checks of the OpenAI image contracts, for tests.

The variations contract and the response/error shapes come from the repository's copy of
the OpenAI schema, ``tests/schema/images-variations.schema.json`` (so the tests need nothing
outside a clone). The edits
contract has no published schema there, so ``EDITS_REQUEST_SCHEMA`` states its
documented fields. Every ``validate_*`` function raises ``jsonschema.ValidationError``
on a mismatch and returns ``None`` otherwise.

Multipart forms carry every value as a string, so the request validators first turn
numeric strings into integers wherever the schema asks for an integer. They take the
form as one mapping: text fields by name, plus file parts under their part name
(any value that is not a ``str``, e.g. ``bytes`` or a ``loopback.FilePart``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "images-variations.schema.json"
_ROOT_URI = "urn:openai-images"

EDITS_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
EDITS_QUALITIES = ("low", "medium", "high", "auto")
EDITS_BACKGROUNDS = ("transparent", "opaque", "auto")
EDITS_OUTPUT_FORMATS = ("png", "webp", "jpeg")
EDITS_INPUT_FIDELITIES = ("low", "high")
EDITS_IMAGE_PARTS = ("image", "image[]")

EDITS_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "prompt": {"type": "string", "minLength": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "size": {"enum": list(EDITS_SIZES)},
        "quality": {"enum": list(EDITS_QUALITIES)},
        "background": {"enum": list(EDITS_BACKGROUNDS)},
        "output_format": {"enum": list(EDITS_OUTPUT_FORMATS)},
        "output_compression": {"type": "integer", "minimum": 0, "maximum": 100},
        "input_fidelity": {"enum": list(EDITS_INPUT_FIDELITIES)},
        "user": {"type": "string"},
    },
    "required": ["prompt"],
}


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI fragment (``{"components": {"schemas": ...}}``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def schema(name: str) -> dict[str, Any]:
    """One schema of ``components.schemas`` (refs left unresolved)."""
    return document()["components"]["schemas"][name]


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    # The refs are "#/components/schemas/X": register the whole document under one URI and
    # validate against a root that points into it, so every nested ref resolves there.
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    registry = Registry().with_resource(_ROOT_URI, resource)
    root = {"$ref": f"{_ROOT_URI}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(
        root, registry=registry, format_checker=jsonschema.FormatChecker()
    )


def validate_images_response(obj: Any) -> None:
    """Check a decoded ``ImagesResponse`` body."""
    _validator("ImagesResponse").validate(obj)


def validate_error_response(obj: Any) -> None:
    """Check a decoded ``{"error": {...}}`` body."""
    _validator("ErrorResponse").validate(obj)


def _integers(form: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Text fields as JSON values: numeric strings become ints where the schema wants one."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        wanted = properties.get(key, {}).get("type")
        if wanted == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        out[key] = value
    return out


def _require_file(form: Mapping[str, Any], names: tuple[str, ...]) -> None:
    if not any(name in form and not isinstance(form[name], str) for name in names):
        raise jsonschema.ValidationError(f"no file part named {' or '.join(map(repr, names))}")


def validate_variation_request(fields: Mapping[str, Any]) -> None:
    """Check a multipart form against ``CreateImageVariationRequest``."""
    _require_file(fields, ("image",))
    properties = schema("CreateImageVariationRequest")["properties"]
    # The schema types the file as a (binary) string; the part itself was checked above.
    values = _integers({k: v for k, v in fields.items() if k != "image"}, properties)
    _validator("CreateImageVariationRequest").validate({**values, "image": "<file>"})


@functools.cache
def _edits_validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(EDITS_REQUEST_SCHEMA)


def validate_edits_request(fields: Mapping[str, Any]) -> None:
    """Check a multipart form against the documented GPT-image edits fields."""
    _require_file(fields, EDITS_IMAGE_PARTS)
    files = {k for k, v in fields.items() if not isinstance(v, str)}
    text = {k: v for k, v in fields.items() if k not in files}
    _edits_validator().validate(_integers(text, EDITS_REQUEST_SCHEMA["properties"]))
