"""How records and sessions look: one-line repr, HTML cards and tables in Jupyter and marimo."""

from __future__ import annotations

import re
from pathlib import Path

import pymc as pm
from IPython.core.formatters import DisplayFormatter
from tiny_models import TINY, tiny_model

import cloudcache as cc
from cloudcache.calls.records import CallRecord
from cloudcache.ui.announce import format_seconds
from cloudcache.ui.display import calls_table, record_card, short_location

KEY = "0123456789abcdef" + "f" * 48
HOSTILE = '<script>alert("x")</script>&'


def make_record(**fields: object) -> CallRecord:
    values: dict[str, object] = {
        "kind": "sample",
        "hit": True,
        "key": KEY,
        "location": "memory",
        "seconds": 0.006191601000409719,
        "backend": "numpyro",
        "sampling_seconds": 12.345678,
        "metadata": {"components": {"model": "x" * 5000}},
    }
    values.update(fields)
    return CallRecord(**values)  # type: ignore[arg-type]


def test_repr_is_one_short_line_with_rounded_times_and_no_metadata() -> None:
    text = repr(make_record())
    assert "\n" not in text and len(text) < 200
    assert "seconds=0.006," in text and "sampling_seconds=12.346" in text
    assert f"key='{KEY[:16]}'" in text and KEY not in text
    assert "metadata" not in text and "xxxxx" not in text
    assert "reason" not in text
    assert "reason='PyMC took over'" in repr(make_record(reason="PyMC took over"))


def test_card_shows_hit_badge_prefix_location_and_saved_time() -> None:
    card = make_record()._repr_html_()
    assert 'data-state="hit"' in card and 'class="cloudcache-hit"' in card
    assert KEY[:16] in card and "memory" in card and "numpyro" in card
    assert "took 6 ms" in card and "saved 12.3 s of sampling" in card


def test_card_of_a_miss_and_of_an_uncached_call_with_its_reason() -> None:
    miss = record_card(make_record(hit=False, location="/tmp/c/tiny/sample_x.nc"))
    assert 'data-state="miss"' in miss and "sampling 12.3 s" in miss and "saved" not in miss
    uncached = record_card(
        make_record(hit=False, key="", location="uncached", reason="the model holds a lambda")
    )
    assert 'data-state="uncached"' in uncached and "no key" in uncached
    assert "the model holds a lambda" in uncached


def test_everything_from_a_record_is_escaped() -> None:
    record = make_record(
        kind=HOSTILE, key=HOSTILE, location=f"/cache/{HOSTILE}.nc", backend=HOSTILE, reason=HOSTILE
    )
    for markup in (record_card(record), calls_table([record])):
        assert "<script>" not in markup
        assert "&lt;script&gt;" in markup and "&amp;" in markup
        # every tag left is one this module wrote
        assert set(re.findall(r"<(\w+)", markup)) <= {
            "div", "span", "b", "table", "caption", "thead", "tbody", "tr", "th", "td",
        }  # fmt: skip


def test_long_locations_are_shortened_and_kept_whole_in_the_tooltip() -> None:
    url = "s3://bucket/" + "deep/" * 10 + "eight_schools/sample_0123456789abcdef.nc"
    path = "/home/someone/" + "project/" * 6 + ".cloudcache/eight_schools/sample_0123.nc"
    assert short_location(url) == "s3://bucket/…/sample_0123456789abcdef.nc"
    assert short_location(path) == "…/eight_schools/sample_0123.nc"
    assert short_location("memory") == "memory"
    card = record_card(make_record(location=path))
    assert f'title="{path}"' in card and "…/eight_schools/sample_0123.nc" in card


def test_jupyter_and_marimo_pick_the_card() -> None:
    import marimo as mo

    record = make_record()
    formatted, _ = DisplayFormatter().format(record)
    assert formatted["text/html"] == record_card(record)
    assert formatted["text/plain"] == repr(record)
    assert 'data-state="hit"' in mo.as_html(record).text


def test_session_table_of_a_real_session_counts_hits_and_time_saved(tmp_path: Path) -> None:
    with cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", quiet=True) as run:
        pm.sample(**TINY)
        pm.sample(**TINY)
    table = run._repr_html_()
    assert table == run._mime_()[1] and run._mime_()[0] == "text/html"
    states = re.findall(r'<tr class="cloudcache-row" data-state="(\w+)"', table)
    assert states == ["miss", "hit"]
    assert "2 calls, 1 hit, 1 miss" in table
    assert f"saved {format_seconds(run.records[1].sampling_seconds)} of sampling" in table
    assert run.records[0].location.endswith(".nc")
    assert short_location(run.records[0].location) in table


def test_session_repr_is_a_readable_summary_for_terminals(tmp_path: Path) -> None:
    with cc.cloud(tiny_model(), cache=tmp_path, backend="pymc", quiet=True) as run:
        assert repr(run).startswith("cloudcache session (cache=")
        assert repr(run).endswith("no calls yet")
        pm.sample(**TINY)
        pm.sample(**TINY)
    lines = repr(run).splitlines()
    assert str(run) == repr(run)
    assert "object at 0x" not in repr(run)
    assert str(tmp_path) in lines[0] and "backend='pymc', device='auto'" in lines[0]
    assert lines[0].endswith(
        "2 calls, 1 hit, 1 miss, saved "
        + format_seconds(run.records[1].sampling_seconds)
        + " of sampling"
    )
    prefix = run.records[0].key[:16]
    assert lines[1].startswith(f"  1. sample miss {prefix} ")
    assert lines[2].startswith(f"  2. sample hit {prefix} memory (took ")
    assert lines[2].endswith(", pymc)")


def test_empty_session_says_so() -> None:
    assert "no calls yet" in calls_table([])
