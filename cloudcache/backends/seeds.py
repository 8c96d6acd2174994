"""Per-chain seeds, derived from ``random_seed`` exactly as ``pm.sample`` derives them."""

from __future__ import annotations

from typing import Any

import numpy as np


def chain_seeds(random_seed: Any, chains: int) -> list[int]:
    """Per-chain seeds derived exactly as ``pm.sample`` derives them."""
    from pymc.util import get_random_generator

    if isinstance(random_seed, bool) or (
        isinstance(random_seed, int | np.integer) and random_seed == -1
    ):
        raise ValueError("random_seed must be an int >= 0, a sequence, a Generator or None")
    rngs = get_random_generator(random_seed).spawn(chains)
    return [int(rng.integers(2**30)) for rng in rngs]
