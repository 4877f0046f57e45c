"""Reading model outputs and column lists that arrive as text.

Models emit JSON, or the Python repr of a dict (single quotes, ``True``/``None``);
data files hold column lists as JSON lists, Python lists or comma-joined names.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

__all__ = ["ParseError", "load_object", "parse_names"]


class ParseError(ValueError):
    """Text that is neither JSON nor a Python literal."""


def load_object(text: str | bytes) -> Any:
    """Parse JSON, falling back to a Python literal (``ast.literal_eval``, never ``eval``)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ParseError("the text is empty")
    try:
        return json.loads(stripped)
    except ValueError as json_error:
        try:
            return ast.literal_eval(stripped)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ParseError(str(json_error)) from None


def parse_names(names: str | Iterable[Any]) -> frozenset[str]:
    """A set of names from an iterable, a JSON/Python list in a string, or a comma-joined string."""
    if isinstance(names, (str, bytes)):
        text = names.decode("utf-8") if isinstance(names, bytes) else names
        return _parse_name_text(text)
    if isinstance(names, (set, frozenset)) and all(isinstance(name, str) for name in names):
        return frozenset(names)
    try:
        return frozenset(str(name) for name in names)
    except TypeError:
        raise TypeError(f"expected column names as an iterable or a string, got {type(names).__name__}") from None


@lru_cache(maxsize=4096)
def _parse_name_text(text: str) -> frozenset[str]:
    # Cached: the same column list string is checked against many queries.
    stripped = text.strip()
    if stripped.startswith(("[", "(")):
        try:
            loaded = load_object(stripped)
        except ParseError:
            loaded = None
        if isinstance(loaded, (list, tuple)):
            return frozenset(str(name).strip() for name in loaded)
    return frozenset(name.strip() for name in stripped.split(",") if name.strip())
