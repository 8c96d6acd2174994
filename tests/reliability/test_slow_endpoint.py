"""Issue 10, guarantee 1 (object stores): a total deadline per read and per write.

A real moto S3 server behind a loopback proxy that trickles a byte a second: botocore's
per-read timeout never fires, so only a deadline on the whole call ends it. A read past its
deadline is a warning and a fresh sample; a write past its deadline returns the result
uncached and leaves no partial entry behind.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import fixtures_s3
import pymc as pm
import pytest
import xarray as xr
from reliability_workers import sample_kwargs, tiny_model
from slow_endpoint import TrickleProxy

import cloudcache as cc
from cloudcache.errors import DeadlineExceeded, StoreError
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.walk import walk_files

s3_server = fixtures_s3.s3_server
s3_bucket = fixtures_s3.s3_bucket
REF = EntryRef(key="7a7a7a7a7a7a7a7a" * 2, slug="slow", label="draws30_tune30_chains2")
DEADLINE = 3.0
#: A generous bound for "returned at the deadline, not minutes later" under a loaded machine.
PROMPT = 25.0


def _through(proxy: TrickleProxy, server: Any) -> dict[str, Any]:
    options = server.storage_options()
    client = {**options["client_kwargs"], "endpoint_url": proxy.endpoint}
    return {**options, "client_kwargs": client}


@pytest.fixture
def slow_down(s3_server: Any) -> Iterator[TrickleProxy]:
    proxy = TrickleProxy(int(s3_server.endpoint.rsplit(":", 1)[1]), "down")
    yield proxy
    proxy.close()


@pytest.fixture
def slow_up(s3_server: Any) -> Iterator[TrickleProxy]:
    proxy = TrickleProxy(int(s3_server.endpoint.rsplit(":", 1)[1]), "up")
    yield proxy
    proxy.close()


def test_trickled_read_ends_at_the_deadline(
    s3_server: Any, s3_bucket: str, slow_down: TrickleProxy, tiny_tree: xr.DataTree
) -> None:
    url = f"s3://{s3_bucket}/c"
    FileStore(url, s3_server.storage_options()).put(REF, Entry(tiny_tree))  # fast path
    slow = FileStore(url, _through(slow_down, s3_server))
    started = time.monotonic()
    with pytest.raises(StoreError, match="did not finish within 3 s"):
        slow.lookup(REF, timeout=DEADLINE)
    assert time.monotonic() - started < PROMPT


def test_trickled_write_leaves_no_partial_entry(
    s3_server: Any, s3_bucket: str, slow_up: TrickleProxy, tiny_tree: xr.DataTree
) -> None:
    url = f"s3://{s3_bucket}/c"
    slow = FileStore(url, _through(slow_up, s3_server))
    started = time.monotonic()
    with pytest.raises(StoreError, match="did not finish within 3 s"):
        slow.put(REF, Entry(tiny_tree), timeout=DEADLINE)
    assert time.monotonic() - started < PROMPT
    time.sleep(2)  # let the server notice the dropped upload
    direct = FileStore(url, s3_server.storage_options())
    found = direct.lookup(REF)
    assert found.entry is None and found.problems == ()  # nothing at all, not a partial object


def test_session_read_past_its_deadline_warns_and_samples(
    s3_server: Any, s3_bucket: str, slow_down: TrickleProxy
) -> None:
    url = f"s3://{s3_bucket}/c"
    with cc.cloud(
        tiny_model(), cache=url, storage_options=s3_server.storage_options(), quiet=True
    ) as run:
        first = pm.sample(**sample_kwargs(4))
    assert run.last.hit is False
    cc.stores.resolve.process_memory_store().clear()
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(
            tiny_model(),
            cache=url,
            storage_options=_through(slow_down, s3_server),
            timeout=DEADLINE,
            quiet=True,
        ) as run:
            again = pm.sample(**sample_kwargs(4))
    messages = [str(w.message) for w in caught if "cloudcache" in str(w.message)]
    assert run.last.hit is False and "posterior" in again.children
    assert len(messages) == 1 and "did not finish within 3 s" in messages[0], messages
    assert run.last.seconds - run.last.sampling_seconds < PROMPT
    assert time.monotonic() - started < 4 * PROMPT
    assert set(first.posterior.data_vars) == set(again.posterior.data_vars)


def test_trickled_listing_ends_at_one_deadline_for_the_whole_walk(
    s3_server: Any, s3_bucket: str, slow_down: TrickleProxy, tiny_tree: xr.DataTree
) -> None:
    """A listing is several requests (the root, each model folder): one deadline for all."""
    url = f"s3://{s3_bucket}/c"
    FileStore(url, s3_server.storage_options()).put(REF, Entry(tiny_tree))
    slow = FileStore(url, _through(slow_down, s3_server))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"listing .* did not finish within 3 s"):
        list(walk_files(slow.fs, slow.root, False, location=url, seconds=DEADLINE))
    assert time.monotonic() - started < PROMPT
