"""The LLM layer: one client for every LLM stage, its cache, accounting and backends.

    from curate.llm import LLM, Request
    llm = LLM("gpt-4o-mini")                      # OPENAI_API_KEY / OPENAI_BASE_URL from env
    llm = LLM("qwen2.5", base_url="http://localhost:8000/v1", concurrency=32, rpm=600)
    llm = LLM()                                   # nothing configured: embedded SmolLM2
    replies = llm.complete_many([Request("2+2?", temperature=0)])

See ``curate/llm/README.md``. Names are imported on first use (``curate.llm.cache`` alone
does not load the HTTP stack).
"""
from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "LLM": "client",
    "Request": "types", "Completion": "types", "Failure": "types",
    "REQUEST_FAILED": "types", "TRUNCATED": "types", "REFUSED": "types", "PARSE_FAILED": "types",
    "Usage": "accounting", "PRICES": "accounting", "set_price": "accounting",
    "ResponseCache": "cache", "cache_key": "cache", "default_cache_path": "cache",
    "use_default_cache_path": "cache",
    "Backend": "backends", "TransformersBackend": "backends", "default_backend": "backends",
    "ParseError": "structured", "extract_json": "structured", "parse_json": "structured",
    "validate": "structured", "complete_parsed": "structured",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
