"""What one dispatched call did, as seen on ``session.last``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudcache.ui.display import record_card, record_text


@dataclass(frozen=True, repr=False)
class CallRecord:
    """One call inside a ``cloud()`` block.

    ``hit``: answered from the cache. ``key``: the full hex key ("" when uncached).
    ``location``: "memory", a file path or URL, or "uncached". ``seconds``: wall time of the
    call. ``sampling_seconds``: time the original sampling took (saved on a hit).
    ``backend``: what sampled it; ``reason``: why PyMC's sampler did instead of the one asked.
    ``audit``: with ``cloud(..., audit=True)``, the check a stored entry failed (the call then
    sampled again and replaced it); "" when no audit failed.

    ``repr()`` is one line with rounded seconds and the key prefix; Jupyter and marimo show a
    card with a hit/miss badge instead.
    """

    kind: str
    hit: bool
    key: str
    location: str
    seconds: float
    backend: str
    sampling_seconds: float = 0.0
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    audit: str = ""

    def __repr__(self) -> str:
        return record_text(self)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: an HTML card."""
        return record_card(self)

    def _mime_(self) -> tuple[str, str]:
        """marimo's rich display: the same HTML card."""
        return "text/html", record_card(self)
