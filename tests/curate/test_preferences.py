"""Preference pairs from a run's lineage: repaired vs original, majority vs minority vote, good
vs bad for one prompt; only on evidence the user trusts, each pair naming its two rows."""
import json
import re

import pytest

from curate import Judge, Pipeline, PreferencePairs, Repair, ChatExport, Vote, open_run
from curate.testing import ScriptedModel, last_user_message


def check(q, a):
    """Sums must be right; "name an even number" wants an even number."""
    if q == "name an even number":
        return [] if a.isdigit() and int(a) % 2 == 0 else ["not an even number"]
    return [] if a == str(eval(q)) else [f"{q} is not {a}"]


ROWS = [{"q": "2+2", "a": "4"}, {"q": "3+3", "a": "7"}, {"q": "1+1", "a": "3"},
        {"q": "name an even number", "a": "8"}, {"q": "name an even number", "a": "6"}]
JUDGED_BAD = {("3+3", "7"), ("1+1", "3"), ("name an even number", "6")}
REPAIRS = {"3+3": "6", "1+1": "2", "name an even number": "12"}


def fields(request) -> dict:
    return dict(re.findall(r"(\w)=([^|]*)\|", last_user_message(request)))


def judge_reply(request):
    row = fields(request)
    bad = (row["q"], row["a"]) in JUDGED_BAD
    return json.dumps({"critique": "wrong" if bad else "fine", "outcome": "bad" if bad else "good"})


def honeycomb_like(trusted: bool) -> Pipeline:
    """Judge (annotates) -> Repair what the checker fails or the judge calls bad."""
    judge = Judge(ScriptedModel(reply=judge_reply).client(), fields=["q", "a"], keep="all",
                  prompt=lambda row, examples: f"q={row['q']}|a={row['a']}|", trusted=trusted)
    repair = Repair(ScriptedModel(reply=lambda r: REPAIRS[fields(r)["q"]]).client(), field="a",
                    prompt=lambda row, feedback: f"q={row['q']}|a={row['a']}|", check=check,
                    when=lambda row: bool(check(row["q"], row["a"])) or row["outcome"] == "bad")
    return Pipeline(source=ROWS, stages=[judge, repair], export=ChatExport(
        human="{q}", gpt="a", system="Answer briefly.", preferences=PreferencePairs(check)))


def pairs_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "export/preference.jsonl").read_text().splitlines()]


def test_pairs_from_repairs_and_a_trusted_judge_name_their_rows(tmp_path):
    run = honeycomb_like(trusted=True).run(tmp_path / "run", progress=False)
    pairs = pairs_of(tmp_path / "run")
    source = {(r["q"], r["a"]): r["_id"] for r in run.source.to_dict("records")}
    kept = {(r["q"], r["a"]): r for r in run.kept.to_dict("records")}
    got = {(p["kind"], p["prompt"][-1]["content"], p["chosen"][0]["content"],
            p["rejected"][0]["content"]) for p in pairs}
    assert got == {("repair", "3+3", "6", "7"), ("repair", "1+1", "2", "3"),
                   ("repair", "name an even number", "12", "6"),
                   ("judge", "name an even number", "8", "6")}
    for pair in pairs:
        q = pair["prompt"][-1]["content"]
        assert pair["prompt"] == [{"role": "system", "content": "Answer briefly."},
                                  {"role": "user", "content": q}]
        assert pair["rejected_id"] == source[(q, pair["rejected"][0]["content"])]
        chosen = kept[(q, pair["chosen"][0]["content"])]
        assert pair["chosen_id"] == chosen["_id"]
        if pair["kind"] == "repair":
            assert chosen["_parent"] == pair["rejected_id"]
    evidence = {p["rejected"][0]["content"] + p["kind"]: p["evidence"] for p in pairs}
    assert evidence["7repair"] == ("repaired by 'repair'; the original fails the checker: "
                                   "check_failed: 3+3 is not 7")
    assert evidence["6repair"].endswith("the original judged bad by the trusted judge 'judge'")
    assert evidence["6judge"] == "judged bad by the trusted judge 'judge': wrong"
    assert run.manifest["preferences"]["pairs"] == {"repair": 3, "vote": 0, "judge": 1}
    again = PreferencePairs(check).pairs(open_run(tmp_path / "run"), honeycomb_like(True).export)
    assert again == pairs  # from the run folder alone, the same pairs


def test_an_untrusted_judge_makes_no_pair(tmp_path):
    honeycomb_like(trusted=False).run(tmp_path / "run", progress=False)
    pairs = pairs_of(tmp_path / "run")
    assert sorted((p["kind"], p["rejected"][0]["content"]) for p in pairs) == \
        [("repair", "3"), ("repair", "7")]  # the checker's evidence only; "6" passes it


def test_majority_against_minority_only_where_the_majority_passes_the_checker(tmp_path):
    answers = {"2+2": ["4", "4", "5"], "3+3": ["5", "5", "6"]}

    def sample(request):
        return f"I think so. The answer is {answers[last_user_message(request)][request.sample]}"

    vote = Vote(ScriptedModel(reply=sample).client(), lambda row: row["q"], n=3, rationales=True)
    pipe = Pipeline(source=[{"q": "2+2"}, {"q": "3+3"}], stages=[vote], export=ChatExport(
        human="{q}", gpt="rationale", preferences=PreferencePairs(check, {"q": "q", "a": "answer"})))
    run = pipe.run(tmp_path / "run", progress=False)
    pairs = pairs_of(tmp_path / "run")
    row = run.kept.set_index("q").loc["2+2"]
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == \
        [("I think so. The answer is 4", "I think so. The answer is 5")]
    assert pairs[0]["chosen_id"] == pairs[0]["rejected_id"] == row["_id"]
    assert pairs[0]["evidence"] == "lost the vote in 'vote': '5' against '4' (2 votes to 1)"


def test_the_preference_file_loads_as_a_config_of_the_export(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    honeycomb_like(trusted=True).run(tmp_path / "run", progress=False)
    data = datasets.load_dataset(str(tmp_path / "run/export"), "preference",
                                 cache_dir=str(tmp_path / "cache"))["train"]
    assert data.num_rows == 4 and {"prompt", "chosen", "rejected"} <= set(data.column_names)
    assert data[0]["chosen"][0]["role"] == "assistant"


def test_a_checker_is_required():
    with pytest.raises(Exception, match="check must be a checker function"):
        PreferencePairs(None)


def test_a_checker_that_raises_on_a_row_is_no_evidence_either_way(tmp_path):
    honeycomb_like(trusted=False).run(tmp_path / "run", progress=False)

    def fussy(q, a):
        if q == "1+1":
            raise ValueError("cannot read it")
        return check(q, a)

    pairs = PreferencePairs(fussy).pairs(open_run(tmp_path / "run"), honeycomb_like(False).export)
    assert [(p["kind"], p["rejected"][0]["content"]) for p in pairs] == [("repair", "7")]


def test_a_run_without_pairs_writes_an_empty_file_that_the_card_leaves_out(tmp_path):
    pipe = honeycomb_like(trusted=True)
    pipe.export.preferences = PreferencePairs(check, kinds=("vote",))
    run = pipe.run(tmp_path / "run", progress=False)
    assert (tmp_path / "run/export/preference.jsonl").read_text() == ""
    assert run.manifest["preferences"]["pairs"] == {"vote": 0}
    card = (tmp_path / "run/export/README.md").read_text()
    assert "config_name: sharegpt" in card and "config_name: preference" not in card
