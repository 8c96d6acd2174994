"""How two independent runs of one key are compared: what each backend guarantees.

- NumPyro backend (ours): draws for the same key on the same machine are bit-identical, in one
  process or across processes, with a cold or a warm JAX compilation cache. Compare exactly.
- PyMC's own NUTS sampler: draws agree only up to the last bits across processes (PyTensor's
  compiled C functions and NumPy's SIMD loops may round differently between runs). Compare
  with :data:`PYMC_RTOL` / :data:`PYMC_ATOL`: a last-bit difference stays many orders of
  magnitude below it after a few hundred leapfrog steps, while a different seed, model or
  setting changes draws by O(1).

A cache hit is compared exactly everywhere: it returns the stored bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from cloudcache.compat.pymc import as_tree, is_inferencedata

#: Relative and absolute tolerance for PyMC-sampler draws of one key from two runs.
PYMC_RTOL = 1e-6
PYMC_ATOL = 1e-9


def posterior_values(posterior: Any) -> dict[str, list[Any]]:
    """Each posterior variable as nested lists (JSON round-trips floats exactly)."""
    return {str(name): array.tolist() for name, array in _arrays(posterior).items()}


def assert_pymc_draws_close(one: Any, other: Any) -> None:
    """Same variables, same shapes, values within the PyMC tolerance (trees, datasets, dicts)."""
    first, second = _arrays(one), _arrays(other)
    assert sorted(first) == sorted(second), (sorted(first), sorted(second))
    for name, values in first.items():
        assert values.shape == second[name].shape, name
        np.testing.assert_allclose(
            values, second[name], rtol=PYMC_RTOL, atol=PYMC_ATOL, err_msg=name
        )


def _arrays(posterior: Any) -> dict[str, np.ndarray]:
    if isinstance(posterior, xr.DataTree) or is_inferencedata(posterior):
        posterior = as_tree(posterior)["posterior"].to_dataset()
    if isinstance(posterior, xr.Dataset):
        return {str(name): np.asarray(array.values) for name, array in posterior.data_vars.items()}
    return {str(name): np.asarray(values) for name, values in dict(posterior).items()}
