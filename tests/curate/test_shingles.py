import random

import numpy as np
import pytest

from curate.testing.near_duplicates import make_corpus
from curate.stages.shingles import shingle_hashes
from curate.text import make_tokenizer

ODD = ["", "   ", "Café au lait, s'il vous plaît", "统计每个服务的错误", "A_B c-d  E", "x",
       "İstanbul and the Kelvin sign K", "__", "hello   WORLD!! 42x", " lead trail ",
       "tab\tand\nnewline", "a\x01b c", "MiXeD CaSe 123abc"]


def texts(seed=0):
    rng = random.Random(seed)
    base, _ = make_corpus(500, seed)
    out = base + ODD + [rng.choice(ODD) + " " + t for t in base[:50]]
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("tokenizer", ["unicode", "rouge"])
@pytest.mark.parametrize("shingles,ngram", [("word", 1), ("word", 3), ("char", 5), ("char", 2)])
@pytest.mark.parametrize("ascii_only", [False, True])
def test_ascii_path_hashes_the_shingles_the_tokenizer_gives(tokenizer, shingles, ngram,
                                                            ascii_only):
    rows = [t for t in texts() if t.isascii()] if ascii_only else texts()
    tokenize = make_tokenizer(tokenizer)
    slow = shingle_hashes(rows, tokenize, shingles, ngram, ascii_words=False)
    fast = shingle_hashes(rows, tokenize, shingles, ngram, ascii_words=True)
    assert slow[0].dtype == fast[0].dtype == np.uint64
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_array_equal(fast[0], slow[0])
    assert len(fast[1]) == len(rows) and fast[1].sum() > len(rows)


@pytest.mark.parametrize("rows", [[], [""], ["", "  ", "!!"]])
def test_ascii_path_on_no_text_or_no_tokens(rows):
    for shingles in ("word", "char"):
        hashes, counts = shingle_hashes(rows, make_tokenizer("unicode"), shingles, 1, True)
        assert len(hashes) == 0 and counts.tolist() == [0] * len(rows)
