import pandas as pd

from curate.stages.derive import Derive


def twice(row):
    return [{"q": row["q"] + "!"}, {"q": row["q"] + "?"}] if row["q"] != "skip" else []


def test_derive_adds_children_with_parent_and_copies_other_fields():
    df = pd.DataFrame({"q": ["a", "skip"], "label": [1, 2]})
    res = Derive(twice, name="punct").run(df)
    assert list(res.kept["q"]) == ["a", "a!", "a?", "skip"]  # children right after their parent
    parent = res.kept.loc[0, "_id"]
    assert list(res.kept["_parent"][1:3]) == [parent, parent]
    assert list(res.kept["label"][1:3]) == [1, 1]
    assert res.stats["rows_created"] == 2 and res.stats["derived"] == 2


def test_derive_keep_new_replaces_only_rows_that_produced_children():
    res = Derive(twice, keep="new").run(pd.DataFrame({"q": ["a", "skip"]}))
    assert list(res.kept["q"]) == ["a!", "a?", "skip"]  # in their parent's place
    assert len(res.rejected) == 0 and res.stats["replaced"] == 1


def test_a_raising_or_malformed_fn_errors_its_row_and_the_rest_go_on():
    def fn(row):
        if row["q"] == "boom":
            raise KeyError("nope")
        return {"q": "not a list"} if row["q"] == "dict" else [{"q": row["q"] + "!"}]

    res = Derive(fn).run(pd.DataFrame({"q": ["a", "boom", "dict", "b", "c"]}))
    assert res.errored["_reason_code"].tolist() == ["fn_raised", "fn_bad_result"]
    assert "KeyError" in res.errored["_reason"].iloc[0]
    assert sorted(res.kept["q"]) == ["a", "a!", "b", "b!", "c", "c!"]
    assert res.errored["_source"].tolist() == ["<DataFrame>:2", "<DataFrame>:3"]
