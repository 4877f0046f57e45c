"""Batch files: request lines in, result lines out (OpenAI's Batch API format).

An input line carries the body the online request would send, and its cache key as
``custom_id``: a result line maps back to its request and cache entry with no lookup table.
Whether a failed line is worth another batch follows the online rules.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..credentials import one_line
from ..types import Completion
from ..wire import RETRY_STATUS, MalformedReply, completion_of, error_message

CHAT_URL = "/v1/chat/completions"
RETRY_CODES = re.compile(r"expired|cancel|server|rate_limit|timeout|overloaded|unavailable|"
                         r"internal", re.IGNORECASE)


def input_line(custom_id: str, body: dict) -> bytes:
    """One line of a batch input file (JSON, newline-terminated)."""
    line = {"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": body}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def split_lines(lines: list[tuple[str, bytes]], max_requests: int,
                max_bytes: int) -> tuple[list[list[tuple[str, bytes]]], list[str]]:
    """``(chunks, too_large)``: lines grouped in order into files of at most
    ``max_requests`` lines and ``max_bytes`` bytes; keys of lines larger than a file alone."""
    chunks: list[list[tuple[str, bytes]]] = []
    too_large, size = [], 0
    for key, line in lines:
        if len(line) > max_bytes:
            too_large.append(key)
            continue
        if not chunks or len(chunks[-1]) >= max_requests or size + len(line) > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append((key, line))
        size += len(line)
    return chunks, too_large


@dataclass
class LineResult:
    """The outcome of one batch line: a completion, or a failure and whether to retry."""

    completion: Completion | None = None
    reason: str = ""
    retry: bool = False
    status: int | None = None


def read_line(record: dict, model: str) -> LineResult:
    """One result line (from the output or the error file) as a :class:`LineResult`."""
    response = record.get("response") if isinstance(record.get("response"), dict) else None
    error = record.get("error") if isinstance(record.get("error"), dict) else None
    status = response.get("status_code") if response else None
    if status == 200 and not error:
        try:
            return LineResult(completion_of(response.get("body"), model), status=200)
        except MalformedReply as bad:
            return LineResult(reason=str(bad), retry=True, status=200)
    if response is not None and status is not None:
        code, body = int(status), response.get("body")
        message = one_line(error_message(body, str(body or "error")))
        return LineResult(reason=f"HTTP {code}: {message}",
                          retry=code in RETRY_STATUS or code >= 500, status=code)
    if error is not None:
        code = str(error.get("code") or "error")
        message = one_line(str(error.get("message") or code))
        return LineResult(reason=f"{code}: {message}", retry=bool(RETRY_CODES.search(code)))
    return LineResult(reason="the provider wrote a result line without a response or error",
                      retry=True)


def read_results(texts: list[str], model: str) -> tuple[dict[str, LineResult], int]:
    """Result lines by ``custom_id`` from the output and error files' text, and the number
    of lines that could not be read (not JSON, no custom_id). A completion wins over a
    failure for the same ``custom_id``."""
    results: dict[str, LineResult] = {}
    unreadable = 0
    for raw in (line for text in texts for line in text.splitlines()):
        if raw.strip():
            try:
                record = json.loads(raw)
                custom_id = record["custom_id"]
            except (ValueError, KeyError, TypeError):
                unreadable += 1
                continue
            result = read_line(record, model)
            known = results.get(custom_id)
            if known is None or (known.completion is None and result.completion is not None):
                results[custom_id] = result
    return results, unreadable


def missing_result(batch_id: str, status: str, errors: list[str]) -> LineResult:
    """The result of a line the provider did not answer (an expired, failed or cancelled
    batch): worth another batch, with the batch's own error when it gave one."""
    why = f": {errors[0]}" if errors else ""
    return LineResult(reason=f"batch {batch_id} ended {status} without a result for this "
                             f"request{why}", retry=True)
