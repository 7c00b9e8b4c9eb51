"""Digests and all-or-nothing publishing of artifacts.

Artifacts are written inside a hidden temp folder in the output folder, then renamed into place:
a rename within one file system is atomic, so a reader never sees half an artifact, and an
interrupted run leaves only the temp folder (removed on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import EdgeMlpError
from .interrupts import checkpoint, track, untrack

TEMP_PREFIX = ".edge-mlp-tmp-"
_temp_owner = ""  # in a conversion worker: "<parent pid>-", so the parent can find what it leaves


def set_temp_owner(pid: int) -> None:
    """Name this process's temp files after `pid` (a worker's parent, which removes them if it has
    to kill the worker)."""
    global _temp_owner
    _temp_owner = f"{pid}-"


def owned_temp_paths(folder: str | Path, pid: int) -> list[Path]:
    """Temp files and folders in `folder` of the workers of process `pid`."""
    return sorted(Path(folder).glob(f"{TEMP_PREFIX}{pid}-*"))


def _temp_prefix() -> str:
    return TEMP_PREFIX + _temp_owner


LOCK_FILE = ".edge-mlp.lock"  # in an output folder: publishers hold it while they publish


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of a folder (e.g. .mlpackage) as its sorted relative paths and contents."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()


def path_size(path: str | Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextmanager
def staging_dir(out_dir: str | Path) -> Iterator[Path]:
    """A temp folder inside `out_dir` (created if needed), removed whatever happens."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(), dir=out))
    except OSError as err:
        raise EdgeMlpError(f"cannot write to output folder {out}: {err.strerror or err}; pass a writable --out") from None
    track(tmp)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        untrack(tmp)


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Refuse, before any work, an output folder that could not be created or written at the end."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise EdgeMlpError(f"{option} {out} is a file, not a folder; pass a folder")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir() or not _can_create_in(existing):
        raise EdgeMlpError(f"cannot write to {option} {out}: {existing} is not a writable folder; pass a writable {option}")
    return out


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be created in `folder`, by trying: permission bits say yes to root on
    /proc or a read-only mount."""
    try:
        with tempfile.NamedTemporaryFile(prefix=TEMP_PREFIX, dir=folder):
            return True
    except OSError:
        return False


def check_output_file(path: str | Path, suffixes: tuple[str, ...], option: str) -> Path:
    """Refuse, before any work, an output file with the wrong suffix or in a folder that does not
    exist or cannot be written: a long run must not fail only when it writes its result."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise EdgeMlpError(f"{option} {out} must end in {_either(suffixes)}")
    if out.is_dir():
        raise EdgeMlpError(f"{option} {out} is a folder; give a file name")
    parent = out.parent
    if not parent.is_dir():
        raise EdgeMlpError(f"{option} {out}: folder {parent} does not exist; create it first")
    if not _can_create_in(parent) or (out.exists() and not os.access(out, os.W_OK)):
        raise EdgeMlpError(f"{option} {out}: cannot write there (permission denied); choose another path")
    return out


def _either(words: tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temp name beside `path` (same suffix, so writers that infer the format from it work) that
    replaces `path` only when the block finishes: a reader never sees a half-written file."""
    final = Path(path)
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(), suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    track(tmp)
    try:
        yield tmp
        checkpoint()
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        untrack(tmp)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


@contextmanager
def folder_lock(folder: str | Path, shared: bool = False) -> Iterator[None]:
    """An advisory lock on an output folder, across processes. Publishers hold it exclusively while
    they replace an artifact, its manifest and labels (one unit); readers that verify an artifact
    against its manifest hold it shared, so they never see one without the other. A folder where
    the lock file does not exist has had no publisher: readers take no lock there (and create
    no file in folders that are not ours)."""
    try:
        flags = os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT
        fd = os.open(Path(folder) / LOCK_FILE, flags, 0o644)
    except OSError:
        if not shared:
            raise EdgeMlpError(f"cannot write to output folder {folder}: pass a writable folder") from None
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def publish(staged: Path, final: Path) -> None:
    """Move a finished file or folder from the staging folder to its final name (call it under
    `folder_lock`: replacing a folder is two steps)."""
    checkpoint()  # never publish after Ctrl-C, even one a library swallowed
    if final.is_dir() and not final.is_symlink():
        # Rename the old folder out of the way first (atomic), then delete it: `final` is never
        # half-deleted.
        old = Path(tempfile.mkdtemp(prefix=_temp_prefix(), dir=final.parent))
        os.replace(final, old / final.name)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(staged, final)
