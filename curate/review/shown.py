"""A long value as a page shows it: its first ``SHOWN_CHARS`` characters, then a
"… (19.9 MB more)" link to the whole value as plain text (the ``/raw`` route), so that a
20 MB field does not make a 60 MB page.
"""
from __future__ import annotations

from urllib.parse import urlencode

from markupsafe import Markup, escape

SHOWN_CHARS = 20_000


def raw_link(row_id, *, field: str | None = None, export: str | None = None) -> str:
    """The address of a row's whole ``field``, or of its line in the ``export`` file."""
    which = {"field": field} if export is None else {"export": export}
    return "/raw?" + urlencode({"id": row_id, **which})


def size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(n / 1e3, 0.1):.1f} KB"


class Shown:
    """Text for a template: Jinja renders it escaped, cut after ``SHOWN_CHARS`` characters
    with a link to ``href`` (where the whole text is) saying how much was left out."""

    __slots__ = ("text", "more", "href")

    def __init__(self, text: str, href: str):
        self.text, self.href = text[:SHOWN_CHARS], href
        cut = len(text) > SHOWN_CHARS
        self.more = len(text.encode()) - len(self.text.encode()) if cut else 0

    def __html__(self) -> str:
        if not self.more:
            return escape(self.text)
        return escape(self.text) + Markup('<a class="more" href="{}">… ({} more)</a>').format(
            self.href, size(self.more))

    def __str__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return bool(self.text)
