"""Entries verify after the NetCDF round trip, whatever Python objects a sampler's stats hold."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import h5netcdf
import h5py
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cloudcache.stores import nofollow
from cloudcache.stores.format.checksums import ChecksumWhileReading
from cloudcache.stores.format.inspection import check_header
from cloudcache.stores.format.netcdf import (
    decode_entry,
    encode_entry,
    load_with_netcdf4,
    stamped_entry,
    tree_checksum,
    write_entry,
)
from cloudcache.stores.writebehind import write_behind

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


# -- which library writes and reads an entry -------------------------------------------------
def posterior_tree(**attrs: object) -> xr.DataTree:
    rng = np.random.default_rng(3)
    posterior = xr.Dataset(
        {
            "mu": (("chain", "draw"), rng.normal(size=(2, 50))),
            "theta": (("chain", "draw", "school"), rng.normal(size=(2, 50, 8))),
        },
        coords={"chain": [0, 1], "draw": np.arange(50), "school": [f"s{i}" for i in range(8)]},
        attrs={"created_at": "2026-12-06T06:00:00", "inference_library": "pymc", **attrs},
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 50), dtype=bool))})
    return xr.DataTree.from_dict({"/posterior": posterior, "/sample_stats": stats})


def written_by(path: Path) -> str:
    """The library named in the file's ``_NCProperties`` (netCDF4's C library or h5netcdf)."""
    with h5py.File(path, "r") as handle:
        properties = handle.attrs["_NCProperties"]
    text = properties.decode() if isinstance(properties, bytes) else str(properties)
    return "h5netcdf" if "h5netcdf" in text else "netcdf4"


def header_engine(path: Path) -> str:
    with h5py.File(path, "r") as handle:
        return check_header(handle, KEY, path.stat().st_size).engine


def test_entries_are_written_by_netcdf4_and_open_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "entry.nc"
    tree = posterior_tree()
    write_entry(tree, KEY, {"kind": "sample"}, str(path))
    assert written_by(path) == "netcdf4" and header_engine(path) == "netcdf4"
    assert len(encode_entry(tree, KEY, {"kind": "sample"})) == path.stat().st_size  # no padding
    read, metadata = decode_entry(str(path), KEY)
    assert metadata["key"] == KEY
    for engine in ("netcdf4", "h5netcdf"):  # plain xarray, either engine, no cloudcache
        plain = xr.load_datatree(path, engine=engine)
        assert tree_checksum(plain) == tree_checksum(read) == metadata["checksum"]
    with netCDF4.Dataset(path) as handle:
        assert handle.groups["posterior"].variables["theta"].shape == (2, 50, 8)
    with h5netcdf.File(path, "r") as handle:
        assert handle["posterior"]["mu"].shape == (2, 50)
    arviz_tree = open_with_arviz(path)
    assert float(arviz_tree["posterior"]["mu"].mean()) == pytest.approx(
        float(tree["posterior"]["mu"].mean())
    )


def open_with_arviz(path: Path) -> xr.DataTree:
    try:
        from arviz_base import from_netcdf
    except ImportError:  # ArviZ 0.x (PyMC 5)
        from arviz import from_netcdf
    opened = from_netcdf(str(path))
    return (
        opened
        if isinstance(opened, xr.DataTree)
        else xr.DataTree.from_dict({f"/{name}": opened[name] for name in opened.groups()})
    )


def legacy_entry(tree: xr.DataTree, path: Path) -> None:
    """An entry as every earlier version wrote it: the same stamp, written by h5netcdf."""
    stamped_entry(tree, KEY, {"kind": "sample"}).to_netcdf(path, engine="h5netcdf")


def test_entries_written_by_h5netcdf_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "legacy.nc"
    tree = posterior_tree(one_item=[7], names=["a", "b"], text="ünïcode")
    legacy_entry(tree, path)
    assert written_by(path) == "h5netcdf" and header_engine(path) == "netcdf4"
    read, metadata = decode_entry(str(path), KEY)
    assert tree_checksum(read) == metadata["checksum"]
    assert read["posterior"].attrs["one_item"] == 7 and read["posterior"].attrs["text"] == "ünïcode"


def test_complex_values_fall_back_to_h5netcdf_both_ways(tmp_path: Path) -> None:
    tree = posterior_tree(shift=1 + 2j)
    tree["posterior"]["z"] = xr.DataArray(np.arange(4) * 1j, dims="z_dim")
    path = tmp_path / "complex.nc"
    write_entry(tree, KEY, {}, str(path))
    assert written_by(path) == "h5netcdf" and header_engine(path) == "h5netcdf"
    read, _ = decode_entry(str(path), KEY)
    assert read["posterior"].attrs["shift"] == 1 + 2j
    np.testing.assert_array_equal(read["posterior"]["z"].values, np.arange(4) * 1j)
    legacy = tmp_path / "legacy-complex.nc"  # complex group attributes, which netCDF4 drops
    legacy_entry(posterior_tree(shift=1 + 2j), legacy)
    assert header_engine(legacy) == "h5netcdf"
    assert decode_entry(str(legacy), KEY)[0]["posterior"].attrs["shift"] == 1 + 2j


def test_a_type_netcdf4_cannot_read_goes_to_h5netcdf(tmp_path: Path) -> None:
    """netCDF4 crashes the process on a half-precision dataset: the header sends it away."""
    tree = posterior_tree()
    tree["posterior"]["half"] = xr.DataArray(np.arange(3, dtype=np.float16), dims="h")
    path = tmp_path / "half.nc"
    legacy_entry(tree, path)
    assert header_engine(path) == "h5netcdf"
    read, _ = decode_entry(str(path), KEY)
    assert read["posterior"]["half"].dtype == np.float16


def test_format_details_round_trip(tmp_path: Path) -> None:
    tree = posterior_tree(one=[3.5], single_text=["only"], many=[1, 2, 3], encoded=b"bytes")
    tree["posterior"]["when"] = xr.DataArray(
        np.array(["2026-01-01", "2026-06-01"], dtype="datetime64[ns]"), dims="w"
    )
    tree["posterior"]["label"] = xr.DataArray(np.array(["ä", "b", "\u202e"]), dims="l")
    path = tmp_path / "details.nc"
    write_entry(tree, KEY, {"created": "2026-12-06T06:00:00"}, str(path))
    assert written_by(path) == "netcdf4"
    read, _ = decode_entry(str(path), KEY)
    attrs = read["posterior"].attrs
    assert (attrs["one"], attrs["single_text"], attrs["encoded"]) == (3.5, "only", "bytes")
    assert list(attrs["many"]) == [1, 2, 3]
    np.testing.assert_array_equal(read["posterior"]["when"].values, tree["posterior"]["when"])
    assert read["posterior"]["label"].values.tolist() == ["ä", "b", "\u202e"]


def test_a_local_write_streams_to_a_temporary_file_and_keeps_the_umask(tmp_path: Path) -> None:
    written_to: list[str] = []

    def write(target: str) -> None:
        written_to.append(target)
        write_entry(posterior_tree(), KEY, {}, target)

    nofollow.write_atomically(str(tmp_path), "model/entry.nc", write)
    target = tmp_path / "model" / "entry.nc"
    assert decode_entry(str(target), KEY)[1]["key"] == KEY
    assert written_to[0].startswith("/proc/self/fd/")  # the temp file itself, by descriptor
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["entry.nc"]

    def broken(temp: str) -> None:
        Path(temp).write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        nofollow.write_atomically(str(tmp_path), "model/other.nc", broken)
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["entry.nc"]


def test_write_behind_runs_only_while_a_write_does_and_never_fails_it(tmp_path: Path) -> None:
    """The write-out requests start with a streamed write and end with it, whatever happens."""

    def behind() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "cloudcache-write-behind"]

    def slow(target: str) -> None:  # several write-out periods long
        with open(target, "wb") as handle:
            for _ in range(8):
                handle.write(os.urandom(1 << 20))
                handle.flush()
                assert behind() or not sys.platform.startswith("linux")
                time.sleep(0.02)

    nofollow.write_atomically(str(tmp_path), "slow.bin", slow)
    assert (tmp_path / "slow.bin").stat().st_size == 8 << 20 and not behind()
    with pytest.raises(OSError, match="disk full"):
        nofollow.write_atomically(str(tmp_path), "failed.bin", _disk_full)
    assert not behind() and not (tmp_path / "failed.bin").exists()
    reader, writer = os.pipe()  # a descriptor the write-out request is refused for
    try:
        with write_behind(writer, period=0.001):
            time.sleep(0.02)
    finally:
        os.close(reader)
        os.close(writer)
    assert not behind()


def _disk_full(target: str) -> None:
    Path(target).write_bytes(b"partial")
    raise OSError("disk full")


def test_a_read_gives_exactly_what_xarray_gives(tmp_path: Path, sampled_tree: xr.DataTree) -> None:
    """The fast reader (netCDF4, decoded by xarray) against ``xarray.load_datatree``."""
    tree = sampled_tree.copy(deep=False)
    tree["posterior"]["when"] = xr.DataArray(
        np.array(["2026-01-01", "NaT"], dtype="datetime64[ns]"), dims="w"
    )
    tree["posterior"]["flag"] = xr.DataArray(np.array([True, False]), dims="f")
    tree["posterior"]["count"] = xr.DataArray(np.array([1, 2], dtype=np.int16), dims="f")
    tree["posterior"]["label"] = xr.DataArray(np.array(["a", "bc"]), dims="f")
    tree["posterior"]["scalar"] = xr.DataArray(2.5, attrs={"units": "m"})
    tree["posterior"]["word"] = xr.DataArray("only")
    tree["posterior"]["none"] = xr.DataArray(np.array([], dtype=str), dims="z")
    path = tmp_path / "entry.nc"
    write_entry(tree, KEY, {}, str(path))
    read, _ = decode_entry(str(path), KEY)
    plain = xr.load_datatree(path, engine="netcdf4")
    plain.attrs = {k: v for k, v in plain.attrs.items() if not k.startswith("cloudcache_")}
    xr.testing.assert_identical(read, plain)
    for node in plain.subtree:
        for name, variable in node.dataset.variables.items():
            assert read[node.path].dataset.variables[name].dtype == variable.dtype, name
    from_bytes, _ = decode_entry(path.read_bytes(), KEY)
    xr.testing.assert_identical(from_bytes, read)


def test_threads_write_and_read_entries_at_once(tmp_path: Path) -> None:
    """netCDF4 is not thread-safe: without the module's lock this crashed the process."""
    tree = posterior_tree()
    write_entry(tree, KEY, {}, str(tmp_path / "read.nc"))
    failures: list[BaseException] = []

    def write(index: int) -> None:
        try:
            for round_ in range(8):
                write_entry(tree, KEY, {}, str(tmp_path / f"w{index}-{round_}.nc"))
                encode_entry(tree, KEY, {})
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    def read() -> None:
        try:
            for _ in range(16):
                assert tree_checksum(decode_entry(str(tmp_path / "read.nc"), KEY)[0]) == (
                    tree_checksum(tree)
                )
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures


def test_the_checksum_made_while_reading_is_the_tree_checksum(tmp_path: Path) -> None:
    """A netCDF4 read hands every array to the checksum as it arrives; the digest made meanwhile
    is used when the decoded tree holds exactly those arrays, and equals the tree's checksum
    whether it is used or computed again over a tree that decoding changed."""
    rng = np.random.default_rng(2)
    posterior = xr.Dataset(
        {
            "mu": (("chain", "draw"), rng.normal(size=(2, 5))),
            "theta": (("chain", "draw", "school"), rng.normal(size=(2, 5, 3))),
            "count": (("chain", "draw"), rng.integers(0, 9, size=(2, 5))),
            "flag": (("chain", "draw"), rng.random((2, 5)) > 0.5),
        },
        coords={"chain": [0, 1], "draw": np.arange(5), "school": ["a", "bb", "ccc"]},
    )
    dated = xr.Dataset(
        {"y": ("t", rng.normal(size=4))},
        coords={"t": np.array(["2026-01-01", "2026-01-02", "2026-01-05", "2026-02-01"], "M8[ns]")},
    )
    for groups, speculated in (
        ({"/posterior": posterior}, True),  # numbers, booleans and text: as read
        ({"/posterior": posterior, "/observed_data": dated}, False),  # dates decoded from counts
    ):
        tree = xr.DataTree.from_dict(groups)
        path = tmp_path / f"entry-{speculated}.nc"
        write_entry(tree, KEY, {"kind": "sample"}, str(path))
        checksum = ChecksumWhileReading()
        read = load_with_netcdf4(str(path), checksum)
        assert checksum.result(read) == tree_checksum(read) == tree_checksum(tree)
        assert checksum.speculated is speculated
        assert list(read["posterior"].data_vars) == list(posterior.data_vars)  # the file's order


def test_the_checksum_made_while_reading_is_not_used_for_other_bytes() -> None:
    """Announced arrays that the tree does not hold (other bytes, other text, another dtype)
    make the checksum come from the tree itself, never from what was read."""
    values = np.arange(6.0).reshape(2, 3)
    for held in (values + 1, values.astype(np.float32), -0.0 * values):
        tree = xr.DataTree.from_dict({"/g": xr.Dataset({"v": (("a", "b"), held)})})
        checksum = ChecksumWhileReading()
        checksum.group("/")
        checksum.group("/g")
        checksum.variable("v", ("a", "b"), values)
        assert checksum.result(tree) == tree_checksum(tree)
        assert not checksum.speculated
    copied = xr.DataTree.from_dict({"/g": xr.Dataset({"v": (("a", "b"), values.copy())})})
    checksum = ChecksumWhileReading()
    checksum.group("/")
    checksum.group("/g")
    checksum.variable("v", ("a", "b"), values)
    assert checksum.result(copied) == tree_checksum(copied) and checksum.speculated
    with pytest.raises(ValueError, match="out of order"):
        checksum = ChecksumWhileReading()
        checksum.group("/g")
        checksum.group("/")
    checksum.close()


@pytest.mark.parametrize(
    "times",
    [
        np.array(["2026-01-01", "NaT", "2026-03-01"], "M8[us]"),  # pandas 3's date ranges
        np.array(["2026-01-01T01:02:03", "2026-02-01", "2026-02-02"], "M8[s]"),
        np.array(["2026-01-01T00:00:00.000001", "2026-01-02", "2026-01-03"], "M8[us]"),
        np.array([1, 2_000_000, 3], "m8[us]"),
    ],
    ids=["us-with-nat", "seconds", "sub-second", "durations"],
)
def test_times_of_any_unit_verify_after_the_round_trip(tmp_path: Path, times: np.ndarray) -> None:
    """xarray reads dates back in nanoseconds whatever unit was written: the checksum counts
    the times, not the unit (a model with date coordinates had every entry rejected as
    damaged, so every call sampled again)."""
    posterior = xr.Dataset(
        {"a": (("t",), np.arange(3.0)), "when": (("u",), times)}, coords={"t": times}
    )
    tree = xr.DataTree.from_dict({"/posterior": posterior})
    path = tmp_path / "dated.nc"
    write_entry(tree, KEY, {"kind": "sample"}, str(path))
    read, _ = decode_entry(str(path), KEY)
    for name in ("t", "when"):
        held = read["posterior"][name].values
        assert held.dtype.kind == times.dtype.kind
        np.testing.assert_array_equal(held, times)
    assert tree_checksum(read) == tree_checksum(tree)


@pytest.mark.parametrize("through", ["entry", "remote result"])
def test_times_come_back_in_the_unit_they_were_written_in(tmp_path: Path, through: str) -> None:
    """xarray decodes every date to nanoseconds: a hit (or a result sent back by a Dask
    worker) gave ``datetime64[ns]`` where the sampled result held pandas 3's
    ``datetime64[us]``. The units are kept with the file and given back; nanoseconds and
    durations (which xarray keeps) are left as they are."""
    from cloudcache.executors.remote_task import tree_from_bytes, tree_to_bytes

    days = pd.date_range("2026-01-01", periods=3, freq="D")
    assert days.dtype == np.dtype("M8[us]")  # pandas 3, as the project pins
    stamps = np.array(["2026-01-01T00:00:01", "NaT"], "M8[ms]")
    posterior = xr.Dataset(
        {
            "a": (("day",), np.arange(3.0)),
            "stamp": (("k",), stamps),
            "lag": (("k",), np.array([1, 2], "m8[s]")),
            "exact": (("k",), np.array(["2026-01-01T00:00:00.000000001", "NaT"], "M8[ns]")),
        },
        coords={"day": days, "when": (("k",), np.array(["2026-02-01", "2026-03-01"], "M8[s]"))},
    )
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs={"note": "kept"}), "/posterior": posterior})
    if through == "entry":
        path = tmp_path / "dated.nc"
        write_entry(tree, KEY, {"kind": "sample"}, str(path))
        read, metadata = decode_entry(str(path), KEY)
        assert metadata["time_units"]["/posterior/day"] == "us"
    else:
        read = tree_from_bytes(tree_to_bytes(tree))
    for name, variable in tree["posterior"].variables.items():
        assert read["posterior"][name].dtype == variable.dtype, name
    assert isinstance(read["posterior"].indexes["day"], pd.DatetimeIndex)
    assert read.attrs == {"note": "kept"}
    xr.testing.assert_identical(read, tree)


def test_an_entry_naming_odd_time_units_is_damaged(tmp_path: Path) -> None:
    """A record naming a variable that is not a date, or a unit pandas has not, is refused as
    a damaged entry (never a crash, never a tree half converted)."""
    from cloudcache.compat.xarray import with_time_units

    tree = xr.DataTree.from_dict(
        {"/posterior": xr.Dataset({"a": (("t",), np.arange(2.0))}, coords={"t": [0, 1]})}
    )
    for units in ({"/posterior/a": "us"}, {"/posterior/t": "us"}, {"/nowhere/a": "us"}, ["us"]):
        with pytest.raises(ValueError):
            with_time_units(tree, units)  # type: ignore[arg-type]
    dated = xr.DataTree.from_dict(
        {"/posterior": xr.Dataset({"w": (("k",), np.array(["2026-01-01"], "M8[ns]"))})}
    )
    with pytest.raises(ValueError, match="unit"):
        with_time_units(dated, {"/posterior/w": "D"})


def test_a_model_with_date_coordinates_is_a_hit_from_disk(tmp_path: Path) -> None:
    """The whole path: a PyMC model whose coordinates are a pandas date range is sampled, then
    answered from its file."""
    import pymc as pm

    import cloudcache as cc

    days = pd.date_range("2026-01-01", periods=4, freq="D")
    with pm.Model(coords={"day": days}) as model:
        level = pm.Normal("level", 0.0, 1.0, dims="day")
        pm.Normal("y", level, 1.0, observed=np.arange(4.0), dims="day")
    call = {"draws": 20, "tune": 20, "chains": 1, "random_seed": 1, "progressbar": False}
    hits = []
    for _ in range(2):
        with cc.cloud(model, cache=cc.FileStore(str(tmp_path)), backend="pymc", quiet=True) as run:
            pm.sample(compute_convergence_checks=False, **call)
        hits.append(run.last.hit)
    assert hits == [False, True]


@pytest.mark.parametrize(
    "index",
    [
        pd.CategoricalIndex(["a", "b"]),
        pd.date_range("2026-01-01", periods=2, tz="UTC"),
        pd.period_range("2026-01", periods=2, freq="M"),
    ],
    ids=["categories", "time-zone", "periods"],
)
def test_a_pandas_type_netcdf_cannot_hold_is_refused_by_name(tmp_path: Path, index) -> None:
    """A coordinate of a pandas type with no NetCDF form is refused with its name and type (the
    write failed inside our stamping with "'CategoricalDtype' object has no attribute
    'hasobject'"); the cache path warns with this and returns the result uncached."""
    from cloudcache.errors import StoreError

    tree = xr.DataTree.from_dict(
        {"/posterior": xr.Dataset({"a": (("k",), np.zeros(2))}, coords={"k": index})}
    )
    with pytest.raises(StoreError, match=r"/posterior/k holds .*no NetCDF form.*list\(index\)"):
        write_entry(tree, KEY, {"kind": "sample"}, str(tmp_path / "typed.nc"))
    assert not (tmp_path / "typed.nc").exists()
