"""The NumPyro backend as the resolver sees it: name, versions and refusal, without JAX.

Every call resolves its backend before the key, hits included. The NumPyro backend's module
imports JAX (about 0.6 s) at the top, so :func:`cloudcache.backends.base.get_backend` hands out
this stand-in: it answers ``library_versions`` and ``refusal`` from light modules and imports
the real backend only when a miss samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cloudcache.backends.numpyro_refusal import NUMPYRO_PACKAGES, numpyro_refusal
from cloudcache.versions import installed_versions

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from cloudcache.request import SampleRequest


class DeferredNumpyro:
    """Stands in for :class:`cloudcache.backends.numpyro.NumpyroBackend` until it samples."""

    name = "numpyro"

    def library_versions(self) -> dict[str, str]:
        return installed_versions(*NUMPYRO_PACKAGES)

    def refusal(self, model: pm.Model, request: SampleRequest) -> str | None:
        return numpyro_refusal(model, request)

    def sample(
        self,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
    ) -> xr.DataTree:
        from cloudcache.backends.numpyro import NumpyroBackend

        return NumpyroBackend().sample(model, request, device=device, pymc_sample=pymc_sample)
