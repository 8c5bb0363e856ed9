"""Sample photos shipped with the package, for demos and tests that must work offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

SAMPLES = ("coffee", "astronaut")
"""Names accepted by `sample_image`; credits are in ``ipy_images/samples/CREDITS.md``."""


def sample_image(name: str = "coffee") -> Image.Image:
    """A bundled photo as an RGB PIL image: "coffee" (512x341) or "astronaut" (512x512)."""
    from importlib.resources import files

    from PIL import Image

    from .errors import InvalidParameterError

    if name not in SAMPLES:
        raise InvalidParameterError(
            f"unknown sample image {name!r}; valid names: {', '.join(SAMPLES)}"
        )
    with files(__package__).joinpath("samples").joinpath(f"{name}.png").open("rb") as stream:
        image = Image.open(stream)
        image.load()
    picture = image.convert("RGB")
    picture.filename = f"{name}.png"  # type: ignore[attr-defined]  # captions name the photo
    return picture
