"""Refusals: the exception a backend raises once it tries, and the shared one-line reasons."""

from __future__ import annotations

from typing import Any


class BackendRefused(Exception):
    """Raised by ``Backend.sample`` when it finds, only once it tries, that it cannot sample.

    The session then hands the call to PyMC's sampler under that backend's key, with the
    exception's message as the reason. Never raised after any draw was taken.
    """


def discrete_refusal(discrete: list[Any]) -> str | None:
    """The refusal of a gradient-based sampler for a model with these discrete free variables."""
    if discrete:
        return f"the model has discrete free variables ({', '.join(map(str, discrete))})"
    return None
