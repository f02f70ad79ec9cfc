"""Files on disk, the ground floor every package stands on: atomic writes and the project's cache.

Atomic: everything is written under a temporary name in the destination's own directory (same
filesystem, so `os.replace` is an atomic rename) and renamed into place only when complete, so a
reader (or a crash) never sees a half-written file or directory.

Cache: the converted bundled model and the generated text-to-SQL benchmark are built once and kept
under one root, so that every module agrees on one place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

CACHE_ENV = "QLORA_ENGINE_CACHE"


def cache_root() -> Path:
    """`$QLORA_ENGINE_CACHE`, else `~/.cache/qlora-engine`. Created on first use."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "qlora-engine")
    root.mkdir(parents=True, exist_ok=True)
    return root


def user_mode(mode: int) -> int:
    """`mode` as the user's umask leaves it: what open() and mkdir() would have given the file."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def check_output_path(path: Path, *, flag: str = "--out", is_file: bool = False) -> None:
    """`path` (a directory, or a file with `is_file`) can be created and written by this user: one line
    naming the obstacle otherwise, checked before any work starts rather than after it."""
    path = Path(path)
    if is_file and path.is_dir():
        raise ValueError(f"{flag} {path} is a directory: name the file to write")
    existing = next(p for p in ((() if is_file else (path,)) + tuple(path.absolute().parents)) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a directory" if existing == path else
                         f"{flag} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: {existing} is not writable by this user")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, user_mode(0o666))  # mkstemp makes it private (0600); the result is an ordinary file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path` in one rename.

    If `path` already exists it is moved aside first and deleted after the swap, so at every
    instant `path` is either the old complete directory or the new complete one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, user_mode(0o777))  # mkdtemp makes it private; the result is an ordinary directory
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
