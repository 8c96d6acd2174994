"""What one dispatched call did, as seen on ``session.last``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloudcache.ui.display import record_card, record_text


@dataclass(frozen=True, repr=False)
class CallRecord:
    """One call inside a ``cloud()`` block (``run.last``, ``run.records``).

    ``repr()`` is one line with rounded seconds and the key prefix; Jupyter and marimo show a
    card with a hit/miss badge instead.

    Attributes:
        kind: The call: ``"sample"``, ``"sample_prior_predictive"`` or
            ``"sample_posterior_predictive"``.
        hit: Answered from the cache.
        key: The full hex key (``""`` when the call ran uncached).
        location: ``"memory"``, a file path or URL, or ``"uncached"``.
        seconds: Wall time of the call.
        backend: What sampled the result.
        sampling_seconds: Time the original sampling took (saved, on a hit).
        reason: Why PyMC's sampler ran instead of the backend asked for (``""`` otherwise).
        metadata: The metadata record stored with the entry (versions, arguments, key
            components).
        audit: With ``cloud(..., audit=True)``, the check a stored entry failed (the call then
            sampled again and replaced it); ``""`` when no audit failed.

    Examples:
        ```python
        with cc.cloud(model, cache="disk") as run:
            pm.sample(1000, random_seed=1)
        run.last.hit, run.last.location  # (True, 'memory') on a re-run
        ```
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
