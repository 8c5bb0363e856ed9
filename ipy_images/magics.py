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
import warnings
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display
from traitlets import Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from . import _current
from ._config import key_from_env
from ._options import BACKENDS, add_arguments, choices, describe_backends, given
from ._sync import background_loop, run_sync
from .errors import InvalidImageError, IpyImagesError, one_line

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ._live import LiveGrid
    from .client import AsyncVariationClient
    from .grid import ComparisonGrid, ImageGrid
    from .models import ImageData, ImagesResponse, VariationRequest
    from .sources import PreparedImage

__all__ = ["VariationMagics", "load_ipython_extension", "unload_ipython_extension"]

# A key-shaped token (OpenAI keys start with "sk-"), not part of a longer word such as "task-".
_KEY_LITERAL = re.compile(r"(?<![\w-])sk-[A-Za-z0-9_-]{8,}")
# argparse accepts unambiguous prefixes, so "--api-key VALUE" would pass as --api-key-env.
_KEY_OPTION = re.compile(r"(?<!\S)--api[-_]key(?![-_]env)", re.IGNORECASE)
_NO_KEYS = (
    "API keys are not accepted on the magic line, because cell sources are saved in the "
    "notebook; set the OPENAI_API_KEY environment variable (or --api-key-env NAME) instead."
)
_BLANK = {"text/plain": ""}
_DEFAULTS = _current.DEFAULTS

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

    shell: InteractiveShell  # type: ignore[assignment]  # always set: made for a shell

    backend = Unicode(
        _DEFAULTS["backend"],
        allow_none=True,
        help="'local', 'variations' or 'edits'; None chooses from the environment "
        "(IPY_IMAGES_BACKEND, else local without a key or base URL).",
    ).tag(config=True)
    n = Int(_DEFAULTS["n"], min=1, help="How many variations of each source.").tag(config=True)
    size = Unicode(
        _DEFAULTS["size"],
        allow_none=True,
        help="Output size such as '256x256'; None is the backend's default.",
    ).tag(config=True)
    model = Unicode(
        _DEFAULTS["model"], allow_none=True, help="Model to ask for; None is the backend's."
    ).tag(config=True)
    base_url = Unicode(
        _DEFAULTS["base_url"],
        allow_none=True,
        help="Server of the HTTP backends, e.g. 'http://127.0.0.1:8000/v1'; "
        "None reads OPENAI_BASE_URL.",
    ).tag(config=True)
    response_format = Unicode(
        _DEFAULTS["response_format"],
        allow_none=True,
        help="'b64_json' or 'url' (URLs are downloaded); None is the backend's default.",
    ).tag(config=True)
    thumb_size = Int(
        _DEFAULTS["thumb_size"], min=1, help="Largest side, in pixels, of the thumbnails shown."
    ).tag(config=True)
    timeout = Float(
        _DEFAULTS["timeout"], min=0.001, help="Seconds allowed for one HTTP attempt."
    ).tag(config=True)
    api_key_env = Unicode(
        _DEFAULTS["api_key_env"],
        help="Name of the environment variable holding the API key (never the key itself).",
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._jobs: set[concurrent.futures.Future[None]] = set()

    @validate("backend", "size", "response_format")
    def _one_of_the_choices(self, proposal: Any) -> Any:
        """Refuse at `%config` time what no backend takes, rather than at the next run."""
        name, value = proposal["trait"].name, proposal["value"]
        allowed = tuple(BACKENDS) if name == "backend" else choices(name)
        if value is not None and value not in allowed:
            listed = ", ".join(map(repr, allowed))
            raise TraitError(
                f"VariationMagics.{name} must be one of {listed} or None, not {value!r}"
            )
        return value

    @cell_magic
    def variation(self, line: str, cell: str) -> None:
        """Make variations of each source in the cell and show them as one grid.

        One source per line: a path, an http(s) URL, or {expression} (a PIL image, numpy
        array, bytes or path from the user namespace); blank lines and # comments are
        ignored. Several sources are requested concurrently and shown one row each.
        """
        if _KEY_LITERAL.search(line) or _KEY_OPTION.search(line) or _KEY_LITERAL.search(cell):
            raise UsageError(_NO_KEYS)
        args = _parse_line(line)
        name = args.var or args.output
        if args.output is not None:
            # Python's way: shown where deprecations are (tests, -W), silent in a notebook.
            warnings.warn("%%variation -o is deprecated; use --var NAME", DeprecationWarning, 2)
        if name is not None and not name.isidentifier():
            flag = "--var" if args.var else "-o"
            raise UsageError(f"{flag} needs a Python variable name, not {name!r}.")
        with _usage_errors(None):
            secret = key_from_env(args.api_key_env or self.api_key_env)
        with _usage_errors(secret):
            client = self._client(args, secret)
            sources = self._read_sources(cell)
            try:
                request = client.build_request(**self._options(args))
                prepared = run_sync(_prepare_all(client, sources, request.fit))
            except BaseException:
                run_sync(client.aclose())
                raise
        from ._live import LiveGrid

        labels = [source.label for source in sources]
        live = LiveGrid(
            ", ".join(labels),
            labels,
            prepared,
            request,
            client.backend,
            thumb_size=self.thumb_size,
            columns=args.columns,
        )
        run = _generate(client, prepared, request, live.add)
        if args.in_background:
            self._start(run, live, name, secret)
        else:
            self._wait(run, live, name, secret)

    def _options(self, args: Any) -> dict[str, Any]:
        """The request options: the magic line's, else the configured defaults."""
        names = ("n", "size", "model", "response_format")
        configured = {name: getattr(self, name) for name in names if getattr(self, name)}
        return {**configured, **given(args)}

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

    def _client(self, args: Any, secret: str | None) -> AsyncVariationClient:
        from .client import AsyncVariationClient

        backend, base_url = args.backend or self.backend, args.base_url or self.base_url
        return AsyncVariationClient(backend, secret, base_url, timeout=self.timeout)

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
                    raise UsageError(f"line {lineno} {text}: {one_line(exc)}") from None
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

    def _wait(self, run: _Run, live: LiveGrid, output: str | None, secret: str | None) -> None:
        """Blocking run: live progress, then a fresh display of the final grid."""
        # The progress display starts and ends blank, so a notebook saved after the updates
        # and a re-run that ignores them (nbval) hold the same output.
        handle = display(_BLANK, raw=True, display_id=True)
        live.on_change = lambda live: handle.update(live.bundle(), raw=True)
        live.changed()
        try:
            results = run_sync(run)
        finally:
            handle.update(_BLANK, raw=True)
        result, error = _collect(live.labels, results, secret)
        if result is not None:
            display(_final_grid(result, live))
            if output:
                self.shell.user_ns[output] = result
        if error:
            raise UsageError(error)

    def _start(self, run: _Run, live: LiveGrid, output: str | None, secret: str | None) -> None:
        """Background run: return now; the display and `output` are filled in when done."""
        handle = display(live.bundle(), raw=True, display_id=True)
        live.on_change = lambda live: handle.update(live.bundle(), raw=True)
        user_ns = self.shell.user_ns

        async def job() -> None:
            try:
                results = await run
                result, error = _collect(live.labels, results, secret)
            except asyncio.CancelledError:
                handle.update({"text/plain": "Cancelled."}, raw=True)
                raise
            except Exception as exc:
                # Nobody awaits this job, so an unexpected failure must show in its display.
                result, error = None, one_line(exc, secret)
            if result is not None and output:
                user_ns[output] = result
            bundle = {} if result is None else _final_grid(result, live)._repr_mimebundle_()
            if error:
                line = f"UsageError: {error}"
                bundle["text/plain"] = "\n".join(filter(None, [bundle.get("text/plain"), line]))
                bundle["text/html"] = f"{bundle.get('text/html', '')}<pre>{html.escape(line)}</pre>"
            handle.update(bundle, raw=True)

        future = asyncio.run_coroutine_threadsafe(job(), background_loop())
        self._jobs.add(future)
        future.add_done_callback(self._jobs.discard)


_DOC = VariationMagics.variation.__doc__


def _parser() -> MagicArgumentParser:
    """The magic's arguments, read from the table of what each backend takes."""
    # IPython writes the usage line as "%" + prog, so this reads "%%variation".
    parser = MagicArgumentParser(prog="%variation", description=_DOC)
    add_arguments(parser)
    parser.add_argument("--backend", help=describe_backends())
    parser.add_argument("--base-url", help="server of the HTTP backends, e.g. http://host:8000/v1")
    parser.add_argument("--columns", type=int, help="thumbnails per row of a single-source grid")
    parser.add_argument("--var", metavar="NAME", help="store the result in this variable")
    parser.add_argument("-o", "--output", metavar="NAME", help="deprecated spelling of --var")
    parser.add_argument(
        "--background",
        action="store_true",
        dest="in_background",
        help="return at once; the display fills in as images arrive, NAME is set when done",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    return parser


def _parse_line(line: str) -> Any:
    """Parse the magic line like a shell would, so `--prompt 'a b'` loses its quotes.

    IPython's `parse_argstring` splits in non-POSIX mode, which keeps quote characters.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the magic line: {exc} (check the quotes).") from None
    return _parser().parse_args(words)


async def _prepare_all(
    client: AsyncVariationClient, sources: list[_Source], fit: str
) -> list[PreparedImage]:
    """Every source loaded and prepared for the client's backend, concurrently."""

    async def prepare(source: _Source) -> PreparedImage:
        try:
            return await client.prepare(source.value, fit=fit)
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
    async with client:
        return await asyncio.gather(
            *(
                client.generate(image, request, on_image=partial(on_image, row))
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
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, IpyImagesError):
                raise outcome
            partial_response = getattr(outcome, "partial", None)
            if partial_response is not None and partial_response.data:
                responses[label] = partial_response
            if error is None:
                prefix = f"{label}: " if len(labels) > 1 else ""
                error = prefix + one_line(outcome, secret)
        else:
            responses[label] = outcome
    if not responses:
        return None, error
    if len(labels) == 1:
        return next(iter(responses.values())), error
    return responses, error


def _final_grid(result: Any, live: LiveGrid) -> ImageGrid | ComparisonGrid:
    from .grid import ImageGrid

    if isinstance(result, dict):
        return ImageGrid.compare(list(result.items()), thumb_size=live.thumb_size)
    return result.to_grid(thumb_size=live.thumb_size, columns=live.columns)


@contextlib.contextmanager
def _usage_errors(secret: str | None) -> Iterator[None]:
    """Our errors as one-line UsageErrors, which IPython shows without a traceback."""
    try:
        yield
    except IpyImagesError as exc:
        raise UsageError(one_line(exc, secret)) from None


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
    # The help is written now, from the table as it stands (backends may have been added).
    VariationMagics.variation.__doc__ = _parser().format_help()
    _current.magics = VariationMagics(shell=ipython)
    ipython.register_magics(_current.magics)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Remove the magics and cancel their background runs."""
    manager: Any = ipython.magics_manager
    magics = manager.registry.pop(VariationMagics.__name__, None)
    if not isinstance(magics, VariationMagics):
        return
    for job in list(magics._jobs):
        job.cancel()
    table: Any = magics.magics
    for kind, names in table.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)
    if _current.magics is magics:
        _current.magics = None
