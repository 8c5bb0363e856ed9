"""What each backend accepts, declared once.

`BACKENDS` maps each backend's name to the request options it takes, each with its
choices (None: any value of the option's type) and its default (None: the server's or the
model's own). Validation, the form's dropdowns, the magic's and the command's arguments,
the server's contract checks and the help texts all read this table, so a new size, option
or backend is a change here only.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, NamedTuple, get_args

from ._types import (
    Background,
    Fit,
    InputFidelity,
    LocalModel,
    OutputFormat,
    Quality,
    ResponseFormat,
    SquareSize,
    WideSize,
)

SQUARE: tuple[str, ...] = get_args(SquareSize)
WIDE: tuple[str, ...] = get_args(WideSize)
FITS: tuple[str, ...] = get_args(Fit)


class Accepts(NamedTuple):
    """One option of one backend: its choices (None: any value) and its default.

    `official` is the official contract's default where ours differs: the server and the
    command, which mirror the official API and CLI, use it.
    """

    choices: tuple[Any, ...] | None = None
    default: Any = None
    official: Any = None


@dataclass(frozen=True)
class BackendSpec:
    """A backend: what it is (for help texts), where its class is, what it accepts, and
    whether it talks to a server (then it takes a base URL and a key)."""

    summary: str
    load: str  # "module:Class", imported on first use; relative to ipy_images.backends
    options: dict[str, Accepts]
    remote: bool = True

    def choices(self, option: str) -> tuple[Any, ...] | None:
        return self.options[option].choices if option in self.options else None

    def default(self, option: str, *, official: bool = False) -> Any:
        accepts = self.options.get(option, Accepts())
        return (official and accepts.official) or accepts.default


COMMON = {"n": Accepts(None, 1), "user": Accepts(), "fit": Accepts(FITS, FITS[0])}
_INLINE = Accepts(("b64_json",), "b64_json")

BACKENDS: dict[str, BackendSpec] = {
    "local": BackendSpec(
        "the embedded engine: this machine, no key; inline images, small by default for speed",
        ".local:LocalBackend",
        {
            **COMMON,
            "size": Accepts(SQUARE, SQUARE[0]),
            "response_format": _INLINE,
            "model": Accepts(get_args(LocalModel)),
            "seed": Accepts(),
            "diversity": Accepts(None, 1.0),
        },
        remote=False,
    ),
    "variations": BackendSpec(
        "the legacy POST /images/variations contract, spoken by any compatible server",
        ".http_variations:VariationsBackend",
        {
            **COMMON,
            "size": Accepts(SQUARE, SQUARE[-1]),
            "response_format": Accepts(get_args(ResponseFormat), "b64_json", "url"),
            "model": Accepts(),
        },
    ),
    "edits": BackendSpec(
        "POST /images/edits with a GPT image model and a prompt: OpenAI today",
        ".http_edits:EditsBackend",
        {
            **COMMON,
            "size": Accepts((SQUARE[-1], *WIDE), WIDE[-1]),
            "response_format": _INLINE,
            "model": Accepts(None, "gpt-image-2"),
            "prompt": Accepts(),
            "quality": Accepts(get_args(Quality)),
            "background": Accepts(get_args(Background)),
            "output_format": Accepts(get_args(OutputFormat)),
            "output_compression": Accepts(),
            "input_fidelity": Accepts(get_args(InputFidelity)),
        },
    ),
}


class Option(NamedTuple):
    """How a request option is spelled on a command line, and what it means."""

    flags: tuple[str, ...]
    help: str
    type: type = str


OPTIONS: dict[str, Option] = {
    "n": Option(
        ("-n", "--n", "--num-images"),
        "how many; above 10 in concurrent batches (our extension)",
        int,
    ),
    "size": Option(("-s", "--size"), "the size of each image"),
    "response_format": Option(("--response-format",), "how images return (url: fetched at once)"),
    "model": Option(("-m", "--model"), "the model"),
    "user": Option(("--user",), "an end-user id passed to the server"),
    "fit": Option(("--fit",), "how a non-square picture becomes square"),
    "seed": Option(("--seed",), "makes the engine reproducible", int),
    "diversity": Option(("--diversity",), "higher differs more from the source", float),
    "prompt": Option(("--prompt",), "what to keep or change"),
    "quality": Option(("--quality",), "rendering quality"),
    "background": Option(("--image-background",), "the background of the result"),
    "output_format": Option(("--output-format",), "the image format of the result"),
    "output_compression": Option(("--output-compression",), "0-100, webp and jpeg only", int),
    "input_fidelity": Option(("--input-fidelity",), "how closely to follow the source"),
}


def choices(option: str, backend: str | None = None) -> tuple[Any, ...]:
    """The values `backend` takes for `option`; every backend's when `backend` is None."""
    specs = [BACKENDS[backend]] if backend else list(BACKENDS.values())
    return tuple(dict.fromkeys(c for spec in specs for c in spec.choices(option) or ()))


def describe(option: str, *, official: bool = False) -> str:
    """The help of `option`: what it does, then which backends take it, with their choices
    and defaults (backends that agree are listed together)."""
    groups: dict[str, list[str]] = {}
    for name, spec in BACKENDS.items():
        if option in spec.options:
            listed, default = spec.choices(option), spec.default(option, official=official)
            values = [f"{c} (default)" if c == default else str(c) for c in listed or ()]
            if not listed:
                values = ["any" if default is None else f"default {default}"]
            groups.setdefault(", ".join(values), []).append(name)
    if len(groups) == 1 and sum(map(len, groups.values())) == len(BACKENDS):
        return f"{OPTIONS[option].help}: {next(iter(groups))}"
    by_backend = "; ".join(f"{', '.join(names)}: {values}" for values, names in groups.items())
    return f"{OPTIONS[option].help}. {by_backend}"


def describe_backends() -> str:
    """The help of the backend choice: each backend's name and what it is."""
    listed = "; ".join(f"{name}: {spec.summary}" for name, spec in BACKENDS.items())
    return f"where variations are made (default: chosen from the environment). {listed}"


def add_arguments(parser: argparse.ArgumentParser, *, official: bool = False) -> None:
    """Every request option as a flag whose help lists each backend's choices."""
    for name, option in OPTIONS.items():
        help = describe(name, official=official)
        parser.add_argument(*option.flags, dest=name, type=option.type, help=help)


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The request options set on a parsed command line."""
    return {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
