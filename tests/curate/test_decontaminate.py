"""Decontaminate: exact, n-gram and near matches against a reference set, each named."""
import json

import pandas as pd
import pytest

from curate import Decontaminate, Pipeline, StageError, read_table

EVAL = [
    {"nlq": "events whose message contains 'Liveness probe failed', per pod, most first"},
    {"nlq": "slowest database queries by p99 duration over the last hour grouped by table name"},
    {"nlq": "count of errors per service"},
]


@pytest.fixture
def eval_file(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in EVAL))
    return path


def rows():
    return pd.DataFrame({"nlq": [
        "Count of ERRORS per service!",                                               # exact
        "show me the slowest database queries by p99 duration over the last day",    # ngram
        "events with message containing 'Liveness probe failed', by pod, most first",  # near
        "average request latency per endpoint for the checkout service",             # clean
        "count of errors per host over the last week by region",                     # clean
    ]})


def test_each_kind_of_overlap_is_rejected_with_the_reference_row_it_matched(eval_file):
    res = Decontaminate(eval_file, field="nlq").run(rows())
    assert res.kept["nlq"].tolist() == ["average request latency per endpoint for the checkout "
                                        "service", "count of errors per host over the last week by region"]
    rejected = res.rejected.set_index("nlq")
    codes = rejected["_reason_code"].tolist()
    assert codes == ["contaminated_exact", "contaminated_ngram", "contaminated_near"]
    matched = [m.rsplit(":", 1)[1] for m in rejected["_reference_match"]]
    assert matched == ["3", "2", "1"]
    assert all(m.rsplit(":", 1)[0].endswith("eval.jsonl") for m in rejected["_reference_match"])
    reasons = rejected["_reason"].tolist()
    assert reasons[1].startswith("shares the 6-word run 'slowest database queries by p99 duration' ")
    assert reasons[2].startswith("rouge-l 0.") and "> 0.7 vs reference row" in reasons[2]
    assert rejected["_reference_score"].iloc[2] > 0.7
    assert pd.isna(rejected["_reference_score"].iloc[0])
    assert "_reference_match" not in res.kept.columns  # bookkeeping on rejected rows only
    assert res.stats["matches"] == {"exact": 1, "ngram": 1, "near": 1}


def test_each_check_can_be_switched_off_and_the_ngram_length_matters(eval_file):
    table = rows()
    assert Decontaminate(eval_file, "nlq", ngram=None, threshold=None).run(table) \
        .stats["rejected"] == 1
    longer = Decontaminate(eval_file, "nlq", ngram=13, threshold=None).run(table)  # too long
    assert longer.stats["matches"] == {"exact": 1, "ngram": 0, "near": 0}
    shorter = Decontaminate(eval_file, "nlq", ngram=4, threshold=None).run(table)
    # "count of errors per" is shared too
    assert shorter.stats["matches"] == {"exact": 1, "ngram": 2, "near": 0}
    assert Decontaminate(eval_file, "nlq", ngram=None).run(table).stats["matches"] == \
        {"exact": 1, "ngram": 0, "near": 1}  # the n-gram row is no near duplicate


def test_a_dataframe_reference_and_another_reference_field(eval_file):
    ref = pd.DataFrame({"question": [r["nlq"] for r in EVAL]})
    res = Decontaminate(ref, field="nlq", reference_field="question").run(rows())
    assert res.stats["rejected"] == 3
    assert res.rejected["_reference_match"].tolist() == ["<DataFrame>:3", "<DataFrame>:2",
                                                         "<DataFrame>:1"]


def test_an_edited_reference_changes_the_fingerprint_and_reruns_the_stage(eval_file, tmp_path):
    stage = Decontaminate(eval_file, "nlq")
    before = stage.fingerprint().digest
    assert Decontaminate(eval_file, "nlq").fingerprint().digest == before
    pipe = Pipeline(source=rows(), stages=[Decontaminate(eval_file, "nlq")])
    assert pipe.run(tmp_path / "run", progress=False).manifest["rows"]["kept"] == 2
    eval_file.write_text(json.dumps({"nlq": "count of errors per host over the last week by "
                                            "region"}) + "\n")
    assert Decontaminate(eval_file, "nlq").fingerprint().digest != before
    again = Pipeline(source=rows(), stages=[Decontaminate(eval_file, "nlq")])
    run = again.run(tmp_path / "run", progress=False)
    assert run.manifest["reused"]["stages"] == 0
    assert run.rejected["_reference_match"].str.endswith("eval.jsonl:1").all()
    assert run.manifest["rows"]["kept"] == 4


def test_bad_references_are_one_line_errors(eval_file, tmp_path):
    with pytest.raises(StageError, match="no such file"):
        Decontaminate(tmp_path / "missing.jsonl", "nlq")
    with pytest.raises(StageError, match="the reference has no field 'question'"):
        Decontaminate(eval_file, "nlq", reference_field="question")
    with pytest.raises(StageError, match="ngram must be a positive int"):
        Decontaminate(eval_file, "nlq", ngram=0)


def test_the_honeycomb_seeds_do_not_overlap_their_eval_file():
    from examples.honeycomb.spec import DATA

    res = Decontaminate(DATA / "eval.jsonl", "nlq").run(read_table(DATA / "seeds.jsonl"))
    assert res.stats["rejected"] == 0, res.rejected[["nlq", "_reason"]].to_string()
