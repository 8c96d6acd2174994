"""How call records and sessions look: one readable text line, an HTML card, an HTML table.

Used by ``CallRecord.__repr__``/``_repr_html_``/``_mime_`` (Jupyter and marimo call the last
two) and by ``Session.__repr__``/``_repr_html_``/``_mime_``. Pure string building: nothing
heavy is imported.
Everything that comes from a record (paths, URLs, backend names, reasons) is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Protocol

from cloudcache.ui.announce import BADGE_COLORS, badge_html, format_seconds

#: Hex characters of the key shown (the same prefix the hit/miss lines print).
KEY_PREFIX_LENGTH = 16
#: Locations longer than this are shortened to their first and last parts.
LOCATION_WIDTH = 48

_CARD_STYLE = (
    "display:inline-block;min-width:22em;max-width:46em;margin:4px 0;padding:6px 10px;"
    "border:1px solid #9e9e9e55;border-left:4px solid {color};border-radius:4px;"
    "font-family:system-ui,sans-serif;font-size:0.85em;line-height:1.45"
)
_TABLE_STYLE = "border-collapse:collapse;font-family:system-ui,sans-serif;font-size:0.85em"
_CELL_STYLE = "padding:2px 8px;border-bottom:1px solid #9e9e9e55;text-align:left;white-space:nowrap"
_MONO = "font-family:ui-monospace,monospace"


class CallView(Protocol):
    """The fields of a :class:`cloudcache.calls.records.CallRecord` that are displayed."""

    kind: str
    hit: bool
    key: str
    location: str
    seconds: float
    backend: str
    sampling_seconds: float
    reason: str
    audit: str


def state(record: CallView) -> str:
    """``"hit"``, ``"miss"`` (sampled and stored) or ``"uncached"`` (sampled, not stored)."""
    if record.hit:
        return "hit"
    return "uncached" if record.location == "uncached" else "miss"


def short_location(location: str, width: int = LOCATION_WIDTH) -> str:
    """``location`` as is when short; else ``s3://bucket/…/file.nc`` or ``…/model/file.nc``."""
    if len(location) <= width:
        return location
    scheme, separator, rest = location.rpartition("://")
    if separator:
        parts = rest.split("/")
        if len(parts) > 2:
            return f"{scheme}://{parts[0]}/…/{parts[-1]}"
        return location
    parts = location.replace("\\", "/").split("/")
    return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else location


def record_text(record: CallView) -> str:
    """The plain one-line repr: rounded seconds, key prefix, shortened location, no metadata."""
    fields = [
        f"kind={record.kind!r}",
        f"hit={record.hit!r}",
        f"key={record.key[:KEY_PREFIX_LENGTH]!r}",
        f"location={short_location(record.location)!r}",
        f"seconds={round(record.seconds, 3)!r}",
        f"sampling_seconds={round(record.sampling_seconds, 3)!r}",
        f"backend={record.backend!r}",
    ]
    if record.reason:
        fields.append(f"reason={record.reason!r}")
    if record.audit:
        fields.append(f"audit={record.audit!r}")
    return f"CallRecord({', '.join(fields)})"


def _time_note(record: CallView) -> str:
    took = format_seconds(record.seconds)
    if record.hit:
        return f"took {took}, saved {format_seconds(record.sampling_seconds)} of sampling"
    return f"took {took}, sampling {format_seconds(record.sampling_seconds)}"


def record_card(record: CallView) -> str:
    """A compact HTML card: hit/miss badge, key prefix, location, times, backend, reason."""
    current = state(record)
    escape = html.escape
    rows = [
        ("from" if record.hit else "stored", _location_html(record.location)),
        ("time", escape(_time_note(record))),
        ("backend", escape(record.backend or "unknown")),
    ]
    if record.reason:
        rows.append(("why", escape(record.reason)))
    if record.audit:
        rows.append(("audit", escape(f"failed: {record.audit}; sampled again")))
    body = "".join(
        f'<div><span style="opacity:0.7;display:inline-block;width:4.5em">{label}</span>'
        f"{value}</div>"
        for label, value in rows
    )
    key = escape(record.key[:KEY_PREFIX_LENGTH]) or "no key"
    header = (
        f"<div>{badge_html(current, current, '')} <b>{escape(record.kind)}</b> "
        f'<span style="{_MONO};opacity:0.8" title="{escape(record.key)}">{key}</span></div>'
    )
    style = _CARD_STYLE.format(color=BADGE_COLORS[current])
    return (
        f'<div class="cloudcache-card" data-state="{current}" style="{style}">{header}{body}</div>'
    )


def _location_html(location: str) -> str:
    return (
        f'<span style="{_MONO}" title="{html.escape(location)}">'
        f"{html.escape(short_location(location))}</span>"
    )


def _count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def calls_summary(records: Iterable[CallView]) -> str:
    """``"3 calls, 2 hits, 1 miss, saved 13.4 s of sampling"`` (``"no calls yet"``)."""
    records = list(records)
    if not records:
        return "no calls yet"
    hits = sum(record.hit for record in records)
    saved = format_seconds(sum(record.sampling_seconds for record in records if record.hit))
    return (
        f"{_count(len(records), 'call', 'calls')}, {_count(hits, 'hit', 'hits')}, "
        f"{_count(len(records) - hits, 'miss', 'misses')}, saved {saved} of sampling"
    )


def session_text(settings: str, records: Iterable[CallView]) -> str:
    """A session for a terminal: its ``settings``, a summary line, then one line per call."""
    records = list(records)
    lines = [f"cloudcache session ({settings}): {calls_summary(records)}"]
    for number, record in enumerate(records, start=1):
        key = record.key[:KEY_PREFIX_LENGTH] or "no key"
        lines.append(
            f"  {number}. {record.kind} {state(record)} {key} {short_location(record.location)}"
            f" ({_time_note(record)}, {record.backend or 'unknown backend'})"
        )
    return "\n".join(lines)


def calls_table(records: Iterable[CallView]) -> str:
    """An HTML table of calls (a session's, or any records) with hits and total time saved."""
    records = list(records)
    if not records:
        return '<div class="cloudcache-session">cloudcache: no calls yet</div>'
    head = "".join(
        f'<th style="{_CELL_STYLE}">{name}</th>'
        for name in ("#", "call", "result", "key", "location", "took", "saved")
    )
    rows = []
    for number, record in enumerate(records, start=1):
        current = state(record)
        saved = format_seconds(record.sampling_seconds) if record.hit else "–"
        cells = [
            str(number),
            html.escape(record.kind),
            badge_html(current, current, ""),
            f'<span style="{_MONO}">{html.escape(record.key[:KEY_PREFIX_LENGTH])}</span>',
            _location_html(record.location),
            format_seconds(record.seconds),
            saved,
        ]
        row = "".join(f'<td style="{_CELL_STYLE}">{cell}</td>' for cell in cells)
        rows.append(f'<tr class="cloudcache-row" data-state="{current}">{row}</tr>')
    caption = (
        f'<caption style="text-align:left;padding:2px 8px">cloudcache: '
        f"{html.escape(calls_summary(records))}</caption>"
    )
    return (
        f'<table class="cloudcache-session" style="{_TABLE_STYLE}">{caption}'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
