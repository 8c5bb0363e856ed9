"""Image variations in Jupyter: one picture in, a grid of variations out.

    >>> import ipy_images as ii
    >>> response = ii.create_variation(ii.sample_image("coffee"), n=4, seed=7)
    >>> response            # in a notebook: the original beside four variations

In a notebook, `%load_ext ipy_images` adds the `%%variation` cell magic and the
`%variation_form` line magic. Names are imported on first use, so `import ipy_images`
stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from ._version import __version__
from .errors import *  # noqa: F403  # the exceptions, as listed in errors.__all__

if TYPE_CHECKING:  # the lazy names below, spelled out so type checkers see the exports
    from IPython.core.interactiveshell import InteractiveShell

    from ._samples import sample_image as sample_image
    from .client import AsyncVariationClient as AsyncVariationClient
    from .client import VariationClient as VariationClient
    from .client import acreate_variation as acreate_variation
    from .client import create_variation as create_variation
    from .explorer import VariationExplorer as VariationExplorer
    from .grid import ComparisonGrid as ComparisonGrid
    from .grid import ImageGrid as ImageGrid
    from .models import ImageData as ImageData
    from .models import ImagesResponse as ImagesResponse
    from .models import ResultImage as ResultImage
    from .models import Usage as Usage
    from .models import VariationRequest as VariationRequest
    from .sources import PreparedImage as PreparedImage
    from .sources import load_image as load_image
    from .sources import prepare_image as prepare_image
    from .widget import VariationForm as VariationForm

_LAZY = {
    "AsyncVariationClient": ".client",
    "VariationClient": ".client",
    "acreate_variation": ".client",
    "create_variation": ".client",
    "ComparisonGrid": ".grid",
    "ImageGrid": ".grid",
    "ImageData": ".models",
    "ImagesResponse": ".models",
    "ResultImage": ".models",
    "Usage": ".models",
    "VariationRequest": ".models",
    "PreparedImage": ".sources",
    "load_image": ".sources",
    "prepare_image": ".sources",
    "sample_image": "._samples",
    "VariationForm": ".widget",
    "VariationExplorer": ".explorer",
}

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension", *_LAZY]
__all__ += errors.__all__


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ipy_images' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """`%load_ext ipy_images`: register `%%variation` and `%variation_form`."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
