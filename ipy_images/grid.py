"""Image grids for notebooks: display-sized thumbnails in plain HTML, full resolution in memory.

The HTML uses inline styles only (flex, gap, border, max-width): no `<style>`, `<script>` or
`id`, nothing JupyterLab strips from untrusted output, so a grid looks the same in
JupyterLab, Notebook 7, VS Code, GitHub and nbviewer. Every thumbnail is encoded once, when
its image arrives; `append` lets a grid grow as results come in without re-encoding the rest.
All text (titles, captions, labels) is HTML-escaped where it is written out.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._encode import encode
from ._files import SAFE_NAME as _SAFE_NAME
from ._files import write_new_file
from .errors import InvalidImageError, InvalidParameterError, is_whole

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ComparisonGrid", "ImageGrid"]

_GAP = 8  # px between cells, in HTML and contact sheets
_BORDER = 2  # px; every thumbnail has one so the original's coloured border keeps cells aligned
_ORIGINAL_COLOUR = "#e8710a"  # orange reads on both light and dark notebook themes
_LABEL_WIDTH = 150  # px of the row-label column in comparisons
_TEXT_STYLE = "font-size:12px;line-height:1.3;opacity:0.8;overflow-wrap:anywhere"
_FORMATS = ("auto", "jpeg", "webp", "png")
_FEW_COLOURS = 256  # at most this many colours: pixel art, diagrams, masks -> lossless PNG


@dataclass(frozen=True)
class _Thumb:
    """One encoded thumbnail: the small picture, its bytes and `data:` URI, made once."""

    image: Image.Image
    format: str
    content: bytes
    uri: str
    width: int
    height: int


@dataclass(frozen=True)
class _Cell:
    image: Image.Image  # full resolution
    title: str
    thumb: _Thumb
    original: bool = False


class _Displayed:
    """What both grids show a notebook: HTML and text always; the contact-sheet PNG only
    when asked for by `include`, since embedding it would double what the notebook stores."""

    to_html: Callable[[], str]
    contact_sheet: Callable[[], Image.Image]

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, str]:
        wanted = set(include) if include else {"text/plain", "text/html"}
        bundle = {"text/plain": repr(self), "text/html": self.to_html()}
        if "image/png" in wanted:
            bundle["image/png"] = base64.b64encode(encode(self.contact_sheet(), "png")).decode()
        return {k: v for k, v in bundle.items() if k in wanted and k not in set(exclude or ())}


class ImageGrid(_Displayed):
    """Images side by side, the original (if any) first with a coloured border.

    Accepts anything `sources.load_image` reads (PIL images, numpy arrays, bytes, paths, URLs)
    and anything with a PIL `.image` attribute (`ImageData`, `PreparedImage`). Full-resolution
    images stay in memory: `grid.images`, `grid[i]`, `len(grid)` and iteration cover the
    variations; `grid.original` is kept apart.
    """

    def __init__(
        self,
        images: Iterable[Any] = (),
        titles: Sequence[str | None] | None = None,
        columns: int | None = None,
        thumb_size: int = 256,
        original: Any = None,
        *,
        original_title: str = "original",
        caption: str | Sequence[str] | None = None,
        thumb_format: str = "auto",
        backend: str | None = None,
    ) -> None:
        if not is_whole(thumb_size) or thumb_size < 1:
            raise InvalidParameterError(
                f"thumb_size must be a positive whole number of pixels, not {thumb_size!r}."
            )
        if columns is not None and (not is_whole(columns) or columns < 1):
            raise InvalidParameterError(
                f"columns must be a positive whole number or None, not {columns!r}."
            )
        if thumb_format not in _FORMATS:
            raise InvalidParameterError(
                f"thumb_format must be one of {', '.join(map(repr, _FORMATS))}, "
                f"not {thumb_format!r}."
            )
        self.columns = columns
        self.thumb_size = thumb_size
        self.thumb_format = thumb_format
        self.backend = backend
        self.caption_parts = [caption] if isinstance(caption, str) else list(caption or [])
        self._cells: list[_Cell] = []
        self._original: _Cell | None = None
        if original is not None:
            self._original = self._cell(original, original_title, original=True)
        if isinstance(images, (str, bytes, Path, Mapping)) or not isinstance(images, Iterable):
            raise InvalidParameterError(
                f"images must be a list of images, not a {type(images).__name__}; "
                "wrap a single image in a list."
            )
        images = list(images)
        if titles is not None and not isinstance(titles, (list, tuple)):
            raise InvalidParameterError(
                f"titles must be a list of strings, not a {type(titles).__name__}."
            )
        if titles is not None and len(titles) != len(images):
            raise InvalidParameterError(
                f"got {len(titles)} titles for {len(images)} images; give one title per image."
            )
        for index, image in enumerate(images):
            self.append(image, None if titles is None else titles[index])

    @classmethod
    def compare(
        cls, rows: Sequence[tuple[str | None, Any]], *, thumb_size: int = 256
    ) -> ComparisonGrid:
        """One row per source: `rows` are `(label, ImageGrid | images | ImagesResponse)`."""
        return ComparisonGrid(rows, thumb_size=thumb_size)

    def _cell(self, source: Any, title: str | None, *, original: bool = False) -> _Cell:
        image = _to_pil(source)
        label = f"#{len(self._cells) + 1}" if title is None else str(title)
        return _Cell(image, label, _thumbnail(image, self.thumb_size, self.thumb_format), original)

    def append(self, image: Any, title: str | None = None) -> None:
        """Add one image at the end; only its own thumbnail is encoded."""
        self._cells.append(self._cell(image, title))

    @property
    def images(self) -> list[Image.Image]:
        """The variations at full resolution (the original is `original`)."""
        return [cell.image for cell in self._cells]

    @property
    def original(self) -> Image.Image | None:
        return None if self._original is None else self._original.image

    @property
    def titles(self) -> list[str]:
        return [cell.title for cell in self._cells]

    @property
    def caption(self) -> str | None:
        return " · ".join(self.caption_parts) or None

    def __len__(self) -> int:
        return len(self._cells)

    def __getitem__(self, index: int) -> Image.Image:
        return self._cells[index].image

    def __iter__(self) -> Iterator[Image.Image]:
        return (cell.image for cell in self._cells)

    def _all_cells(self) -> list[_Cell]:
        return ([self._original] if self._original else []) + self._cells

    def save(self, directory: str | Path, *, prefix: str = "image") -> list[Path]:
        """Write the original and every variation as full-resolution PNG; returns the paths.

        Existing files are never overwritten: a taken name gets a `-2`, `-3`... suffix.
        Each file appears complete or not at all, and if one cannot be written (a full
        disk) the ones this call already wrote are removed again.
        """
        if not isinstance(prefix, str) or not _SAFE_NAME.match(prefix):
            raise InvalidParameterError(
                f"prefix must be a plain file name (letters, digits, . _ -), not {prefix!r}."
            )
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        stems = (["original"] if self._original else []) + [
            f"{i + 1:02d}" for i in range(len(self._cells))
        ]
        written: list[Path] = []
        try:
            for stem, cell in zip(stems, self._all_cells(), strict=True):
                png = encode(cell.image, "png")
                written.append(write_new_file(folder, f"{prefix}-{stem}", ".png", png))
        except BaseException:
            # All or nothing: a full disk midway leaves the folder as it was.
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return written

    def contact_sheet(self) -> Image.Image:
        """All thumbnails with their titles on one picture, for places without HTML."""
        cells = self._all_cells()
        per_row = self.columns or min(len(cells), 6) or 1
        rows: list[tuple[list[str], list[_Cell | None]]] = [
            ([], list(cells[i : i + per_row])) for i in range(0, len(cells), per_row)
        ]
        return _draw_sheet(rows, label_width=0)

    def to_html(self) -> str:
        """The grid as one self-contained HTML fragment with inline styles only."""
        cells = self._all_cells()
        if not cells:
            return f'<div style="{_TEXT_STYLE}">(no images yet)</div>'
        width = _cell_width(cells)
        limit = ""
        if self.columns:
            # a fixed column count with flex alone: cap the row at `columns` cells
            limit = f"max-width:{self.columns * width + (self.columns - 1) * _GAP}px;"
        body = "".join(_cell_html(cell, width) for cell in cells)
        caption = (
            f'<div style="{_TEXT_STYLE}">{html.escape(self.caption)}</div>' if self.caption else ""
        )
        return (
            f'<div style="display:flex;flex-direction:column;gap:4px">{caption}'
            f'<div style="display:flex;flex-wrap:wrap;gap:{_GAP}px;align-items:flex-start;{limit}">'
            f"{body}</div></div>"
        )

    def __repr__(self) -> str:
        if self._original:
            count = f"original + {_plural(len(self._cells), 'variation')}"
        else:
            count = _plural(len(self._cells), "image")
        return f"ImageGrid({', '.join([count, *_describe_images([self])])})"


class ComparisonGrid(_Displayed):
    """Several sources, one row each: row label and caption, original, then variations.

    Columns line up across rows; a row without an original keeps an empty first column.
    """

    def __init__(
        self, rows: Iterable[tuple[str | None, Any]] = (), *, thumb_size: int = 256
    ) -> None:
        self.thumb_size = thumb_size
        self.rows: list[tuple[str, ImageGrid]] = []
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
            raise InvalidParameterError(
                f"rows must be a list of (label, images) pairs, not a {type(rows).__name__}."
            )
        for row in rows:
            if not isinstance(row, (tuple, list)) or len(row) != 2:
                raise InvalidParameterError(
                    f"each of rows must be a (label, images) pair, not {type(row).__name__}."
                )
            self.add_row(*row)

    def add_row(self, label: str | None, item: Any) -> ImageGrid:
        """Add a row from an `ImageGrid`, a list of images, or anything that makes its own
        grid with `to_grid(thumb_size=...)` (an `ImagesResponse`); the row's grid is returned
        so it can grow with `append` as images arrive."""
        if isinstance(item, ImageGrid):
            grid = item
        elif callable(getattr(item, "to_grid", None)):
            grid = item.to_grid(thumb_size=self.thumb_size)
        else:
            grid = ImageGrid(item, thumb_size=self.thumb_size)
        if label is None:
            source = getattr(item, "source", None)
            label = getattr(source, "name", None) or f"row {len(self.rows) + 1}"
        self.rows.append((str(label), grid))
        return grid

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> ImageGrid:
        return self.rows[index][1]

    def __iter__(self) -> Iterator[ImageGrid]:
        return (grid for _, grid in self.rows)

    def _row_cells(self, grid: ImageGrid) -> list[_Cell | None]:
        return [grid._original, *grid._cells]

    def _row_caption(self, label: str, grid: ImageGrid) -> list[str]:
        # a row labelled by its source name need not repeat it in the caption
        return [part for part in grid.caption_parts if part != f"source {label}"]

    def contact_sheet(self) -> Image.Image:
        """The comparison on one picture, for places without HTML."""
        rows = [
            ([label, *self._row_caption(label, grid)], self._row_cells(grid))
            for label, grid in self.rows
        ]
        return _draw_sheet(rows, label_width=_LABEL_WIDTH)

    def to_html(self) -> str:
        """The comparison as one self-contained HTML fragment with inline styles only."""
        if not self.rows:
            return f'<div style="{_TEXT_STYLE}">(no rows yet)</div>'
        width = _cell_width([cell for grid in self for cell in grid._all_cells()])
        blank = f'<div style="flex:none;width:{width}px"></div>'
        lines = []
        for label, grid in self.rows:
            caption = "<br>".join(html.escape(part) for part in self._row_caption(label, grid))
            head = (
                f'<div style="flex:none;width:{_LABEL_WIDTH}px">'
                f'<div style="font-weight:bold;font-size:13px;overflow-wrap:anywhere">'
                f"{html.escape(label)}</div>"
                f'<div style="{_TEXT_STYLE}">{caption}</div></div>'
            )
            cells = "".join(
                blank if cell is None else _cell_html(cell, width) for cell in self._row_cells(grid)
            )
            lines.append(
                f'<div style="display:flex;flex-wrap:nowrap;gap:{_GAP}px;'
                f'align-items:flex-start">{head}{cells}</div>'
            )
        # rows never wrap so columns stay aligned; the block scrolls sideways when wide
        return (
            f'<div style="display:flex;flex-direction:column;gap:{2 * _GAP}px;'
            f'overflow-x:auto">{"".join(lines)}</div>'
        )

    def __repr__(self) -> str:
        counts = sorted({len(grid) for grid in self})
        if not counts:
            return "ComparisonGrid(0 sources)"
        spread = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        noun = "variation" if counts == [1] else "variations"
        head = f"{_plural(len(self.rows), 'source')} x {spread} {noun}"
        return f"ComparisonGrid({', '.join([head, *_describe_images(list(self))])})"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _describe_images(grids: list[ImageGrid]) -> list[str]:
    """The `WxH` shared by all variations and the backends that made them, for text/plain."""
    sizes = {image.size for grid in grids for image in grid}
    parts = []
    if len(sizes) == 1:
        ((width, height),) = sizes
        parts.append(f"{width}x{height}")
    elif sizes:
        parts.append("mixed sizes")
    backends = list(dict.fromkeys(grid.backend for grid in grids if grid.backend))
    if backends:
        parts.append(", ".join(backends))
    return parts


def _cell_width(cells: Iterable[_Cell]) -> int:
    return max(cell.thumb.width for cell in cells) + 2 * _BORDER


def _cell_html(cell: _Cell, width: int) -> str:
    colour = _ORIGINAL_COLOUR if cell.original else "transparent"
    weight = "font-weight:bold;" if cell.original else ""
    title = html.escape(cell.title)
    return (
        f'<div style="display:flex;flex-direction:column;align-items:center;gap:2px;'
        f'flex:none;width:{width}px;max-width:100%">'
        f'<img src="{cell.thumb.uri}" width="{cell.thumb.width}" height="{cell.thumb.height}" '
        f'alt="{title}" style="max-width:100%;height:auto;border:{_BORDER}px solid {colour}">'
        f'<div style="{_TEXT_STYLE};{weight}text-align:center">{title}</div></div>'
    )


def _to_pil(source: Any) -> Image.Image:
    """Any supported image source as a PIL image (not copied when it already is one)."""
    from PIL import Image

    from .sources import load_image

    if isinstance(source, Image.Image):
        return source
    try:
        picture = getattr(source, "image", None)
    except ValueError as exc:  # ImageData without bytes (a URL never downloaded)
        raise InvalidImageError(str(exc)) from exc
    if isinstance(picture, Image.Image):
        return picture
    return load_image(source)[0]


def _thumbnail(image: Image.Image, size: int, requested: str) -> _Thumb:
    """Scale to at most `size` on the long side (never up) and encode once."""
    from .sources import downscale

    picture = image
    if picture.mode not in ("RGB", "RGBA", "L", "LA"):
        alpha = "A" in picture.mode or "transparency" in picture.info
        picture = picture.convert("RGBA" if alpha else "RGB")
    fmt = requested if requested != "auto" else _auto_format(picture)
    if fmt != "png" and picture.mode in ("RGBA", "LA"):
        picture = picture.convert(picture.mode[:-1])
    picture = downscale(picture, size, reducing_gap=2.0)
    content = encode(picture, fmt)
    data = base64.b64encode(content).decode("ascii")
    return _Thumb(picture, fmt, content, f"data:image/{fmt};base64,{data}", *picture.size)


def _auto_format(picture: Image.Image) -> str:
    """PNG for real transparency or few colours (lossy codecs would smear them); JPEG, which
    every renderer shows, for photos."""
    alpha = picture.getchannel("A").getextrema()[0] if picture.mode in ("RGBA", "LA") else 255
    if alpha < 255:  # type: ignore[operator]
        return "png"
    # getcolors gives up as soon as it passes the limit, so photos cost next to nothing
    return "png" if picture.getcolors(_FEW_COLOURS) is not None else "jpeg"


def _draw_sheet(
    rows: list[tuple[list[str], list[_Cell | None]]], *, label_width: int
) -> Image.Image:
    """Tile thumbnails with titles (and optional row labels) on a white sheet."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=12)
    cells = [cell for _, row in rows for cell in row if cell is not None]
    if not cells:
        return Image.new("RGB", (1, 1), "white")
    cell_w = _cell_width(cells)
    cell_h = max(cell.thumb.height for cell in cells) + 2 * _BORDER + 18
    per_row = max(len(row) for _, row in rows)
    left = label_width + (_GAP if label_width else 0)
    size = (left + per_row * (cell_w + _GAP) + _GAP, len(rows) * (cell_h + _GAP) + _GAP)
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    for r, (labels, row) in enumerate(rows):
        top = _GAP + r * (cell_h + _GAP)
        for k, line in enumerate(labels):
            draw.text((_GAP, top + k * 15), _fit(draw, line, font, label_width), "black", font)
        for c, cell in enumerate(row):
            if cell is None:
                continue
            x = left + _GAP + c * (cell_w + _GAP)
            thumb = cell.thumb
            if cell.original:
                right, bottom = x + thumb.width + 2 * _BORDER, top + thumb.height + 2 * _BORDER
                draw.rectangle((x, top, right - 1, bottom - 1), fill=_ORIGINAL_COLOUR)
            picture = thumb.image.convert("RGBA")
            sheet.paste(picture, (x + _BORDER, top + _BORDER), picture)
            title = _fit(draw, cell.title, font, cell_w)
            draw.text(
                (x + cell_w / 2, top + thumb.height + 2 * _BORDER + 3), title, "black", font, "ma"
            )
    return sheet


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    """`text` cut (with an ellipsis) to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
