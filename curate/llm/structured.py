"""Structured output: find the JSON in a reply (:func:`extract_json`), validate it, and ask
once more, with the error, for each reply the parser rejects (:func:`complete_parsed`)."""
from __future__ import annotations

import ast
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from ..errors import CurateError
from .credentials import one_line
from .types import PARSE_FAILED, Completion, Failure, Request

JSON_CORRECTION = ("Your reply could not be used: {error}. Reply again with only the "
                   "corrected JSON, no other text.")
TEXT_CORRECTION = ("Your reply could not be used: {error}. Answer again, following the "
                   "requested format exactly.")

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|python|py)?[ \t]*\n?(.*?)```", re.DOTALL)


class ParseError(CurateError):
    """A reply that does not contain what the stage asked for (one line, shown to the model)."""


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the bracket that closes ``text[start]`` (quotes respected)."""
    depth, quote, escaped = 0, None, False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _loads(candidate: str):
    candidate = candidate.strip()
    try:
        return True, json.loads(candidate)
    except ValueError:
        pass
    try:
        value = ast.literal_eval(candidate)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None
    return (True, value) if isinstance(value, (dict, list)) else (False, None)


def extract_json(text: str) -> Any:
    """The JSON value in a reply: bare, in a fenced block, embedded in prose, or a Python
    literal (``{'a': True}``). Raises :class:`ParseError` when there is none."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("the reply is empty")
    for candidate in [text, *(m.group(1) for m in _FENCE.finditer(text))]:
        ok, value = _loads(candidate)
        if ok:
            return value
    for start in [m.start() for m in re.finditer(r"[\[{]", text)][:50]:
        end = _balanced_end(text, start)
        if end is not None:
            ok, value = _loads(text[start:end])
            if ok:
                return value
    raise ParseError(f"no JSON object or list found in the reply (it starts: "
                     f"{one_line(text, 60)!r})")


@functools.lru_cache(maxsize=64)
def _validator(schema_text: str):
    schema = json.loads(schema_text)
    return jsonschema.validators.validator_for(schema)(schema)


def check_schema_valid(schema: dict) -> None:
    """Raise a one-line :class:`CurateError` if ``schema`` is not a valid JSON Schema."""
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise CurateError(f"invalid JSON Schema: {error.message}") from None


def validate(value: Any, schema: dict | None) -> Any:
    """Return ``value`` if it matches ``schema``; else raise :class:`ParseError` naming where."""
    if schema is None:
        return value
    validator = _validator(json.dumps(schema, sort_keys=True))
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return value
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    raise ParseError(f"the JSON does not match the schema at {where}: "
                     f"{one_line(error.message, 200)}")


def parse_json(text: str, schema: dict | None = None) -> Any:
    """:func:`extract_json` then :func:`validate`."""
    return validate(extract_json(text), schema)


def error_line(error: BaseException) -> str:
    """An exception as one line (the parser's own errors keep their message only)."""
    if isinstance(error, ParseError):
        return one_line(str(error))
    return one_line(f"{type(error).__name__}: {error}")


@dataclass
class Parsed:
    """A reply the parser accepted: the parsed value, the completion, and 1 or 2 tries."""

    value: Any
    completion: Completion
    tries: int = 1
    ok = True


def complete_parsed(llm, requests: list[Request], parse, *,
                    usage=None, meter=None, retry: bool = True,
                    correction: str = JSON_CORRECTION) -> list[Parsed | Failure]:
    """Complete and parse each request; retry once with the error for replies that fail.

    ``parse(text)`` returns the value or raises (any exception is a bad reply), or is a list
    of parsers, one per request. Returns a :class:`Parsed` or a :class:`Failure` per request:
    the client's failure when the request gave no reply, or ``llm_parse_failed`` with the
    last bad reply in ``text``. ``meter`` (optional) gets ``advance()`` per finished request
    and ``grow(n)`` before the retry round.
    """
    parsers = list(parse) if isinstance(parse, (list, tuple)) else [parse] * len(requests)
    on_result = (lambda i, r: meter.advance()) if meter is not None else None
    first = llm.complete_many(requests, usage=usage, on_result=on_result)
    out: list[Parsed | Failure | None] = [None] * len(requests)
    pending: list[tuple[int, str, str]] = []
    for i, result in enumerate(first):
        if isinstance(result, Failure):
            out[i] = result
            continue
        try:
            out[i] = Parsed(parsers[i](result.text), result)
        except Exception as error:  # a bad reply, whatever the parser raised
            if retry:
                pending.append((i, error_line(error), result.text))
            else:
                out[i] = Failure(PARSE_FAILED, error_line(error), 1, text=result.text)
    if pending:
        if meter is not None:
            meter.grow(len(pending))
        again = [requests[i].followed_by(text, correction.format(error=msg))
                 for i, msg, text in pending]
        second = llm.complete_many(again, usage=usage, on_result=on_result)
        for (i, msg, text), result in zip(pending, second):
            out[i] = _second_try(result, parsers[i], msg, text)
    return out  # type: ignore[return-value]


def _second_try(result, parse, first_error: str, first_text: str) -> Parsed | Failure:
    if isinstance(result, Failure):
        return Failure(PARSE_FAILED, f"{first_error}; the corrective retry failed too: "
                       f"{result.reason}", 2, text=result.text or first_text)
    try:
        return Parsed(parse(result.text), result, tries=2)
    except Exception as error:  # still bad after the retry: the row is errored
        return Failure(PARSE_FAILED, f"{error_line(error)} (after one corrective retry)", 2,
                       text=result.text)
