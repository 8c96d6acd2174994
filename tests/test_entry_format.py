"""Entries verify after the NetCDF round trip, whatever Python objects a sampler's stats hold."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cloudcache.stores.format.netcdf import decode_entry, encode_entry

KEY = "0123456789abcdef" * 2


@pytest.mark.parametrize(
    "messages",
    [
        [None] * 6,  # nutpie's divergence_message when nothing diverged
        [None] * 5 + ["Divergence due to large energy error: 1480.3924"],
        [float("nan")] * 5 + ["Divergence due to large energy error: 12.5"],
    ],
    ids=["all-none", "none-and-text", "nan-and-text"],
)
def test_text_or_missing_object_arrays_round_trip_and_verify(messages: list) -> None:
    stats = xr.Dataset(
        {
            "divergence_message": (
                ("chain", "draw"),
                np.array(messages, dtype=object).reshape(2, 3),
            ),
            "diverging": (
                ("chain", "draw"),
                np.array([m is not None for m in messages]).reshape(2, 3),
            ),
        }
    )
    tree = xr.DataTree.from_dict({"/": xr.Dataset(), "/sample_stats": stats})
    read, _ = decode_entry(encode_entry(tree, KEY, {"kind": "sample"}), KEY)
    stored = read["sample_stats"]["divergence_message"].values.ravel().tolist()
    assert stored == [m if isinstance(m, str) else "" for m in messages]
