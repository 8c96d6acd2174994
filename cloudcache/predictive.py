"""Cached ``pm.sample_prior_predictive`` and ``pm.sample_posterior_predictive``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudcache.session import Session


def handle_predictive(
    session: Session,
    kind: str,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Answer a predictive call of ``kind`` for ``session`` (``function`` is PyMC's original)."""
    return function(*args, **kwargs)
