"""Text helpers shared by the dedup stages: tokenisers and text normalisation.

:func:`rouge_tokenize` is ``rouge-score``'s tokeniser (lowercase, ASCII letters and digits
only: other scripts tokenise to little or nothing); :func:`unicode_tokenize` splits on
Unicode non-word characters and makes each Chinese/Japanese character a token.
"""
from __future__ import annotations

import re
from functools import lru_cache
from types import SimpleNamespace
from typing import Callable

# Han ideographs (with extension A and compatibility forms), hiragana and katakana: scripts
# written without spaces, where one character is the closest thing to a word.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u31f0-\u31ff"
_UNICODE_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+", re.UNICODE)
_SPACES_RE = re.compile(r"\s+")


def unicode_tokenize(text: str) -> list[str]:
    """Lowercase and split on non-word characters (Unicode-aware); CJK characters are tokens.

    >>> unicode_tokenize("Café au lait, s'il vous plaît")
    ['café', 'au', 'lait', 's', 'il', 'vous', 'plaît']
    >>> unicode_tokenize("统计每个服务的错误")
    ['统', '计', '每', '个', '服', '务', '的', '错', '误']
    """
    return _UNICODE_TOKEN_RE.findall(text.lower())


def rouge_tokenize(text: str, stemmer=None) -> list[str]:
    """The ``rouge-score`` default tokeniser (``rouge_score.tokenize.tokenize``), unchanged."""
    from rouge_score import tokenize

    return tokenize.tokenize(text, stemmer)


_ASCII_WORD_RE = re.compile(r"[a-z0-9]+")


def _rouge_plain(text: str) -> list[str]:
    """rouge-score's tokeniser without stemmer, in one regex pass (same tokens, faster)."""
    return _ASCII_WORD_RE.findall(text.lower())


def make_tokenizer(tokenizer="rouge", use_stemmer: bool = False) -> Callable[[str], list[str]]:
    """A ``text -> tokens`` function from a name (``"rouge"``, ``"unicode"``), a callable, or
    an object with a ``tokenize`` method (such as a ``rouge_score.tokenizers.Tokenizer``).

    ``use_stemmer`` applies to ``"rouge"`` only, with rouge-score's rule (Porter stemmer,
    words longer than three characters).
    """
    if use_stemmer and tokenizer != "rouge":
        raise ValueError("use_stemmer applies to tokenizer='rouge' only; "
                         "stem inside your own tokenizer instead")
    if tokenizer == "rouge" and use_stemmer:
        from nltk.stem import porter
        from rouge_score import tokenize

        # NLTK's Porter stemmer with a per-word cache: stemming is the slow part of tokenising
        stemmer = SimpleNamespace(stem=lru_cache(maxsize=200_000)(porter.PorterStemmer().stem))
        return lambda text: tokenize.tokenize(text, stemmer)
    if tokenizer == "rouge":
        return _rouge_plain
    if tokenizer == "unicode":
        return unicode_tokenize
    if hasattr(tokenizer, "tokenize") and callable(tokenizer.tokenize):
        return tokenizer.tokenize
    if callable(tokenizer):
        return tokenizer
    raise ValueError(f"expected tokenizer 'rouge', 'unicode' or a callable text -> tokens, "
                     f"got {tokenizer!r}")


def normalize_text(text: str) -> str:
    """Strip, collapse runs of whitespace to one space, and casefold."""
    return _SPACES_RE.sub(" ", text.strip()).casefold()
