"""Digests and all-or-nothing publishing of artifacts.

Artifacts are written inside a hidden temp folder in the output folder, then renamed into place:
a rename within one file system is atomic, so a reader never sees half an artifact, and an
interrupted run leaves only the temp folder (removed on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import EdgeMlpError
from .interrupts import checkpoint

TEMP_PREFIX = ".edge-mlp-tmp-"


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
        tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out))
    except OSError as err:
        raise EdgeMlpError(f"cannot write to output folder {out}: {err.strerror or err}; pass a writable --out") from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(staged: Path, final: Path) -> None:
    """Move a finished file or folder from the staging folder to its final name."""
    checkpoint()  # never publish after Ctrl-C, even one a library swallowed
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(staged, final)
