"""Run a function in a thread while the caller goes on, with the caller's context variables."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any


def in_background(function: Callable[..., Any], *args: Any) -> threading.Thread:
    """Start ``function(*args)`` in a thread that sees the caller's context variables (the
    active store folders, for example); ``join()`` the returned thread before relying on it.
    ``function`` must handle its own errors: nothing raised in the thread reaches the caller."""
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(function, *args), daemon=True)
    thread.start()
    return thread
