"""The OpenAI schema the tests validate against: the repository's own copy.

The contract tests must run from a plain clone (the README's test command), so tests/spec.py
reads tests/schema/ only.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import spec

REPO = Path(__file__).resolve().parents[1]


def test_schema_is_read_from_inside_the_repository() -> None:
    assert spec.SCHEMA_PATH.is_relative_to(REPO / "tests")
    schemas = spec.document()["components"]["schemas"]
    assert {"CreateImageVariationRequest", "ImagesResponse", "ErrorResponse"} <= set(schemas)
    spec.validate_images_response({"created": 1, "data": [{"url": "https://example.org/a"}]})
    with pytest.raises(jsonschema.ValidationError):
        spec.validate_images_response({"data": []})  # no "created"
    with pytest.raises(jsonschema.ValidationError):
        spec.validate_variation_request({"image": b"png", "n": "11"})  # n is at most 10
