"""posteriordb reference posteriors sampled through our backends (modest draws)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))

from validate_posteriordb import check_posterior


@pytest.mark.parametrize("name", ["kidiq-kidscore_momiq", "sblrc-blr"])
def test_backend_matches_reference_posterior(name: str) -> None:
    result = check_posterior(name, draws=500, tune=500, chains=4, seed=2)
    failed = {k: v for k, v in result["params"].items() if not v["ok"]}
    assert result["ok"], failed
    assert len(result["params"]) >= 3


def test_nutpie_backend_matches_reference_posterior() -> None:
    pytest.importorskip("nutpie")
    result = check_posterior(
        "kidiq-kidscore_momiq", draws=500, tune=500, chains=4, seed=2, backend="nutpie"
    )
    failed = {k: v for k, v in result["params"].items() if not v["ok"]}
    assert result["ok"], failed
    assert len(result["params"]) >= 3
