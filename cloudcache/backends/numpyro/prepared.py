"""A run made ready: the compiled programs and every argument they need for one call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudcache.backends.numpyro.plan import RunPlan

if TYPE_CHECKING:
    from cloudcache.backends.numpyro.devices import ChainLayout
    from cloudcache.backends.numpyro.logp import ModelGraph


@dataclass
class PreparedRun:
    """Everything needed to run the compiled programs once (``executable``: their
    :class:`~cloudcache.backends.numpyro.runner.Programs`)."""

    graph: ModelGraph
    plan: RunPlan
    layout: ChainLayout
    seeds: list[int]
    init: tuple[np.ndarray, ...]
    data: list[np.ndarray]
    executable: Any
    compile_seconds: float
