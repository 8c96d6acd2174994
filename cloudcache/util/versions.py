"""Installed library versions, looked up once per process without an ``importlib.metadata`` scan.

``importlib.metadata.version`` reads and parses metadata files: about 30 ms per package in a
fresh process, which a disk hit would pay for six packages. The versions sit in the names of
the ``<name>-<version>.dist-info`` directories already, so one listing of each ``sys.path``
entry finds them all; anything not found that way falls back to ``importlib.metadata``.
"""

from __future__ import annotations

import functools
import os
import sys

#: The folders installers put distributions in.
INSTALL_DIRECTORIES: frozenset[str] = frozenset({"site-packages", "dist-packages"})


#: ``_`` and ``.`` as ``-`` (a translation table: a regex per name cost a fresh hit ~0.5 ms).
SEPARATORS = str.maketrans("_.", "--")


def normalized(name: str) -> str:
    """The comparable form of a distribution name (PEP 503: lower case, ``-`` for ``-_.``)."""
    text = name.translate(SEPARATORS).lower()
    while "--" in text:
        text = text.replace("--", "-")
    return text


@functools.cache
def dist_info_versions() -> dict[str, str]:
    """``{normalized name: version}`` from the ``.dist-info`` directories on ``sys.path``.

    Only ``site-packages``/``dist-packages`` entries are listed (installers put distributions
    there; listing a script's own folder, which may hold thousands of files, cost a fresh hit
    ~13 ms); a package found nowhere here falls back to ``importlib.metadata``. The first
    entry of ``sys.path`` that has a package wins, as for imports.
    """
    found: dict[str, str] = {}
    for directory in sys.path:
        if os.path.basename(os.path.normpath(directory)) not in INSTALL_DIRECTORIES:
            continue
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for entry in names:
            if entry.endswith(".dist-info"):
                name, _, number = entry[: -len(".dist-info")].partition("-")
                if number:
                    found.setdefault(normalized(name), number)
    return found


@functools.cache
def installed_version(package: str) -> str:
    """The installed version of ``package``, or ``"missing"``."""
    known = dist_info_versions().get(normalized(package))
    if known is not None:
        return known
    # Imported only here: importing importlib.metadata alone costs ~20 ms in a fresh process.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "missing"


def installed_versions(*packages: str) -> dict[str, str]:
    """``{package: version}`` for each of ``packages``."""
    return {package: installed_version(package) for package in packages}
