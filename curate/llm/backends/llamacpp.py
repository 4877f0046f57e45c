"""An optional, faster embedded backend on llama-cpp-python (the ``[llamacpp]`` extra): the
GGUF file as it is, and a JSON Schema as a GBNF grammar (see ``curate/llm/README.md``)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from ...core.threads import model_threads
from ...errors import CurateError
from ..types import Completion, Request
from ..wire import completion_of
from .base import DEFAULT_MAX_TOKENS, seed_of

_loaded: dict[tuple, object] = {}
_lock = threading.Lock()


def available() -> bool:
    """Whether llama-cpp-python can be imported here."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCppBackend:
    """Generate in-process with llama.cpp, one request at a time.

    Args:
        model_path: the GGUF file.
        n_ctx: context length in tokens.
        n_threads: CPU threads (default: ``CURATE_LLAMACPP_THREADS``, else ``CURATE_THREADS``,
            else the cores free when the backend is made: :mod:`curate.core.threads`).
        name: the model name in cache keys (default: the file name without ``.gguf``).
    """

    def __init__(self, model_path, *, n_ctx: int = 4096, n_threads: int | None = None,
                 name: str | None = None):
        self.model_path, self.n_ctx = str(model_path), int(n_ctx)
        threads = n_threads or os.environ.get("CURATE_LLAMACPP_THREADS")
        self.n_threads = int(threads) if threads else model_threads()
        self.name = name or Path(self.model_path).name.removesuffix(".gguf")
        self.batch_size = 1

    def __repr__(self) -> str:
        return f"LlamaCppBackend({self.model_path!r}, n_threads={self.n_threads})"

    def fingerprint(self) -> str:
        return f"{self.name}|llama.cpp|{self.structured_engine()}"

    @staticmethod
    def structured_engine() -> str:
        return "llama.cpp-gbnf"

    def load(self):
        key = (self.model_path, self.n_ctx, self.n_threads)
        with _lock:
            if key not in _loaded:
                try:
                    from llama_cpp import Llama
                except ImportError:
                    raise CurateError("llama-cpp-python is not installed; pip install "
                                      "curate-workbench[llamacpp]") from None
                _loaded[key] = Llama(model_path=self.model_path, n_ctx=self.n_ctx,
                                     n_threads=self.n_threads, verbose=False)
            return _loaded[key]

    def generate(self, requests: list[Request], on_done=None) -> list[Completion]:
        model, out = self.load(), []
        for i, request in enumerate(requests):
            kwargs = {"messages": request.messages, "temperature": request.temperature or 0.0,
                      "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
                      "seed": seed_of(request, self.name) % (2**31)}
            if request.top_p is not None:
                kwargs["top_p"] = request.top_p
            if request.stop:
                kwargs["stop"] = list(request.stop)
            if request.schema is not None:
                kwargs["response_format"] = {"type": "json_object", "schema": request.schema}
            completion = completion_of(model.create_chat_completion(**kwargs), self.name)
            completion.model = self.name  # llama.cpp names the file
            out.append(completion)
            if on_done is not None:
                on_done(i, completion)
        return out
