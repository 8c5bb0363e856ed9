"""The package's spine: one table of options read by every front end, a typed public
surface (mypy and ruff clean), and no import cycle."""

from __future__ import annotations

import ast
import contextlib
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import ipy_images as ii
from ipy_images._options import BACKENDS, COMMON, Accepts, BackendSpec
from ipy_images.backends.local import LocalBackend
from ipy_images.models import ImageData, ImagesResponse, VariationRequest
from ipy_images.sources import PreparedImage

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ipy_images"
FAKE_SIZES = ("96x96", "160x160")


class FakeBackend(LocalBackend):
    """A backend made of flat grey squares of the asked size; the table entry "fake"
    governs what it takes."""

    name = "fake"

    async def create(
        self, image: PreparedImage, request: VariationRequest, n: int, **_: Any
    ) -> ImagesResponse:
        side = int(str(request.size).partition("x")[0])
        buffer = io.BytesIO()
        Image.new("RGB", (side, side), "grey").save(buffer, format="PNG")
        data = [ImageData(content=buffer.getvalue()) for _ in range(n)]
        return ImagesResponse(created=0, data=data, backend=self.name, request=request)


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    spec = BackendSpec(
        "a backend added by a test",
        f"{__name__}:FakeBackend",
        {
            **COMMON,
            "size": Accepts(FAKE_SIZES, FAKE_SIZES[0]),
            "response_format": Accepts(("b64_json",), "b64_json"),
            "seed": Accepts(),
        },
        remote=False,
    )
    monkeypatch.setitem(BACKENDS, "fake", spec)
    for name in ("IPY_IMAGES_BACKEND", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    yield "fake"


def test_a_new_backend_is_offered_by_every_front_end(fake_backend: str) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from ipy_images.cli import main

    form = ii.VariationForm(backend=fake_backend)
    assert fake_backend in form.backend.options
    assert [value for _, value in form.size.options] == ["", *FAKE_SIZES]
    assert form.prompt.disabled and form.quality.disabled and not form.seed.disabled

    # Other test modules may share the process's shell with the extension loaded: load it
    # afresh (the help is written at load time) and leave the shell as it was found.
    made_here = not InteractiveShell.initialized()
    shell = InteractiveShell.instance()
    extensions = shell.extension_manager
    was_loaded = "ipy_images" in extensions.loaded
    try:
        if was_loaded:
            extensions.unload_extension("ipy_images")
        extensions.load_extension("ipy_images")
        doc = " ".join(shell.find_cell_magic("variation").__doc__.split())
    finally:
        if not was_loaded:
            extensions.unload_extension("ipy_images")
        if made_here:
            InteractiveShell.clear_instance()
    assert f"fake: {FAKE_SIZES[0]} (default), {FAKE_SIZES[1]}" in doc
    assert "a backend added by a test" in doc

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["create-variation", "--help"])
    help_text = " ".join(out.getvalue().split())
    assert f"fake: {FAKE_SIZES[0]} (default), {FAKE_SIZES[1]}" in help_text


def test_a_new_backend_is_validated_and_run_from_its_table_entry(fake_backend: str) -> None:
    picture = Image.new("RGB", (64, 64), (30, 120, 200))
    with pytest.raises(ii.InvalidParameterError, match="'96x96', '160x160'") as refused:
        ii.create_variation(picture, backend=fake_backend, size="256x256")
    assert refused.value.param == "size"
    with pytest.raises(ii.InvalidParameterError, match="does not take quality"):
        ii.create_variation(picture, backend=fake_backend, quality="low")
    response = ii.create_variation(picture, backend=fake_backend, seed=1)
    assert response.backend == "fake" and response.images[0].size == (96, 96)


def test_each_size_is_defined_once_in_the_package() -> None:
    """As a value in code, that is; examples in docstrings and help texts do not count."""
    for size in ("256x256", "512x512", "1024x1024", "1536x1024", "1024x1536"):
        found = [
            f"{path.relative_to(ROOT)}:{node.lineno}"
            for path in sorted(PACKAGE.rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and node.value == size
        ]
        assert found == [f"ipy_images/_types.py:{found[0].rpartition(':')[2]}"], found


def test_mypy_and_ruff_pass() -> None:
    for command in (["mypy"], ["ruff", "check", "ipy_images", "tests"]):
        done = subprocess.run(
            [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _imports(path: Path, module: str) -> Iterator[str]:
    """The package modules `module` imports, at the top or inside functions, leaving out
    imports made only for type checking."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def walk(node: ast.AST) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (name for n in child.orelse for name in walk(n))
                continue
            if isinstance(child, ast.ImportFrom):
                base = package.rsplit(".", child.level - 1)[0] if child.level else ""
                target = ".".join(filter(None, [base, child.module]))
                for alias in child.names:
                    yield f"{target}.{alias.name}"  # a submodule, or a name in `target`
                    yield target
            elif isinstance(child, ast.Import):
                yield from (alias.name for alias in child.names)
            yield from walk(child)

    yield from walk(ast.parse(path.read_text()))


def test_no_import_cycle_in_the_package() -> None:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {
        name: sorted({m for m in _imports(path, name) if m in modules and m != name})
        for name, path in modules.items()
    }
    # Importing a module runs its package's __init__ first: that is no edge of ours.
    for name in graph:
        graph[name] = [m for m in graph[name] if not name.startswith(f"{m}.")]

    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        for target in graph[name]:
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    assert "ipy_images.magics" not in graph["ipy_images.widget"]
    assert "ipy_images.models" not in graph["ipy_images.grid"]
