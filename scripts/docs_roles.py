"""A griffe extension for the API reference (mkdocs.yml): Sphinx roles as Markdown code.

The code's docstrings name other objects the Sphinx way (``:class:`CallRecord```,
``:meth:`~Store.get```) because editors and ``help()`` read them well; mkdocstrings would show
the role literally. At load time each role becomes an inline code span with the name as
written (``~`` keeps only the last part, as Sphinx does), and a ``:data:`X``` likewise.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: ``:role:`target``` or ``:role:`~dotted.target``` (any Sphinx/Python-domain role).
ROLE = re.compile(r":(?:py:)?(?:class|meth|func|data|attr|mod|exc|obj|const):`(~?)([^`]+)`")


def plain_roles(text: str) -> str:
    """``text`` with every Sphinx role turned into a Markdown code span."""

    def code(match: re.Match[str]) -> str:
        short, target = match.groups()
        shown = target.rsplit(".", 1)[-1] if short else target
        return f"`{shown}`"

    return ROLE.sub(code, text)


class SphinxRolesAsCode(griffe.Extension):
    """Rewrite the roles of every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)
