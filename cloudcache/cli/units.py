"""Sizes, ages, counts and untrusted text as people type and read them: ``5GB``, ``1 entry``."""

from __future__ import annotations

import re
import unicodedata

SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
AGE_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
}
_NUMBER_AND_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """``"5GB"`` -> 5_000_000_000; ``"512MiB"`` -> 536_870_912; a bare number is bytes."""
    match = _NUMBER_AND_UNIT.match(text)
    unit = match[2].lower() if match else None
    if match is None or unit not in SIZE_UNITS:
        valid = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
        raise ValueError(f"size {text!r} is not a number with a unit ({valid}), e.g. 5GB")
    return int(float(match[1]) * SIZE_UNITS[unit])


def parse_age(text: str) -> float:
    """``"30d"`` -> seconds; units s, m/min, h, d, w."""
    match = _NUMBER_AND_UNIT.match(text)
    unit = match[2].lower() if match else None
    if match is None or unit not in AGE_UNITS:
        raise ValueError(f"age {text!r} is not a number with a unit (s, min, h, d, w), e.g. 30d")
    return float(match[1]) * AGE_UNITS[unit]


def format_size(size: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as ``--max-size`` reads them)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as one safe line: control and format characters (terminal escape sequences,
    bidirectional overrides, newlines) shown as ``\\x1b``-style escapes, cut to ``limit``."""
    text = value if isinstance(value, str) else _safe_str(value)
    shown = "".join(
        _escape(char) if unicodedata.category(char) in _UNPRINTABLE else char for char in text
    )
    if limit is not None and len(shown) > limit:
        shown = shown[: max(limit - 3, 0)] + "..."
    return shown


_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception as error:  # a hostile __str__ must not break a listing
        return f"<unprintable {type(value).__name__}: {type(error).__name__}>"


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``counted(1, "entry", "entries")`` -> ``"1 entry"``; ``counted(2, "problem")`` ->
    ``"2 problems"`` (the plural defaults to the singular plus ``s``)."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
