import math
import random

import numpy as np
import pandas as pd
import corpus
import pytest

from curate.testing.near_duplicates import KINDS, labelled_pairs, make_corpus
from curate import StageError
from curate.stages.dedup_minhash import MinHashDedup, choose_bands, hash_strings, lsh_recall
from curate.stages.near_duplicates import score_text
from curate.core.table import assign_ids
from curate.text import unicode_tokenize

FULL_RECALL = {"bands": 128, "rows": 1}  # every pair sharing a shingle is a candidate


def shingle_set(text, shingles="word", ngram=1):
    tokens = unicode_tokenize(text)
    if shingles == "word":
        return {tuple(tokens[i:i + ngram]) for i in range(len(tokens) - ngram + 1)}
    joined = " ".join(tokens)
    return {joined[i:i + ngram] for i in range(len(joined) - ngram + 1)}


def jaccard(a, b):
    return len(a & b) / len(a | b) if a and b else 0.0


def reference(texts, threshold, **shingling):
    """The keep-first rule over all pairs: kept positions, {rejected: (dup_of, jaccard)}."""
    sets = [shingle_set(t, **shingling) for t in texts]
    kept, rejected = [], {}
    for j, s in enumerate(sets):
        scores = [jaccard(s, sets[i]) for i in kept]
        if scores and max(scores) >= threshold:
            best = int(np.argmax(scores))  # first maximum: the earliest kept row on ties
            rejected[j] = (kept[best], scores[best])
        else:
            kept.append(j)
    return kept, rejected


def ours(texts, **kwargs):
    df = pd.DataFrame({"text": texts, "_id": [f"r{i}" for i in range(len(texts))]})
    res = MinHashDedup("text", **kwargs).run(df)
    kept = sorted(int(i[1:]) for i in res.kept["_id"])
    rejected = {int(i[1:]): (int(d[1:]), float(s)) for i, d, s in
                zip(res.rejected["_id"], res.rejected["_dup_of"], res.rejected["_jaccard"])}
    return kept, rejected


def edited_texts(n=400, seed=0):
    return corpus.edited_texts(n, seed, repeat=0.15, edit=0.35, max_edits=2, max_words=14)


SENTENCE = "what is the p99 latency of the checkout service over the last hour by region"


def test_one_word_edit_of_a_longer_sentence_is_rejected_naming_the_kept_row():
    edit = SENTENCE.replace("checkout", "payments")  # 12 of 14 distinct words shared
    df = pd.DataFrame({"q": [SENTENCE, "count errors by endpoint", edit],
                       "_id": ["a", "b", "c"]})
    res = MinHashDedup("q").run(df)
    assert res.kept["_id"].tolist() == ["a", "b"]
    assert res.rejected["_dup_of"].tolist() == ["a"]
    assert res.rejected["_jaccard"].tolist() == [12 / 14]
    assert res.rejected["_reason"].tolist() == ["jaccard 0.86 >= 0.8 vs a"]
    assert res.rejected["_reason_code"].tolist() == ["near_duplicate_minhash"]
    assert not {"_dup_of", "_jaccard"} & set(res.kept.columns)  # written on rejected rows only
    assert res.stats["near_duplicates"] == 1 and res.stats["similar_pairs"] == 1


def test_unrelated_texts_are_kept():
    texts = [SENTENCE, "the careful engineer quietly reviewed the old report",
             "plot error rate by host for the search service", "count errors by endpoint"]
    assert ours(texts) == ([0, 1, 2, 3], {})


def test_the_earlier_row_is_kept_whichever_it_is():
    edit = SENTENCE.replace("region", "zone")
    assert ours([SENTENCE, edit], **FULL_RECALL)[1] == {1: (0, 12 / 14)}
    assert ours([edit, SENTENCE], **FULL_RECALL)[1] == {1: (0, 12 / 14)}


def test_a_row_matching_only_a_rejected_row_is_kept():
    first = "a b c d e f g h i j"
    second = first.replace("c", "x")   # 9/11 with first
    third = second.replace("g", "y")   # 9/11 with second, 8/12 with first
    kept, rejected = ours([first, second, third], **FULL_RECALL)
    assert kept == [0, 2] and rejected == {1: (0, 9 / 11)}


def test_jaccard_equal_to_the_threshold_is_rejected():
    kept, rejected = ours(["a b c d", "a b c d e"], **FULL_RECALL)  # 4/5 = 0.8
    assert rejected == {1: (0, 0.8)}
    assert score_text(0.8, 0.8, op=">=") == "0.80"
    assert score_text(0.80049, 0.8004, op=">=") == "0.8005"
    with pytest.raises(KeyError):  # an unknown comparison is not read as ">"
        score_text(0.9, 0.8, op="=>")


def test_empty_and_too_short_texts_are_kept_and_never_reject():
    assert ours(["", "", "  ", "!!!", "ok fine", "ok fine"])[0] == [0, 1, 2, 3, 4]
    assert ours(["hello", "hello", "a b", "a b"], ngram=2)[0] == [0, 1, 2]
    assert ours(["abc", "abc", "abcdef", "abcdef"], shingles="char")[0] == [0, 1, 2]


@pytest.mark.parametrize("bad,code", [(None, "missing_field"), (3, "wrong_type"),
                                      (float("nan"), "missing_field"), (["a list"], "wrong_type")])
def test_a_cell_that_is_not_text_errors_its_row(bad, code):
    df = pd.DataFrame({"q": ["fine", bad, "fine too"], "_id": ["a", "b", "c"]}, dtype=object)
    res = MinHashDedup("q").run(df)
    assert res.errored["_id"].tolist() == ["b"] and res.errored["_reason_code"].tolist() == [code]
    assert res.errored["_field"].tolist() == ["q"] and sorted(res.kept["_id"]) == ["a", "c"]


def test_same_decisions_dup_of_and_jaccard_as_the_all_pairs_rule():
    texts = edited_texts()
    for threshold, shingling in ((0.8, {}), (0.6, {"ngram": 2}),
                                 (0.7, {"shingles": "char", "ngram": 4}), (0.5, {})):
        expected = reference(texts, threshold, **shingling)
        assert ours(texts, threshold=threshold, **shingling, **FULL_RECALL) == expected
    assert 50 < len(reference(texts, 0.8)[1]) < len(texts) - 100


def test_repeated_texts_follow_the_first_copy():
    base = "a b c d e f g h i j"
    rejected_once, kept_later = base + " x", base + " x y"  # 10/11 and 10/12 with base
    texts = [base, rejected_once, kept_later] + [rejected_once] * 200 + [base] * 100
    kept, rejected = ours(texts, threshold=0.9, **FULL_RECALL)
    assert (kept, rejected) == reference(texts, 0.9)
    assert kept == [0, 2] and rejected[1] == (0, 10 / 11)
    assert rejected[3] == (2, 11 / 12)  # the best kept match, kept after the first copy
    assert rejected[203] == (0, 1.0)
    stats = MinHashDedup("text").run(pd.DataFrame({"text": texts})).stats
    assert stats["identical_sets"] == 300 and stats["band_pairs"] <= 3 * stats["bands"]


def test_default_banding_reaches_the_requested_recall_with_fewest_false_candidates():
    grid = np.linspace(0, 1, 401)
    for threshold, num_perm, min_recall in ((0.8, 128, 0.95), (0.8, 128, 0.9), (0.5, 128, 0.95),
                                            (0.9, 256, 0.99), (0.7, 64, 0.95)):
        bands, rows = choose_bands(threshold, num_perm, min_recall)
        assert bands * rows <= num_perm
        recall = 1 - (1 - threshold ** rows) ** bands  # the S-curve, written out
        assert recall >= min_recall and math.isclose(recall, lsh_recall(threshold, bands, rows))
        area = lsh_recall(grid * threshold, bands, rows).mean()
        for r in range(1, num_perm + 1):  # no other feasible banding has fewer candidates
            for b in range(1, num_perm // r + 1):
                if lsh_recall(threshold, b, r) >= min_recall:
                    assert lsh_recall(grid * threshold, b, r).mean() >= area - 1e-12
    assert choose_bands(0.8, 128) == (13, 7)
    assert lsh_recall(0.8, 9, 13) < 0.41  # datasketch's default banding at 0.8, 128
    stage = MinHashDedup("q")
    stats = stage.run(pd.DataFrame({"q": ["x"]})).stats
    assert (stats["bands"], stats["rows"]) == stage.banding == (13, 7)
    assert stats["recall_at_threshold"] == round(float(lsh_recall(0.8, 13, 7)), 4)


def test_given_bands_or_rows_are_used():
    assert MinHashDedup("q", bands=16, rows=8).banding == (16, 8)
    assert MinHashDedup("q", rows=8).banding == (16, 8)
    assert MinHashDedup("q", bands=20, num_perm=100).banding == (20, 5)


def test_measured_candidate_rate_follows_the_s_curve():
    stage, n = MinHashDedup("q"), 3000
    bands, rows = stage.banding
    for shared, own in ((14, 3), (16, 2), (18, 1)):  # Jaccard 0.7, 0.8, 0.9
        common = [" ".join(f"c{p}x{k}" for k in range(shared)) for p in range(n)]
        first = [f"{c} " + " ".join(f"a{p}x{k}" for k in range(own)) for p, c in enumerate(common)]
        second = [f"{c} " + " ".join(f"b{p}x{k}" for k in range(own)) for p, c in enumerate(common)]
        got = stage.match_pairs(first, second)
        p = lsh_recall(shared / (shared + 2 * own), bands, rows)
        assert abs(got["candidate"].mean() - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-3
        assert np.allclose(got.loc[got["candidate"], "jaccard"], shared / (shared + 2 * own))


def test_labelled_pairs_agree_with_exact_jaccard():
    """Documented level: every flagged pair is >= the threshold (precision 1), recall >=
    0.95 over the pairs at or above it, and no disagreement at all on pairs 0.1 or more away
    from the threshold (where the S-curve misses one pair in 5,000)."""
    pairs = labelled_pairs(per_kind=150, seed=0)
    stage = MinHashDedup("q")
    got = stage.match_pairs([p.first for p in pairs], [p.second for p in pairs])
    truth = np.array([jaccard(shingle_set(p.first), shingle_set(p.second)) for p in pairs])
    flagged = got["duplicate"].to_numpy()
    assert np.allclose(got["jaccard"][flagged], truth[flagged])
    assert (truth[flagged] >= 0.8).all()
    assert flagged[truth >= 0.8].mean() >= 0.95
    far = np.abs(truth - 0.8) >= 0.1
    assert (flagged[far] == (truth[far] >= 0.8)).all()
    kinds = np.array([p.kind for p in pairs])
    assert set(kinds) == set(KINDS) and 0.05 < (truth >= 0.8).mean() < 0.95
    for k in range(0, len(pairs), 53):  # the pair decision is the stage's on a two-row table
        kept, _ = ours([pairs[k].first, pairs[k].second])
        assert (kept == [0]) == flagged[k]


def test_same_seed_same_decisions_and_stable_hashes():
    texts, _ = make_corpus(3000, seed=1)
    assert ours(texts, seed=7) == ours(texts, seed=7)
    assert hash_strings(["checkout", ""]).tolist() == [1383134565049051229, 0]


def test_every_row_ends_kept_or_rejected():
    texts, source = make_corpus(5000, seed=2)
    df = pd.DataFrame({"text": texts})
    res = MinHashDedup("text", shingles="char", ngram=4, threshold=0.7).run(df)
    out_ids = pd.concat([res.kept["_id"], res.rejected["_id"]])
    assert len(res.errored) == 0 and out_ids.is_unique
    assert len(out_ids) == len(df) and set(out_ids) == set(assign_ids(df)["_id"])
    assert set(res.rejected["_dup_of"]) <= set(res.kept["_id"])
    assert (res.rejected["_jaccard"] >= 0.7).all()
    injected = sum(s is not None for s in source)
    assert res.stats["near_duplicates"] == len(res.rejected) > 0.5 * injected


def test_unicode_text_is_deduplicated_with_the_default_tokenizer():
    texts = ["Сколько ошибок было у сервиса оплаты за последний час сегодня утром",
             "Сколько ошибок было у сервиса оплаты за последний час сегодня вечером",
             "统计每个服务在过去一小时的错误数量", "统计每个服务在过去一小时的错误数目"]
    assert ours(texts, **FULL_RECALL)[0] == [0, 2]
    assert ours(texts, tokenizer="rouge")[0] == [0, 1, 2, 3]  # ASCII only: nothing left


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"threshold": 1.5}, {"num_perm": 0},
                                    {"shingles": "sentence"}, {"ngram": 0}, {"bands": True},
                                    {"bands": 20, "rows": 7}, {"min_recall": 1},
                                    {"seed": "x"}, {"tokenizer": 3}])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(StageError):
        MinHashDedup("q", **kwargs)
