import random
from fractions import Fraction

import numpy as np
import pandas as pd
import corpus
import pytest
from rouge_score import rouge_scorer, scoring, tokenize

from curate import StageError
from curate.stages.dedup_rouge import RougeDedup
from curate.core.table import assign_ids
from curate.text import make_tokenizer, unicode_tokenize


class _Tok:
    def __init__(self, fn):
        self.tokenize = fn


def reference(texts, thresholds, **scorer_kwargs):
    """Self-instruct's loop: score each candidate against every kept text with rouge-score.

    Pairwise scores are computed once (candidate = the later text, as self-instruct calls
    ``scorer.score(new, kept)``) and the greedy pass is replayed for each threshold.
    Returns {threshold: (kept positions, {rejected: (dup_of position, score)})}.
    """
    scorer = rouge_scorer.RougeScorer(["rougeL"], **scorer_kwargs)
    n = len(texts)
    scores = np.zeros((n, n))
    for i in range(n):
        for j in range(i):
            scores[i, j] = scorer.score(texts[i], texts[j])["rougeL"].fmeasure
    out = {}
    for t in thresholds:
        kept, rejected = [], {}
        for i in range(n):
            s = scores[i, kept]
            if len(s) and s.max() > t:
                rejected[i] = (kept[int(np.argmax(s))], float(s.max()))
            else:
                kept.append(i)
        out[t] = (kept, rejected)
    return out


def ours(texts, **kwargs):
    df = pd.DataFrame({"text": texts, "_id": [f"r{i}" for i in range(len(texts))]})
    res = RougeDedup("text", **kwargs).run(df)
    assert len(res.kept) + len(res.rejected) == len(texts)
    kept = [int(i[1:]) for i in res.kept["_id"]]
    rejected = {int(i[1:]): (int(d[1:]), float(s)) for i, d, s in
                zip(res.rejected["_id"], res.rejected["_dup_of"], res.rejected["_rouge_l"])}
    return kept, rejected


def generated_texts(n=260, seed=0):
    return corpus.edited_texts(n, seed)


def boundary_pair(tag, lcs, m, n):
    """Two texts of m and n tokens whose LCS is exactly ``lcs`` (tokens unique to the pair)."""
    common = [f"{tag}c{k}" for k in range(lcs)]
    a = common + [f"{tag}a{k}" for k in range(m - lcs)]
    b = [f"{tag}b{k}" for k in range(n - lcs)] + common
    return " ".join(a), " ".join(b)


def test_same_decisions_dup_of_and_scores_as_the_reference_loop():
    texts = generated_texts()
    thresholds = (0.0, 0.5, 0.7, 0.9)
    ref = reference(texts, thresholds)
    for t in thresholds:
        for block in (7, 1024):
            got = ours(texts, threshold=t, block_size=block)
            assert got[0] == ref[t][0], f"kept sets differ at threshold {t}"
            assert got[1] == ref[t][1], f"dup_of/scores differ at threshold {t}"
    assert 0 < len(ref[0.7][1]) < len(texts) - 50  # the set exercises both outcomes


def test_scores_on_the_threshold_fall_where_rouge_score_puts_them():
    t = 0.7
    cases = [(lcs, m, n) for m in range(1, 22) for n in range(m, 40) for lcs in range(1, m + 1)
             if Fraction(2 * lcs, m + n) == Fraction("0.7")]
    above = [c for c in cases if scoring.fmeasure(c[0] / c[1], c[0] / c[2]) > t]
    assert (7, 7, 13) in above and (7, 10, 10) not in above and len(above) < len(cases)
    texts = [x for k, c in enumerate(cases) for x in boundary_pair(f"p{k}", *c)]
    got_kept, got_rej = ours(texts, threshold=t)
    assert (got_kept, got_rej) == reference(texts, [t])[t]
    rejected_cases = sorted(cases[i // 2] for i in got_rej)
    assert rejected_cases == sorted(above)  # exactly the pairs whose float F exceeds 0.7


def test_integer_token_path_used_for_huge_vocabularies_gives_the_same_result(monkeypatch):
    import curate.stages.dedup_rouge as module

    texts = generated_texts(150, seed=5)
    expected = ours(texts)
    monkeypatch.setattr(module, "_MAX_CODE", 3)  # too many tokens for one code point each
    assert ours(texts) == expected
    assert len(expected[1]) > 10


def test_reason_names_the_score_the_threshold_and_the_kept_row():
    df = pd.DataFrame({"q": ["count errors by service", "Count errors by service!", "p99"],
                       "_id": ["a", "b", "c"]})
    res = RougeDedup("q").run(df)
    assert res.rejected["_reason"].tolist() == ["rouge-l 1.00 > 0.7 vs a"]
    assert res.rejected["_reason_code"].tolist() == ["near_duplicate_rouge"]
    assert res.rejected["_dup_of"].tolist() == ["a"] and res.rejected["_rouge_l"].tolist() == [1.0]
    assert not {"_dup_of", "_rouge_l"} & set(res.kept.columns) and res.stats["near_duplicates"] == 1


def test_stemmer_matches_rouge_score_with_use_stemmer():
    texts = ["counting errors grouped by services", "count error group by service",
             "showing the slowest requests", "show the slow request"]
    without = ours(texts)
    assert without[0] == [0, 1, 2, 3]
    with_stem = ours(texts, use_stemmer=True)
    assert with_stem == reference(texts, [0.7], use_stemmer=True)[0.7]
    assert with_stem[1] == {1: (0, 1.0), 3: (2, 0.75)}  # porter keeps 'slowest'


def test_default_tokenizer_cannot_dedupe_non_english_text_but_unicode_can():
    texts = ["Сколько ошибок было у сервиса оплаты за последний час?",
             "Сколько ошибок было у сервиса оплаты за последний день?",
             "统计每个服务在过去一小时的错误数量",
             "统计每个服务在过去一天的错误数量",
             "Покажи самые медленные запросы"]
    assert ours(texts)[0] == [0, 1, 2, 3, 4]  # rouge's tokenizer deletes every letter here
    got = ours(texts, tokenizer="unicode")
    assert got[0] == [0, 2, 4]
    assert got == reference(texts, [0.7], tokenizer=_Tok(unicode_tokenize))[0.7]


def test_callable_and_object_tokenizers():
    texts = ["a-b-c-d", "a-b-c-x", "q-r-s-t"]
    split_dash = lambda s: s.split("-")  # noqa: E731
    assert ours(texts, tokenizer=split_dash)[0] == [0, 2]  # 3 of 4 tokens: F = 0.75
    assert ours(texts, tokenizer=_Tok(split_dash), threshold=0.75)[0] == [0, 1, 2]


def test_empty_texts_are_kept_as_rouge_score_scores_them_zero():
    res = RougeDedup("q").run(pd.DataFrame({"q": ["", "", "?!", "ok go", "ok go"]}))
    assert res.kept["q"].tolist() == ["", "", "?!", "ok go"]
    assert res.stats["empty_texts"] == 3


def test_fast_rouge_tokenizer_equals_rouge_score_tokenize():
    fast = make_tokenizer("rouge")
    rng = random.Random(1)
    alphabet = "aZ09 _-.,'\u212a\u0130\u00e9\u4e2d\tK\nß"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
        assert fast(text) == tokenize.tokenize(text, None)


def test_invariant_and_ids():
    texts = generated_texts(120, seed=3)
    df = pd.DataFrame({"text": texts})
    res = RougeDedup("text").run(df)
    out = res.kept["_id"].tolist() + res.rejected["_id"].tolist()
    assert sorted(out) == sorted(assign_ids(df)["_id"]) and len(out) == len(texts)
    assert set(res.rejected["_dup_of"]) <= set(res.kept["_id"])
    assert (res.rejected["_rouge_l"] > 0.7).all()


def test_bad_input_is_a_stage_error():
    with pytest.raises(StageError, match="threshold"):
        RougeDedup("q", threshold=1.5)
    with pytest.raises(StageError, match="use_stemmer applies to tokenizer='rouge'"):
        RougeDedup("q", tokenizer="unicode", use_stemmer=True)
    res = RougeDedup("q").run(pd.DataFrame({"q": ["a b c", 3, None, "d e f"]}, dtype=object))
    assert res.errored["_reason_code"].tolist() == ["wrong_type", "missing_field"]
    assert res.errored["_reason"].tolist() == ["field 'q' holds int 3, expected text",
                                               "field 'q' is missing (empty or null)"]
    assert res.errored["_field"].tolist() == ["q", "q"] and len(res.kept) == 2
    with pytest.raises(StageError, match=r"stage 'rouge_dedup': 2 of 3 rows errored"):
        RougeDedup("q").run(pd.DataFrame({"q": ["a b c", 3, 4]}, dtype=object))


def test_one_huge_text_is_errored_quickly_and_the_rest_deduplicated():
    import time
    huge = "word " * 4_000_000  # a 20 MB single line
    df = pd.DataFrame({"q": ["the first question", huge, "the first question!", "other"]})
    start = time.perf_counter()
    res = RougeDedup("q", max_tokens=20_000).run(df)
    assert time.perf_counter() - start < 30
    assert res.errored["_reason_code"].tolist() == ["text_too_long"]
    assert "4,000,000 tokens" in res.errored["_reason"].iloc[0]
    assert res.rejected["_dup_of"].tolist() == [res.kept["_id"].iloc[0]]


def test_most_texts_empty_warns_and_suggests_the_unicode_tokenizer():
    res = RougeDedup("q").run(pd.DataFrame({"q": ["统计每个服务的错误", "统计每个服务的错误率", "p99"]}))
    assert 'tokenizer="unicode"' in res.stats["warnings"][0]
    assert "2 of 3 texts" in res.stats["warnings"][0]
