"""Ctrl-C / SIGTERM that end the CLI within seconds, with 130 / 143, whatever a dependency does.

Two ways a signal can fail to stop a Python program: a dependency swallows the KeyboardInterrupt
in a bare `except:` (coremltools 9.0 imports scikit-learn that way; ExecuTorch's lowering ran on
for a minute after Ctrl-C), or the main thread is inside a long call that never returns to the
interpreter. So the handler (1) remembers the signal, which `checkpoint()` at every stage boundary
and before publishing raises again, (2) raises KeyboardInterrupt, which unwinds through the staging
folders, and (3) starts a watchdog: if the process is still alive after GRACE_S, it removes the
temp files and folders registered here and exits with 128 + the signal number, from its own thread.

Temp paths register themselves (`track`) for as long as they exist, so an exit from the watchdog
leaves nothing half-written either; published files are renamed into place, never written there.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

GRACE_S = 3.0  # the bound is 5 s from the signal to the exit

_received: int | None = None
_stderr_fd = 2  # a duplicate of the stderr at install(), for the watchdog
_generation = 0  # bumped by reset(): a watchdog of an earlier signal then stands down
_temp_paths: set[Path] = set()
_lock = threading.Lock()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _received
    first = _received is None
    _received = signum
    if first:
        threading.Thread(target=_exit_after_grace, args=(_generation,), name="edge-mlp-interrupt",
                         daemon=True).start()
    raise KeyboardInterrupt  # unwinds through the staging folders, which clean themselves up


def _exit_after_grace(generation: int) -> None:
    time.sleep(GRACE_S)
    if generation != _generation or _received is None:
        return  # reset() since: the signal was dealt with (tests that signal their own process)
    remove_temp_paths()
    os.write(_stderr_fd, f"edge-mlp: {reason()}\n".encode())  # fd 2 may be captured (quiet.native_stderr)
    os._exit(exit_code())


def _unraisable(info: Any) -> None:
    """An interrupt raised inside a finalizer (`__del__`, e.g. torch's StorageWeakRef during
    ExecuTorch's lowering) cannot propagate: Python prints "Exception ignored in ..." with a
    traceback and goes on. It is remembered, and checkpoint() or the watchdog ends the run: print
    nothing for it."""
    if isinstance(info.exc_value, KeyboardInterrupt) and _received is not None:
        return
    sys.__unraisablehook__(info)


def install() -> None:
    """Route SIGINT and SIGTERM through the remembering handler (main thread only)."""
    global _stderr_fd
    reset()
    sys.unraisablehook = _unraisable
    if _stderr_fd == 2:
        _stderr_fd = os.dup(2)
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # a shell's background job ignores SIGINT: keep that
            signal.signal(signum, _on_signal)


def reset() -> None:
    """Forget a received signal and stand its watchdog down."""
    global _received, _generation
    _received = None
    _generation += 1


def received() -> bool:
    return _received is not None


def checkpoint() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even if a library swallowed it at the time."""
    if _received is not None:
        raise KeyboardInterrupt


def exit_code() -> int:
    """The shell convention: 128 + signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + (_received or signal.SIGINT)


def reason() -> str:
    name = signal.Signals(_received or signal.SIGINT).name
    return f"interrupted by {name} (no partial files left)"


def track(path: Path) -> None:
    """A temp file or folder that the watchdog removes if it has to end the process."""
    with _lock:
        _temp_paths.add(path)


def untrack(path: Path) -> None:
    with _lock:
        _temp_paths.discard(path)


def remove_temp_paths() -> None:
    with _lock:
        paths = list(_temp_paths)
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
