"""Progress of a compiled sampling run, reported by the host between calls of the step program.

The run calls :func:`tick` after each call of the step program (the programs never call back
into Python: the same executable runs whether anyone is watching, and it can be serialised).
:func:`progress_bar` shows a rich progress bar for the duration of one run; with no bar active,
ticks are ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from cloudcache.util.forks import ForkSafeLock

_lock = ForkSafeLock()
_active: Any = None  # (rich.progress.Progress, task id) while a bar is shown


def tick(iterations: int) -> None:
    """``iterations`` more iterations (all chains together) are done."""
    with _lock:
        if _active is None:
            return
        progress, task = _active
        progress.advance(task, iterations)


@contextlib.contextmanager
def progress_bar(
    total: int, description: str, *, enabled: bool, completed: int = 0
) -> Iterator[None]:
    """Show a progress bar of ``total`` iterations while the block runs (if ``enabled``),
    starting at ``completed`` (a resumed run)."""
    global _active
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed)
        with _lock:
            _active = (progress, task)
        try:
            yield
            progress.update(task, completed=total)
        finally:
            with _lock:
                _active = None
