"""Issue 10, guarantee 5: a team shares one cache directory.

Files and folders honour the writer's umask (no forced 0600), a teammate (a second uid)
reads them as hits, and an entry this user may not open is *unreadable*, never *damaged*:
it is reported as a read failure and ``check_entry`` marks it not removable.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr
from forked import call_in_fork, can_switch_user

from cloudcache.errors import EntryUnreadable
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.format.netcdf import check_entry
from cloudcache.stores.usage import marker_path

KEY = "5eed5eed5eed5eed" * 2
REF = EntryRef(key=KEY, slug="team", label="draws30_tune30_chains2")


def _write_with_umask(root: str, mask: int, tree: xr.DataTree) -> dict[str, int]:
    os.umask(mask)
    store = FileStore(root)
    store.put(REF, Entry(tree))
    store.record_use(REF)
    entry = Path(store.path_of(REF))
    marker = Path(marker_path(store.root, f"{entry.parent.name}/{entry.name}"))

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    return {"entry": mode(entry), "folder": mode(entry.parent), "marker": mode(marker)}


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_files_and_folders_honour_the_umask(
    mask: int, tiny_tree: xr.DataTree, tmp_path: Path
) -> None:
    modes = call_in_fork(_write_with_umask, str(tmp_path / "c"), mask, tiny_tree, timeout=60)
    assert modes == {
        "entry": 0o666 & ~mask,
        "folder": 0o777 & ~mask,
        "marker": 0o666 & ~mask,
    }


def _lookup(root: str) -> tuple[str, bool, list[str]]:
    try:
        found = FileStore(root).lookup(REF)
    except EntryUnreadable as error:
        return "unreadable", False, [str(error)]
    verdict = check_entry(FileStore(root).path_of(REF), KEY, root=root)
    return verdict.status, found.entry is not None, list(found.problems)


@pytest.fixture
def team_dir() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="cloudcache-team-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not can_switch_user(), reason="needs root to act as a second user")
def test_a_teammates_entries_are_hits_or_unreadable_never_damaged(
    tiny_tree: xr.DataTree, team_dir: Path
) -> None:
    tmp_path = team_dir
    shared = tmp_path / "shared"
    call_in_fork(_write_with_umask, str(shared), 0o022, tiny_tree, timeout=60)
    assert call_in_fork(_lookup, str(shared), timeout=60, user="nobody") == ("ok", True, [])

    private = tmp_path / "private"
    call_in_fork(_write_with_umask, str(private), 0o077, tiny_tree, timeout=60)
    status, hit, problems = call_in_fork(_lookup, str(private), timeout=60, user="nobody")
    assert (status, hit) == ("unreadable", False), problems
    assert "permission" in problems[0]
    verdict = call_in_fork(
        check_entry, FileStore(private).path_of(REF), KEY, timeout=60, user="nobody"
    )
    assert verdict.status == "unreadable" and not verdict.removable
    assert check_entry(FileStore(private).path_of(REF), KEY).status == "ok"  # its owner reads it
