"""ImageGrid and ComparisonGrid: the HTML they embed, read back with html.parser."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from ipy_images.errors import InvalidImageError, InvalidParameterError
from ipy_images.grid import ComparisonGrid, ImageGrid
from ipy_images.models import ImageData, ImagesResponse, Usage, VariationRequest
from ipy_images.sources import prepare_image

XSS = "<img src=x onerror=alert(1)>"
ORIGINAL_BORDER = "2px solid #e8710a"


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def walk(self) -> list[Node]:
        return [self, *(n for child in self.children for n in child.walk())]

    def all_text(self) -> str:
        return self.text + "".join(child.all_text() for child in self.children)


class TreeParser(HTMLParser):
    """A small DOM: enough to count tags, read attributes and follow nesting."""

    VOID: ClassVar[set[str]] = {"img", "br"}

    def __init__(self) -> None:
        super().__init__()
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].text += data


def parse(markup: str) -> Node:
    parser = TreeParser()
    parser.feed(markup)
    parser.close()
    assert parser.stack == [parser.root], "unclosed tags"
    return parser.root


def images_in(markup: str) -> list[Node]:
    return [node for node in parse(markup).walk() if node.tag == "img"]


def decode(uri: str | None) -> Image.Image:
    assert uri is not None
    head, data = uri.split(",", 1)
    assert head.startswith("data:image/") and head.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def photo(seed: int, size: tuple[int, int] = (320, 320)) -> Image.Image:
    """A smooth random picture with thousands of colours, like a photo."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return small.resize(size, Image.Resampling.BICUBIC)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def response(seed: int, n: int = 4, **extra: object) -> ImagesResponse:
    data = [ImageData(content=png_bytes(photo(seed * 10 + i, (64, 64)))) for i in range(n)]
    return ImagesResponse(
        created=1_767_225_600,  # 2026-01-01 00:00 UTC
        data=data,
        backend="local",
        request=VariationRequest(n=n, size="64x64", seed=seed, model="gpnn"),
        source=prepare_image(photo(seed, (96, 96))),
        **extra,  # type: ignore[arg-type]
    )


def test_html_shows_original_then_each_variation_with_its_title() -> None:
    grid = ImageGrid([photo(i) for i in range(4)], titles=list("abcd"), original=photo(9))
    imgs = images_in(grid.to_html())
    assert [img.attrs["alt"] for img in imgs] == ["original", "a", "b", "c", "d"]
    assert ORIGINAL_BORDER in (imgs[0].attrs["style"] or "")
    assert all(ORIGINAL_BORDER not in (img.attrs["style"] or "") for img in imgs[1:])


def test_html_has_nothing_a_sanitizer_strips() -> None:
    markup = ImageGrid.compare([("a", response(1)), ("b", response(2))]).to_html()
    markup += ImageGrid([photo(1)], original=photo(2), columns=3, caption="c").to_html()
    nodes = parse(markup).walk()[1:]
    assert {node.tag for node in nodes} <= {"div", "img", "br"}
    assert all(set(node.attrs) <= {"style", "src", "width", "height", "alt"} for node in nodes)
    assert "object-fit" not in markup


def test_titles_captions_and_labels_are_escaped() -> None:
    grid = ImageGrid([photo(1)], titles=[XSS], original=photo(2), caption=XSS)
    comparison = ImageGrid.compare([(XSS, [photo(3)])])
    for markup, count in ((grid.to_html(), 2), (comparison.to_html(), 1)):
        assert XSS not in markup
        assert "&lt;img src=x onerror=alert(1)&gt;" in markup
        tree = parse(markup)
        assert XSS in tree.all_text()  # shown as text, never as a tag
        sources = [node.attrs["src"] or "" for node in tree.walk() if node.tag == "img"]
        assert len(sources) == count and all(src.startswith("data:") for src in sources)


def test_thumbnails_are_display_sized_and_never_upscaled() -> None:
    grid = ImageGrid([photo(1, (1024, 768)), photo(2, (100, 50))], thumb_size=256)
    big, small = images_in(grid.to_html())
    assert decode(big.attrs["src"]).size == (256, 192)
    assert (big.attrs["width"], big.attrs["height"]) == ("256", "192")
    assert decode(small.attrs["src"]).size == (100, 50)
    assert "max-width:100%" in (big.attrs["style"] or "")
    assert grid[0].size == (1024, 768)  # full resolution kept


def test_thumbnail_format_follows_the_content() -> None:
    transparent = photo(1).convert("RGBA")
    transparent.putalpha(128)
    pixel_art = photo(2).quantize(8).resize((512, 512), Image.Resampling.NEAREST)
    grid = ImageGrid([photo(3), transparent, pixel_art, photo(4).convert("RGBA")])
    formats = [decode(img.attrs["src"]).format for img in images_in(grid.to_html())]
    assert formats == ["JPEG", "PNG", "PNG", "JPEG"]
    webp = ImageGrid([photo(3)], thumb_format="webp").to_html()
    assert decode(images_in(webp)[0].attrs["src"]).format == "WEBP"


def test_text_plain_is_deterministic() -> None:
    def build() -> dict[str, str]:
        return ImageGrid(
            [photo(i, (256, 256)) for i in range(4)], original=photo(9), backend="local"
        )._repr_mimebundle_()

    first, second = build(), build()
    assert set(first) == {"text/plain", "text/html"}
    assert first["text/plain"] == second["text/plain"]
    assert first["text/plain"] == "ImageGrid(original + 4 variations, 256x256, local)"
    assert first["text/html"] == second["text/html"]
    assert repr(ImageGrid([photo(1, (256, 256))] * 4)) == "ImageGrid(4 images, 256x256)"
    assert repr(ImageGrid()) == "ImageGrid(0 images)"


def test_response_displays_as_its_grid_with_caption() -> None:
    result = response(7, usage=Usage(10, 20, 30))
    bundle = result._repr_mimebundle_()
    assert bundle["text/plain"] == "ImageGrid(original + 4 variations, 64x64, local)"
    imgs = images_in(bundle["text/html"])
    assert len(imgs) == 5 and imgs[0].attrs["alt"] == "original"
    assert decode(imgs[0].attrs["src"]).size == (96, 96)
    text = parse(bundle["text/html"]).all_text()
    for part in ("source image.png", "backend local", "model gpnn", "size 64x64", "seed 7"):
        assert part in text
    assert "created 2026-01-01 00:00 UTC" in text
    assert "tokens 30 (in 10, out 20)" in text


def test_caption_leaves_out_what_is_missing() -> None:
    bare = ImagesResponse(created=1_767_225_600, data=[ImageData(content=png_bytes(photo(1)))])
    grid = bare.to_grid()
    assert grid.caption == "created 2026-01-01 00:00 UTC"
    assert grid.original is None and repr(grid) == "ImageGrid(1 image, 320x320)"


def test_accepts_every_kind_of_source(tmp_path: Path) -> None:
    picture = photo(1, (40, 30))
    path = tmp_path / "p.png"
    picture.save(path)
    array = np.asarray(picture)
    sources = [picture, array, array / 255.0, png_bytes(picture), path, str(path)]
    sources.append(ImageData(content=png_bytes(picture)))
    grid = ImageGrid(sources)
    assert len(grid) == len(sources)
    for image in grid:
        assert image.size == (40, 30)
        assert np.array_equal(np.asarray(image.convert("RGB")), array)
    with pytest.raises(InvalidImageError):
        ImageGrid([b"not an image"])
    with pytest.raises(InvalidImageError):
        ImageGrid([ImageData(url="https://example.org/expired.png")])


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="titles"):
        ImageGrid([photo(1)], titles=["a", "b"])
    with pytest.raises(InvalidParameterError, match="thumb_size"):
        ImageGrid([photo(1)], thumb_size=0)
    with pytest.raises(InvalidParameterError, match="columns"):
        ImageGrid([photo(1)], columns=0)
    with pytest.raises(InvalidParameterError, match="thumb_format"):
        ImageGrid([photo(1)], thumb_format="gif")


def test_indexing_len_and_iteration_give_full_resolution() -> None:
    pictures = [photo(i, (600, 400)) for i in range(3)]
    grid = ImageGrid(pictures, original=photo(9))
    assert len(grid) == 3
    assert grid[1] is pictures[1] and grid[-1] is pictures[2]
    assert list(grid) == pictures == grid.images
    assert grid.original is not None and grid.original.size == (320, 320)
    with pytest.raises(IndexError):
        grid[3]


def test_save_writes_full_resolution_pngs_and_never_overwrites(tmp_path: Path) -> None:
    grid = ImageGrid([photo(1, (500, 300)), photo(2, (500, 300))], original=photo(3))
    first = grid.save(tmp_path / "out")
    assert [p.name for p in first] == ["image-original.png", "image-01.png", "image-02.png"]
    with Image.open(first[1]) as saved:
        assert saved.format == "PNG" and saved.size == (500, 300)
        assert np.array_equal(np.asarray(saved), np.asarray(grid[0]))
    before = first[1].read_bytes()
    second = grid.save(tmp_path / "out", prefix="image")
    assert [p.name for p in second] == ["image-original-2.png", "image-01-2.png", "image-02-2.png"]
    assert first[1].read_bytes() == before
    assert len(list((tmp_path / "out").iterdir())) == 6


def test_append_grows_the_grid_without_reencoding() -> None:
    grid = ImageGrid(original=photo(9))
    first = photo(1)
    grid.append(first)
    before = images_in(grid.to_html())
    first.paste((0, 0, 0), (0, 0, *first.size))  # a re-encode would now show black
    grid.append(photo(2), title="late")
    after = images_in(grid.to_html())
    assert len(after) == 3 and after[2].attrs["alt"] == "late"
    assert [img.attrs["src"] for img in after[:2]] == [img.attrs["src"] for img in before]
    assert np.asarray(decode(after[1].attrs["src"])).mean() > 20


def test_columns_cap_the_row_width() -> None:
    grid = ImageGrid([photo(i, (100, 100)) for i in range(5)], columns=2, thumb_size=100)
    flex = [n for n in parse(grid.to_html()).walk() if "flex-wrap:wrap" in n.attrs.get("style", "")]
    cells, gap = 100 + 4, 8
    assert f"max-width:{2 * cells + gap}px" in (flex[0].attrs["style"] or "")
    assert len(flex[0].children) == 5


def test_comparison_has_one_row_per_source_with_original_first() -> None:
    grid = ImageGrid.compare(
        [("gpnn, seed 1", response(1, usage=Usage(1, 2, 3))), (None, response(2, n=3))]
    )
    assert isinstance(grid, ComparisonGrid) and len(grid) == 2
    assert repr(grid) == "ComparisonGrid(2 sources x 3-4 variations, 64x64, local)"
    rows = parse(grid.to_html()).children[0].children
    assert len(rows) == 2
    labels = [row.children[0].children[0].all_text() for row in rows]
    assert labels == ["gpnn, seed 1", "image.png"]
    captions = [row.children[0].children[1].all_text() for row in rows]
    assert "seed 1" in captions[0] and "tokens 3 (in 1, out 2)" in captions[0]
    assert "seed 2" in captions[1] and "tokens" not in captions[1]
    # a row labelled by its source name does not repeat it; a custom label keeps it
    assert "source image.png" in captions[0] and "source" not in captions[1]
    for row, count in zip(rows, (4, 3), strict=True):
        cells = row.children[1:]
        assert len(cells) == 1 + count
        original = cells[0].children[0]
        assert ORIGINAL_BORDER in (original.attrs["style"] or "")
        assert decode(original.attrs["src"]).size == (96, 96)


def test_comparison_rows_align_and_grow() -> None:
    grid = ImageGrid.compare([("with original", response(1, n=2)), ("plain", [photo(1)])])
    row = grid.rows[1][1]
    row.append(photo(2))
    assert repr(grid) == "ComparisonGrid(2 sources x 2 variations, mixed sizes, local)"
    rows = parse(grid.to_html()).children[0].children
    # the row without an original keeps an empty first column so columns line up
    assert [len(r.children) for r in rows] == [4, 4]
    assert rows[1].children[1].children == []


def test_contact_sheet_for_places_without_html() -> None:
    grid = ImageGrid([photo(1, (100, 100))] * 3, original=photo(2, (100, 100)), columns=2)
    sheet = grid.contact_sheet()
    assert sheet.size == (2 * (104 + 8) + 8, 2 * (104 + 18 + 8) + 8)
    assert sheet.getpixel((8, 8)) == (0xE8, 0x71, 0x0A)  # the original's border
    bundle = grid._repr_mimebundle_(include=["image/png", "text/plain"])
    assert set(bundle) == {"image/png", "text/plain"}
    decoded = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
    assert decoded.size == sheet.size
    assert "text/html" not in grid._repr_mimebundle_(exclude=["text/html"])
    comparison = ImageGrid.compare([("a", response(1)), ("b", response(2))], thumb_size=64)
    assert comparison.contact_sheet().height == 2 * (68 + 18 + 8) + 8
