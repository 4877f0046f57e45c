"""MinHash LSH near-duplicate removal: shingle sets, banded signatures, verified pairs, greedy.

- Signature row k is ``min`` over the shingles of ``((a_k·x + b_k) mod 2^64) >> 32``, x the
  top 32 bits of a shingle hash (:mod:`.shingles`): Dietzfelbinger's multiply-add-shift
  family, 2-independent without a division. Signatures are uint32.
- Candidates are the pairs whose band keys agree, found by sorting each band's keys; rows
  with identical shingle sets are set aside first (they would fill buckets quadratically).
- A candidate is verified once (in the first band it shares), after a cheap upper bound on
  its Jaccard from set sizes and 128-bit shingle masks; one pass over the verified pairs,
  sorted by the later row, applies the keep-first rule.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import StageError
from ..progress import task
from ..core.stage import Stage, StageResult
from ..text import make_tokenizer
from .near_duplicates import DUP_OF, mark_near_duplicates
from .shingles import ASCII_WORD_TOKENIZERS, U64 as _U64, hash_strings, mix as _mix, shingle_hashes

_ROW_BLOCK = 20_000   # texts shingled and signed at a time
_CELLS = 1 << 22      # values held at once in the large temporary arrays


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per row of an (n, w) uint64 array."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    w = words - ((words >> _U64(1)) & _U64(0x5555555555555555))
    w = (w & _U64(0x3333333333333333)) + ((w >> _U64(2)) & _U64(0x3333333333333333))
    w = (w + (w >> _U64(4))) & _U64(0x0F0F0F0F0F0F0F0F)
    return ((w * _U64(0x0101010101010101)) >> _U64(56)).sum(axis=1, dtype=np.int64)


# -- the S-curve -------------------------------------------------------------------------
def lsh_recall(similarity, bands: int, rows: int):
    """P(a pair of Jaccard ``similarity`` shares a band) = 1 - (1 - s^rows)^bands."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=np.float64) ** rows) ** bands


def choose_bands(threshold: float, num_perm: int, min_recall: float = 0.95) -> tuple[int, int]:
    """(bands, rows) with bands·rows <= num_perm whose S-curve reaches ``min_recall`` at the
    threshold with the smallest area under the curve below the threshold (the fewest
    false candidates); if none reaches it, ``(num_perm, 1)``, the highest recall."""
    grid = np.linspace(0.0, threshold, 401)
    best, best_area = (num_perm, 1), math.inf
    for rows in range(1, num_perm + 1):
        miss = 1.0 - threshold ** rows  # P(one band misses a pair at the threshold)
        if miss >= 1:
            break
        bands = 1 if miss <= 0 else max(1, math.ceil(math.log1p(-min_recall) / math.log(miss)
                                                     - 1e-9))
        area = float(lsh_recall(grid, bands, rows).mean())
        if bands * rows <= num_perm and area < best_area:
            best, best_area = (bands, rows), area
    return best


# -- shingle sets and signatures ---------------------------------------------------------
class Sketches:
    """Shingle sets of n rows (sorted ``row << bits | hash`` keys), their sizes, 128-bit
    shingle masks, set fingerprints and MinHash signatures (uint32, one row per hash)."""

    def __init__(self, n: int, width: int, seed: int, offset: int = 0,
                 total: int | None = None):
        """n rows, the first of which is row ``offset`` of a table of ``total`` rows (keys
        hold table rows, so the sketches of consecutive slices concatenate)."""
        total = n if total is None else total
        self.n, self.offset, self.bits = n, offset, 63 - max(1, (total - 1).bit_length())
        params = _mix(np.arange(2 * width, dtype=_U64) + _mix([seed & (2 ** 64 - 1)]))
        self.a, self.b = params[:width] | _U64(1), params[width:]
        self.signatures = np.empty((width, n), dtype=np.uint32)  # finish() fills empty rows
        self.sizes = np.zeros(n, dtype=np.int64)
        self.fingerprints = np.zeros(n, dtype=_U64)
        self.masks = np.zeros((n, 2), dtype=_U64)
        self._parts: list[np.ndarray] = []

    def add(self, first_row: int, hashes: np.ndarray, counts: np.ndarray) -> None:
        """Add rows ``first_row...`` from their shingle hashes (``counts`` per row)."""
        rows = np.repeat(np.arange(first_row, first_row + len(counts), dtype=_U64)
                         + _U64(self.offset), counts)
        keys = np.sort((rows << _U64(self.bits)) | (hashes >> _U64(64 - self.bits)))
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
        row_of = (keys >> _U64(self.bits)).astype(np.int64) - self.offset
        self.sizes[first_row:first_row + len(counts)] = np.bincount(
            row_of - first_row, minlength=len(counts))
        self._parts.append(keys)
        if len(keys) == 0:
            return
        low = keys & _U64((1 << self.bits) - 1)
        starts = np.flatnonzero(np.r_[True, row_of[1:] != row_of[:-1]])
        present = row_of[starts]
        self.fingerprints[present] = _mix(np.add.reduceat(_mix(low), starts)
                                          ^ self.sizes[present].astype(_U64))
        bit = _U64(1) << (low & _U64(63))
        for word in (0, 1):
            self.masks[present, word] = np.bitwise_or.reduceat(
                np.where((low >> _U64(6)) & _U64(1) == word, bit, _U64(0)), starts)
        # each distinct shingle is hashed once per permutation, then gathered per row
        codes, distinct = pd.factorize(low >> _U64(self.bits - 32))
        step = max(1, _CELLS // len(codes))
        for k in range(0, len(self.a), step):
            table = np.multiply.outer(self.a[k:k + step], distinct.astype(_U64))
            table += self.b[k:k + step, None]
            table >>= _U64(32)
            v = np.take(table.astype(np.uint32), codes, axis=1)
            self.signatures[k:k + step, present] = np.minimum.reduceat(v, starts, axis=1)

    def finish(self) -> Sketches:
        self.signatures[:, self.sizes == 0] = np.iinfo(np.uint32).max
        self.keys = np.concatenate(self._parts) if self._parts else np.empty(0, _U64)
        self._parts = []
        return self.finish_starts()

    @classmethod
    def joined(cls, parts: list[Sketches]) -> Sketches:
        """The sketches of a whole table from those of its consecutive slices, without
        signatures."""
        parts = sorted(parts, key=lambda part: part.offset)
        whole = cls.__new__(cls)
        whole.n, whole.offset, whole.bits = sum(p.n for p in parts), 0, parts[0].bits
        whole.signatures = None
        for name in ("sizes", "fingerprints", "masks", "keys"):
            setattr(whole, name, np.concatenate([getattr(p, name) for p in parts]))
        return whole.finish_starts()

    def finish_starts(self) -> Sketches:
        """Where each row's keys start in ``keys`` (and where the last one ends)."""
        rows = np.arange(self.n + 1, dtype=_U64) + _U64(self.offset)
        self.starts = np.searchsorted(self.keys, rows << _U64(self.bits))
        return self

    def band_keys(self, band: int, rows: int, which: np.ndarray) -> np.ndarray:
        key = np.zeros(len(which), dtype=_U64)
        for k in range(band * rows, (band + 1) * rows):
            key = _mix(key ^ self.signatures[k, which])
        return key

    def jaccard_bound(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """An upper bound on the Jaccard of each pair: a bit set in one row's mask only
        stands for at least one shingle that the other row lacks."""
        mf, ms = self.masks[first], self.masks[second]
        size_f, size_s = self.sizes[first], self.sizes[second]
        shared = np.minimum(size_f - _popcount(mf & ~ms), size_s - _popcount(ms & ~mf))
        return shared / (size_f + size_s - shared)

    def jaccard(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Exact |A∩B| / |A∪B| of each pair's shingle-hash sets (rows not empty): each
        shingle of the smaller set is looked up among the other row's keys."""
        out = np.empty(len(first), dtype=np.float64)
        small = np.where(self.sizes[first] <= self.sizes[second], first, second)
        other = np.where(small == first, second, first)
        per = max(1, _CELLS // max(1, int(self.sizes[small].mean()) if len(small) else 1))
        low_mask = _U64((1 << self.bits) - 1)
        for lo in range(0, len(first), per):
            q, t = small[lo:lo + per], other[lo:lo + per]
            counts = self.sizes[q]
            offsets = np.cumsum(counts) - counts
            at = np.repeat(self.starts[q] - offsets, counts) + np.arange(int(counts.sum()))
            probe = (np.repeat(t, counts).astype(_U64) << _U64(self.bits)) | (
                self.keys[at] & low_mask)
            found = np.minimum(np.searchsorted(self.keys, probe), len(self.keys) - 1)
            hits = (self.keys[found] == probe).astype(np.int64)
            shared = np.where(counts > 0, np.add.reduceat(np.r_[hits, 0], offsets), 0)
            out[lo:lo + per] = shared / (counts + self.sizes[t] - shared)
        return out


# -- candidates and the greedy pass ------------------------------------------------------
def bucket_pairs(keys: np.ndarray, max_pairs: int = _CELLS):
    """Yield (earlier, later) index arrays of every pair of entries that share a key, about
    ``max_pairs`` at a time; ``earlier < later`` within a pair."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    new_group = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(keys)), 0))
    rank = np.arange(len(keys)) - group_start  # entries before this one in its bucket
    ends = np.searchsorted(np.cumsum(rank), np.arange(max_pairs, int(rank.sum()) + max_pairs,
                                                      max_pairs), side="right")
    lo = 0
    for hi in np.unique(np.r_[ends, len(keys)]).tolist():
        r = rank[lo:hi]
        later = np.repeat(np.arange(lo, hi), r)
        within = np.arange(len(later)) - np.repeat(np.cumsum(r) - r, r)
        yield order[np.repeat(group_start[lo:hi], r) + within], order[later]
        lo = hi


def greedy_keep_first(n: int, earlier, later, similarity):
    """Keep-first over similar pairs: (keep mask, best kept match or -1, its similarity).

    Rows are settled in order; a row is rejected by its most similar kept earlier row
    (earliest on ties). One pass over the pairs sorted by (later, -similarity, earlier).
    """
    kept = bytearray(b"\x01") * n
    rejected, match, score = [], [], []
    order = np.lexsort((earlier, -similarity, later))
    for j, i, s in zip(later[order].tolist(), earlier[order].tolist(),
                       similarity[order].tolist()):
        if kept[j] and kept[i]:
            kept[j] = 0
            rejected.append(j), match.append(i), score.append(s)
    dup, best = np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
    dup[rejected], best[rejected] = match, score
    return np.frombuffer(bytes(kept), dtype=np.uint8).astype(bool), dup, best


def twin_pairs(twins, reps, pairs, keep):
    """The similar pairs of rows whose set repeats an earlier row's (their rep), given the
    keep mask of the other rows: (rep, twin) at 1 and (p, twin) for each p similar to the
    rep, at the rep's similarity (a twin has its rep's candidates), for kept p < twin."""
    earlier, later, similarity = pairs
    ends, others = np.r_[earlier, later], np.r_[later, earlier]
    sims = np.r_[similarity, similarity]
    order = np.argsort(ends, kind="stable")
    ends, others, sims = ends[order], others[order], sims[order]
    lo, hi = np.searchsorted(ends, reps), np.searchsorted(ends, reps, side="right")
    counts = hi - lo
    at = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
    first, second = np.r_[reps, others[at]], np.r_[twins, np.repeat(twins, counts)]
    ok = (first < second) & keep[first]
    return first[ok], second[ok], np.r_[np.ones(len(twins)), sims[at]][ok]


class MinHashDedup(Stage):
    """Drop a row whose shingle set is a Jaccard near-duplicate of a row kept before it.

    MinHash (Broder 1997, "On the resemblance and containment of documents") estimates the
    Jaccard similarity |A∩B|/|A∪B| of two shingle sets; LSH banding (Leskovec, Rajaraman &
    Ullman, *Mining of Massive Datasets*, ch. 3.4) makes a pair of similarity s a candidate
    with probability 1-(1-s^rows)^bands (the S-curve). Rows are taken in table order; a row
    is rejected when its Jaccard with a row already *kept* is >= ``threshold``.

    Default banding: of the (bands, rows) whose S-curve reaches ``min_recall`` at the
    threshold, the one with the fewest false candidates. At 0.8 and 128 permutations: 13
    bands of 7 rows, P(candidate) 0.953 at 0.8, 0.67 at 0.7, 0.10 at 0.5, where datasketch's
    default (9 bands of 13) finds 40% of the pairs at 0.8.

    Candidates are verified with the exact Jaccard of the shingle sets, not the MinHash
    estimate (standard deviation 0.035 at 0.8 with 128 permutations), so every rejection is
    true and only recall is probabilistic. It holds 8 bytes per shingle (about 120 MB for a
    million short instructions); shingles are compared by hash (63 minus the row number's
    bits), so two distinct ones collide with probability 2^-43 at a million rows.

    Args:
        field: the text column to compare.
        threshold: reject when Jaccard >= threshold; in (0, 1].
        num_perm: MinHash permutations available; only the bands·rows used are computed
            (4 bytes per row and permutation).
        shingles: ``"word"`` (word n-grams of the tokens) or ``"char"`` (character
            n-grams of the tokens joined by one space).
        ngram: shingle length in words or characters (default 1 word, 5 characters).
            Short instructions: 1-2 words or 3-5 characters; documents: about 5 words.
        bands, rows: the LSH banding (one alone: the other is ``num_perm //`` it).
        min_recall: the S-curve's value required at the threshold by the default banding.
        seed: seeds the permutations; equal seeds give equal decisions.
        tokenizer: ``"unicode"`` (Unicode words, CJK characters one token each),
            ``"rouge"`` (lowercase ASCII words), a callable ``text -> tokens``, or an
            object with a ``tokenize`` method.
        name: stage name (default ``minhash_dedup``).

    Texts that shingle to nothing (empty, or shorter than ``ngram``) are kept and never
    reject a row. Rejected rows get ``_dup_of`` (the ``_id`` of the kept row with the
    highest Jaccard, earliest on ties), ``_jaccard``, code ``near_duplicate_minhash`` and a
    reason such as ``"jaccard 0.85 >= 0.8 vs <id>"``. Stats: ``bands``, ``rows``,
    ``recall_at_threshold``, ``band_pairs`` (pairs sharing a band, per band),
    ``verified_pairs`` (exact Jaccards computed), ``similar_pairs``, ``identical_sets``,
    ``empty_texts``, ``near_duplicates``.
    """

    declares_columns = True

    SHINGLES = ("word", "char")
    kind = "global"

    def __init__(self, field: str, threshold: float = 0.8, num_perm: int = 128,
                 shingles: str = "word", ngram: int | None = None, bands: int | None = None,
                 rows: int | None = None, min_recall: float = 0.95, seed: int = 1,
                 tokenizer="unicode", name: str | None = None, **kwargs):
        super().__init__(name or "minhash_dedup", **kwargs)
        self.field, self.threshold, self.num_perm = field, threshold, num_perm
        self.shingles, self.ngram, self.bands, self.rows = shingles, ngram, bands, rows
        self.min_recall, self.seed, self.tokenizer = min_recall, seed, tokenizer
        self._check_params()
        self._ngram = ngram or (1 if shingles == "word" else 5)
        self._bands, self._rows = self._banding()
        try:
            self._tokenize = make_tokenizer(tokenizer)
            self._ascii_words = isinstance(tokenizer, str) and tokenizer in ASCII_WORD_TOKENIZERS
        except ValueError as exc:
            raise StageError(self.name, str(exc)) from None

    def _check_params(self) -> None:
        def whole(value, optional=True):
            return (optional and value is None) or (
                isinstance(value, int) and not isinstance(value, bool) and value > 0)

        checks = [("threshold", isinstance(self.threshold, (int, float))
                   and 0 < self.threshold <= 1, "a number in (0, 1]"),
                  ("min_recall", isinstance(self.min_recall, (int, float))
                   and 0 < self.min_recall < 1, "a number in (0, 1)"),
                  ("shingles", self.shingles in self.SHINGLES, "'word' or 'char'"),
                  ("num_perm", whole(self.num_perm, optional=False), "a positive int"),
                  *((what, whole(getattr(self, what)), "a positive int or None")
                    for what in ("ngram", "bands", "rows")),
                  ("seed", isinstance(self.seed, int), "an int")]
        for what, ok, wanted in checks:
            if not ok:
                raise StageError(self.name, f"{what} must be {wanted}, "
                                            f"got {getattr(self, what)!r}")

    def _banding(self) -> tuple[int, int]:
        if self.bands is None and self.rows is None:
            return choose_bands(float(self.threshold), self.num_perm, float(self.min_recall))
        bands = self.bands or self.num_perm // self.rows
        rows = self.rows or self.num_perm // self.bands
        if bands < 1 or rows < 1 or bands * rows > self.num_perm:
            raise StageError(self.name, f"bands·rows must be at most num_perm={self.num_perm}, "
                                        f"got {bands}·{rows}")
        return bands, rows

    @property
    def banding(self) -> tuple[int, int]:
        """The (bands, rows) in use."""
        return self._bands, self._rows

    def required_fields(self) -> tuple[str, ...]:
        return (self.field,)

    def field_types(self) -> dict:
        return {self.field: str}  # a row whose cell is not text is errored by the base class

    def added_columns(self) -> dict[str, str]:
        return {DUP_OF: "duplicate_of", "_jaccard": "similarity"}

    def _texts(self, df: pd.DataFrame) -> list[str]:
        return df[self.field].tolist()

    def sketch(self, texts: list[str], offset: int = 0, total: int | None = None) -> Sketches:
        """Shingle sets and signatures of ``texts``, rows ``offset...`` of ``total``."""
        sketches = Sketches(len(texts), self._bands * self._rows, self.seed, offset, total)
        with task(f"{self.name}: sketch", total=len(texts)) as bar:
            for lo in range(0, len(texts), _ROW_BLOCK):
                block = texts[lo:lo + _ROW_BLOCK]
                sketches.add(lo, *shingle_hashes(block, self._tokenize, self.shingles,
                                                 self._ngram, self._ascii_words))
                bar.advance(len(block))
        return sketches.finish()

    def sketch_part(self, texts: list[str], offset: int, total: int):
        """(sketches without signatures, band keys: bands x rows) of rows ``offset...`` of a
        table of ``total`` rows: what a worker of a distributed run sends on."""
        sketches = self.sketch(texts, offset, total)
        keys = self._band_keys(sketches, np.arange(len(texts)))
        sketches.signatures = None
        return sketches, keys

    def _band_keys(self, sketches: Sketches, which: np.ndarray) -> np.ndarray:
        """The band keys of rows ``which``: bands x rows."""
        return np.stack([sketches.band_keys(band, self._rows, which)
                         for band in range(self._bands)])

    def match_pairs(self, first: list[str], second: list[str]) -> pd.DataFrame:
        """Decide each pair (first[i], second[i]) as the stage decides a two-row table:
        columns ``candidate`` (shares a band), ``jaccard`` and ``duplicate``."""
        n = len(first)
        sketches = self.sketch(list(first) + list(second))
        a, b = np.arange(n), np.arange(n, 2 * n)
        shares = (self._band_keys(sketches, a) == self._band_keys(sketches, b)).any(axis=0)
        candidate = (sketches.sizes[a] > 0) & (sketches.sizes[b] > 0) & shares
        jaccard = np.full(n, np.nan)
        jaccard[candidate] = sketches.jaccard(a[candidate], b[candidate])
        return pd.DataFrame({"candidate": candidate, "jaccard": jaccard,
                             "duplicate": candidate & (np.nan_to_num(jaccard) >= self.threshold)})

    # -- the pass -----------------------------------------------------------------------
    def process(self, df: pd.DataFrame) -> StageResult:
        sketches = self.sketch(self._texts(df))
        twins, reps, active = self.plan(sketches)
        keys = self._band_keys(sketches, active)
        sketches.signatures = None  # only the band keys are needed from here on
        pairs, counts = self.similar_pairs(sketches, active, keys)
        empty = len(df) - int((sketches.sizes > 0).sum())
        del sketches, keys
        return self.decided(df, *self.decide(len(df), pairs, twins, reps), {
            "empty_texts": empty, "identical_sets": len(twins),
            "similar_pairs": len(pairs[0]), **counts})

    def plan(self, sketches: Sketches):
        """(twins, their reps, active rows): rows whose set repeats an earlier row's, and the
        rows that are neither empty nor twins (the ones banded)."""
        nonempty = np.flatnonzero(sketches.sizes > 0)
        twins, reps = self._twins(sketches, nonempty)
        return twins, reps, np.setdiff1d(nonempty, twins, assume_unique=True)

    @staticmethod
    def decide(n: int, pairs, twins, reps):
        """(keep, dup, best) of :func:`greedy_keep_first` from the similar pairs; twins
        never reject, so they are settled after the other rows."""
        keep, _, _ = greedy_keep_first(n, *pairs)
        with_twins = (np.r_[mine, theirs] for mine, theirs in
                      zip(pairs, twin_pairs(twins, reps, pairs, keep)))
        return greedy_keep_first(n, *with_twins)

    def decided(self, df: pd.DataFrame, keep, dup, best, stats: dict) -> StageResult:
        """The stage's result from its decisions and the counts of the pass."""
        out, reasons = mark_near_duplicates(df, keep, dup, best, "_jaccard", "jaccard",
                                            self.threshold, op=">=")
        return self.result(out, keep, "near_duplicate_minhash", reasons,
                           near_duplicates=int((~keep).sum()), **stats,
                           bands=self._bands, rows=self._rows, recall_at_threshold=round(
                               float(lsh_recall(self.threshold, *self.banding)), 4))

    def _twins(self, sketches: Sketches, nonempty: np.ndarray):
        """(rows, the first row with the same set) for rows whose set repeats an earlier
        one (equal fingerprints, confirmed by an exact Jaccard of 1)."""
        codes, _ = pd.factorize(sketches.fingerprints[nonempty])
        reps = nonempty[np.flatnonzero(~pd.Series(codes).duplicated().to_numpy())][codes]
        twin = reps != nonempty
        twins, reps = nonempty[twin], reps[twin]
        same = sketches.jaccard(reps, twins) == 1.0
        return twins[same], reps[same]

    def similar_pairs(self, sketches: Sketches, active: np.ndarray, keys: np.ndarray,
                      bands=None):
        """((earlier, later, jaccard) of the candidates at or above the threshold, counts);
        ``keys[band]`` holds the band keys of the ``active`` rows. ``bands``: those to look
        in (default all); a pair is verified in the first band it shares, so disjoint sets
        of bands give disjoint pairs."""
        found, counts = [], {"band_pairs": 0, "verified_pairs": 0}
        for band in range(self._bands) if bands is None else bands:
            for first, later in bucket_pairs(keys[band]):
                counts["band_pairs"] += len(first)
                near = sketches.jaccard_bound(active[first], active[later]) >= self.threshold
                first, later = first[near], later[near]
                for earlier_band in keys[:band]:  # verified in an earlier band already
                    fresh = earlier_band[first] != earlier_band[later]
                    first, later = first[fresh], later[fresh]
                first, later = active[first], active[later]
                counts["verified_pairs"] += len(first)
                jaccard = sketches.jaccard(first, later)
                similar = jaccard >= self.threshold
                found.append((first[similar], later[similar], jaccard[similar]))
        if not found:
            return (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)), counts
        return tuple(np.concatenate(part) for part in zip(*found)), counts
