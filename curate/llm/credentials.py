"""The API key: held out of sight, scrubbed from what servers echo, kept out of URLs."""
from __future__ import annotations

import base64
import functools
import html
import json
import re
from urllib.parse import quote, quote_plus

from ..errors import CurateError

PLACEHOLDER = "not-needed"  # sent as the key when none is set (local servers need none)


class Secret:
    """Holds the API key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def credential(self) -> str | None:
        """The key when it is one (set, and long enough to be no common word): what is
        scrubbed from replies, which a short placeholder such as "x" would garble."""
        return self._value if len(self._value) >= 8 and self._value != PLACEHOLDER else None

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


def redact_url(url: str | None) -> str | None:
    """The URL without any ``user:password@`` part or query values (``?key=***``)."""
    if not url:
        return url
    url = re.sub(r"//[^/@]+@", "//", url)
    return re.sub(r"([?&][^=&#]*=)[^&#]*", r"\1***", url)


def checked_url(url: str | None, source: str) -> str | None:
    """``url``, or a one-line error for a query string: the SDK appends its paths after it,
    and it often holds a key that would show wherever the URL does."""
    if url and "?" in url:
        raise CurateError(f"LLM: {source} {redact_url(url)} has a query string, which the "
                          f"request paths would be appended after (every request would "
                          f"fail); remove it, and pass a key as api_key= or OPENAI_API_KEY "
                          f"(sent as a header)")
    return url


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by ``***`` in every form a server may echo it:
    as it is, percent-encoded (either case), form-encoded, JSON- or HTML-escaped, and in
    base64 (standard or URL-safe, at any offset of a longer encoded text such as a
    ``Bearer`` header)."""
    if not secret or not text:
        return text
    for form in _forms(secret):
        if form in text:
            text = text.replace(form, "***")
    return text


def one_line(text: str, limit: int = 300, secret: str | None = None) -> str:
    """Collapse whitespace, remove ``secret`` (see :func:`scrub`), cut to ``limit`` characters."""
    text = " ".join(scrub(str(text), secret).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.lru_cache(maxsize=16)
def _forms(secret: str) -> tuple[str, ...]:
    forms = {secret}
    if len(secret) >= 8:  # a short "key" is no credential, and its encodings match by chance
        for encoded in (quote(secret, safe=""), quote(secret)):
            forms |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)}
        escaped = json.dumps(secret)[1:-1]
        forms |= {quote_plus(secret), escaped, escaped.replace("/", "\\/"),
                  html.escape(secret), secret.replace("/", "&#x2F;")}
        data = secret.encode()
        for offset in range(3):  # the characters that only the secret's bytes decide
            encoded = base64.b64encode(b"\0" * offset + data).decode()
            total = offset + len(data)
            core = encoded[(0, 2, 3)[offset]:4 * (total // 3) + total % 3]
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    return tuple(sorted(forms, key=len, reverse=True))
