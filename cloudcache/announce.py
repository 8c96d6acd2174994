"""Hit/miss messages: one line to stderr (unless quiet) and always to ``logging``."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("cloudcache")


def announce(message: str, *, quiet: bool, level: int = logging.INFO) -> None:
    """Log ``message`` and, unless ``quiet``, print it as one line to stderr."""
    logger.log(level, message)
    if not quiet:
        print(f"cloudcache: {message}", file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    """``0.0123`` -> ``"12 ms"``; ``75`` -> ``"1 min 15 s"``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"
