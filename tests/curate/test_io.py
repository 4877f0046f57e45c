import json

import pandas as pd
import pytest

from curate import InputError, read_table, write_table
from curate.io import atomic_path, save_dataset_folder

ROWS = [{"nlq": "slow requests", "columns": ["duration_ms", "name"], "query": {"calculations": [{"op": "COUNT"}]}},
        {"nlq": "errors by service", "columns": ["error", "service.name"], "query": {"limit": 5}}]


def test_jsonl_round_trip_keeps_nested_values(tmp_path):
    path = write_table(pd.DataFrame(ROWS), tmp_path / "rows.jsonl")
    df = read_table(path)
    assert df.to_dict("records") == ROWS


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_round_trip(tmp_path, suffix):
    df = pd.DataFrame({"nlq": ["a", "b"], "n": [1, 2]})
    back = read_table(write_table(df, tmp_path / f"t{suffix}"))
    assert back["nlq"].tolist() == ["a", "b"]
    assert [int(v) for v in back["n"]] == [1, 2]


def test_csv_json_columns_are_parsed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('nlq,columns\nslow,"[""a"", ""b""]"\n')
    assert read_table(path, json_columns=["columns"])["columns"][0] == ["a", "b"]


def test_csv_bad_json_cell_names_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("nlq,columns\nok,[]\nbad,[oops\n")
    with pytest.raises(InputError, match=r"t\.csv:3: column 'columns' is not JSON"):
        read_table(path, json_columns=["columns"])


def test_datasets_object_and_folder(tmp_path):
    import datasets
    ds = datasets.Dataset.from_list([{"a": 1}, {"a": 2}])
    assert read_table(ds)["a"].tolist() == [1, 2]
    folder = save_dataset_folder(pd.DataFrame({"a": [3, 4]}), tmp_path / "ds")
    assert read_table(folder)["a"].tolist() == [3, 4]


def test_list_of_dicts_keeps_ints_when_values_are_missing():
    df = read_table([{"a": 1}, {"a": None}, {"a": 3}])
    assert df["a"].tolist() == [1, None, 3]


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": 2,}\n')
    with pytest.raises(InputError) as err:
        read_table(path)
    assert str(err.value).startswith(f"{path}:2: malformed JSON")
    assert err.value.line == 2


def test_non_object_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(InputError, match=r":2: expected a JSON object per line, got list"):
        read_table(path)


def test_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"a": "ok"}\n{"a": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.jsonl:2: not UTF-8"):
        read_table(path)
    csv = tmp_path / "latin1.csv"
    csv.write_bytes("a\nok\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.csv:3: not UTF-8"):
        read_table(csv)


@pytest.mark.parametrize("name,content", [("empty.jsonl", ""), ("blank.jsonl", "\n\n"),
                                          ("empty.csv", ""), ("header.csv", "a,b\n")])
def test_empty_input_is_an_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match="empty"):
        read_table(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="unknown table format '.txt'"):
        read_table(tmp_path / "x.txt")
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "nope.jsonl")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_json_array_file(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS))
    assert read_table(path)["nlq"].tolist() == ["slow requests", "errors by service"]
