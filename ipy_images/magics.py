"""IPython magics: `%%variation` makes a grid of variations, `%variation_form` shows the form.

    %load_ext ipy_images
    %%variation -n 4 --size 256x256 --backend local --seed 7 -o out
    notebooks/data/chelsea.jpg
    {my_pil_image}

Each line of the cell is one source: a path, an http(s) URL, or `{expression}` evaluated in
the user namespace. Everything is checked (options, then every source) before any request is
sent, and user mistakes are raised as `UsageError`, which IPython shows as one line without a
traceback. A blocking run ends with a fresh display of the final grid, so Run All, nbclient
and nbval see it; `--background` returns at once and updates its display as images arrive.
API keys are only ever read from the environment: cell sources are saved in the notebook.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import html
import os
import re
import shlex
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Float, Int, Unicode
from traitlets.config import Configurable

from ._redact import redact
from ._sync import background_loop, run_sync
from .errors import InvalidImageError, IpyImagesError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import DisplayHandle

    from .client import AsyncVariationClient
    from .grid import ComparisonGrid, ImageGrid
    from .models import ImageData, ImagesResponse, VariationRequest
    from .sources import PreparedImage

__all__ = ["VariationMagics", "load_ipython_extension", "unload_ipython_extension"]

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
# A key-shaped token (OpenAI keys start with "sk-"), not part of a longer word such as "task-".
_KEY_LITERAL = re.compile(r"(?<![\w-])sk-[A-Za-z0-9_-]{8,}")
# argparse accepts unambiguous prefixes, so "--api-key VALUE" would pass as --api-key-env.
_KEY_OPTION = re.compile(r"(?<!\S)--api[-_]key(?![-_]env)", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NO_KEYS = (
    "API keys are not accepted on the magic line, because cell sources are saved in the "
    "notebook; set the OPENAI_API_KEY environment variable (or --api-key-env NAME) instead."
)
_BLANK = {"text/plain": ""}

_Run = Coroutine[Any, Any, "list[ImagesResponse | BaseException]"]


@dataclasses.dataclass(frozen=True)
class _Source:
    """One line of the cell: where it is, what it said, and the value it names."""

    lineno: int
    text: str
    label: str
    value: Any


@magics_class
class VariationMagics(Magics, Configurable):
    """`%%variation` and `%variation_form`; defaults are set with `%config VariationMagics`."""

    backend = Unicode(
        None,
        allow_none=True,
        help="'local', 'variations' or 'edits'; None chooses from the environment "
        "(IPY_IMAGES_BACKEND, else local without a key or base URL).",
    ).tag(config=True)
    n = Int(4, help="How many variations of each source.").tag(config=True)
    size = Unicode(
        None, allow_none=True, help="Output size such as '256x256'; None is the backend's default."
    ).tag(config=True)
    model = Unicode(None, allow_none=True, help="Model to ask for; None is the backend's.").tag(
        config=True
    )
    base_url = Unicode(
        None,
        allow_none=True,
        help="Server of the HTTP backends, e.g. 'http://127.0.0.1:8000/v1'; "
        "None reads OPENAI_BASE_URL.",
    ).tag(config=True)
    response_format = Unicode("b64_json", help="'b64_json' or 'url' (URLs are downloaded).").tag(
        config=True
    )
    thumb_size = Int(256, help="Largest side, in pixels, of the thumbnails shown.").tag(config=True)
    timeout = Float(120.0, help="Seconds allowed for one HTTP attempt.").tag(config=True)
    api_key_env = Unicode(
        DEFAULT_KEY_ENV,
        help="Name of the environment variable holding the API key (never the key itself).",
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._jobs: set[concurrent.futures.Future[None]] = set()

    @magic_arguments()
    @argument("-n", "--n", type=int, help="How many variations of each source.")
    @argument("--size", help="Output size, e.g. 256x256, 512x512, 1024x1024.")
    @argument("--response-format", help="b64_json or url.")
    @argument("--model", help="Model to ask for.")
    @argument("--backend", help="local, variations or edits.")
    @argument("--base-url", help="Server of the HTTP backends, e.g. http://127.0.0.1:8000/v1.")
    @argument("--seed", type=int, help="Makes the local engine reproducible.")
    @argument("--prompt", help="Text prompt (edits backend).")
    @argument("--user", help="End-user id passed to the server.")
    @argument("--fit", help="How a non-square source becomes square: crop, pad or strict.")
    @argument("--diversity", type=float, help="Local engine: 1.0 default, higher differs more.")
    @argument("--quality", help="Edits backend: low, medium, high or auto.")
    @argument("--image-background", help="Edits backend: transparent, opaque or auto.")
    @argument("--output-format", help="Edits backend: png, webp or jpeg.")
    @argument("--output-compression", type=int, help="Edits backend: 0-100 (webp, jpeg).")
    @argument("--input-fidelity", help="Edits backend: low or high.")
    @argument("--columns", type=int, help="Thumbnails per row of a single-source grid.")
    @argument("-o", "--output", metavar="NAME", help="Store the result in this user variable.")
    @argument(
        "--background",
        action="store_true",
        help="Return at once; the display fills in as images arrive, NAME is set when done.",
    )
    @argument(
        "--api-key-env",
        metavar="NAME",
        help="Environment variable holding the API key (default OPENAI_API_KEY).",
    )
    @cell_magic
    def variation(self, line: str, cell: str) -> None:
        """Make variations of each source in the cell and show them as one grid.

        One source per line: a path, an http(s) URL, or {expression} (a PIL image, numpy
        array, bytes or path from the user namespace); blank lines and # comments are
        ignored. Several sources are requested concurrently and shown one row each.
        """
        if _KEY_LITERAL.search(line) or _KEY_OPTION.search(line) or _KEY_LITERAL.search(cell):
            raise UsageError(_NO_KEYS)
        args = _parse_line(self.variation, line)
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"-o needs a Python variable name, not {args.output!r}.")
        key_env = args.api_key_env or self.api_key_env
        if not _ENV_NAME.fullmatch(key_env):
            raise UsageError(
                f"--api-key-env takes the name of an environment variable, not {key_env!r}."
            )
        secret = os.environ.get(key_env) or None
        with _usage_errors(secret):
            client = self._client(args, key_env, secret)
            sources = self._read_sources(cell)
            try:
                request = client.build_request(
                    n=self.n if args.n is None else args.n,
                    size=args.size or self.size,
                    response_format=args.response_format or self.response_format,
                    model=args.model or self.model,
                    user=args.user,
                    prompt=args.prompt,
                    seed=args.seed,
                    fit=args.fit or "crop",
                    diversity=args.diversity,
                    quality=args.quality,
                    background=args.image_background,
                    output_format=args.output_format,
                    output_compression=args.output_compression,
                    input_fidelity=args.input_fidelity,
                )
                prepared = run_sync(_prepare_all(client, sources, request))
            except BaseException:
                run_sync(client.aclose())
                raise
            progress = _Progress(sources, prepared, request.n, self.thumb_size, args.columns)
            run = _generate(client, prepared, request, progress.add)
            if args.background:
                self._start(run, progress, args.output, secret)
            else:
                self._wait(run, progress, args.output, secret)

    @line_magic
    def variation_form(self, line: str) -> Any:
        """Show the VariationForm widget: pick an image, set options, click Generate."""
        from .widget import VariationForm

        return VariationForm()

    @line_magic
    def variation_cancel(self, line: str) -> None:
        """Cancel every `%%variation --background` run still in progress."""
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        print(f"Cancelled {len(jobs)} background run{'' if len(jobs) == 1 else 's'}.")

    def _client(self, args: Any, key_env: str, secret: str | None) -> AsyncVariationClient:
        from .client import AsyncVariationClient

        client = AsyncVariationClient(
            args.backend or self.backend,
            secret,
            args.base_url or self.base_url,
            timeout=self.timeout,
        )
        if secret is None and key_env != DEFAULT_KEY_ENV and client.backend != "local":
            raise UsageError(
                f"the environment variable {key_env} (named by --api-key-env) is not set; "
                "set it before starting Jupyter."
            )
        return client

    def _read_sources(self, cell: str) -> list[_Source]:
        """The cell's sources, `{expression}` lines evaluated in the user namespace."""
        sources = []
        for lineno, raw in enumerate(cell.splitlines(), start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith("{") and text.endswith("}"):
                expression = text[1:-1].strip()
                try:
                    value = self.shell.ev(expression)
                except Exception as exc:
                    raise UsageError(
                        f"line {lineno} {text}: {type(exc).__name__}: {_flat(exc)}"
                    ) from None
                sources.append(_Source(lineno, text, expression, value))
            else:
                path = os.path.expanduser(text)
                sources.append(_Source(lineno, text, _name_of(path), path))
        if not sources:
            raise UsageError(
                "the cell names no image: put one source per line (a path, an http(s) URL "
                "or {expression})."
            )
        labels = _unique([source.label for source in sources])
        return [
            dataclasses.replace(s, label=label) for s, label in zip(sources, labels, strict=True)
        ]

    def _wait(self, run: _Run, progress: _Progress, output: str | None, secret: str | None) -> None:
        """Blocking run: live progress, then a fresh display of the final grid."""
        # The progress display starts and ends blank, so a notebook saved after the updates
        # and a re-run that ignores them (nbval) hold the same output.
        progress.handle = display(_BLANK, raw=True, display_id=True)
        progress.show()
        try:
            results = run_sync(run)
        finally:
            progress.handle.update(_BLANK, raw=True)
        result, error = _collect(progress.labels, results, secret)
        if result is not None:
            display(_final_grid(result, progress))
            if output:
                self.shell.user_ns[output] = result
        if error:
            raise UsageError(error)

    def _start(
        self, run: _Run, progress: _Progress, output: str | None, secret: str | None
    ) -> None:
        """Background run: return now; the display and `output` are filled in when done."""
        progress.handle = display(progress.bundle(), raw=True, display_id=True)
        user_ns = self.shell.user_ns

        async def job() -> None:
            try:
                results = await run
                result, error = _collect(progress.labels, results, secret)
            except asyncio.CancelledError:
                progress.handle.update({"text/plain": "Cancelled."}, raw=True)
                raise
            except Exception as exc:
                # Nobody awaits this job, so an unexpected failure must show in its display.
                result, error = None, f"{type(exc).__name__}: {_one_line(exc, secret)}"
            if result is not None and output:
                user_ns[output] = result
            bundle: dict[str, str] = {}
            if result is not None:
                bundle = _final_grid(result, progress)._repr_mimebundle_()
            if error:
                line = f"UsageError: {error}"
                bundle["text/plain"] = "\n".join(filter(None, [bundle.get("text/plain"), line]))
                bundle["text/html"] = (
                    bundle.get("text/html", "") + f"<pre>{html.escape(line)}</pre>"
                )
            progress.handle.update(bundle, raw=True)

        future = asyncio.run_coroutine_threadsafe(job(), background_loop())
        self._jobs.add(future)
        future.add_done_callback(self._jobs.discard)


class _Progress:
    """The live view of a run: a status line over grids that grow as images arrive.

    `add` is called on the client's event-loop thread; it only appends to the grids and
    sends a display update, which the kernel's IOPub socket accepts from any thread.
    """

    def __init__(
        self,
        sources: list[_Source],
        prepared: list[PreparedImage],
        n: int,
        thumb_size: int,
        columns: int | None,
    ) -> None:
        from .grid import ImageGrid

        self.labels = [source.label for source in sources]
        self.n = n
        self.thumb_size = thumb_size
        self.columns = columns
        self.done = 0
        self.grids = [
            ImageGrid(original=p.image, thumb_size=thumb_size, columns=columns) for p in prepared
        ]
        self.view: ImageGrid | ComparisonGrid = self.grids[0]
        if len(self.grids) > 1:
            self.view = ImageGrid.compare(list(zip(self.labels, self.grids, strict=True)))
        self.handle: DisplayHandle | None = None

    def status(self) -> str:
        each = " each" if len(self.labels) > 1 else ""
        noun = "variation" if self.n == 1 else "variations"
        total = self.n * len(self.labels)
        return f"Generating {self.n} {noun}{each} of {', '.join(self.labels)}… {self.done}/{total}"

    def bundle(self) -> dict[str, str]:
        status = self.status()
        return {
            "text/plain": status,
            "text/html": f'<div style="font-size:13px">{html.escape(status)}</div>'
            + self.view.to_html(),
        }

    def show(self) -> None:
        if self.handle is not None:
            self.handle.update(self.bundle(), raw=True)

    def add(self, row: int, index: int, data: ImageData) -> None:
        self.grids[row].append(data.image, f"#{index + 1}")
        self.done += 1
        self.show()


def _parse_line(magic: Any, line: str) -> Any:
    """Parse the magic line like a shell would, so `--prompt 'a b'` loses its quotes.

    IPython's `parse_argstring` splits in non-POSIX mode, which keeps quote characters.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the magic line: {exc} (check the quotes).") from None
    return magic.parser.parse_args(words)


async def _prepare_all(
    client: AsyncVariationClient, sources: list[_Source], request: VariationRequest
) -> list[PreparedImage]:
    """Every source loaded and prepared for the client's backend, concurrently."""

    async def prepare(source: _Source) -> PreparedImage:
        try:
            return await client.prepare(source.value, request)
        except InvalidImageError as exc:
            # Name the line, and its text unless the message already names the file.
            where = f"line {source.lineno}"
            if source.label not in str(exc):
                where += f" {source.text}"
            raise InvalidImageError(f"{where}: {exc}") from None

    return list(await asyncio.gather(*(prepare(source) for source in sources)))


async def _generate(
    client: AsyncVariationClient,
    prepared: list[PreparedImage],
    request: VariationRequest,
    on_image: Callable[[int, int, ImageData], None],
) -> list[ImagesResponse | BaseException]:
    """All sources at once; each outcome is its response or the error that ended it."""
    options = dataclasses.asdict(request)
    async with client:
        return await asyncio.gather(
            *(
                client.create_variation(image, **options, on_image=partial(on_image, row))
                for row, image in enumerate(prepared)
            ),
            return_exceptions=True,
        )


def _collect(
    labels: list[str], results: list[ImagesResponse | BaseException], secret: str | None
) -> tuple[Any, str | None]:
    """The result to show and store (a response, or {label: response}), and a one-line
    error for the first source that failed; images that did arrive are kept."""
    responses: dict[str, ImagesResponse] = {}
    error = None
    for label, outcome in zip(labels, results, strict=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, Exception):
            if not isinstance(outcome, IpyImagesError):
                raise outcome
            partial_response = getattr(outcome, "partial", None)
            if partial_response is not None and partial_response.data:
                responses[label] = partial_response
            if error is None:
                prefix = f"{label}: " if len(labels) > 1 else ""
                error = prefix + _one_line(outcome, secret)
        else:
            responses[label] = outcome
    if not responses:
        return None, error
    if len(labels) == 1:
        return next(iter(responses.values())), error
    return responses, error


def _final_grid(result: Any, progress: _Progress) -> ImageGrid | ComparisonGrid:
    from .grid import ImageGrid

    if isinstance(result, dict):
        return ImageGrid.compare(list(result.items()), thumb_size=progress.thumb_size)
    return ImageGrid.from_response(result, thumb_size=progress.thumb_size, columns=progress.columns)


@contextlib.contextmanager
def _usage_errors(secret: str | None) -> Iterator[None]:
    """Our errors as one-line UsageErrors, which IPython shows without a traceback."""
    try:
        yield
    except IpyImagesError as exc:
        raise UsageError(_one_line(exc, secret)) from None


def _one_line(exc: BaseException, secret: str | None) -> str:
    # Defence in depth: no message may carry the key, whatever a server echoes back.
    return redact(_flat(exc), secret)


def _flat(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _name_of(text: str) -> str:
    """A row label: the file name of a path or URL."""
    if text.startswith(("http://", "https://")):
        return PurePosixPath(unquote(urlsplit(text).path)).name or text
    return PurePosixPath(text.replace("\\", "/")).name or text


def _unique(labels: list[str]) -> list[str]:
    """Labels made distinct with " (2)", " (3)"... so they can key the result dict."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the magics; `%config VariationMagics` lists their settings."""
    ipython.register_magics(VariationMagics(shell=ipython))


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Remove the magics and cancel their background runs."""
    magics = ipython.magics_manager.registry.pop(VariationMagics.__name__, None)
    if not isinstance(magics, VariationMagics):
        return
    for job in list(magics._jobs):
        job.cancel()
    for kind, table in magics.magics.items():
        for name in table:
            ipython.magics_manager.magics[kind].pop(name, None)
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)
