"""Guarantee 5: stored entries never execute code, names never escape the root, odd files never
crash a read or the command line."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from reliability_figures import record_trials
from reliability_workers import sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.netcdf import ENGINE, KEY_ATTR, METADATA_ATTR, encode_entry

PACKAGE = Path(cc.__file__).resolve().parent
KEY = "0123456789abcdef" * 2
REF = EntryRef(key=KEY, slug="planted", label="draws30_tune30_chains2")


class _Tripwire:
    """Unpickling this creates ``path`` (what a malicious entry would do, harmlessly)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudcache", *args], capture_output=True, text=True, timeout=120
    )


def _assert_no_crash(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode in (0, 1), (done.returncode, done.stderr[-2000:])


# -- no code-executing formats ---------------------------------------------------------------
def test_planted_pickle_bytes_are_never_unpickled(tiny_tree: xr.DataTree, tmp_path: Path) -> None:
    tripwire = tmp_path / "tripwire"
    payload = np.frombuffer(pickle.dumps(_Tripwire(str(tripwire))), dtype=np.uint8)
    planted = tiny_tree.copy(deep=False)
    posterior = planted["posterior"].to_dataset(inherit=False)
    posterior["payload"] = xr.DataArray(payload, dims=["pickle_byte"], attrs={"pickle": payload})
    planted["posterior"] = xr.DataTree(posterior)
    planted.attrs = {"pickle": payload, "python_object": "cos\nsystem\n(S'true'\ntR."}
    root = tmp_path / "cache"
    path = Path(FileStore(root).path_of(REF))
    path.parent.mkdir(parents=True)
    path.write_bytes(encode_entry(planted, KEY, {"note": pickle.dumps(1).hex()}))

    entry = FileStore(root).get(REF)
    assert entry is not None  # a valid entry: served as plain bytes, never as an object
    served = entry.tree["posterior"]["payload"].values
    assert served.dtype == np.uint8 and served.tobytes() == payload.tobytes()
    for command in (["show", KEY[:8]], ["verify"]):
        _assert_no_crash(_cli(*command, "--cache", str(root)))
    assert not tripwire.exists(), "a stored pickle was unpickled"


FORBIDDEN_MODULES = {"pickle", "cloudpickle", "dill", "marshal", "shelve", "joblib", "jsonpickle"}
FORBIDDEN_BUILTINS = {"eval", "exec", "__import__"}
#: The one sanctioned load: a Dask *worker* unpickles the model its own user sent it.
ALLOWED = {("executors/remote_task.py", "sample_on_worker", "cloudpickle.loads")}


def _violations(path: Path, base: Path = PACKAGE) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    relative = path.relative_to(base).as_posix()
    found: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = (
                child.name
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                else function
            )
            if isinstance(child, ast.Call):
                name = ast.unparse(child.func)
                module = name.split(".")[0]
                loads = module in FORBIDDEN_MODULES and name.split(".")[-1].startswith("load")
                allowed = (relative, function, name) in ALLOWED
                if (name in FORBIDDEN_BUILTINS or loads) and not allowed:
                    found.append(f"{relative}:{child.lineno} {name}() in {function}")
                for keyword in child.keywords:
                    if keyword.arg == "allow_pickle" and ast.unparse(keyword.value) != "False":
                        found.append(f"{relative}:{child.lineno} allow_pickle=...")
                if name in ("yaml.load", "yaml.unsafe_load", "torch.load"):
                    found.append(f"{relative}:{child.lineno} {name}()")
            visit(child, inner)

    visit(tree, "<module>")
    return found


def test_no_code_executing_loads_in_the_package() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    violations = [v for path in files for v in _violations(path)]
    assert not violations, violations
    assert ENGINE in ("netcdf4", "h5netcdf")  # NetCDF engines: no pickle in the format


def test_the_scanner_catches_what_it_should(tmp_path: Path) -> None:
    """Guard against a scanner that can never fail."""
    bad = tmp_path / "probe.py"
    bad.write_text(
        "import pickle, numpy as np\n"
        "def read(b):\n    return pickle.loads(b), eval('1'), np.load(b, allow_pickle=True)\n"
    )
    assert len(_violations(bad, tmp_path)) == 3


def test_dask_results_travel_as_netcdf_bytes() -> None:
    """The worker task returns NetCDF bytes; the caller only ever decodes NetCDF."""
    distributed = pytest.importorskip("distributed")
    remote = pytest.importorskip("cloudcache.executors.remote_task")
    dask_executor = pytest.importorskip("cloudcache.executors.dask")
    from cloudcache.calls.request import normalize_sample_call

    model = tiny_model()
    request = normalize_sample_call(pm.sample, (), {**sample_kwargs(3), "model": model})
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        future = client.submit(
            remote.sample_on_worker,
            dask_executor._pack(model, request),
            "pymc",
            "cpu",
            "cloudcache-test",
            pure=False,
        )
        result = future.result(timeout=120)
    assert isinstance(result, bytes) and result[:4] == b"\x89HDF"  # NetCDF4/HDF5, not pickle
    assert remote.tree_from_bytes(result)["posterior"].sizes["draw"] == 30
    assert "return tree_from_bytes(data)" in Path(dask_executor.__file__).read_text()


# -- names stay inside the root --------------------------------------------------------------
HOSTILE_NAMES = [
    "../../../../etc/cloudcache-escape",
    "/etc/passwd",
    "..",
    ".",
    "",
    "a\x00b",
    "x" * 5000,
    "..\\..\\windows",
    "~root/.ssh",
    "naïve/../../ü",
    "-rf --no-preserve-root",
    " \t\n",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:30])
def test_hostile_names_stay_inside_the_root(
    name: str, tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    root = (tmp_path / "cache").resolve()
    store = FileStore(root)
    ref = EntryRef(key=KEY, slug=name, label=name)
    location = Path(store.put(ref, Entry(tiny_tree, {})))
    assert location.resolve().is_relative_to(root), location
    assert location.exists() and len(location.name) < 255
    assert store.get(ref) is not None
    outside = [p for p in tmp_path.rglob("*") if not p.resolve().is_relative_to(root)]
    assert outside == [root.parent / "cache"] or not outside, outside


def test_hostile_model_name_in_a_session(tmp_path: Path) -> None:
    root = (tmp_path / "cache").resolve()
    model = tiny_model(name="..\\..\\.. escape")  # PyMC itself refuses "/"
    with cc.cloud(model, cache=FileStore(root), backend="pymc", quiet=True) as run:
        pm.sample(**sample_kwargs(4))
    assert Path(run.last.location).resolve().is_relative_to(root)
    assert list(tmp_path.iterdir()) == [root]


# -- odd files never crash a read or the CLI -------------------------------------------------
def _huge_attribute(tree: xr.DataTree) -> bytes:
    odd = tree.copy(deep=False)
    odd.attrs = {"huge": "x" * 20_000_000}
    return encode_entry(odd, KEY, {})


def _many_attributes(tree: xr.DataTree) -> bytes:
    odd = tree.copy(deep=False)
    odd.attrs = {f"a{i}": np.arange(i % 50) for i in range(5000)}
    return encode_entry(odd, KEY, {})


def _with_root_attrs(attrs: dict[str, object]) -> Callable[[xr.DataTree], bytes]:
    def build(tree: xr.DataTree) -> bytes:
        stamped = tree.copy(deep=False)
        stamped.attrs = attrs
        return bytes(stamped.to_netcdf(engine=ENGINE))

    return build


def _odd_variables(tree: xr.DataTree) -> bytes:
    odd = tree.copy(deep=False)
    posterior = odd["posterior"].to_dataset(inherit=False)
    posterior["text"] = xr.DataArray(np.array(["ä", "\u202e", "x" * 1000], dtype=object), dims="t")
    posterior["empty"] = xr.DataArray(np.zeros((0, 3)), dims=("e0", "e1"))
    posterior["nan"] = xr.DataArray(np.array([np.nan, np.inf, -np.inf]), dims="n")
    odd["posterior"] = xr.DataTree(posterior)
    for i in range(200):
        odd[f"extra/g{i}"] = xr.DataTree(xr.Dataset({"v": ("d", np.arange(3))}))
    return encode_entry(odd, KEY, {"nested": [[[1]]], "unicode": "ü\u202e"})


ODD_FILES: dict[str, Callable[[xr.DataTree], bytes]] = {
    "20 MB attribute": _huge_attribute,
    "5000 attributes": _many_attributes,
    "odd variables, 200 groups": _odd_variables,
    "metadata nested 100k deep": _with_root_attrs(
        {KEY_ATTR: KEY, METADATA_ATTR: "[" * 100_000 + "]" * 100_000}
    ),
    "metadata is a list": _with_root_attrs({KEY_ATTR: KEY, METADATA_ATTR: "[1, 2]"}),
    "metadata not JSON": _with_root_attrs({KEY_ATTR: KEY, METADATA_ATTR: "{'a': 1"}),
    "metadata a number array": _with_root_attrs({KEY_ATTR: KEY, METADATA_ATTR: np.arange(3)}),
    "key is an array": _with_root_attrs(
        {KEY_ATTR: np.arange(4), METADATA_ATTR: json.dumps({"checksum": "x"})}
    ),
    "checksum is a list": _with_root_attrs(
        {KEY_ATTR: KEY, METADATA_ATTR: json.dumps({"checksum": [1], "attrs_checksum": {}})}
    ),
}


@pytest.mark.parametrize("build", ODD_FILES.values(), ids=ODD_FILES.keys())
def test_odd_planted_files_never_crash_a_read(
    build: Callable[[xr.DataTree], bytes], tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "cache")
    path = Path(store.path_of(REF))
    path.parent.mkdir(parents=True)
    path.write_bytes(build(tiny_tree))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry = store.get(REF)
    if entry is None:
        assert any("damaged" in str(w.message) for w in caught)


def test_odd_planted_files_never_crash_the_cli(tiny_tree: xr.DataTree, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    store = FileStore(root)
    prefixes = []
    for number, build in enumerate(ODD_FILES.values()):
        ref = EntryRef(key=f"{number:02x}" * 16, slug="planted", label=f"odd{number}")
        path = Path(store.path_of(ref))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build(tiny_tree))
        prefixes.append(ref.key[:8])
    for command in (["ls"], ["verify"], ["show", prefixes[0]], ["show", prefixes[3]]):
        _assert_no_crash(_cli(*command, "--cache", str(root)))
    record_trials("hostile input", "odd planted files (read + CLI)", len(ODD_FILES), 0)


def test_symlinked_entry_pointing_outside_is_not_followed_for_writes(
    tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    """A planted symlink at an entry's path is replaced by the write, never written through."""
    root = tmp_path / "cache"
    store = FileStore(root)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = Path(store.path_of(REF))
    path.parent.mkdir(parents=True)
    os.symlink(victim, path)
    store.put(REF, Entry(tiny_tree, {}))
    assert victim.read_text() == "keep me"
    assert not path.is_symlink()
