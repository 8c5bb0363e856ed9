"""The `ipy-images` command: `create-variation`, `serve` and `demo`.

`create-variation` takes the flags of `openai images create-variation` (so what people
already type works) plus our own, and prints the `ImagesResponse` JSON on stdout, or with
`--output-dir` the paths of the files it saved (the JSON's base64 runs to 100s of KB). Errors
are one line on stderr: exit status 2 for usage errors (bad flags, unreadable image,
options a backend refuses), 1 for API errors, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ._options import BACKENDS, add_arguments, choices, describe_backends, given
from ._progress import Progress
from .errors import APIError, InvalidImageError, InvalidParameterError, one_line

if TYPE_CHECKING:
    from .models import ImagesResponse

__all__ = ["main"]

PROG = "ipy-images"
SERVER_KEY_ENV = "IPY_IMAGES_SERVER_API_KEY"
DEMO_SAMPLES = ("coffee", "astronaut")
DEMO_THUMB_SIZE = 200  # px: an original and four variations fit a 1,100 px window, then wrap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)  # usage errors exit with status 2 here
    if args.command is None:
        parser.error("choose a command: create-variation, serve or demo")
    if unknown:  # said by the command's own parser, so the hint names its --help
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.run(args))
    except (InvalidImageError, InvalidParameterError) as exc:
        return _fail(exc, 2)
    except (APIError, OSError) as exc:
        return _fail(exc, 1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _fail(error: BaseException, status: int) -> int:
    print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
    return status


def _warn(text: str) -> None:
    print(f"{PROG}: warning: {text}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit status 2), pointing to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Image variations: one picture in, new pictures that keep its subject "
        "and style out. Offline by default (the local engine needs no API key).",
        epilog=f"Start with '{PROG} demo'. Run '{PROG} COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    _add_create_variation(commands)
    _add_serve(commands)
    _add_demo(commands)
    return parser


def _add_create_variation(commands: Any) -> None:
    server, local = BACKENDS["variations"], BACKENDS["local"]
    sub = commands.add_parser(
        "create-variation",
        help="make variations of one image and print the ImagesResponse JSON",
        description="Make variations of one image and print the ImagesResponse JSON on "
        "stdout, or the saved files' paths with --output-dir. Takes the flags of "
        "'openai images create-variation', with the official defaults against a server "
        f"(--base-url): --size {server.default('size')}, --response-format "
        f"{server.default('response_format', official=True)}. The local backend (this "
        f"machine, no key) returns images inline ({local.default('size')}, "
        f"{local.default('response_format')}) by default, for speed. Our extensions: --n "
        "above 10 (fanned out into concurrent requests), the local and edits backends and "
        "their options. "
        "The backend is --backend, else IPY_IMAGES_BACKEND, else 'local' unless "
        "OPENAI_BASE_URL or OPENAI_API_KEY is set.",
        epilog=f"example: {PROG} create-variation --image cat.png --n 2 --size 256x256 "
        "--output-dir out/",
    )
    sub.add_argument("-I", "--image", required=True, help="the image: a path or http(s) URL")
    add_arguments(sub, official=True)
    sub.add_argument("--backend", choices=tuple(BACKENDS), help=describe_backends())
    sub.add_argument(
        "--base-url", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    )
    sub.add_argument(
        "--api-key",
        help="API key; prefer the OPENAI_API_KEY environment variable (keys typed on the "
        "command line stay in your shell history)",
    )
    sub.add_argument(
        "--api-key-env", metavar="NAME", help="environment variable holding the API key"
    )
    sub.add_argument(
        "-o",
        "--output-dir",
        help="write the PNGs and metadata.json into a new run folder and print their paths "
        "instead of the JSON",
    )
    sub.add_argument(
        "--print-json",
        action="store_true",
        help="with --output-dir, print the full JSON (base64 included) instead of the paths",
    )
    sub.set_defaults(run=_create_variation, parser=sub)


def _add_serve(commands: Any) -> None:
    sub = commands.add_parser(
        "serve",
        help="run an OpenAI-compatible images server over the local engine",
        description="Serve POST /v1/images/variations (the legacy OpenAI contract) from the "
        "local engine, so any OpenAI client, in any language, gets variations from this "
        "machine: point it at the printed base URL (OPENAI_BASE_URL). Stop with Ctrl-C.",
    )
    sub.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 "
        "for the whole network, then also set an API key)",
    )
    sub.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    sub.add_argument(
        "--api-key",
        default=os.environ.get(SERVER_KEY_ENV) or None,
        help=f"require 'Authorization: Bearer KEY' from clients (default: ${SERVER_KEY_ENV}; "
        "the environment variable keeps it out of your shell history)",
    )
    sub.add_argument(
        "--workers",
        type=_positive,
        default=2,
        help="generations running at once (default 2; one process, sharing the cores)",
    )
    sub.add_argument(
        "--queue",
        type=_non_negative,
        default=8,
        help="requests that may wait for a worker; beyond them clients get 429 (default 8)",
    )
    sub.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="server log detail (default info: one line per request, never headers)",
    )
    sub.set_defaults(run=_serve, parser=sub)


def _add_demo(commands: Any) -> None:
    sub = commands.add_parser(
        "demo",
        help="vary the bundled sample photos offline and write a page showing them",
        description="Make variations of the bundled sample photos (coffee, astronaut) with "
        "the local engine, offline and with no API key; write them as PNGs plus an "
        "index.html page that shows each original beside its variations.",
    )
    sub.add_argument(
        "-o",
        "--output-dir",
        default="ipy-images-demo",
        help="where to write (default ./ipy-images-demo)",
    )
    sub.add_argument("-n", "--n", type=_positive, default=4, help="variations per photo (4)")
    sub.add_argument(
        "-s",
        "--size",
        default=BACKENDS["local"].default("size"),
        choices=choices("size", "local"),
        help="size of each variation (default: the smallest, the fastest)",
    )
    sub.add_argument("--seed", type=int, default=7, help="same seed, same pictures (default 7)")
    sub.set_defaults(run=_demo, parser=sub)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _create_variation(args: argparse.Namespace) -> int:
    from ._config import key_from_env
    from .client import VariationClient

    if args.api_key:
        _warn("a key on the command line stays in your shell history; prefer OPENAI_API_KEY.")
    key = args.api_key or key_from_env(args.api_key_env)
    if args.output_dir:  # a path that cannot be a folder fails before any image is made
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    with VariationClient(args.backend, key, args.base_url) as client:
        # The official contract's defaults, where ours differ (url results from a server).
        spec = BACKENDS[client.backend]
        options = {name: spec.default(name, official=True) for name in spec.options}
        options = {k: v for k, v in options.items() if v is not None} | given(args)
        # a bar on a terminal only: a script's stderr stays for errors
        with Progress(options["n"], prefix=PROG, lines=False) as progress:
            response = client.create_variation(args.image, **options, on_image=progress.on_image())
    if not args.output_dir or args.print_json:
        print(json.dumps(response.to_dict(), indent=2))
    if args.output_dir:
        folder = response.save(args.output_dir)
        files = sorted(folder.iterdir())
        if not args.print_json:  # one path a line, for the next command to read
            print("\n".join(map(str, files)))
        print(f"{PROG}: wrote {len(files)} files to {folder}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .server import serve

    if args.api_key and os.environ.get(SERVER_KEY_ENV) != args.api_key:
        _warn(f"a key on the command line stays in your shell history; prefer ${SERVER_KEY_ENV}.")
    try:
        serve(
            args.host,
            args.port,
            args.api_key,
            max_concurrent=args.workers,
            max_queue=args.queue,
            log_level=args.log_level,
        )
    except KeyboardInterrupt:  # Ctrl-C is the normal way to stop a server
        print(f"{PROG}: server stopped", file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from . import sample_image
    from ._sync import run_sync
    from .client import AsyncVariationClient

    started = time.perf_counter()

    async def run(progress: Progress) -> list[ImagesResponse]:
        async with AsyncVariationClient(backend="local") as client:
            runs = [
                client.create_variation(
                    sample_image(name),
                    n=args.n,
                    size=args.size,
                    seed=args.seed,
                    on_image=progress.on_image(name),
                )
                for name in DEMO_SAMPLES
            ]
            return list(await asyncio.gather(*runs))

    total = args.n * len(DEMO_SAMPLES)
    with Progress(total, prefix=f"{PROG} demo", lines=True) as progress:
        responses = run_sync(run(progress))
    out = Path(args.output_dir)
    folders = [r.save(out / name) for name, r in zip(DEMO_SAMPLES, responses, strict=True)]
    page = out / "index.html"
    # one wrapping grid per photo, so the page fits any window (no fixed-width rows)
    sections = [
        f'<h2 style="font-size:16px;margin:20px 0 6px">{name}</h2>\n'
        f"{response.to_grid(thumb_size=DEMO_THUMB_SIZE).to_html()}"
        for name, response in zip(DEMO_SAMPLES, responses, strict=True)
    ]
    _write_atomically(page, _html_page("\n".join(sections), args))
    seconds = time.perf_counter() - started
    print(
        f"{PROG} demo: {len(DEMO_SAMPLES)} photos x {args.n} variations "
        f"({args.size}, seed {args.seed}) in {seconds:.1f} s, on this machine"
    )
    for name, folder in zip(DEMO_SAMPLES, folders, strict=True):
        print(f"  {name:<10} {folder}")
    print(f"  open {page} in a browser to see each original beside its variations")
    return 0


def _html_page(body: str, args: argparse.Namespace) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>ipy-images demo</title></head>\n"
        '<body style="font-family:system-ui,sans-serif;margin:24px">\n'
        '<h1 style="font-size:20px">ipy-images demo</h1>\n'
        f"<p>{args.n} variations of each sample photo, {args.size}, seed {args.seed}, "
        "made offline by the local engine. The original is outlined; the full-size PNGs "
        "are in the folders beside this page.</p>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


if __name__ == "__main__":
    sys.exit(main())
