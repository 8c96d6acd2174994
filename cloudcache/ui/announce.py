"""Hit/miss messages: a line on stderr, or a small HTML badge in Jupyter and marimo.

Every message also goes to ``logging.getLogger("cloudcache")``, whatever ``quiet`` says.
Front ends are detected without importing anything new: a running IPython kernel gets
``IPython.display.display(HTML(...))``, a running marimo notebook gets
``marimo.output.append(marimo.Html(...))``, anything else (terminals, scripts, ``marimo run``
as a script, plain ``ipython``) gets one line on stderr.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import sys
from typing import Literal

logger = logging.getLogger("cloudcache")

FrontEnd = Literal["jupyter", "marimo", "terminal"]

_BADGE_STYLE = (
    "display:inline-block;padding:2px 8px;margin:2px 0;border-radius:4px;"
    "font-family:monospace;font-size:0.85em;color:#fff;background:{color}"
)
#: Badge colours by kind (hit/miss lines, display cards); unknown kinds get "note".
BADGE_COLORS = {
    "hit": "#2e7d32",
    "miss": "#1565c0",
    "uncached": "#b26a00",
    "note": "#616161",
    "warning": "#b26a00",
}


def announce(
    message: str, *, quiet: bool, level: int = logging.INFO, html_text: str | None = None
) -> None:
    """Log ``message``; unless ``quiet``, show it (``html_text`` instead, in notebooks)."""
    logger.log(level, message)
    if quiet:
        return
    if html_text is not None and show_html(html_text):
        return
    print(f"cloudcache: {message}", file=sys.stderr, flush=True)


def announce_hit(
    *, prefix: str, location: str, created: object, saved_seconds: float, quiet: bool
) -> None:
    """One line (or badge) for a hit: key prefix, where from, age and sampling time saved."""
    age = format_age(created)
    age = "age unknown" if age == "unknown age" else f"{age} old"
    saved = format_seconds(saved_seconds)
    message = f"hit {prefix} from {location} ({age}) - saved {saved} of sampling"
    badge = badge_html(
        "hit", f"cloudcache hit {prefix}", f"from {location} · {age} · saved {saved}"
    )
    announce(message, quiet=quiet, html_text=badge)


def announce_miss(
    *, prefix: str, model: str, label: str, backend: str, device: str, quiet: bool
) -> None:
    """One line (or badge) for a miss: what is sampled, with which backend, on which device."""
    message = f"miss {prefix} - sampling {model} ({label}) with {backend} on {device}"
    badge = badge_html(
        "miss",
        f"cloudcache miss {prefix}",
        f"sampling {model} ({label}) with {backend} on {device}",
    )
    announce(message, quiet=quiet, html_text=badge)


def announce_block(title: str, lines: list[str], *, quiet: bool, level: int = logging.INFO) -> None:
    """A short multi-line report (such as a miss explanation): indented lines under a title."""
    message = "\n".join([title, *(f"  {line}" for line in lines)])
    body = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    block = (
        f'<div style="font-family:monospace;font-size:0.85em">'
        f"<b>cloudcache: {html.escape(title)}</b><ul style='margin:2px 0'>{body}</ul></div>"
    )
    announce(message, quiet=quiet, level=level, html_text=block)


def badge_html(kind: str, title: str, detail: str) -> str:
    """A small inline badge: bold ``title`` then ``detail``, coloured by ``kind``."""
    style = _BADGE_STYLE.format(color=BADGE_COLORS.get(kind, BADGE_COLORS["note"]))
    return (
        f'<span class="cloudcache-{html.escape(kind)}" style="{style}">'
        f"<b>{html.escape(title)}</b> {html.escape(detail)}</span>"
    )


def front_end() -> FrontEnd:
    """Where output goes: a marimo notebook, a Jupyter (IPython kernel) notebook, or stderr."""
    marimo = sys.modules.get("marimo")
    if marimo is not None:
        try:
            if marimo.running_in_notebook():
                return "marimo"
        except Exception:  # an old or partially imported marimo: treat as absent
            pass
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        try:
            shell = ipython.get_ipython()
        except Exception:
            shell = None
        if shell is not None and getattr(shell, "kernel", None) is not None:
            return "jupyter"
    return "terminal"


def show_html(markup: str) -> bool:
    """Display ``markup`` in the running notebook; ``False`` when there is none (or it fails)."""
    target = front_end()
    try:
        if target == "marimo":
            import marimo

            marimo.output.append(marimo.Html(markup))
            return True
        if target == "jupyter":
            from IPython.display import HTML, display

            display(HTML(markup))
            return True
    except Exception as error:  # never let a display problem break a sampling call
        logger.debug("cloudcache: notebook display failed (%s); using stderr", error)
    return False


def format_seconds(seconds: float) -> str:
    """``0.0123`` -> ``"12 ms"``; ``75`` -> ``"1 min 15 s"``; ``7200`` -> ``"2 h 0 min"``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s"
    if seconds < 86400:
        hours, rest = divmod(round(seconds), 3600)
        return f"{hours} h {rest // 60} min"
    days, rest = divmod(round(seconds), 86400)
    return f"{days} d {rest // 3600} h"


def format_age(created: object, now: dt.datetime | None = None) -> str:
    """Age of an ISO ``created`` time as ``format_seconds`` text (``"unknown age"`` if bad)."""
    try:
        stamp = dt.datetime.fromisoformat(str(created))
    except ValueError:
        return "unknown age"
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return format_seconds(max(0.0, (now - stamp).total_seconds()))
