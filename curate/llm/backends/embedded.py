"""Any causal LM that transformers can load (safetensors, or GGUF de-quantized to float32),
from local files only, once per process, generated in-process in left-padded batches."""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import threading
from pathlib import Path

from ...core.threads import model_thread_limit
from ...errors import CurateError
from ..types import Completion, Request
from .base import DEFAULT_MAX_TOKENS, seed_of

log = logging.getLogger("curate.llm")
_loaded: dict[tuple[str, str | None], tuple] = {}
_load_lock = threading.Lock()


@contextlib.contextmanager
def local_load():
    """For one load: local files only (``HF_HUB_OFFLINE=1``), no progress bars, and the
    GGUF shortcuts below."""
    from transformers.utils import logging as hf_logging

    saved_env = os.environ.get("HF_HUB_OFFLINE")
    bars = hf_logging.is_progress_bar_enabled()
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_logging.disable_progress_bar()
    try:
        with _gguf_load_shortcuts():
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
    """Faster, quieter GGUF loading for one load: transformers parses the file three times
    and rebuilds the tensor-name map once per module, both memoised here (about half the
    load time); the de-quantization progress bar would break a run's live display."""
    try:
        import gguf
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    reader_cls, name_map, bar = gguf.GGUFReader, gguf.get_tensor_name_map, gguf_utils.tqdm
    gguf.GGUFReader = functools.lru_cache(maxsize=None)(reader_cls)
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
                with local_load():
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


class GrammarCache:
    """Compiled JSON-Schema grammars (xgrammar), one compiler per tokenizer; without
    xgrammar, replies are not constrained (the client still validates them)."""

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


class TransformersBackend:
    """Generate in-process with a transformers causal LM, in left-padded batches.

    Args:
        path: a folder transformers can load (config + weights, or a GGUF file in it).
        gguf_file: the GGUF file name inside ``path``, if the weights are GGUF.
        batch_size: requests generated together (they share one forward pass per token).
        batch_tokens: the prompt tokens one batch may hold, padding included (its longest
            prompt times its size; a longer prompt goes alone; default 4,096): the prompt
            pass of a batch holds attention scores for every pair of its tokens, ~2 GiB for
            16 prompts of 1,500 tokens; the cache of keys and values grows with it. On the
            demo's judge (16 prompts of ~500 tokens) 4,096 halves what generating adds to
            the model's memory (``bench/model_threads.py``).
        name: the model name used in cache keys (default: the file or folder name).

    Sampling follows each request: temperature (0 or ``None`` = greedy), top_p, max_tokens
    (default 256), stop sequences, and a seeded generator per request, so results are
    reproducible and the sample index gives distinct samples. A request with a JSON Schema
    decodes under it (grammar-constrained decoding with xgrammar, compact JSON), so the
    reply matches the schema unless it is cut off by max_tokens. Each reply is handed back
    (and cached by the client) as soon as it is finished (:mod:`.decode`). torch runs on
    the cores free when a call starts, or ``CURATE_THREADS`` (:mod:`curate.core.threads`).
    """

    def __init__(self, path, gguf_file: str | None = None, *, batch_size: int = 16,
                 batch_tokens: int = 4096, name: str | None = None):
        self.path, self.gguf_file, self.batch_size = str(path), gguf_file, int(batch_size)
        self.batch_tokens = int(batch_tokens)
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
        from .decode import generate_batch, prompt_ids

        with model_thread_limit():
            model, tokenizer = self.load()
            out: list[Completion | None] = [None] * len(requests)
            prompts = [prompt_ids(tokenizer, r) for r in requests]
            lengths = [len(p) for p in prompts]
            # Similar lengths together: less padding, less wasted compute.
            order = sorted(range(len(requests)), key=lengths.__getitem__)
            for chunk in batches(order, lengths, self.batch_size, self.batch_tokens):
                batch = [requests[i] for i in chunk]
                seeds = [seed_of(r, self.name) for r in batch]
                matchers = [self._grammars.matcher(r.schema, tokenizer, model) for r in batch]

                def finished(j, completion, chunk=chunk):
                    completion.model = self.name
                    out[chunk[j]] = completion
                    if on_done is not None:
                        on_done(chunk[j], completion)

                generate_batch(model, tokenizer, batch, seeds, DEFAULT_MAX_TOKENS, matchers,
                               finished, self._grammars.vocab_size(model),
                               prompts=[prompts[i] for i in chunk])
        return out  # type: ignore[return-value]


def batches(order: list[int], lengths: list[int], size: int, tokens: int) -> list[list[int]]:
    """Consecutive runs of ``order`` (ascending ``lengths``) of at most ``size`` requests whose
    longest prompt times their count stays within ``tokens``; a longer prompt goes alone."""
    out: list[list[int]] = []
    for i in order:
        if not out or len(out[-1]) == size or lengths[i] * (len(out[-1]) + 1) > tokens:
            out.append([])
        out[-1].append(i)
    return out
