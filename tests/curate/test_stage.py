import pandas as pd
import pytest

from curate import Filter, Stage, StageError, StageResult
from curate.core.table import derive_rows, assign_ids


class DropsARow(Stage):
    def process(self, df):
        return StageResult(df.iloc[1:], df.iloc[0:0], df.iloc[0:0], {})


class Doubles(Stage):
    """Keeps every row and adds one derived row per input row."""

    def process(self, df):
        new = derive_rows(df, [{"x": r * 2} for r in df["x"]], list(df["_id"]))
        return self.result(pd.concat([df, new], ignore_index=True), [True] * (2 * len(df)))


class Replaces(Stage):
    """Replaces every row by a derived one (the shape of a repair)."""

    def process(self, df):
        new = derive_rows(df, [{"x": -r} for r in df["x"]], list(df["_id"]))
        return self.result(new, [True] * len(new))


def table(n=4):
    return pd.DataFrame({"x": range(n)})


def test_ids_are_stable_and_unique_for_repeated_content():
    df = assign_ids(pd.DataFrame({"x": [1, 1, 2]}))
    assert df["_id"].is_unique
    assert df["_id"][1] == f"{df['_id'][0]}-1"
    assert list(assign_ids(df)["_id"]) == list(df["_id"])  # existing ids are kept


def test_silently_lost_row_is_an_error():
    with pytest.raises(StageError, match="silently lost"):
        DropsARow().run(table())


def test_derived_rows_get_parent_and_count_as_created():
    res = Doubles().run(table(3))
    assert res.stats["rows_created"] == 3 and res.stats["kept"] == 6
    new = res.kept[res.kept["_parent"].notna()]
    assert set(new["_parent"]) == set(res.kept.loc[res.kept["_parent"].isna(), "_id"])
    assert res.stats["rows_in"] + res.stats["rows_created"] == (
        res.stats["kept"] + res.stats["rejected"] + res.stats["errored"])


def test_replaced_rows_are_accounted_for():
    res = Replaces().run(table(3))
    assert res.stats["replaced"] == 3 and res.stats["rows_created"] == 3
    assert list(res.kept["x"]) == [0, -1, -2]


def test_missing_field_names_stage_and_field():
    with pytest.raises(StageError) as err:
        Filter(lambda r: True, name="needs_q", requires=["q"]).run(table())
    assert "needs_q" in str(err.value) and "'q'" in str(err.value)
    assert err.value.field == "q"


def test_not_a_dataframe_is_a_clear_error():
    with pytest.raises(StageError, match="expected a pandas DataFrame, got list"):
        Filter(lambda r: True).run([{"x": 1}])


def test_call_returns_kept_and_run_unpacks():
    stage = Filter(lambda r: r["x"] > 1, name="gt1")
    assert list(stage(table())["x"]) == [2, 3]
    result = stage.run(table())
    kept, rejected, errored, stats = result
    assert list(rejected["_reason_code"]) == ["gt1", "gt1"]
    assert stats["reasons"] == {"gt1": 2} and len(errored) == 0
    assert repr(result) == "StageResult(stage='gt1', kept=2, rejected=2, errored=0)"
    with pytest.raises(ValueError, match="too many values to unpack"):
        kept, rejected, stats = result  # the old three-way unpacking fails loudly


def test_fingerprint_changes_with_parameters_but_not_with_secrets():
    a, b = Filter(lambda r: True, name="f"), Filter(lambda r: False, name="f")
    assert a.fingerprint() != b.fingerprint()
    keep_all = lambda r: True  # noqa: E731
    s1 = Filter(keep_all, name="f")
    s1.api_key = "sk-one"
    s2 = Filter(keep_all, name="f")
    s2.api_key = "sk-two"
    assert s1.fingerprint() == s2.fingerprint()
    assert "sk-one" not in str(s1.params())


def test_rows_without_an_id_get_the_id_of_their_own_content_when_others_carry_one():
    """Ids of the rows that lack one are content hashes of *those* rows, whatever the
    positions of the rows that carry an id (values used to be realigned by label)."""
    df = pd.DataFrame({"x": [1, 2, 3, 4], "t": ["a", "b", "c", "d"],
                       "_id": ["given-0", None, "given-2", None]})
    alone = assign_ids(pd.DataFrame({"x": [2, 4], "t": ["b", "d"]}))
    ids = assign_ids(df)["_id"].tolist()
    assert ids == ["given-0", alone["_id"][0], "given-2", alone["_id"][1]]
    assert len(set(ids)) == 4


@pytest.mark.parametrize("name", ["a/b", "../../outside", "back\\slash", "tab\there"])
def test_a_stage_name_that_cannot_be_a_folder_name_is_refused_when_the_stage_is_built(name):
    with pytest.raises(StageError) as error:
        Filter(lambda row: True, name=name)
    assert str(error.value).startswith(f"stage {name!r}: ")
    assert "name" in str(error.value) and len(str(error.value).splitlines()) == 1


def test_a_stage_renamed_after_it_was_built_is_checked_by_the_pipeline(tmp_path):
    from curate import Pipeline

    stage = Filter(lambda row: True, name="ok")
    stage.name = "../x"
    with pytest.raises(StageError, match=r"^stage '\.\./x': "):
        Pipeline(source=[{"q": 1}], stages=[stage])
    assert not (tmp_path.parent / "x").exists()
