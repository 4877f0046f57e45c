"""The LLM client every LLM stage uses: chat completions to any OpenAI-compatible endpoint
(or an in-process model), with limits, retries, the response cache and accounting."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import hashlib
import inspect
import json
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Iterable

from ..errors import CurateError
from .accounting import Usage
from .backends import WARNING, Backend, default_backend
from .batch.options import batch_options
from .batch.run import BatchRun
from .cache import ResponseCache, cache_key, default_cache_path, open_cache
from .credentials import PLACEHOLDER, Secret, checked_url, redact_url
from .dialects import DIALECTS
from .limits import Concurrency, RateLimiter
from .online import EndpointState, Sender
from .types import Completion, Failure, Request
from .wire import usable

log = logging.getLogger("curate.llm")
OPENAI_URL = "https://api.openai.com/v1"
_warned_embedded = False

Result = Completion | Failure


class LLM:
    """A chat-completions client with limits, retries, a cache and accounting.

    Args:
        model: the model name sent to the endpoint (or env ``CURATE_LLM_MODEL``).
        base_url: the endpoint, e.g. ``http://localhost:8000/v1`` (or env ``OPENAI_BASE_URL``).
            With a key and no URL, OpenAI's. With neither, an ``LLM()`` that names no model
            (and no ``CURATE_LLM_MODEL``) runs the embedded SmolLM2-135M-Instruct in-process
            (for trying the pipeline only); a named model is refused in one line.
        api_key: the key (or env ``OPENAI_API_KEY``); never in the cache, stats, reprs or
            messages.
        backend: an in-process :class:`~curate.llm.backends.Backend` to use instead of HTTP.
        concurrency: the most requests in flight at once (the ceiling).
        adaptive: find the best number in flight under ``concurrency`` (the default, see
            :class:`~curate.llm.limits.Concurrency`); ``False`` keeps ``concurrency``.
        rpm, tpm: optional requests- and tokens-per-minute limits.
        timeout: seconds per request.
        max_tries: tries per request (429, 5xx, timeouts and connection errors are retried
            with exponential backoff and jitter, honouring ``Retry-After``).
        backoff, max_backoff: first and largest backoff delay, in seconds.
        max_retry_after: a ``Retry-After`` longer than this fails the request instead.
        temperature, top_p, max_tokens, seed: defaults for requests that leave them unset.
            With a ``seed``, sample ``i`` is sent ``seed + i`` so n samples differ.
        cache: ``True`` (the default file, see :mod:`curate.llm.cache`), a path, a
            :class:`ResponseCache`, or ``False``/``None`` for no cache.
        prices: ``{model: (usd_per_million_input, usd_per_million_output)}`` overrides.
        extra_body: extra fields sent with every request (and part of every cache key).
        structured: how a request's JSON Schema is sent: ``"auto"`` (default: inferred from
            the endpoint, see :mod:`curate.llm.dialects`), ``"openai"``, ``"vllm"``,
            ``"llamacpp"``, ``"ollama"`` or ``"off"`` (plain prompting). A server that
            refuses it gets plain prompts from then on, and the client says so once.
        batch: ``True`` or a :class:`~curate.llm.batch.BatchOptions`: send requests not in
            the cache through the provider's Batch API (resumable after a kill; priced at
            batch prices) instead of one HTTP call each.
    """

    def __init__(self, model: str | None = None, *, base_url: str | None = None,
                 api_key: str | None = None, backend: Backend | None = None,
                 concurrency: int = 16, adaptive: bool = True, rpm: float | None = None,
                 tpm: float | None = None, timeout: float = 60.0, max_tries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, max_retry_after: float = 120.0,
                 temperature: float | None = None, top_p: float | None = None,
                 max_tokens: int | None = None, seed: int | None = None, cache=True,
                 prices: dict | None = None, extra_body: dict | None = None,
                 structured: str = "auto", batch=False):
        if structured not in DIALECTS:
            raise CurateError(f"LLM: structured must be one of {', '.join(DIALECTS)}, got "
                              f"{structured!r}")
        if concurrency < 1 or max_tries < 1:
            raise CurateError(f"LLM: concurrency and max_tries must be >= 1, got "
                              f"concurrency={concurrency}, max_tries={max_tries}")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        self.secret = Secret(key or PLACEHOLDER)
        self.key_source = ("the api_key passed to LLM(...)" if api_key else
                           "OPENAI_API_KEY" if key else "the key: none is set (api_key= or "
                                                        "OPENAI_API_KEY)")
        self.base_url = (checked_url(base_url, "base_url")
                         or checked_url(os.environ.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
                         or (OPENAI_URL if key else None))
        self.backend, self._embedded_default = backend, False
        self._unconnected: str | None = None  # why this client may plan but not send
        if backend is None and self.base_url is None:
            named = model or os.environ.get("CURATE_LLM_MODEL")
            if named is None:
                self.backend, self._embedded_default = default_backend(), True
            elif _planning.get():
                self._unconnected = _no_endpoint(model, named)
            else:
                raise CurateError(_no_endpoint(model, named))
        if self.backend is not None:
            self.model, self.base_url = self.backend.name, None
        else:
            self.model = model or os.environ.get("CURATE_LLM_MODEL")
            if not self.model:
                raise CurateError(f"LLM: no model named for the endpoint "
                                  f"{redact_url(self.base_url)}; pass LLM(model=...) or set "
                                  f"CURATE_LLM_MODEL")
        self.concurrency, self.rpm, self.tpm = int(concurrency), rpm, tpm
        self.timeout, self.max_tries = float(timeout), int(max_tries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.temperature, self.top_p = temperature, top_p
        self.max_tokens, self.seed = max_tokens, seed
        self.cache, self.prices, self.extra_body = cache, dict(prices or {}), extra_body
        self.usage = Usage()
        self.limiter = RateLimiter(rpm, tpm)
        self.structured = structured
        self.endpoint = EndpointState(structured if structured != "auto" else None,
                                      Concurrency(self.concurrency, adaptive))
        self.batch = batch_options(batch)
        if self.batch is not None and (cache is None or cache is False):
            raise CurateError("LLM: batch mode needs the response cache (batch results are "
                              "collected through it and resumed from it); leave cache on")
        if self.batch is not None and self.backend is not None:
            log.warning("curate: batch mode needs an HTTP endpoint with a Batch API; the "
                        "in-process model %s runs the requests directly", self.model)
            self.batch = None

    # -- identity --------------------------------------------------------------------------
    def __repr__(self) -> str:
        where = redact_url(self.base_url) if self.backend is None else repr(self.backend)
        return f"LLM(model={self.model!r}, endpoint={where}, concurrency={self.concurrency})"

    def fingerprint(self) -> str:
        """Model, endpoint and sampling defaults (never the key): decides checkpoint reuse."""
        parts = {"model": self.model, "base_url": redact_url(self.base_url),
                 "backend": getattr(self.backend, "fingerprint", lambda: None)(),
                 "temperature": self.temperature, "top_p": self.top_p,
                 "max_tokens": self.max_tokens, "seed": self.seed, "extra_body": self.extra_body,
                 "structured": self.structured}
        text = json.dumps(parts, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- requests ----------------------------------------------------------------------------
    def resolve(self, request: Request) -> Request:
        """The request with the client's defaults filled in (what is sent and cached)."""
        def pick(value, default):
            return default if value is None else value

        seed = pick(request.seed, self.seed)
        extra = {**(self.extra_body or {}), **(request.extra or {})} or None
        return Request(request.messages, pick(request.temperature, self.temperature),
                       pick(request.top_p, self.top_p), pick(request.max_tokens, self.max_tokens),
                       request.stop, None if seed is None else seed + request.sample,
                       request.response_format, request.sample, extra, request.schema)

    def key(self, request: Request) -> str:
        """The cache key of a resolved request."""
        params = {"temperature": request.temperature, "top_p": request.top_p,
                  "max_tokens": request.max_tokens, "stop": list(request.stop or []) or None,
                  "seed": request.seed, "response_format": request.response_format,
                  "extra": request.extra, "schema": request.schema,
                  "structured": self._structured_label() if request.schema is not None else None}
        return cache_key(self.model, request.messages, params, request.sample)

    def _engine(self) -> str | None:
        """What constrains the in-process backend's decoding, or None: it cannot."""
        engine = getattr(self.backend, "structured_engine", None)
        return engine() if callable(engine) else None

    def _structured_label(self) -> str:
        """How a schema is enforced: part of the cache key of a request that has one, so a
        reply made without constraints is not reused once they are available."""
        if self.backend is not None:
            engine = self._engine()
            return f"backend:{'none' if engine is None else engine}"
        return self.structured

    def structured_status(self) -> str:
        """How replies to requests with a JSON Schema are held to it: ``constrained``
        (while decoding, in-process), ``requested (<dialect>)`` (sent to the endpoint, which
        enforces it or not) or ``unconstrained (<why>)``; every reply is validated anyway."""
        if self.backend is not None:
            engine = self._engine()
            if engine is None:
                return "unconstrained (the backend cannot constrain decoding)"
            return "unconstrained (xgrammar missing)" if engine == "none" else "constrained"
        if self.endpoint.refused is not None:
            return "unconstrained (the endpoint refused structured requests)"
        if self.structured == "off":
            return "unconstrained (structured='off')"
        return f"requested ({self.endpoint.dialect or self.structured})"

    def open_cache(self) -> ResponseCache | None:
        """The cache this client writes to now (the default path is read at call time)."""
        if self.cache is None or self.cache is False:
            return None
        if isinstance(self.cache, ResponseCache):
            return self.cache
        return open_cache(default_cache_path() if self.cache is True else Path(self.cache))

    # -- the synchronous entry point --------------------------------------------------------
    def complete_many(self, requests: Iterable[Request], *, usage: Usage | None = None,
                      on_result: Callable[[int, Result], None] | None = None) -> list[Result]:
        """Complete every request; one :class:`Completion` or :class:`Failure` each, in order.
        ``on_result(index, result)`` is called as each request finishes. Runs its own event
        loop (in a worker thread inside a running one, e.g. a notebook)."""
        requests = [r if isinstance(r, Request) else Request(r) for r in requests]
        cache = self.open_cache()  # resolved here: context variables do not cross threads

        def run() -> list[Result]:
            return asyncio.run(self.acomplete_many(requests, usage=usage, on_result=on_result,
                                                   cache=cache))

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="curate-llm") as pool:
            return pool.submit(run).result()

    def complete(self, request: Request | str | list, **params) -> Result:
        """One request (a Request, a string or a list of messages) -> completion or failure."""
        if not isinstance(request, Request):
            request = Request(request, **params)
        return self.complete_many([request])[0]

    # -- the asynchronous core --------------------------------------------------------------
    async def acomplete_many(self, requests: list[Request], *, usage: Usage | None = None,
                             on_result=None,
                             cache: ResponseCache | None | bool = True) -> list[Result]:
        """Async form of :meth:`complete_many` (``cache=True``: this client's cache)."""
        call = usage if usage is not None else Usage()
        before = call.as_stats()
        if cache is True:
            cache = self.open_cache()
        elif cache is False:
            cache = None
        resolved = [self.resolve(r) for r in requests]
        keys = [self.key(r) for r in resolved]
        results: list[Result | None] = [None] * len(resolved)

        def deliver(index: int, result: Result) -> None:
            results[index] = result
            if on_result is not None:
                on_result(index, result)

        hits = cache.get_many(keys) if cache is not None else {}
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if key in hits:
                call.add(cached=1)
                deliver(i, usable(Completion.from_raw(hits[key], cached=True), call))
            else:
                groups.setdefault(key, []).append(i)
        if groups and self._unconnected:
            raise CurateError(self._unconnected)
        if groups:
            if self.backend is not None:
                await self._run_backend(resolved, groups, cache, call, deliver)
            elif self.batch is not None and cache is not None:
                await BatchRun(self, resolved, groups, cache, call, deliver).run()
            else:
                await self._run_http(resolved, groups, cache, call, deliver)
        after = call.as_stats()
        self.usage.add(**{k: after[k] - before[k] for k in after})
        return results  # type: ignore[return-value]

    async def _run_http(self, requests, groups, cache, usage, deliver) -> None:
        sender = Sender(self, usage)

        async def one(key: str, indices: list[int]) -> None:
            result = await sender.send(requests[indices[0]])
            if isinstance(result, Completion):
                result = self._store(cache, key, result, usage)
            for i in indices:
                deliver(i, result)

        try:
            await asyncio.gather(*(one(k, idx) for k, idx in groups.items()))
        finally:
            await sender.close()

    def _store(self, cache, key: str, completion: Completion, usage) -> Result:
        """Cache a fresh reply; return it, or the failure it is (:func:`.wire.usable`)."""
        if cache is not None:
            cache.put(key, self.model, completion.to_raw())
        return usable(completion, usage)

    async def _run_backend(self, requests, groups, cache, usage, deliver) -> None:
        global _warned_embedded
        if self._embedded_default and not _warned_embedded:
            _warned_embedded = True
            log.warning(WARNING)
        items = list(groups.items())
        lock = threading.Lock()

        def done(j: int, completion: Completion) -> None:
            """One reply, cached and delivered as soon as it is finished."""
            key, indices = items[j]
            usage.add(requests=1, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens)
            result = self._store(cache, key, completion, usage)
            with lock:
                for i in indices:
                    deliver(i, result)

        batch = [requests[idx[0]] for _, idx in items]
        if _takes_on_done(self.backend):
            await asyncio.to_thread(self.backend.generate, batch, on_done=done)
            return
        size = max(1, int(getattr(self.backend, "batch_size", 16)))
        for start in range(0, len(items), size):  # a backend that only returns whole batches
            outputs = await asyncio.to_thread(self.backend.generate, batch[start:start + size])
            for j, completion in enumerate(outputs, start=start):
                done(j, completion)


_planning: contextvars.ContextVar[bool] = contextvars.ContextVar("curate_planning",
                                                                default=False)


@contextlib.contextmanager
def planning():
    """Clients made inside may name a model with no endpoint (an estimate sends nothing);
    such a client refuses the first request it would have to send."""
    token = _planning.set(True)
    try:
        yield
    finally:
        _planning.reset(token)


def _no_endpoint(model: str | None, named: str) -> str:
    """Why a named model cannot run: naming one means wanting it, not the embedded model."""
    what = f"LLM: the model {named!r}" if model else \
        f"LLM: CURATE_LLM_MODEL names the model {named!r}, but it"
    return (f"{what} has no endpoint: set OPENAI_BASE_URL (or base_url=) to the server that "
            f"runs it, or OPENAI_API_KEY (or api_key=) for OpenAI's API; an LLM() that names "
            f"no model runs the small embedded demo model")


def _takes_on_done(backend) -> bool:
    try:
        return "on_done" in inspect.signature(backend.generate).parameters
    except (TypeError, ValueError):
        return False
