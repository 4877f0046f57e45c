"""Decontamination: reject rows that repeat a held-out (evaluation) set.

Three checks, in this order, each naming the reference row it matched: ``exact`` (the texts
tokenise to the same tokens), ``ngram`` (a shared run of ``ngram`` words, the check datatrove
and the GPT-3 / Llama reports run with 13-grams) and ``near`` (Rouge-L F above ``threshold``,
with :class:`~curate.stages.dedup_rouge.RougeDedup`'s machinery: rewordings that change a
word every few words).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.stage import Stage, StageResult, did_you_mean
from ..core.table import SOURCE, domain_columns
from ..errors import InputError, StageError
from ..io.read import display_path, read_table
from ..text import make_tokenizer
from .dedup_rouge import best_per_row, rouge_pairs, token_strings
from .near_duplicates import score_text

MATCH, SCORE = "_reference_match", "_reference_score"
CODES = {"exact": "contaminated_exact", "ngram": "contaminated_ngram",
         "near": "contaminated_near"}
BLOCK = 1024  # rows scored against the reference at a time


class Decontaminate(Stage):
    """Reject a row whose text repeats a row of a reference set (the evaluation split).

    Args:
        reference: the held-out rows: a path (``.jsonl``, ``.csv``, ``.parquet``, anything
            :func:`~curate.read_table` reads) or a DataFrame. Its content is part of the
            stage's fingerprint, so an edited eval file reruns the stage.
        field: the text column of the table to check (e.g. ``"nlq"``).
        reference_field: the reference's text column (default: ``field``).
        ngram: the length of the shared word run that counts as contamination (default 6:
            on the Honeycomb eval questions, 9 words at the median, 13-grams find 14% of
            questions copied into a longer one and 6-grams 96%, with no false positive on the
            seeds; see ``bench/decontaminate.py``); ``None`` skips it.
        threshold: reject when Rouge-L F against a reference text is greater than this
            (default 0.7, self-instruct's near-duplicate rule); ``None`` skips it.
        tokenizer: ``"rouge"`` (default), ``"unicode"`` or a callable, as in ``RougeDedup``.
        name: stage name (default ``decontaminate``).

    Rejected rows get ``_reference_match`` (the reference row's file and line), and, for
    near matches, ``_reference_score`` (the Rouge-L F); codes ``contaminated_exact``,
    ``contaminated_ngram``, ``contaminated_near``. Stats: ``matches`` by kind.
    """

    declares_columns = True

    def __init__(self, reference, field: str, *, reference_field: str | None = None,
                 ngram: int | None = 6, threshold: float | None = 0.7, tokenizer="rouge",
                 name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        if ngram is not None and (not isinstance(ngram, int) or ngram < 1):
            raise StageError(self.name, f"ngram must be a positive int or None, got {ngram!r}")
        if threshold is not None and (not isinstance(threshold, (int, float))
                                      or not 0 <= threshold <= 1):
            raise StageError(self.name, f"threshold must be in [0, 1] or None, got {threshold!r}")
        if not isinstance(reference, pd.DataFrame):
            reference = Path(reference).resolve()  # a Path: the fingerprint reads its bytes
        self.reference, self.field = reference, field
        self.reference_field = reference_field or field
        self.ngram, self.threshold, self.tokenizer = ngram, threshold, tokenizer
        try:
            self._tokenize = make_tokenizer(tokenizer)
        except ValueError as exc:
            raise StageError(self.name, str(exc)) from None
        self._texts()  # a missing file or field is an error now, not mid-run

    def required_fields(self) -> tuple[str, ...]:
        return (self.field,)

    def field_types(self) -> dict:
        return {self.field: str}

    def added_columns(self) -> dict[str, str]:
        return {MATCH: "reference_match", SCORE: "similarity"}

    # -- the reference -------------------------------------------------------------------
    def _texts(self) -> tuple[list[list[str]], list[str]]:
        """The reference's token lists and the place of each row (``eval.jsonl:17``)."""
        try:
            table = read_table(self.reference)
        except InputError as error:
            raise StageError(self.name, f"cannot read the reference: {error}") from None
        if self.reference_field not in table.columns:
            known = domain_columns(table)
            hint = did_you_mean(self.reference_field, known)
            raise StageError(self.name, f"the reference has no field {self.reference_field!r} "
                                        f"(fields: {', '.join(known)}){hint}",
                             field=self.reference_field)
        places = table[SOURCE].tolist()
        if isinstance(self.reference, Path):
            where = display_path(self.reference)
            places = [f"{where}:{p.rsplit(':', 1)[-1]}" for p in places]
        tokens = [self._tokenize(t) if isinstance(t, str) else []
                  for t in table[self.reference_field]]
        return tokens, places

    # -- the checks ----------------------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:
        ref_tokens, places = self._texts()
        tokens = [self._tokenize(t) for t in df[self.field]]
        n = len(df)
        kind = np.full(n, None, dtype=object)
        match = np.full(n, -1, dtype=np.int64)
        detail = np.full(n, None, dtype=object)
        self._exact(tokens, ref_tokens, kind, match)
        if self.ngram:
            self._ngrams(tokens, ref_tokens, kind, match, detail)
        score = np.full(n, np.nan)
        if self.threshold is not None:
            self._near(tokens, ref_tokens, kind, match, score)
        keep = kind == None  # noqa: E711
        codes = pd.Series([CODES.get(k) for k in kind], index=df.index, dtype=object)
        reasons = pd.Series([self._reason(k, places[m] if m >= 0 else None, d, s)
                             for k, m, d, s in zip(kind, match, detail, score)],
                            index=df.index, dtype=object)
        marked = df.assign(**{MATCH: [places[m] if m >= 0 else None for m in match],
                              SCORE: score})  # Stage.run keeps them on rejected rows only
        return self.result(marked, keep, codes, reasons,
                           matches={k: int((kind == k).sum()) for k in CODES},
                           reference_rows=len(ref_tokens))

    def _exact(self, tokens, ref_tokens, kind, match) -> None:
        first = {}
        for j, t in enumerate(ref_tokens):
            if t:
                first.setdefault(" ".join(t), j)
        for i, t in enumerate(tokens):
            j = first.get(" ".join(t)) if t else None
            if j is not None:
                kind[i], match[i] = "exact", j

    def _ngrams(self, tokens, ref_tokens, kind, match, detail) -> None:
        n, first = self.ngram, {}
        for j, t in enumerate(ref_tokens):
            for k in range(len(t) - n + 1):
                first.setdefault(tuple(t[k:k + n]), j)
        for i, t in enumerate(tokens):
            if kind[i] is not None:
                continue
            for k in range(len(t) - n + 1):
                j = first.get(tuple(t[k:k + n]))
                if j is not None:
                    kind[i], match[i], detail[i] = "ngram", j, " ".join(t[k:k + n])
                    break

    def _near(self, tokens, ref_tokens, kind, match, score) -> None:
        pending = [i for i in range(len(tokens)) if kind[i] is None and tokens[i]]
        refs = [j for j, t in enumerate(ref_tokens) if t]
        if not pending or not refs:
            return
        texts, lengths = token_strings([tokens[i] for i in pending] +
                                       [ref_tokens[j] for j in refs])
        ref_texts, ref_lengths = texts[len(pending):], lengths[len(pending):]
        for start in range(0, len(pending), BLOCK):
            block = slice(start, min(start + BLOCK, len(pending)))
            rows, cols, f, _ = rouge_pairs(texts[block], ref_texts, lengths[block],
                                           ref_lengths, self.threshold)
            over = f > self.threshold
            for r, c, s in zip(*best_per_row(rows[over], cols[over], f[over])):
                i = pending[start + int(r)]
                kind[i], match[i], score[i] = "near", refs[int(c)], float(s)

    def _reason(self, kind, place, detail, score) -> str | None:
        if kind == "exact":
            return f"the same text as reference row {place}"
        if kind == "ngram":
            return f"shares the {self.ngram}-word run {detail!r} with reference row {place}"
        if kind == "near":
            return (f"rouge-l {score_text(score, self.threshold)} > {self.threshold} vs "
                    f"reference row {place}")
        return None
