"""The request and response objects, in the shape of the OpenAI images API.

`ImagesResponse.from_dict` reads an `ImagesResponse` JSON body, keeping unknown fields,
so `to_dict()` gives the same JSON back. Decoded pictures are reached through `.images`;
the raw bytes of each result stay in memory so URL results outlive their expiry.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._options import COMMON
from .errors import InvalidParameterError, is_whole
from .sources import check_fit

if TYPE_CHECKING:
    from PIL import Image

    from .grid import ImageGrid
    from .sources import PreparedImage

__all__ = ["ImageData", "ImagesResponse", "ResultImage", "Usage", "VariationRequest"]

# The client options a response remembers for `vary`; the API key is never among them.
CLIENT_OPTIONS = ("backend", "base_url", "model", "timeout", "max_retries", "max_concurrency")

MAX_N = 10_000  # images in one call, however many requests the fan-out makes


@dataclass
class VariationRequest:
    """What to ask a backend for; `None` means the backend's own default."""

    n: int = COMMON["n"].default
    size: str | None = None
    response_format: str | None = None
    model: str | None = None
    user: str | None = None
    prompt: str | None = None
    seed: int | None = None
    fit: str = COMMON["fit"].default
    diversity: float | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    input_fidelity: str | None = None

    def check_common(self, *, max_n: int = MAX_N) -> None:
        """Checks that hold for every backend; backends check their own enums after."""
        if not is_whole(self.n):
            raise InvalidParameterError(f"n must be a whole number, not {self.n!r}.", param="n")
        if not 1 <= self.n <= max_n:
            raise InvalidParameterError(
                f"n must be between 1 and {max_n}, not {self.n}.", param="n"
            )
        for name in ("size", "model", "user", "prompt", "response_format"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidParameterError(
                    f"{name} must be a string or None, not {type(value).__name__}.", param=name
                )
        check_fit(self.fit)
        if self.seed is not None and not is_whole(self.seed):
            raise InvalidParameterError(
                f"seed must be a whole number, not {self.seed!r}.", param="seed"
            )

    def params(self) -> dict[str, Any]:
        """The options that were set, for captions and saved metadata."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def caption(
    backend: str | None,
    request: VariationRequest | None,
    source: PreparedImage | None,
    *,
    size: str | None = None,
    created: int | None = None,
    usage: Usage | None = None,
) -> list[str]:
    """The caption of a run, live or finished: source, backend, model, size, seed, created
    and tokens; absent values are left out."""
    size = (request.size if request else None) or size
    parts = [
        f"source {source.name}" if source else "",
        f"backend {backend}" if backend else "",
        f"model {request.model}" if request and request.model else "",
        f"size {size}" if size else "",
        f"seed {request.seed}" if request and request.seed is not None else "",
    ]
    if isinstance(created, int):
        when = datetime.fromtimestamp(created, tz=timezone.utc)
        parts.append(f"created {when:%Y-%m-%d %H:%M} UTC")
    if usage is not None and usage.total_tokens:
        parts.append(
            f"tokens {usage.total_tokens} (in {usage.input_tokens}, out {usage.output_tokens})"
        )
    return [part for part in parts if part]


_NO_TOKENS = {"text_tokens": 0, "image_tokens": 0}
_IMAGE_FIELDS = ("b64_json", "url", "revised_prompt")  # the rest of an image item is `extra`


@dataclass
class Usage:
    """Token usage of a GPT image model call."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: dict[str, int] = field(default_factory=dict)
    output_tokens_details: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Usage:
        def count(key: str) -> int:
            value = raw.get(key)
            return value if isinstance(value, int) else 0

        def details(key: str) -> dict[str, int]:
            value = raw.get(key)
            if not isinstance(value, Mapping):
                return {}
            return {k: v for k, v in value.items() if isinstance(v, int)}

        known = {f.name for f in dataclasses.fields(cls) if f.name != "extra"}
        return cls(
            count("input_tokens"),
            count("output_tokens"),
            count("total_tokens"),
            details("input_tokens_details"),
            details("output_tokens_details"),
            {k: v for k, v in raw.items() if k not in known},
        )

    def __add__(self, other: Usage) -> Usage:
        def merged(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}

        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            merged(self.input_tokens_details, other.input_tokens_details),
            merged(self.output_tokens_details, other.output_tokens_details),
            {**self.extra, **other.extra},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.extra,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "input_tokens_details": _NO_TOKENS | self.input_tokens_details,
        }
        if self.output_tokens_details:
            out["output_tokens_details"] = _NO_TOKENS | self.output_tokens_details
        return out


@dataclass
class ImageData:
    """One result image: `b64_json` or `url` as the server sent it, plus its bytes.

    `content` holds the encoded image (decoded base64, or the downloaded URL body), so a
    URL result stays usable after the URL expires.
    """

    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    content: bytes | None = field(default=None, repr=False, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ImageData:
        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) else None

        item = cls(
            b64_json=text("b64_json"),
            url=text("url"),
            revised_prompt=text("revised_prompt"),
            extra={k: v for k, v in raw.items() if k not in _IMAGE_FIELDS},
        )
        if item.b64_json is not None:
            try:
                item.content = base64.b64decode(item.b64_json, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("b64_json is not valid base64") from exc
        return item

    @property
    def image(self) -> Image.Image:
        """The decoded picture (full resolution)."""
        from PIL import Image

        if self.content is None:
            raise ValueError("this result holds no image bytes (a URL that was not downloaded)")
        picture = Image.open(io.BytesIO(self.content))
        picture.load()
        return picture

    def __repr__(self) -> str:
        # The base64 of one picture runs to 100 K characters: show its length, never the text.
        parts = []
        if self.b64_json is not None:
            parts.append(f"b64_json=<{len(self.b64_json):,} chars>")
        if self.url is not None:
            parts.append(f"url={_clip(self.url)!r}")
        if self.revised_prompt is not None:
            parts.append(f"revised_prompt={_clip(self.revised_prompt)!r}")
        if self.content is not None and self.b64_json is None:
            parts.append(f"content=<{len(self.content):,} bytes>")
        return f"ImageData({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, **_present(self, _IMAGE_FIELDS)}


_RESPONSE_FIELDS = ("background", "output_format", "quality", "size")


@dataclass
class ImagesResponse:
    """The answer to a variation request, in OpenAI's `ImagesResponse` shape.

    Besides the JSON fields it remembers where it came from: `backend`, `request`,
    `client_options` (without the API key) and `source` (the prepared input), used by its
    grid, by `save` and by `vary`. `response[i]` is its i-th image as a `ResultImage`,
    which any source argument accepts; a response made from one knows its `parent`.
    """

    created: int
    data: list[ImageData] = field(default_factory=list)
    usage: Usage | None = None
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    backend: str | None = field(default=None, compare=False)
    request: VariationRequest | None = field(default=None, repr=False, compare=False)
    source: PreparedImage | None = field(default=None, repr=False, compare=False)
    client_options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(
        cls,
        raw: Mapping[str, Any],
        *,
        backend: str | None = None,
        request: VariationRequest | None = None,
        source: PreparedImage | None = None,
    ) -> ImagesResponse:
        """Parse a JSON body; unknown fields are kept, nulls read as absent.

        Raises ValueError when the body is not an ImagesResponse at all.
        """
        if not isinstance(raw, Mapping):
            raise ValueError("the response body is not a JSON object")
        created = raw.get("created")
        if not is_whole(created):
            created = int(time.time())
        items = raw.get("data") or []
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise ValueError("'data' is not a list of image objects")
        usage = raw.get("usage")
        known = {"created", "data", "usage", *_RESPONSE_FIELDS}
        texts: dict[str, Any] = {
            k: raw[k] if isinstance(raw.get(k), str) else None for k in _RESPONSE_FIELDS
        }
        return cls(
            created=created,
            data=[ImageData.from_dict(item) for item in items],
            usage=Usage.from_dict(usage) if isinstance(usage, Mapping) else None,
            **texts,
            extra={k: v for k, v in raw.items() if k not in known},
            backend=backend,
            request=request,
            source=source,
        )

    @classmethod
    def merge(cls, parts: list[ImagesResponse]) -> ImagesResponse:
        """One response from the answers of a fan-out, in the order given."""
        usages = [p.usage for p in parts if p.usage is not None]
        return dataclasses.replace(
            parts[0],
            created=min(p.created for p in parts),
            data=[item for p in parts for item in p.data],
            usage=sum(usages, Usage()) if usages else None,
        )

    @property
    def images(self) -> list[Image.Image]:
        """Every result decoded to a PIL image, at full resolution."""
        return [item.image for item in self.data]

    def to_dict(self) -> dict[str, Any]:
        """The JSON of this response, in the `ImagesResponse` shape."""
        out = {"created": self.created, **self.extra, **_present(self, _RESPONSE_FIELDS)}
        out["data"] = [item.to_dict() for item in self.data]
        if self.usage is not None:
            out["usage"] = self.usage.to_dict()
        return out

    def __getitem__(self, index: int) -> ResultImage:
        """The image at `index` (negative counts from the end), with where it came from."""
        try:
            return self._result(index)
        except InvalidParameterError as exc:
            raise IndexError(str(exc)) from None

    def _result(self, index: int) -> ResultImage:
        if not is_whole(index):
            raise InvalidParameterError(
                f"an image is picked by its position (a whole number), not {index!r}."
            )
        count = len(self.data)
        if not -count <= index < count:
            raise InvalidParameterError(
                f"image index {index} is out of range: this response holds {count} "
                f"image{'' if count == 1 else 's'} (0 to {count - 1})."
            )
        return ResultImage(self, index % count)

    @property
    def parent(self) -> ImagesResponse | None:
        """The response whose image this one varied (None for a first generation)."""
        origin = getattr(self.source, "origin", None)
        return origin.response if origin is not None else None

    @property
    def parent_index(self) -> int | None:
        """Which image of `parent` was varied."""
        origin = getattr(self.source, "origin", None)
        return origin.index if origin is not None else None

    @property
    def lineage(self) -> list[ImagesResponse]:
        """Every generation from the first source to this one, oldest first.

        `lineage[0].source` is the first source; each later generation varied image
        `parent_index` of the one before.
        """
        chain = [self]
        while (parent := chain[-1].parent) is not None:
            chain.append(parent)
        return chain[::-1]

    def vary_options(self, **overrides: Any) -> dict[str, Any]:
        """The options that made this response (client's and request's together, as
        `acreate_variation` takes them), updated with `overrides`.

        The API key is not remembered: it comes from `OPENAI_API_KEY` again, or from an
        `api_key=` override.
        """
        options: dict[str, Any] = {"backend": self.backend, **self.client_options}
        if self.request is not None:
            options.update(dataclasses.asdict(self.request))
        return {k: v for k, v in {**options, **overrides}.items() if v is not None}

    def vary(self, index: int, **options: Any) -> ImagesResponse:
        """Variations of image `index`, with this response's backend and options unless
        overridden (see `vary_options`); the new response's `parent` is this one.

        Example:
            >>> better = response.vary(2, n=4)
            >>> better.parent is response, better.parent_index
            (True, 2)
        """
        from ._sync import run_sync

        return run_sync(self.avary(index, **options))

    async def avary(self, index: int, **options: Any) -> ImagesResponse:
        """The async form of `vary`, for code already running in an event loop."""
        # Through the public API, which loads the client on first use: the client builds
        # responses, so this module must not import it.
        import ipy_images

        picked = self._result(index)
        return await ipy_images.acreate_variation(picked, **self.vary_options(**options))

    def explore(self, **options: Any) -> Any:
        """A `VariationExplorer` of this response and its lineage: zoom, A/B wipe, vary."""
        import ipy_images  # the explorer shows responses: it imports this module, not back

        return ipy_images.VariationExplorer(self, **options)

    def describe(self) -> list[str]:
        """What made this response, as short phrases: backend, model, size, seed, created
        (UTC), tokens; absent values are left out."""
        return caption(
            self.backend, self.request, None, size=self.size, created=self.created, usage=self.usage
        )

    def __repr__(self) -> str:
        # Short everywhere (a plain shell, logs, a list of runs): never the base64 of `data`.
        count = f"{len(self.data)} image{'' if len(self.data) == 1 else 's'}"
        return f"ImagesResponse({', '.join([count, *map(_clip, self.describe())])})"

    def metadata(self) -> dict[str, Any]:
        """Where these images came from: parameters, creation time, backend, source hash,
        and the lineage back to the first source."""
        return {**self._generation(), "lineage": [g._generation() for g in self.lineage]}

    def _generation(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "backend": self.backend,
            "params": self.request.params() if self.request else {},
            "source": {"name": self.source.name, "sha256": self.source.sha256}
            if self.source
            else None,
            "usage": self.usage.to_dict() if self.usage else None,
            "revised_prompts": [d.revised_prompt for d in self.data if d.revised_prompt],
            "parent_index": self.parent_index,
        }

    def save(self, directory: str | Path) -> Path:
        """Write every image as PNG plus `metadata.json` into a new run folder.

        Each call makes a fresh `run-NNN` folder inside `directory`, so earlier runs are
        never overwritten; files are written to a temporary folder first and renamed into
        place, so an interrupted save leaves nothing half-written. Returns the run folder.
        """
        from ._encode import encode
        from ._files import write_run

        files = {
            f"variation-{i + 1:02d}.png": encode(img, "png") for i, img in enumerate(self.images)
        }
        if self.source is not None:
            files["original.png"] = self.source.png
        files["metadata.json"] = json.dumps(self.metadata(), indent=2).encode()
        return write_run(Path(directory), files)

    def to_grid(self, *, thumb_size: int = 256, columns: int | None = None) -> ImageGrid:
        """An `ImageGrid` of the original followed by the variations, captioned with the
        parameters that made them."""
        from .grid import ImageGrid

        return ImageGrid(
            self.images,
            columns=columns,
            thumb_size=thumb_size,
            original=None if self.source is None else self.source.image,
            caption=caption(None, None, self.source) + self.describe(),
            backend=self.backend,
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self.to_grid()._repr_mimebundle_(include=include, exclude=exclude)


@dataclass(frozen=True, eq=False)
class ResultImage:
    """One image of a response, knowing where it came from: `response[index]`.

    Pass it wherever an image source is taken (`create_variation`, `{result[2]}` in
    `%%variation`, the form): the new response then records it as its `parent`.
    """

    response: ImagesResponse
    index: int

    @property
    def data(self) -> ImageData:
        return self.response.data[self.index]

    @property
    def image(self) -> Image.Image:
        """The picture at full resolution."""
        return self.data.image

    @property
    def name(self) -> str:
        """A file name telling the lineage: `coffee-3.png` is #3 of coffee's variations."""
        source = self.response.source
        stem = Path(source.name).stem if source is not None else "result"
        return f"{stem}-{self.index + 1}.png"

    @property
    def lineage(self) -> list[ImagesResponse]:
        return self.response.lineage

    def vary(self, **options: Any) -> ImagesResponse:
        """Variations of this image: `response.vary(index, **options)`."""
        return self.response.vary(self.index, **options)

    async def avary(self, **options: Any) -> ImagesResponse:
        return await self.response.avary(self.index, **options)

    def __repr__(self) -> str:
        return f"ResultImage(#{self.index + 1} of {len(self.response.data)}, {self.name!r})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .grid import ImageGrid

        grid = ImageGrid([self.image], titles=[f"#{self.index + 1}"])
        return {"text/plain": repr(self), "text/html": grid.to_html()}


def _present(item: Any, names: Iterable[str]) -> dict[str, Any]:
    """The attributes `names` of `item` that are not None, for `to_dict`."""
    return {name: getattr(item, name) for name in names if getattr(item, name) is not None}


def _clip(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters (with an ellipsis), for reprs of unbounded strings."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
