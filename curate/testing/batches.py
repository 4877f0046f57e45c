"""A loopback Batch API: :class:`ScriptedServer` with OpenAI's Files and Batches endpoints.

    with BatchServer(reply, in_progress_seconds=0.5) as server:
        llm = LLM("scripted", base_url=server.base_url, api_key="x",
                  batch=BatchOptions(poll_every=0.02, max_poll_every=0.1))

A batch runs in a thread: ``validating``, ``in_progress`` (``in_progress_seconds`` before
the first line), ``finalizing``, ``completed``. Every line is answered by the code that
answers an online request (reply function, fault hooks, dialect checks); a line whose answer
is not a 200 goes to the error file with its status and body.
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import time
from collections import Counter, defaultdict, deque
from urllib.parse import parse_qs, urlsplit

from .server import Fault, ScriptedServer

CHAT_URL = "/v1/chat/completions"
_ROUTES = [
    ("POST", re.compile(r"/files"), "upload"),
    ("GET", re.compile(r"/files/(?P<id>[^/]+)/content"), "content"),
    ("GET", re.compile(r"/files/(?P<id>[^/]+)"), "file"),
    ("POST", re.compile(r"/batches"), "create"),
    ("GET", re.compile(r"/batches"), "list"),
    ("GET", re.compile(r"/batches/(?P<id>[^/]+)"), "retrieve"),
    ("POST", re.compile(r"/batches/(?P<id>[^/]+)/cancel"), "cancel"),
]


class _Capture:
    """Stands in for the HTTP handler while a batch line is answered: keeps the answer."""

    status, payload, dropped = None, b"", False

    def _send_json(self, status: int, body: dict, headers=None) -> None:
        self._send_raw(status, json.dumps(body).encode(), headers)

    def _send_raw(self, status: int, payload: bytes, headers=None) -> None:
        self.status, self.payload = status, payload

    def _drop(self) -> None:
        self.dropped = True


class BatchServer(ScriptedServer):
    """A :class:`ScriptedServer` that also serves ``/v1/files`` and ``/v1/batches`` (upload,
    file, content, create, list in pages of ``limit`` after ``after``, retrieve, cancel).

    Args:
        reply, and every other keyword of :class:`ScriptedServer`.
        validating_seconds: time a new batch spends ``validating``.
        in_progress_seconds: time it spends ``in_progress`` before answering lines.
        line_seconds: time per answered line (so ``request_counts`` move while it runs).
        expire: ``expire(batch_number) -> int | None``: batch ``n`` (from 1) expires after
            answering that many lines (the rest go to the error file as ``batch_expired``).

    Counters: ``api_calls`` (per operation), ``lines_processed`` (lines that ran the reply
    function), ``paid`` (200 lines per ``custom_id``: paid twice shows 2), ``files``,
    ``batches``.
    """

    def __init__(self, reply=None, *, validating_seconds: float = 0.0,
                 in_progress_seconds: float = 0.0, line_seconds: float = 0.0,
                 expire=None, **kwargs):
        super().__init__(reply, **kwargs)
        self.validating_seconds, self.in_progress_seconds = validating_seconds, in_progress_seconds
        self.line_seconds, self.expire = line_seconds, expire
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.api_calls: Counter = Counter()
        self.paid: Counter = Counter()
        self.lines_processed = 0
        self._api_faults: dict[str, deque] = defaultdict(deque)
        self._closing = threading.Event()

    def stop(self) -> None:
        self._closing.set()
        super().stop()

    def inject_api(self, op: str, *faults: Fault) -> None:
        """Queue faults for the next calls of one operation (``upload``, ``create``, ``list``,
        ``retrieve``, ``cancel``, ``file``, ``content``)."""
        with self._lock:
            self._api_faults[op].extend(faults)

    def status_of(self, batch_id: str) -> str:
        with self._lock:
            return self.batches[batch_id]["status"]

    # -- routing ----------------------------------------------------------------------------
    def route(self, handler, method: str, raw: bytes) -> bool:
        super().route(handler, method, raw)
        path = urlsplit(handler.path).path.removeprefix("/v1")
        for verb, pattern, op in _ROUTES:
            match = pattern.fullmatch(path)
            if verb == method and match:
                break
        else:
            return False
        with self._lock:
            self.api_calls[op] += 1
            fault = self._api_faults[op].popleft() if self._api_faults[op] else None
        if fault is not None and fault.kind != "slow":
            self._apply(handler, fault, dict(handler.headers))
            return True
        if fault is not None:
            time.sleep(fault.seconds)
        status, body = getattr(self, f"_op_{op}")(handler, raw, match.groupdict().get("id"))
        handler._send_raw(status, body if isinstance(body, bytes) else json.dumps(body).encode())
        return True

    @staticmethod
    def _error(status: int, message: str) -> tuple[int, dict]:
        return status, {"error": {"message": message, "type": "invalid_request_error"}}

    # -- files ------------------------------------------------------------------------------
    def _op_upload(self, handler, raw: bytes, _):
        kind = handler.headers.get("Content-Type", "")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {kind}\r\n\r\n".encode() + raw)
        if not message.is_multipart():
            return self._error(400, "expected a multipart/form-data upload")
        fields = {part.get_param("name", header="content-disposition"):
                  (part.get_filename(), part.get_payload(decode=True))
                  for part in message.iter_parts()}
        if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"batch":
            return self._error(400, "an upload needs a file and purpose 'batch'")
        file_id = self._add_file(fields["file"][0] or "upload", fields["file"][1], "batch")
        return self._op_file(handler, raw, file_id)

    def _op_file(self, handler, raw, file_id, content: bool = False):
        with self._lock:
            record = self.files.get(file_id)
        if record is None:
            return self._error(404, f"No such File object: {file_id}")
        return 200, record["content"] if content else \
            {k: v for k, v in record.items() if k != "content"}

    def _op_content(self, handler, raw, file_id):
        return self._op_file(handler, raw, file_id, content=True)

    def _add_file(self, name: str, content: bytes, purpose: str) -> str:
        with self._lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content),
                                   "created_at": int(time.time()), "filename": name,
                                   "purpose": purpose, "status": "processed", "content": content}
        return file_id

    def _add_lines(self, name: str, lines: list[dict]) -> str | None:
        if not lines:
            return None
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return self._add_file(name, content, "batch_output")

    # -- batches ----------------------------------------------------------------------------
    def _op_create(self, handler, raw, _):
        body = json.loads(raw or b"{}")
        with self._lock:
            known = body.get("input_file_id") in self.files
        if not known:
            return self._error(400, f"No such File object: {body.get('input_file_id')}")
        if body.get("endpoint") != CHAT_URL or body.get("completion_window") != "24h":
            return self._error(400, "endpoint must be /v1/chat/completions and "
                                    "completion_window 24h")
        now = int(time.time())
        with self._lock:
            number = len(self.batches) + 1
            batch = {"id": f"batch_{number}", "object": "batch", "endpoint": CHAT_URL,
                     "errors": None, "input_file_id": body["input_file_id"],
                     "completion_window": "24h", "status": "validating",
                     "output_file_id": None, "error_file_id": None, "created_at": now,
                     "expires_at": now + 86400, "request_counts":
                         {"total": 0, "completed": 0, "failed": 0},
                     "metadata": body.get("metadata")}
            self.batches[batch["id"]] = batch
            answer = json.loads(json.dumps(batch))
        threading.Thread(target=self._work, args=(batch["id"], number, dict(handler.headers)),
                         name=f"scripted-batch-{number}", daemon=True).start()
        return 200, answer

    def _op_list(self, handler, raw, _):
        """Newest first, ``limit`` (default 20, at most 100) a page, from ``after`` an id."""
        query = parse_qs(urlsplit(handler.path).query)
        limit = min(100, max(1, int(query.get("limit", ["20"])[0])))
        with self._lock:
            data = json.loads(json.dumps(list(reversed(self.batches.values()))))
        ids = [batch["id"] for batch in data]
        after = query.get("after", [None])[0]
        start = ids.index(after) + 1 if after in ids else 0
        page = data[start:start + limit]
        return 200, {"object": "list", "data": page, "has_more": start + limit < len(data),
                     "first_id": page[0]["id"] if page else None,
                     "last_id": page[-1]["id"] if page else None}

    def _op_retrieve(self, handler, raw, batch_id):
        with self._lock:
            return self._batch_or_404(batch_id)

    def _op_cancel(self, handler, raw, batch_id):
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is not None and batch["status"] in ("validating", "in_progress"):
                batch.update(status="cancelling", cancelling_at=int(time.time()))
            return self._batch_or_404(batch_id)

    def _batch_or_404(self, batch_id: str) -> tuple[int, dict]:
        """A copy of the batch as it stands, or a 404 (called with the lock held)."""
        batch = self.batches.get(batch_id)
        return (200, json.loads(json.dumps(batch))) if batch else \
            self._error(404, f"No such batch: {batch_id}")

    # -- working on a batch (its own thread) -------------------------------------------------
    def _set(self, batch: dict, **changes) -> None:
        with self._lock:
            batch.update(changes)

    def _wait(self, seconds: float, batch: dict) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and batch["status"] != "cancelling" \
                and not self._closing.is_set():
            time.sleep(0.005)

    def _work(self, batch_id: str, number: int, headers: dict) -> None:
        batch = self.batches[batch_id]
        self._wait(self.validating_seconds, batch)
        lines, problem = self._input_lines(batch["input_file_id"])
        if problem is not None:
            self._set(batch, status="failed", failed_at=int(time.time()), errors={
                "object": "list", "data": [{"code": "invalid_request", "message": problem}]})
            return
        self._set(batch, status="in_progress", in_progress_at=int(time.time()),
                  request_counts={"total": len(lines), "completed": 0, "failed": 0})
        self._wait(self.in_progress_seconds, batch)
        limit = self.expire(number) if self.expire is not None else None
        output, errors, answered = [], [], 0
        for line in lines:
            if batch["status"] == "cancelling" or self._closing.is_set() or \
                    (limit is not None and answered >= limit):
                break
            ok, result = self._answer_line(line, headers)
            (output if ok else errors).append(result)
            answered += 1
            with self._lock:
                batch["request_counts"]["completed" if ok else "failed"] += 1
            self._wait(self.line_seconds, batch)
        self._finish(batch, lines[answered:], output, errors)

    def _finish(self, batch: dict, rest: list[dict], output: list, errors: list) -> None:
        end = "cancelled" if batch["status"] == "cancelling" else "expired" if rest else "completed"
        code = {"cancelled": "batch_cancelled", "expired": "batch_expired"}.get(end)
        errors += [{"id": f"batch_req_{line['custom_id'][:12]}", "custom_id": line["custom_id"],
                    "response": None, "error": {"code": code, "message":
                                                f"This request could not be executed before "
                                                f"the batch was {end}."}} for line in rest]
        self._set(batch, status="finalizing", finalizing_at=int(time.time()))
        out_id = self._add_lines(f"{batch['id']}_output.jsonl", output)
        err_id = self._add_lines(f"{batch['id']}_error.jsonl", errors)
        self._set(batch, status=end, output_file_id=out_id, error_file_id=err_id,
                  **{f"{end}_at": int(time.time())})

    def _input_lines(self, file_id: str) -> tuple[list[dict], str | None]:
        with self._lock:
            content = self.files[file_id]["content"]
        lines, seen = [], set()
        for number, raw in enumerate(content.decode("utf-8").splitlines(), start=1):
            try:
                line = json.loads(raw)
            except ValueError:
                return [], f"line {number} is not JSON"
            if line.get("method") != "POST" or line.get("url") != CHAT_URL or \
                    not isinstance(line.get("body"), dict) or line.get("custom_id") in seen:
                return [], f"line {number}: needs a unique custom_id, POST, {CHAT_URL}, a body"
            seen.add(line["custom_id"])
            lines.append(line)
        return lines, None

    def _answer_line(self, line: dict, headers: dict) -> tuple[bool, dict]:
        """One line, answered like an online request: ``(ok, its result line)``."""
        capture = _Capture()
        self._answer(capture, line["body"], headers)
        custom_id = line["custom_id"]
        try:
            body = json.loads(capture.payload)
        except ValueError:
            body = capture.payload.decode("utf-8", "replace")
        with self._lock:
            self.lines_processed += 1
            serial = self.lines_processed
            if capture.status == 200 and isinstance(body, dict):
                self.paid[custom_id] += 1
        record = {"id": f"batch_req_{serial}", "custom_id": custom_id,
                  "response": None, "error": None}
        if capture.dropped:
            record["error"] = {"code": "server_error", "message": "the model server went away"}
            return False, record
        record["response"] = {"status_code": capture.status, "request_id": record["id"],
                              "body": body}
        return capture.status == 200, record
