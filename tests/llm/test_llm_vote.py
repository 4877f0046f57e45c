"""Vote: extraction, canonical answers, majority, minimum agreement and ties (the vote on
the scripted model; failing samples end to end through a loopback server)."""
from __future__ import annotations

import random

import pandas as pd
import pytest
from conftest import assert_accounted, make_llm, scripted

from curate.stages.llm.vote import AnswerAfter, JsonAnswer, Vote, canonical, tally
from curate.core.table import REASON, REASON_CODE
from curate.testing import Fault, Reply, last_user_message


def test_extractors_and_canonical_forms():
    extract = AnswerAfter()
    assert extract("3 + 4 = 7, so the answer is $1,000.00.") == "$1,000.00"
    assert canonical(extract("The answer is $1,000.00.")) == "1000"
    assert extract("First 3. Actually, the answer is: -2.5") == "-2.5"
    assert extract("no marker here 42") is None
    assert canonical("  Paris   France ") == "Paris France"
    assert canonical({"b": 1, "a": [2]}) == '{"a":[2],"b":1}'
    assert JsonAnswer("x")('Result: {"x": 3}') == 3 and JsonAnswer()("nope") is None


def test_tally_majority_ties_and_agreement():
    rng = random.Random(0)
    assert tally(["4", "4", "5", None, "4"], 5, 0.5, "reject", rng)[:4] == (
        "4", {"4": 3, "5": 1}, 0.6, None)
    winner, votes, agreement, code, reason = tally(["4", "5", "4", "5", None], 5, 0.3,
                                                   "reject", rng)
    assert (winner, code) == (None, "vote_tie") and "'4', '5'" in reason
    assert tally(["5", "4", "4", "5"], 4, 0.5, "first", rng)[0] == "5"
    picks = {tally(["4", "5"], 2, 0.5, "random", random.Random(s))[0] for s in range(20)}
    assert picks == {"4", "5"}
    low = tally(["1", "2", "3", "1", "4"], 5, 0.5, "reject", rng)
    assert low[3] == "vote_low_agreement" and "2/5 votes (0.40 < 0.50)" in low[4]
    assert tally([None, None], 2, 0.5, "reject", rng)[3] == "vote_no_answer"


ANSWERS = {  # question -> answers by sample index (the client sends seed + sample)
    "q-clear": ["The answer is 12.", "so the answer is 12", "The answer is 13.",
                "The answer is 12.00", "I think the answer is 1,2"],
    "q-split": ["The answer is 1.", "The answer is 2.", "The answer is 1.",
                "The answer is 2.", "No idea."],
    "q-low": ["The answer is 1.", "The answer is 2.", "The answer is 3.",
              "The answer is 4.", "The answer is 1."],
    "q-down": None,
}


def _sampled(sent):
    answers = ANSWERS[last_user_message(sent)]
    seed = sent["seed"] if isinstance(sent, dict) else sent.seed
    return Fault.status(500) if answers is None else answers[seed]


def test_vote_keeps_the_majority_and_says_why_others_go_end_to_end(server, tmp_path):
    server.reply = _sampled
    rows = pd.DataFrame({"question": list(ANSWERS)})
    stage = Vote(make_llm(server, tmp_path, seed=0, max_tries=1), lambda row: row["question"],
                 n=5, temperature=0.8, min_agreement=0.5, rationales=True)
    result = stage.run(rows)
    assert_accounted(rows, result)
    kept = result.kept.iloc[0]
    assert kept["question"] == "q-clear" and kept["answer"] == "12"
    assert kept["votes"] == {"12": 4, "13": 1} and kept["agreement"] == 0.8
    assert kept["rationales"] == [ANSWERS["q-clear"][i] for i in (0, 1, 3, 4)]
    assert kept["minority"] == [{"answer": "13", "rationale": "The answer is 13."}]  # lost 4 to 1
    assert kept["rationale"] == "The answer is 12."
    rejected = result.rejected.set_index("question")
    assert rejected.loc["q-split", REASON_CODE] == "vote_tie"
    assert rejected.loc["q-low", REASON_CODE] == "vote_low_agreement"
    assert "'1' got 2/5 votes" in rejected.loc["q-low", REASON]
    assert result.errored[REASON_CODE].tolist() == ["llm_request_failed"]
    assert {b["temperature"] for b in server.bodies} == {0.8}
    assert result.stats["samples"] == 20 and result.stats["failed_samples"] == 5


def test_tie_policy_first_keeps_a_tied_row():
    rows = pd.DataFrame({"question": ["q-split"]})
    result = Vote(scripted(_sampled, seed=0)[0], lambda row: row["question"], n=5,
                  tie="first", min_agreement=0.4).run(rows)
    assert result.kept["answer"].tolist() == ["1"] and result.kept["agreement"].tolist() == [0.4]


def test_bad_parameters_are_refused():
    with pytest.raises(Exception, match="tie must be one of"):
        Vote(scripted()[0], lambda row: "x", tie="coin")


def test_samples_that_cannot_be_read_are_no_votes_and_never_retried():
    """A cut-off sample and one whose extract raises count as no vote; the others decide.
    A vote has no corrective retry: each of the n samples is sent once."""
    texts = ["The answer is 3.", Reply("The answer is", finish_reason="length"),
             "The answer is 3.", "RAISE", "The answer is 4."]

    def extract(text):
        if text == "RAISE":
            raise ValueError("unreadable")
        return AnswerAfter()(text)

    llm, model = scripted(lambda request: texts[request.seed], seed=0)
    result = Vote(llm, lambda row: row["question"], n=5, extract=extract,
                  min_agreement=0.4).run(pd.DataFrame({"question": ["q"]}))
    assert result.kept["votes"].tolist() == [{"3": 2, "4": 1}]
    assert result.kept["agreement"].tolist() == [0.4] and len(model.history) == 5
    assert result.stats["replies"]["truncated"] == 1 and result.stats["replies"]["parse_failed"] == 1
    assert (result.stats["samples"], result.stats["failed_samples"]) == (5, 2)


def test_outputs_rename_the_columns_and_a_random_tie_is_seeded_by_the_row():
    rows = pd.DataFrame({"question": ["q-split", "q-clear"]})
    picks = set()
    for seed in range(12):
        stage = Vote(scripted(_sampled, seed=0)[0], lambda row: row["question"], n=4,
                     tie="random", min_agreement=0.25, seed=seed, outputs={"answer": "final"})
        result = stage.run(rows)
        again = stage.run(rows)
        assert result.kept["final"].tolist() == again.kept["final"].tolist()
        picks.add(result.kept["final"].iloc[0])
        assert "answer" not in result.kept.columns
    assert picks == {"1", "2"}
