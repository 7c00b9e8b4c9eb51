"""Ctrl-C / SIGTERM that a dependency cannot swallow.

Some dependencies wrap optional imports in a bare `except:` (coremltools 9.0 imports scikit-learn
that way, which takes about a second), so a KeyboardInterrupt raised there is eaten and the
conversion runs on to the end. The handler remembers the signal; `checkpoint()` at every stage
boundary and before publishing raises it again.
"""

from __future__ import annotations

import signal
from types import FrameType

_pending = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt  # unwinds through the staging folders, which clean themselves up


def install() -> None:
    """Route SIGINT and SIGTERM through the remembering handler (main thread only)."""
    global _pending
    _pending = False
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def checkpoint() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even if a library swallowed it at the time."""
    if _pending:
        raise KeyboardInterrupt
