"""What the NumPyro backend declares before it samples: its key's libraries and its refusal.

Light on purpose (no JAX import): both run on every call, hits included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudcache.backends.numpyro_plan import Fallback, plan_request
from cloudcache.backends.refused import discrete_refusal

if TYPE_CHECKING:
    import pymc as pm

    from cloudcache.request import SampleRequest


#: The libraries whose versions enter the key of a NumPyro-sampled entry.
NUMPYRO_PACKAGES: tuple[str, ...] = ("pymc", "pytensor", "jax", "jaxlib", "numpyro")


def numpyro_refusal(model: pm.Model, request: SampleRequest) -> str | None:
    """Arguments only PyMC's sampler honours, or discrete free variables (no JAX import)."""
    try:
        plan_request(request)
    except Fallback as reason:
        return str(reason)
    except (TypeError, ValueError):
        return None  # a bad argument: sampling reports it in the runner's own words
    return discrete_refusal(model.discrete_value_vars)
