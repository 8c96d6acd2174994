"""The memory store's copy-on-write twin of a result with a large index coordinate.

A nutpie result of a 1e5-observation model has ``constant_data`` with a 1e5-element dimension
coordinate (800 KB): its ``IndexVariable`` refuses a new ``.data``, and every write of such a
result failed ("could not store the result"), so it was never cached.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from cloudcache.stores.copy_on_write import kept_copy


def test_a_large_index_coordinate_is_kept_not_remapped():
    n = 100_000
    data = xr.Dataset(
        {"x": ("x_dim_0", np.linspace(0.0, 1.0, n))}, coords={"x_dim_0": np.arange(n)}
    )
    tree = xr.DataTree.from_dict({"constant_data": data})
    kept = kept_copy(tree)
    xr.testing.assert_identical(kept, tree)
    tree["constant_data"]["x"].values[0] = 5.0  # the caller's copy is its own
    assert kept["constant_data"]["x"].values[0] == 0.0
