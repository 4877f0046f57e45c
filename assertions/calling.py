"""How checkers are called and what they may return: one convention for every caller.

A checker's **parameter names are the row fields it reads**: ``check(query, columns)`` gets
``row["query"]`` and ``row["columns"]``; ``check_fields={"query": "sql"}`` maps a parameter to
another field, and a lone parameter named ``row`` gets the whole row. Curation, repair, the
trainer's evaluation and self-healing all call checkers through :func:`call_checker`.

A checker returns failures (``Failure``s, ``(rule, message)`` pairs, ``{"rule", "message"}``
dicts or strings), ``None``/``True`` when valid, or ``False``; :func:`as_failures` reads them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from assertions.core import Failure

__all__ = ["CheckerCallError", "as_failures", "call_checker", "checker_fields", "load_function"]


class CheckerCallError(LookupError):
    """The row does not hold a field the checker needs (the message names it)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def as_failures(result: Any) -> list[Failure]:
    """A checker's return value as a list of :class:`Failure` (empty: valid)."""
    if result is None or result is True:
        return []
    if result is False:
        return [Failure("check_failed", "the check returned False")]
    if isinstance(result, str):
        return [Failure("check_failed", result)]
    if isinstance(result, Failure):
        return [result]
    out = []
    for item in result:
        if isinstance(item, Failure):
            out.append(item)
        elif hasattr(item, "rule"):
            out.append(Failure(str(item.rule), str(getattr(item, "message", item.rule))))
        elif isinstance(item, Mapping) and "rule" in item:
            out.append(Failure(str(item["rule"]), str(item.get("message", item["rule"]))))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append(Failure(str(item[0]), str(item[1])))
        else:
            out.append(Failure("check_failed", str(item)))
    return out


def load_function(ref: str | Callable, what: str = "function") -> Callable:
    """A callable, or the function a ``"module:function"`` reference names (else ValueError)."""
    if callable(ref):
        return ref
    if not isinstance(ref, str) or ":" not in ref:
        raise ValueError(f"expected a {what} or a 'module:function' reference, got {ref!r}")
    module_name, _, name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import {module_name!r} for the {what} {ref!r}: {error}") from None
    value = getattr(module, name, None)
    if not callable(value):
        raise ValueError(f"{module_name} has no {what} named {name!r} (from {ref!r})")
    return value


def _signature(check: Callable) -> tuple[tuple[str, bool], ...] | None:
    """``((name, required), ...)`` of the named parameters; None for ``*args`` or no signature."""
    try:
        return _cached_signature(check)
    except TypeError:  # an unhashable callable
        return _cached_signature.__wrapped__(check)


@lru_cache(maxsize=256)
def _cached_signature(check: Callable) -> tuple[tuple[str, bool], ...] | None:
    try:
        params = inspect.signature(check).parameters.values()
    except (TypeError, ValueError):
        return None
    named = []
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind is p.VAR_KEYWORD:
            continue
        named.append((p.name, p.default is p.empty))
    return tuple(named)


def checker_fields(check: Callable, check_fields: Mapping[str, str] | Sequence[str] | None = None) -> dict[str, str]:
    """``{parameter: row field}`` for every parameter; ``check_fields`` maps parameters to
    fields (a mapping) or lists the fields in the order of the parameters (a sequence)."""
    signature = _signature(check)
    if isinstance(check_fields, Sequence) and not isinstance(check_fields, str):
        names = [name for name, _ in signature] if signature else \
            [f"arg{i}" for i in range(len(check_fields))]
        return dict(zip(names, check_fields))
    mapping = dict(check_fields or {})
    if signature is None:
        return mapping
    return {name: mapping.get(name, name) for name, _ in signature}


def call_checker(check: Callable, row: Mapping,
                 check_fields: Mapping[str, str] | Sequence[str] | None = None) -> list[Failure]:
    """Call ``check`` on one row by the convention above; return its failures.

    Raises :class:`CheckerCallError` when the row lacks a field a required parameter needs;
    the checker's own exceptions propagate.
    """
    signature = _signature(check)
    if signature is not None and [name for name, _ in signature] == ["row"] and not check_fields:
        return as_failures(check(row))
    mapping = checker_fields(check, check_fields)
    if signature is None:  # a checker taking *args: the fields go in positionally, in order
        missing = [f for f in mapping.values() if f not in row]
        if missing:
            raise CheckerCallError(missing[0], f"the row does not have the field {missing[0]!r}")
        return as_failures(check(*(row[f] for f in mapping.values())))
    required = {name for name, req in signature if req}
    kwargs = {}
    for param, field in mapping.items():
        if field in row:
            kwargs[param] = row[field]
        elif param in required:
            raise CheckerCallError(field, f"the checker's parameter {param!r} reads the field "
                                          f"{field!r}, which the row does not have")
    return as_failures(check(**kwargs))
