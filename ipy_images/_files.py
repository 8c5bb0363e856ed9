"""Writing result files safely: fresh names, never a half-written file, never a replaced one.

Everything is written under a temporary name first and renamed into place once complete,
so a full disk or an interrupt leaves nothing behind. A name is claimed by creating it
exclusively (`mkdir`, or `open` in "x" mode), which fails if anything already has it, so
writers running at once each get their own name and nothing that appeared meanwhile is
ever replaced.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from pathlib import Path

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_CLAIMS = 1000
"""Names tried before giving up: each failed claim means another writer just took one."""
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY)


def write_run(parent: Path, files: dict[str, bytes]) -> Path:
    """Write `files` into a new `run-NNN` folder inside `parent`, all or nothing.

    The files go to a hidden temporary folder beside the run folders, which is renamed
    to the next free `run-NNN` name only once every file is written; names are plain file
    names, never paths. Returns the run folder.
    """
    for name in files:
        if not SAFE_NAME.match(name):
            raise ValueError(f"refusing to write {name!r}: not a plain file name")
    parent.mkdir(parents=True, exist_ok=True)
    staging = _temporary_name(parent, "run")
    staging.mkdir()
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        for _ in range(_MAX_CLAIMS):
            target = _next_run_name(parent)
            if _move_into_place(staging, target):
                return target
        raise FileExistsError(f"no free run folder in {parent}: other writers took every name")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_new_file(folder: Path, stem: str, suffix: str, content: bytes) -> Path:
    """Write `content` as `stem+suffix`, or `stem-2+suffix`... if taken; returns the path.

    The bytes go to a temporary file first, so a failed write (a full disk) leaves only
    that, which is removed; the final name appears complete or not at all.
    """
    temporary = _temporary_name(folder, stem)
    try:
        with temporary.open("xb") as stream:
            stream.write(content)
        for attempt in range(1, _MAX_CLAIMS + 1):
            path = folder / (f"{stem}{suffix}" if attempt == 1 else f"{stem}-{attempt}{suffix}")
            try:
                path.open("xb").close()  # claims the name; fails if anything has it
            except FileExistsError:
                continue
            try:
                os.replace(temporary, path)  # replaces only the empty file claimed just now
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            return path
        raise FileExistsError(f"no free file name for {stem!r} in {folder}")
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _temporary_name(folder: Path, stem: str) -> Path:
    """A hidden name in `folder` for work in progress; unlike `tempfile`'s, files made
    under it get the usual permissions, not owner-only ones."""
    return folder / f".{stem}-{secrets.token_hex(6)}.partial"


def _next_run_name(parent: Path) -> Path:
    """The first `run-NNN` name inside `parent` that nothing has yet."""
    taken = {p.name for p in parent.iterdir()}
    number = 1
    while f"run-{number:03d}" in taken:
        number += 1
    return parent / f"run-{number:03d}"


def _move_into_place(staging: Path, target: Path) -> bool:
    """Rename `staging` to the free name `target`; False if another writer took it."""
    try:
        target.mkdir()  # the claim: fails if anything has the name, so nothing is replaced
    except FileExistsError:
        return False
    if os.name == "nt":
        target.rmdir()  # Windows renames only onto a free name, and refuses a taken one
    try:
        # On POSIX this replaces the empty folder claimed just now, atomically.
        os.rename(staging, target)
    except OSError as exc:
        if exc.errno in _TAKEN:  # something was put in the claimed folder meanwhile
            return False
        raise
    return True
