"""Progress of a compiled sampling run, reported from inside the XLA executable.

The compiled sampler calls :func:`tick` through ``jax.debug.callback`` every ``stride``
iterations of each chain (the executable does not depend on whether anyone is watching).
:func:`progress_bar` shows a rich progress bar for the duration of one run; with no bar active,
ticks are ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from cloudcache.util.forks import ForkSafeLock

_lock = ForkSafeLock()
_active: Any = None  # (rich.progress.Progress, task id) while a bar is shown


def tick(iterations: Any) -> None:
    """Host callback: ``iterations`` more iterations are done (an array when batched)."""
    with _lock:
        if _active is None:
            return
        progress, task = _active
        progress.advance(task, int(np.sum(iterations)))


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
