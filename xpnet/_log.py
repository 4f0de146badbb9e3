"""xpnet's informational messages: one :mod:`logging` logger, ``"xpnet"``.

Notes (early stopping, a data-parallel run's layout, a one-time input cast, the command
line's progress lines) go to ``logging.getLogger("xpnet")`` at INFO, so an application
silences them with ``logging.getLogger("xpnet").setLevel(logging.WARNING)`` or redirects
them with its own handlers. Warnings stay :func:`warnings.warn`; the progress bar and the
per-epoch lines of ``fit(verbose=...)`` are the progress display, not log records.

The library never configures logging. Only when nothing would show a record at all (no
handler on ``"xpnet"`` or above it) and the ``"xpnet"`` level was left at its default or
lowered, a note is written to a stream instead, so a script that never set up logging
still sees it, as :data:`logging.lastResort` does for warnings.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = ["logger", "info", "info_once"]

logger = logging.getLogger("xpnet")

# Keys of the one-time notes already given in this process.
_noted: set[str] = set()


def info(message: str, *, stream: TextIO | None = None) -> None:
    """Log ``message`` at INFO on the ``"xpnet"`` logger (see the module notes).

    Parameters
    ----------
    message
        One line of text.
    stream
        Where the note goes when logging is not configured at all; default ``sys.stderr``.
    """
    if logger.hasHandlers():
        logger.info(message)
    elif logger.level <= logging.INFO and not logger.disabled:  # NOTSET (0), DEBUG or INFO
        out = sys.stderr if stream is None else stream
        out.write(message.rstrip("\n") + "\n")
        out.flush()


def info_once(key: str, message: str) -> None:
    """:func:`info`, only the first time ``key`` is seen in this process."""
    if key in _noted:
        return
    _noted.add(key)
    info(message)
