import pandas as pd

from curate.stages.derive import Derive


def twice(row):
    return [{"q": row["q"] + "!"}, {"q": row["q"] + "?"}] if row["q"] != "skip" else []


def test_derive_adds_children_with_parent_and_copies_other_fields():
    df = pd.DataFrame({"q": ["a", "skip"], "label": [1, 2]})
    res = Derive(twice, name="punct").run(df)
    assert list(res.kept["q"]) == ["a", "skip", "a!", "a?"]
    parent = res.kept.loc[0, "_id"]
    assert list(res.kept["_parent"][2:]) == [parent, parent]
    assert list(res.kept["label"][2:]) == [1, 1]
    assert res.stats["rows_created"] == 2 and res.stats["derived"] == 2


def test_derive_without_originals_rejects_only_rows_that_produced_children():
    res = Derive(twice, keep_originals=False).run(pd.DataFrame({"q": ["a", "skip"]}))
    assert list(res.kept["q"]) == ["skip", "a!", "a?"]
    assert list(res.rejected["_reason_code"]) == ["replaced_by_derived"]
