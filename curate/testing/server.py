"""A scripted chat-completions server on loopback, for tests, benchmarks and demos.

It speaks enough of the OpenAI protocol (``POST /v1/chat/completions``, ``GET /v1/models``)
for the ``openai`` SDK, answers with a reply function you write, and can inject the faults
real endpoints produce (429 with ``Retry-After``, 5xx, slow answers, dropped connections,
malformed bodies, ``finish_reason: "length"``):

    with ScriptedServer(lambda body: "The answer is 4", latency=0.05) as server:
        llm = LLM("scripted", base_url=server.base_url, api_key="x")
        server.inject(Fault.status(429, retry_after=0.1))   # the next request gets a 429
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass(frozen=True)
class Reply:
    """A scripted answer: the text, its finish reason and (optionally) token counts."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Fault:
    """A fault for one request. Build with the class methods."""

    kind: str
    code: int = 200
    retry_after: float | None = None
    seconds: float = 0.0
    message: str | None = None

    @classmethod
    def status(cls, code: int, retry_after: float | None = None,
               message: str | None = None) -> "Fault":
        """An HTTP error, optionally with ``Retry-After``; ``{authorization}`` in ``message``
        becomes the request's Authorization header (to test that a client never repeats it)."""
        return cls("status", code=code, retry_after=retry_after, message=message)

    @classmethod
    def slow(cls, seconds: float) -> "Fault":
        """Wait ``seconds`` before answering normally (longer than the client's timeout)."""
        return cls("slow", seconds=seconds)

    @classmethod
    def drop(cls) -> "Fault":
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def malformed(cls) -> "Fault":
        """Answer 200 with a body that is not JSON."""
        return cls("malformed")


ReplyFn = Callable[[dict], "str | Reply | Fault"]
OWNERS = {"openai": "openai", "vllm": "vllm", "llamacpp": "llamacpp", "ollama": "library"}
FaultFn = Callable[[dict, int], "Fault | None"]
NOT_FOUND = {"error": {"message": "not found", "type": "not_found"}}


def last_user_message(body) -> str:
    """The content of the last user message of a request body, or of a
    :class:`~curate.llm.types.Request` (handy in reply functions)."""
    messages = body.get("messages", []) if isinstance(body, dict) else body.messages
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (~40 ms) and every latency figure would be off by that much.
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def log_message(self, *args) -> None:  # silence the default stderr access log
        pass

    def do_GET(self) -> None:
        if self.server.owner.route(self, "GET", b""):
            return
        if self.path.rstrip("/").endswith("/models"):
            owner = OWNERS.get(self.server.owner.dialect, "curate")
            body = {"object": "list", "data": [{"id": self.server.owner.model,
                                                "object": "model", "owned_by": owner}]}
            self._send_json(200, body)
        else:
            self._send_json(404, NOT_FOUND)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.server.owner.route(self, "POST", raw):
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send_json(404, NOT_FOUND)
        try:
            body = json.loads(raw)
        except ValueError:
            return self._send_json(400, {"error": {"message": "body is not JSON",
                                                   "type": "invalid"}})
        self.server.owner._handle(self, body, dict(self.headers))

    def _send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        self._send_raw(status, json.dumps(body).encode(), headers)

    def _send_raw(self, status: int, payload: bytes, headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up (timeout): nothing to do

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    owner: "ScriptedServer"


class ScriptedServer:
    """A chat-completions endpoint on ``127.0.0.1`` (a free port) with scripted replies.

    Args:
        reply: ``reply(body) -> str | Reply | Fault``, called for every request that gets
            no injected fault; ``body`` is the request JSON. Defaults to echoing the last
            user message.
        latency: seconds to wait before every answer (faults included).
        model: the model id reported by ``/v1/models`` and in responses.
        fault: optional ``fault(body, index) -> Fault | None`` consulted for every request
            (``index`` counts requests from 0) before the injected queue.
        usage: ``usage(body, reply_text) -> (prompt_tokens, completion_tokens)``, how the
            server counts tokens (default: words of the messages and of the reply).
        slots: requests answered at once (the rest wait for a slot, like a single-slot
            llama.cpp server); default: no limit.
        busy_status: with ``slots``, answer a request that finds every slot taken with this
            HTTP status at once (e.g. 429) instead of queueing it; ``refused`` counts them.
        dialect: ``"openai"``, ``"vllm"``, ``"llamacpp"`` or ``"ollama"``: report that
            ``owned_by``, read a request's JSON Schema from that dialect's fields, refuse
            (400) another dialect's form or a broken ``strict`` schema (openai), and answer a
            constrained request only with text matching its schema (else a minimal valid
            instance). Without it, structured-output fields are ignored.
        refuse_structured: answer every structured request with this HTTP status instead.

    Attributes: ``base_url`` (for the client), ``received`` (requests that reached the
    handler), ``answered`` (200 responses with a completion), ``bodies`` (every request
    body received, in arrival order), ``http_requests`` (every HTTP request of any kind),
    ``constrained`` (structured requests answered), ``max_in_flight``.
    """

    def __init__(self, reply: ReplyFn | None = None, *, latency: float = 0.0,
                 model: str = "scripted", fault: FaultFn | None = None,
                 dialect: str | None = None, refuse_structured: int | None = None,
                 slots: int | None = None, busy_status: int | None = None,
                 usage: Callable[[dict, str], tuple] | None = None):
        self.reply, self.latency, self.model = reply or last_user_message, latency, model
        self.fault, self.usage, self.busy_status = fault, usage, busy_status
        self.dialect, self.refuse_structured = dialect, refuse_structured
        self._slots = threading.Semaphore(slots) if slots else None
        self.http_requests = self.refused = self.constrained = 0
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.bodies, self.arrivals, self.answered_bodies = [], [], []  # dicts, times, dicts
        self.in_flight = self.max_in_flight = 0
        self._httpd: _HTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "ScriptedServer":
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name="scripted-llm-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting --------------------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Queue faults: the next requests (in arrival order) get them, one each."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def received(self) -> int:
        with self._lock:
            return len(self.bodies)

    @property
    def answered(self) -> int:
        with self._lock:
            return len(self.answered_bodies)

    def reset_counts(self) -> None:
        with self._lock:
            self.bodies.clear()
            self.arrivals.clear()
            self.answered_bodies.clear()
            self.max_in_flight = self.in_flight

    # -- request handling (runs in the connection's thread) ---------------------------------
    def route(self, handler: _Handler, method: str, raw: bytes) -> bool:
        """Count every HTTP request; a subclass answers other paths here (True: answered)."""
        with self._lock:
            self.http_requests += 1
        return False

    def _next_fault(self, body: dict) -> Fault | None:
        with self._lock:
            index = len(self.bodies)
            self.bodies.append(body)
            self.arrivals.append(time.monotonic())
        scripted = self.fault(body, index) if self.fault is not None else None
        if scripted is not None:
            return scripted
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _handle(self, handler: _Handler, body: dict, headers: dict) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self._slots is None:
                self._answer(handler, body, headers)
            elif not self._slots.acquire(blocking=self.busy_status is None):
                with self._lock:
                    self.refused += 1
                self._apply(handler, Fault.status(self.busy_status), headers)
            else:
                try:
                    self._answer(handler, body, headers)
                finally:
                    self._slots.release()
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, handler: _Handler, body: dict, headers: dict) -> None:
        fault = self._next_fault(body)
        if self.latency:
            time.sleep(self.latency)
        try:
            schema = structured_schema(body, self.dialect)
        except ValueError as error:
            return handler._send_json(400, {"error": {"message": str(error),
                                                      "type": "invalid_request"}})
        if schema is not None and self.refuse_structured:
            return handler._send_json(self.refuse_structured, {"error": {
                "message": "Invalid request: response_format is not supported", "type": "server_error"}})
        answer = self.reply(body) if fault is None else None
        if isinstance(answer, Fault):
            fault = answer
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
            answer = self.reply(body)
            fault = answer if isinstance(answer, Fault) else None  # a reply that is a fault
        if fault is not None:
            return self._apply(handler, fault, headers)
        reply = answer if isinstance(answer, Reply) else Reply(str(answer))
        if schema is not None:
            reply = _constrained(reply, schema)
            with self._lock:
                self.constrained += 1
        handler._send_json(200, self._completion(body, reply))
        with self._lock:
            self.answered_bodies.append(body)

    def _apply(self, handler: _Handler, fault: Fault, headers: dict) -> None:
        if fault.kind == "drop":
            handler._drop()
        elif fault.kind == "malformed":
            handler._send_raw(200, b'{"id": "chatcmpl-x", "choices": [ this is not json')
        else:
            extra = {}
            if fault.retry_after is not None:
                extra["Retry-After"] = f"{fault.retry_after:g}"
            kind = "rate_limit_exceeded" if fault.code == 429 else "server_error"
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            message = (fault.message or f"scripted {fault.code}").replace("{authorization}", auth)
            handler._send_json(fault.code, {"error": {"message": message, "type": kind,
                                                      "code": kind}}, extra)

    def _completion(self, body: dict, reply: Reply) -> dict:
        prompt_text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        counted = self.usage(body, reply.text) if self.usage is not None else \
            (_count_tokens(prompt_text), _count_tokens(reply.text))
        prompt_tokens = reply.prompt_tokens or counted[0]
        completion_tokens = reply.completion_tokens or counted[1]
        with self._lock:
            serial = len(self.answered_bodies)
        return {
            "id": f"chatcmpl-scripted-{serial}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", self.model),
            "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                         "message": {"role": "assistant", "content": reply.text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


# -- structured output, as each kind of server reads it ----------------------------------------
def structured_schema(body: dict, dialect: str | None) -> dict | None:
    """The JSON Schema a request asks the server to follow, read the way ``dialect`` reads
    it; ``ValueError`` (an HTTP 400) for a form this server does not accept."""
    fmt, ollama = body.get("response_format"), body.get("format")
    if (fmt is None and ollama is None) or dialect is None:
        return None  # a server without structured output ignores the fields
    if dialect == "ollama":
        if fmt is not None or not isinstance(ollama, dict):
            raise ValueError("ollama: send the schema as format: {...}")
        return ollama
    if ollama is not None or not isinstance(fmt, dict):
        raise ValueError(f"{dialect}: unknown field 'format'")
    kind = fmt.get("type")
    if dialect == "llamacpp":
        if kind != "json_object" or not isinstance(fmt.get("schema"), dict):
            raise ValueError("llamacpp: response_format must be {type: json_object, schema}")
        return fmt["schema"]
    spec = fmt.get("json_schema") if kind == "json_schema" else None
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict) or not spec.get("name"):
        raise ValueError(f"{dialect}: response_format must be {{type: json_schema, json_schema: "
                         "{name, schema}}")
    if dialect == "openai" and spec.get("strict"):
        _check_strict(spec["schema"], "schema")
    return spec["schema"]


def _check_strict(node, where: str) -> None:
    if not isinstance(node, dict):
        return
    if node.get("type") == "object" or "properties" in node:
        props = node.get("properties") or {}
        if node.get("additionalProperties") is not False:
            raise ValueError(f"Invalid schema: {where}: additionalProperties must be false")
        if set(node.get("required", [])) != set(props):
            raise ValueError(f"Invalid schema: {where}: every property must be required")
    for bad in ("minLength", "maxLength", "oneOf", "minItems", "maxItems"):
        if bad in node:
            raise ValueError(f"Invalid schema: {where}: '{bad}' is not permitted")
    for key, sub in (node.get("properties") or {}).items():
        _check_strict(sub, f"{where}.{key}")
    _check_strict(node.get("items"), f"{where}.items")
    for sub in node.get("anyOf", []):
        _check_strict(sub, where)


def _constrained(reply: Reply, schema: dict) -> Reply:
    """The reply when it already matches ``schema``, else a minimal instance that does."""
    import jsonschema

    try:
        if jsonschema.Draft202012Validator(schema).is_valid(json.loads(reply.text)):
            return reply
    except ValueError:
        pass
    return Reply(json.dumps(minimal_instance(schema)), reply.finish_reason,
                 reply.prompt_tokens, reply.completion_tokens)


def minimal_instance(schema: dict):
    """A small value that matches ``schema`` (what a constrained decoder could emit)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), schema["enum"][0])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return minimal_instance(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: minimal_instance(props[k]) for k in schema.get("required", []) if k in props}
    if kind == "array":
        return [minimal_instance(schema.get("items", {}))] * max(0, schema.get("minItems", 0))
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None
