"""Rouge-L near-duplicate removal with self-instruct's rule, computed fast and exactly.

The rule (Wang et al. 2022, "Self-Instruct", ``bootstrap_instructions.py``): go through the
texts in order and drop one whose ``RougeScorer(["rougeL"]).score(candidate, kept)``
fmeasure against any text kept so far is ``> 0.7``. Made fast without changing a decision:

- every distinct token becomes one code point, so rapidfuzz compares texts in C, and
  Rouge-L F = 2·LCS/(|a|+|b|) is Indel's normalised similarity: ``process.cdist`` scores a
  block of candidates against the kept texts on all cores, skipping hopeless pairs;
- F <= 2·min(|a|,|b|)/(|a|+|b|), so a candidate meets only kept texts of a length within
  that bound (kept texts are bucketed by length);
- pairs passing the block filter (a hair under the threshold) are re-scored from the exact
  integer LCS with rouge-score's own float formula, ``2·p·r/(p+r)``, so the value compared
  is bit-for-bit the reference's, boundary cases included.
"""
from __future__ import annotations

import bisect
import itertools
from collections import defaultdict

import numpy as np
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import Indel

from ..errors import StageError
from ..progress import task
from ..core.stage import Stage, StageResult
from ..core.table import ID
from ..text import make_tokenizer
from .near_duplicates import DUP_OF, mark_near_duplicates

_SLACK = 1e-6  # the block filter runs this far under the threshold; exact re-scoring decides
_SURROGATES = 0xD800
_MAX_CODE = 0x10FFFF - 0x800


def rouge_f(lcs, n_candidate, n_kept):
    """rouge-score's F-measure from an LCS length, with its exact float operations
    (``_score_lcs``: p = lcs/|kept|, r = lcs/|candidate|, F = 2·p·r/(p+r), 0 when both are 0)."""
    lcs = np.asarray(lcs, dtype=np.float64)
    p = lcs / np.asarray(n_kept, dtype=np.float64)
    r = lcs / np.asarray(n_candidate, dtype=np.float64)
    s = p + r
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, 2 * p * r / np.where(s > 0, s, 1.0), 0.0)


def _length_bounds(n: int, t: float) -> tuple[int, int]:
    """Kept lengths m for which 2·min(m,n)/(m+n) can exceed ``t`` (a safe superset)."""
    if t <= 0:
        return 1, 1 << 62
    return max(1, int(np.floor(n * t / (2 - t))) - 1), int(np.ceil(n * (2 - t) / t)) + 1


def token_strings(tokens: list[list[str]]) -> tuple[list, np.ndarray]:
    """Token lists as strings of code points, one per distinct token (integer lists when
    there are more distinct tokens than code points), and their lengths: what
    :func:`rouge_pairs` compares."""
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    vocab = dict.fromkeys(itertools.chain.from_iterable(tokens))
    if len(vocab) <= _MAX_CODE:  # one code point per token: rapidfuzz's fastest path
        for i, tok in enumerate(vocab):
            vocab[tok] = chr(i + (0x800 if i >= _SURROGATES else 0))
        return ["".join(map(vocab.__getitem__, t)) for t in tokens], lengths
    for i, tok in enumerate(vocab):
        vocab[tok] = i
    return [list(map(vocab.__getitem__, t)) for t in tokens], lengths


def rouge_pairs(queries, choices, n_cand, n_kept, threshold: float, workers: int = -1):
    """Pairs (query row, choice col, exact F) whose Rouge-L F may exceed ``threshold``, and
    the number of pairs compared; F is rouge-score's float, recovered from the C scorer's
    normalised similarity (the exact integer LCS)."""
    sims = process.cdist(queries, choices, scorer=Indel.normalized_similarity,
                         score_cutoff=max(threshold - _SLACK, 0.0),
                         dtype=np.float32, workers=workers)
    hit = np.flatnonzero(sims.max(axis=1) > 0) if sims.size else np.empty(0, np.int64)
    rows, cols = np.nonzero(sims[hit])
    rows = hit[rows]
    n_cand, n_kept = np.asarray(n_cand)[rows], np.asarray(n_kept)[cols]
    total = n_cand + n_kept
    dist = np.rint((1.0 - sims[rows, cols].astype(np.float64)) * total).astype(np.int64)
    return rows, cols, rouge_f((total - dist) // 2, n_cand, n_kept), sims.size


def best_per_row(rows, cols, f, tiebreak=None):
    """``(rows, cols, f)`` of each row's best pair: highest F, then lowest ``tiebreak``
    (default: ``cols``; ``np.argmax``'s rule: the earliest)."""
    order = np.lexsort((cols if tiebreak is None else tiebreak, -f, rows))
    rows, cols, f = rows[order], cols[order], f[order]
    first = np.diff(rows, prepend=-1) != 0
    return rows[first], cols[first], f[first]


class _KeptBuckets:
    """Kept texts bucketed by token length, for gathering the ones a candidate can match."""

    def __init__(self):
        self.lengths: list[int] = []
        self.texts: dict[int, list[str]] = defaultdict(list)
        self.positions: dict[int, list[int]] = defaultdict(list)

    def add(self, text, length: int, position: int) -> None:
        if length not in self.texts:
            bisect.insort(self.lengths, length)
        self.texts[length].append(text)
        self.positions[length].append(position)

    def gather(self, lo: int, hi: int):
        texts, positions, lengths = [], [], []
        for length in self.lengths[bisect.bisect_left(self.lengths, lo):
                                   bisect.bisect_right(self.lengths, hi)]:
            texts.extend(self.texts[length])
            positions.extend(self.positions[length])
            lengths.extend([length] * len(self.texts[length]))
        return texts, np.asarray(positions, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


class RougeDedup(Stage):
    """Drop a row whose text is a Rouge-L near-duplicate of a row kept before it.

    The rule of Self-Instruct (Wang et al. 2022, arXiv:2212.10560): rows are taken in table
    order; a row is rejected when its Rouge-L F-measure against any already-kept row is
    greater than ``threshold``. Decisions are those of ``rouge_score``'s
    ``RougeScorer(["rougeL"], use_stemmer=use_stemmer)`` on the same tokens, boundary
    included: 7 common tokens between texts of 7 and 13 tokens score 0.7000000000000001 and
    are rejected at 0.7, as in self-instruct (the module docstring says how it is fast).

    Texts that tokenise to nothing score 0, so they are always kept and never reject (use
    ``ExactDedup`` for exact repeats); when most texts do, the stage warns and suggests
    ``tokenizer="unicode"``. A text of more than ``max_tokens`` tokens is errored
    (``text_too_long``) rather than compared: Rouge-L costs the product of the lengths.

    Args:
        field: the text column to compare.
        threshold: reject when Rouge-L F > threshold (self-instruct: 0.7). In [0, 1].
        tokenizer: ``"rouge"`` (rouge-score's default: lowercase ASCII letters and digits
            only, so non-English text tokenises to little or nothing), ``"unicode"``
            (Unicode words, CJK characters one token each), a callable ``text -> tokens``,
            or an object with a ``tokenize`` method.
        use_stemmer: Porter stemming as in rouge-score (``tokenizer="rouge"`` only;
            self-instruct used no stemmer).
        workers: threads for the C scorer (-1: all cores).
        block_size: candidates scored per block.
        max_tokens: texts longer than this (in tokens) are errored instead of compared.
        name: stage name (default ``rouge_dedup``).

    Output columns: ``_dup_of`` (the ``_id`` of the kept row with the highest score, earliest
    on ties, as ``np.argmax`` in the reference) and ``_rouge_l`` (that score) on rejected
    rows; rejection code ``near_duplicate_rouge``.
    """

    declares_columns = True

    kind = "global"
    EMPTY_WARNING = 0.5  # warn when more than this share of texts tokenise to nothing

    def __init__(self, field: str, threshold: float = 0.7, tokenizer="rouge",
                 use_stemmer: bool = False, workers: int = -1, block_size: int = 1024,
                 max_tokens: int = 20_000, name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.max_tokens = max_tokens
        self.field, self.threshold, self.tokenizer = field, threshold, tokenizer
        self.use_stemmer, self.workers, self.block_size = use_stemmer, workers, block_size
        if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise StageError(self.name, f"threshold must be a number in [0, 1], got {threshold!r}")
        if not isinstance(block_size, int) or block_size < 1:
            raise StageError(self.name, f"block_size must be a positive int, got {block_size!r}")
        try:
            self._tokenize = make_tokenizer(tokenizer, use_stemmer)
        except ValueError as exc:
            raise StageError(self.name, str(exc)) from None

    def required_fields(self) -> tuple[str, ...]:
        return (self.field,)

    def field_types(self) -> dict:
        return {self.field: str}

    def added_columns(self) -> dict[str, str]:
        return {DUP_OF: "duplicate_of", "_rouge_l": "similarity"}

    # -- tokens to strings ---------------------------------------------------------------
    def _encode(self, df: pd.DataFrame) -> tuple[list, np.ndarray]:
        tokens = []
        for row_id, text in zip(df[ID], df[self.field]):
            found = self._tokenize(text)
            if len(found) > self.max_tokens:
                self.row_error(row_id, "text_too_long", f"the text has {len(found):,} tokens, "
                               f"more than max_tokens={self.max_tokens:,}; Rouge-L of texts "
                               f"this long is too slow to compare", self.field)
                found = []
            tokens.append(found)
        return token_strings(tokens)

    # -- the greedy pass -----------------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:
        texts, lengths = self._encode(df)
        keep, dup_pos, scores, compared = self._greedy(texts, lengths)
        out, reasons = mark_near_duplicates(df, keep, dup_pos, scores, "_rouge_l", "rouge-l",
                                            self.threshold)
        empty = int((lengths == 0).sum())
        result = self.result(out, keep, "near_duplicate_rouge", reasons,
                             near_duplicates=int((~keep).sum()), empty_texts=empty,
                             pairs_compared=compared)
        if len(df) and empty / len(df) > self.EMPTY_WARNING:
            hint = (" (text outside a-z and 0-9, which the default tokenizer deletes); try "
                    "tokenizer=\"unicode\"" if self.tokenizer == "rouge" else "")
            result.stats["warnings"] = [f"{empty} of {len(df)} texts in {self.field!r} "
                                        f"tokenise to nothing and are never compared{hint}"]
        return result

    def _greedy(self, texts, lengths):
        n, t = len(texts), float(self.threshold)
        keep = np.ones(n, dtype=bool)
        best = np.full(n, -1.0)
        best_pos = np.full(n, -1, dtype=np.int64)
        kept = _KeptBuckets()
        compared = 0
        with task(f"{self.name}", total=n) as bar:
            for start in range(0, n, self.block_size):
                block = np.arange(start, min(n, start + self.block_size))
                block = block[lengths[block] > 0]  # empty texts score 0: always kept
                compared += self._against_kept(block, texts, lengths, kept, best, best_pos)
                compared += self._within_block(block, texts, lengths, kept, keep, best,
                                               best_pos, t)
                bar.advance(min(n, start + self.block_size) - start)
        return keep, best_pos, best, compared

    def _against_kept(self, block, texts, lengths, kept, best, best_pos) -> int:
        compared = 0
        for length in np.unique(lengths[block]):
            members = block[lengths[block] == length]
            choices, positions, kept_lengths = kept.gather(*_length_bounds(int(length),
                                                                           self.threshold))
            if not choices:
                continue
            rows, cols, f, size = rouge_pairs([texts[i] for i in members], choices,
                                              lengths[members], kept_lengths, self.threshold,
                                              self.workers)
            compared += size
            rows, cols, f = best_per_row(rows, cols, f, positions[cols])
            best[members[rows]], best_pos[members[rows]] = f, positions[cols]
        return compared

    def _within_block(self, block, texts, lengths, kept, keep, best, best_pos, t) -> int:
        """Settle the block in order against its own earlier rows; only pairs whose
        lengths allow a score above the threshold are compared."""
        if len(block) == 0:
            return 0
        block_lengths = lengths[block]
        found, size = [], 0
        for length in np.unique(block_lengths):
            members = np.flatnonzero(block_lengths == length)
            lo, hi = _length_bounds(int(length), self.threshold)
            others = np.flatnonzero((block_lengths >= lo) & (block_lengths <= hi))
            r, c, f, n = rouge_pairs([texts[block[i]] for i in members],
                                     [texts[block[i]] for i in others], block_lengths[members],
                                     block_lengths[others], self.threshold, self.workers)
            found.append((members[r], others[c], f))
            size += n
        rows, cols, f = (np.concatenate(part) for part in zip(*found))
        order = np.lexsort((cols, rows))
        rows, cols, f = rows[order], cols[order], f[order]
        earlier = cols < rows
        pairs = defaultdict(list)
        for r, c, score in zip(rows[earlier], cols[earlier], f[earlier]):
            pairs[int(r)].append((int(c), float(score)))
        for r, i in enumerate(block):
            for c, score in pairs.get(r, ()):  # ascending c: strict > keeps the earliest
                if keep[block[c]] and score > best[i]:
                    best[i], best_pos[i] = score, block[c]
            if best[i] > t:
                keep[i] = False
            else:
                kept.add(texts[i], int(lengths[i]), int(i))
        return size
