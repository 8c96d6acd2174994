"""What one dispatched call did, as seen on ``session.last``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    """One call inside a ``cloud()`` block.

    ``hit``: answered from the cache. ``key``: the full hex key ("" when uncached).
    ``location``: "memory", a file path or URL, or "uncached". ``seconds``: wall time of the
    call. ``sampling_seconds``: time the original sampling took (saved on a hit).
    ``audit``: with ``cloud(..., audit=True)``, the check a stored entry failed (the call then
    sampled again and replaced it); "" when no audit failed.
    """

    kind: str
    hit: bool
    key: str
    location: str
    seconds: float
    backend: str
    sampling_seconds: float = 0.0
    reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    audit: str = ""
