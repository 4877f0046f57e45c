"""Compiled JSON-Schema grammars (xgrammar) for constrained decoding, one compiler per model."""
from __future__ import annotations

import importlib.util
import json
import logging

log = logging.getLogger("curate.llm")


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
