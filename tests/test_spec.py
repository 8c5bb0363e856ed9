"""The OpenAI schema the tests validate against: the repository's own copy, kept in step.

The contract tests must run from a plain clone (the README's test command), so tests/spec.py
reads tests/schema/ only. Where the team's shared folder sits beside the checkout, the copy
is also compared with it byte for byte, so an update there is not silently missed.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import spec

REPO = Path(__file__).resolve().parents[1]
SHARED_SCHEMA = REPO.parent / "shared" / "spec" / spec.SCHEMA_PATH.name


def test_schema_is_read_from_inside_the_repository() -> None:
    assert spec.SCHEMA_PATH.is_relative_to(REPO / "tests")
    schemas = spec.document()["components"]["schemas"]
    assert {"CreateImageVariationRequest", "ImagesResponse", "ErrorResponse"} <= set(schemas)
    spec.validate_images_response({"created": 1, "data": [{"url": "https://example.org/a"}]})
    with pytest.raises(jsonschema.ValidationError):
        spec.validate_images_response({"data": []})  # no "created"
    with pytest.raises(jsonschema.ValidationError):
        spec.validate_variation_request({"image": b"png", "n": "11"})  # n is at most 10


@pytest.mark.skipif(
    not SHARED_SCHEMA.is_file(),
    reason=f"no shared schema at {SHARED_SCHEMA} to compare the copy with (a plain clone)",
)
def test_schema_copy_matches_the_shared_one() -> None:
    assert spec.SCHEMA_PATH.read_bytes() == SHARED_SCHEMA.read_bytes(), (
        f"tests/schema/ is out of date: copy {SHARED_SCHEMA} over {spec.SCHEMA_PATH}"
    )
