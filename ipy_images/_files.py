"""Writing result files safely: fresh run folders, never a half-written file."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def new_run_directory(parent: Path) -> Path:
    """The next free `run-NNN` folder name inside `parent` (not created yet)."""
    parent.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in parent.iterdir()}
    number = 1
    while f"run-{number:03d}" in taken:
        number += 1
    return parent / f"run-{number:03d}"


def write_run(target: Path, files: dict[str, bytes]) -> Path:
    """Write `files` into the new folder `target`, all or nothing.

    The files go to a hidden temporary folder beside `target`, which is renamed into
    place only once every file is written; names are plain file names, never paths.
    """
    for name in files:
        if not SAFE_NAME.match(name):
            raise ValueError(f"refusing to write {name!r}: not a plain file name")
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        os.rename(staging, target)  # fails if target appeared meanwhile: nothing is replaced
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
