"""The names of the public API's types: what each option may be, and what an image may be.

The literal values here are the one definition of each size, format and choice; the table
of what each backend takes (`ipy_images._options`) reads them with `typing.get_args`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from PIL import Image

    from .sources import PreparedImage

BackendName = Literal["local", "variations", "edits"]
SquareSize = Literal["256x256", "512x512", "1024x1024"]
"""The legacy variations contract's sizes, which the local engine makes too."""
WideSize = Literal["1536x1024", "1024x1536", "auto"]
"""The sizes GPT image models take besides the largest square one."""
Size = Literal[SquareSize, WideSize]
ResponseFormat = Literal["url", "b64_json"]
Fit = Literal["crop", "pad", "strict"]
LocalModel = Literal["gpnn", "dall-e-2"]
Quality = Literal["low", "medium", "high", "auto"]
Background = Literal["transparent", "opaque", "auto"]
OutputFormat = Literal["png", "webp", "jpeg"]
InputFidelity = Literal["low", "high"]

ImageSource = Union[
    str,
    "os.PathLike[str]",
    bytes,
    IO[bytes],
    "Image.Image",
    "NDArray[Any]",
    "PreparedImage",
    Sequence[Mapping[str, Any]],
]
"""A path, an http(s) URL, bytes, a binary file, a PIL image, a numpy array, a prepared
image or an ipywidgets `FileUpload` value."""
