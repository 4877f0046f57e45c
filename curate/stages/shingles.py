"""Stable 64-bit hashes of tokens and shingles, computed over whole columns at once.

A token's hash is built from its code points with the splitmix64 finaliser, so it never
depends on the rest of the table, the Python hash seed or the platform. Word shingles are
windows of token hashes, character shingles windows of code points (tokens joined by one
space). For the ``"unicode"`` and ``"rouge"`` tokenisers an ASCII text's tokens are its runs
of ``[a-z0-9]`` once lowercased, so ASCII rows are tokenised as numpy arrays (the slow part
otherwise); other rows go through the tokeniser one at a time, giving the same hashes.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

U64 = np.uint64
GOLDEN = 0x9E3779B97F4A7C15
ASCII_WORD_TOKENIZERS = ("unicode", "rouge")  # ASCII tokens: runs of [a-z0-9] once lowered


def mix(z) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (a bijection that spreads every bit)."""
    z = np.array(z, dtype=U64)
    z ^= z >> U64(30)
    z *= U64(0xBF58476D1CE4E5B9)
    z ^= z >> U64(27)
    z *= U64(0x94D049BB133111EB)
    z ^= z >> U64(31)
    return z


def _keyed(values: np.ndarray, position) -> np.ndarray:
    """A value's hash keyed by its position in a shingle (so sums depend on order)."""
    if isinstance(position, int):
        return mix(values.astype(U64) + U64((position + 1) * GOLDEN % (1 << 64)))
    return mix(values.astype(U64) + (position.astype(U64) + U64(1)) * U64(GOLDEN))


def code_points(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(code points of all strings, one after the other; length of each string)."""
    blob = "".join(strings).encode("utf-32-le", "surrogatepass")
    return (np.frombuffer(blob, dtype=np.uint32),
            np.fromiter(map(len, strings), dtype=np.int64, count=len(strings)))


def window_hashes(values: np.ndarray, lengths: np.ndarray, n: int):
    """(hash of every run of ``n`` consecutive values inside a segment, runs per segment);
    the segments, of ``lengths``, tile ``values``; a segment shorter than n has none."""
    counts = np.maximum(lengths - n + 1, 0)
    total = len(values) - n + 1
    if total <= 0 or not counts.any():
        return np.empty(0, U64), counts
    acc = np.zeros(total, dtype=U64)
    for m in range(n):
        acc += _keyed(values[m:m + total], m)
    start = np.repeat(np.cumsum(lengths) - lengths, lengths)[:total]
    fits = np.arange(total) - start <= np.repeat(lengths - n, lengths)[:total]
    return mix(acc[fits] + U64(n)), counts


def _segment_hashes(points: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
    """The hash of each segment of ``points`` (a string's hash from its code points)."""
    if not len(starts):
        return np.empty(0, U64)
    within = np.arange(len(points)) - np.repeat(starts, lengths)
    sums = np.add.reduceat(np.r_[_keyed(points, within), U64(0)], starts)
    sums[lengths == 0] = 0
    return mix(sums + lengths.astype(U64))


def hash_strings(strings: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of strings (a string's equals its character n-gram hash)."""
    points, lengths = code_points(strings)
    return _segment_hashes(points, np.cumsum(lengths) - lengths, lengths)


# bytes that stay in an ASCII token, lowercased; every other byte becomes a space
_ASCII_WORDS = bytes(c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122
                     else 1 if c == 1 else 32 for c in range(256))


def _ascii_units(texts: list[str], shingles: str):
    """For ASCII texts without ``\\x01``: (token hashes for word shingles, or the code points
    of the tokens joined by one space for character shingles; their count per text). One
    ``bytes.translate`` over all the texts and Arrow's split; no Python call per text."""
    if not texts:
        return np.empty(0, U64 if shingles == "word" else np.uint32), np.zeros(0, np.int64)
    blob = ("\x01 " + " \x01 ".join(texts) + " \x01").encode("ascii").translate(_ASCII_WORDS)
    if shingles == "char":  # runs of spaces to one; a text lies between "\x01 " and " \x01"
        chars = np.frombuffer(blob, dtype=np.uint8)
        space = chars == 32
        chars = chars[~(space & np.r_[False, space[:-1]])]
        seps = np.flatnonzero(chars == 1)
        starts = seps[:-1] + 2
        lengths = np.maximum(seps[1:] - 1 - starts, 0)
        at = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return chars[at + np.arange(len(at))].astype(np.uint32), lengths
    tokens = pc.list_flatten(pc.ascii_split_whitespace(
        pa.array([blob.decode("ascii")], type=pa.large_string())))
    encoded = pc.dictionary_encode(tokens)
    codes = encoded.indices.to_numpy()
    hashes = hash_strings(encoded.dictionary.to_pylist())  # code 0 is the first "\x01"
    return hashes[codes[codes != 0]], np.diff(np.flatnonzero(codes == 0)) - 1


def _tokenized_units(texts: list[str], tokenize, shingles: str):
    """The same as :func:`_ascii_units` through the tokeniser, one text at a time."""
    tokens = [tokenize(t) for t in texts]
    if shingles == "char":
        return code_points([" ".join(t) for t in tokens])
    codes, vocabulary = pd.factorize(pd.Series(list(itertools.chain.from_iterable(tokens)),
                                               dtype=object))
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    return hash_strings(list(vocabulary))[codes], lengths


def _interleave(n: int, parts):
    """Merge ``(rows, values, count per row)`` parts into values in row order, counts."""
    counts = np.zeros(n, dtype=np.int64)
    for rows, _, part_counts in parts:
        counts[rows] = part_counts
    out_start = np.cumsum(counts) - counts
    values = np.empty(int(counts.sum()), dtype=parts[0][1].dtype)
    for rows, part_values, part_counts in parts:
        shift = out_start[rows] - (np.cumsum(part_counts) - part_counts)
        values[np.repeat(shift, part_counts) + np.arange(len(part_values))] = part_values
    return values, counts


def shingle_hashes(texts: list[str], tokenize, shingles: str, ngram: int,
                   ascii_words: bool = False):
    """(hash of every shingle in text order, shingle count per text). ``ascii_words``: the
    tokeniser's tokens of an ASCII text are its runs of ``[a-z0-9]`` once lowercased."""
    if not ascii_words:
        return window_hashes(*_tokenized_units(texts, tokenize, shingles), ngram)
    joined = "".join(texts)
    if joined.isascii() and "\x01" not in joined:
        return window_hashes(*_ascii_units(texts, shingles), ngram)
    is_ascii = np.fromiter((t.isascii() and "\x01" not in t for t in texts), dtype=bool,
                           count=len(texts))
    parts = []
    for rows, fast in ((np.flatnonzero(is_ascii), True), (np.flatnonzero(~is_ascii), False)):
        subset = [texts[i] for i in rows.tolist()]
        units = (_ascii_units(subset, shingles) if fast
                 else _tokenized_units(subset, tokenize, shingles))
        parts.append((rows, *units))
    return window_hashes(*_interleave(len(texts), parts), ngram)
