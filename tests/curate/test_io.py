import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from curate import InputError, read_table, write_table
from curate.io import atomic_path, save_dataset_folder

ROOT = Path(__file__).resolve().parents[2]

ROWS = [{"nlq": "slow requests", "columns": ["duration_ms", "name"], "query": {"calculations": [{"op": "COUNT"}]}},
        {"nlq": "errors by service", "columns": ["error", "service.name"], "query": {"limit": 5}}]


def test_jsonl_round_trip_keeps_nested_values(tmp_path):
    path = write_table(pd.DataFrame(ROWS), tmp_path / "rows.jsonl")
    df = read_table(path)
    assert df.drop(columns="_source").to_dict("records") == ROWS
    assert [s.rsplit("/", 1)[-1] for s in df["_source"]] == ["rows.jsonl:1", "rows.jsonl:2"]


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


def test_a_utf8_byte_order_mark_is_read(tmp_path):
    jsonl, csv = tmp_path / "bom.jsonl", tmp_path / "bom.csv"
    jsonl.write_bytes(b"\xef\xbb\xbf" + b'{"q": "a"}\n{"q": "b"}\n')
    csv.write_bytes(b"\xef\xbb\xbfq,n\na,1\n")
    assert read_table(jsonl)["q"].tolist() == ["a", "b"]
    assert list(read_table(csv).columns[:2]) == ["q", "n"]


@pytest.mark.parametrize("name", ["rows.jsonl.gz", "rows.csv.gz", "rows.jsonl.zst",
                                  "rows.json", "rows.parquet", "rows.jsonl.bz2"])
def test_compressed_and_json_files_round_trip(tmp_path, name):
    df = pd.DataFrame({"q": ["a", "b"], "n": [1, 2]})
    path = write_table(df, tmp_path / name)
    back = read_table(path)
    assert back["q"].tolist() == ["a", "b"] and [int(v) for v in back["n"]] == [1, 2]
    assert back["_source"].iloc[1].endswith(f"{name}:{3 if '.csv' in name else 2}")


def test_nested_values_round_trip_through_json_array_and_parquet(tmp_path):
    df = pd.DataFrame(ROWS)
    for name in ("rows.json", "rows.parquet"):
        back = read_table(write_table(df, tmp_path / name)).drop(columns="_source")
        assert back.to_dict("records") == ROWS


def test_output_files_get_the_umask_mode(tmp_path):
    from curate.io.atomic import FILE_MODE

    path = write_table(pd.DataFrame({"q": ["a"]}), tmp_path / "t.jsonl")
    assert path.stat().st_mode & 0o777 == FILE_MODE == 0o666 & ~_umask()


def _umask():
    import os
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_malformed_json_names_the_right_column(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"q": "a"}\n{"q": x}\n{"q": "b", \n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: malformed JSON: Expecting value at column 7$"):
        read_table(path)
    path.write_text('{"q": "a", \n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1: .* at the end of the line$"):
        read_table(path)


def test_reserved_bookkeeping_columns_and_repeated_ids_are_input_errors(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"q": "a", "_stage": "x"}\n')
    with pytest.raises(InputError, match=r"column '_stage' is reserved .* rename it"):
        read_table(path)
    path.write_text('{"q": "a", "_id": "r1"}\n{"q": "b", "_id": "r2"}\n{"q": "c", "_id": "r1"}\n')
    with pytest.raises(InputError, match=r"_id 'r1' and others repeat: rows at .*rows\.jsonl:1, "
                                         r".*rows\.jsonl:3; ids must be unique"):
        read_table(path)


def test_flat_and_nested_jsonl_read_the_same_values(tmp_path):
    """pyarrow's reader (flat files) and the line-by-line reader give the same table."""
    flat = tmp_path / "flat.jsonl"
    flat.write_text('{"q": "a", "n": 1, "tags": ["x"]}\n\n{"q": "b", "n": null, "tags": []}\n')
    df = read_table(flat)
    assert df["q"].tolist() == ["a", "b"] and df["tags"].tolist() == [["x"], []]
    assert df["n"].iloc[0] == 1 and pd.isna(df["n"].iloc[1])
    assert df["_source"].str.endswith((":1", ":3")).all()
    stamps = tmp_path / "stamps.jsonl"
    stamps.write_text('{"t": "2024-01-01"}\n')
    assert read_table(stamps)["t"].tolist() == ["2024-01-01"]  # text stays text


def test_json_lines_are_exactly_json_dumps_of_the_records():
    """The column-wise JSONL writer gives json.dumps of each record, byte for byte."""
    import json

    import numpy as np
    import pandas as pd

    from curate.core.table import json_lines, records

    df = pd.DataFrame({
        "text": ["a \"q\"", "é 中文 \u2028", None, "x\ny", "\\"],
        "n": [1, 2, 3, 4, -5], "f": [0.1, np.nan, 1e300, -0.0, 2.5],
        "nullable": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        "flag": [True, False, True, None, False],
        "obj": [{"a": [1, 2]}, [1, "b"], np.array([1.5, 2.0]), {"é": None}, 7],
        "when": pd.to_datetime(["2026-01-01", None, "2026-02-03", "2026-03-04", "2026-04-05"]),
        3: ["int", "column", "name", "is", "str"],
        "arrow_text": pd.Series(["plain", "tab\there", None, "ctrl \x01", "quote \""], dtype="str"),
        "object_text": pd.Series(["a", "b \\", "c", "d", "e"], dtype=object),
        "bools": [True, False, True, False, True],
        "nullable_bool": pd.array([True, None, False, True, False], dtype="boolean"),
        "small": np.array([1, 2, 3, 4, 255], dtype=np.uint8),
        "nothing": [None] * 5,
    })
    assert json_lines(df) == [json.dumps(r, ensure_ascii=False) for r in records(df)]
    assert len(df.select_dtypes("str").columns) == 3  # Arrow-backed text: the vectorised path
    assert json_lines(df.iloc[:0]) == [] and json_lines(pd.DataFrame(index=range(2))) == ["{}"] * 2


def test_a_lone_surrogate_is_written_as_its_escape_and_reads_back(tmp_path):
    """JSON may carry a lone surrogate; UTF-8 cannot: the writer escapes it, nothing lost."""
    import json

    import pandas as pd

    from curate.io import write_frame_jsonl

    df = pd.DataFrame({"text": pd.Series(["half \ud800 pair", "fine"], dtype=object)})
    path = write_frame_jsonl(tmp_path / "rows.jsonl", df)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"text": "half \\ud800 pair"}'
    assert [json.loads(line)["text"] for line in lines] == ["half \ud800 pair", "fine"]


def test_a_large_gzip_file_is_written_in_members_that_read_back_as_one(tmp_path):
    """Text over one member's size is compressed in independent members, side by side;
    gzip readers see one stream, and the same text gives the same bytes."""
    import gzip

    import pandas as pd
    import pyarrow as pa

    from curate.io.atomic import GZIP_MEMBER, write_text_array

    texts = pa.array([f'{{"i": {i}, "text": "{"word " * (i % 50)}"}}\n' for i in range(120_000)],
                     type=pa.large_string())
    size = sum(len(t.encode()) for t in texts.to_pylist())
    assert size > 2 * GZIP_MEMBER
    first = write_text_array(tmp_path / "a.jsonl.gz", [texts.slice(0, 10), texts.slice(10)])
    again = write_text_array(tmp_path / "b.jsonl.gz", texts)
    assert gzip.open(first, "rt").read() == "".join(texts.to_pylist())
    assert first.read_bytes() == again.read_bytes()
    assert len(pd.read_json(first, lines=True)) == 120_000
    plain = write_text_array(tmp_path / "c.jsonl", texts)
    assert plain.read_text() == "".join(texts.to_pylist())


def test_rows_without_a_source_get_their_own_line_when_another_row_carries_one(tmp_path):
    rows = [{"q": "a", "_source": "seeds.jsonl:7"}, {"q": "b"}, {"q": "c", "_source": None}]
    assert read_table(rows)["_source"].tolist() == ["seeds.jsonl:7", "<list>:2", "<list>:3"]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sources = read_table(path)["_source"].tolist()
    assert sources[0] == "seeds.jsonl:7"
    assert [s.rsplit("/", 1)[-1] for s in sources[1:]] == ["rows.jsonl:2", "rows.jsonl:3"]


@pytest.mark.parametrize("depth", [1_000, 30_000])
@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json"])
def test_json_nested_too_deep_is_one_line_naming_the_line_and_never_crashes(tmp_path, depth, name):
    """pyarrow's JSON reader crashes the process (SIGSEGV) on very deep nesting and ``json``
    raises RecursionError: the depth is checked before either parses."""
    deep = '{"a": ' + "[" * depth + "]" * depth + "}"
    rows = '{"q": "fine"}\n' + deep + "\n" if name.endswith(".jsonl") else f'[{{"q": "fine"}},\n{deep}]'
    (tmp_path / name).write_text(rows)
    code = ("from curate import read_table, InputError\n"
            f"try:\n    read_table({str(tmp_path / name)!r})\n"
            "except InputError as error:\n    print(error)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == (f"{tmp_path / name}:2: JSON nested more than 100 levels deep "
                                   f"(at column {106 if name.endswith('l') else 105}); "
                                   f"flatten the value or store it as text")


def test_nesting_within_the_limit_and_brackets_inside_strings_are_read(tmp_path):
    path = tmp_path / "rows.jsonl"
    text = "[" * 2000  # brackets in a string are no nesting
    nested = {"a": [[[[{"b": [1]}]]]]}
    path.write_text(json.dumps({"t": text, "n": nested}) + "\n" + json.dumps({"t": "x", "n": {}}) + "\n")
    df = read_table(path)
    assert df["t"][0] == text and df["n"][0] == nested


def test_a_fifo_or_a_device_as_source_is_refused_at_once(tmp_path):
    """Both used to be read forever; a child process with a deadline keeps a hang a failure."""
    import os

    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    code = ("from curate import InputError, Pipeline, read_table\n"
            f"for source in ({str(fifo)!r}, '/dev/zero'):\n"
            "    for read in (read_table, lambda s: Pipeline(source=s, stages=[]).source_key()):\n"
            "        try:\n            read(source)\n"
            "        except InputError as error:\n            print(error)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pipe = f"{fifo}: not a regular file (a named pipe); give a table file or a saved datasets folder"
    device = "/dev/zero: not a regular file (a character device); give a table file or a saved " \
             "datasets folder"
    assert proc.stdout.splitlines() == [pipe, pipe, device, device]


def test_a_json_array_in_a_jsonl_file_gets_a_hint(tmp_path):
    for text in ('[{"q": "a"}, {"q": "b"}]\n', '[\n  {"q": "a"},\n  {"q": "b"}\n]\n'):
        path = tmp_path / "rows.jsonl"
        path.write_text(text)
        with pytest.raises(InputError) as error:
            read_table(path)
        assert str(error.value) == (f"{path}:1: this file holds one JSON array; name it .json "
                                    f"or write one object per line")


def test_integers_past_int64_are_read_exactly_in_scalar_and_list_columns(tmp_path):
    big = 123456789012345678901234567890
    path = tmp_path / "rows.jsonl"
    path.write_text(f'{{"n": 1, "t": [1, {big}]}}\n{{"n": {big}, "t": [2.5]}}\n')
    df = read_table(path)
    assert df["n"].tolist() == [1, big] and [type(v) for v in df["n"]] == [int, int]
    assert df["t"].tolist() == [[1, big], [2.5]] and type(df["t"][0][0]) is int
