import gzip
import json
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from curate import ComplexityFilter, Filter, Pipeline, ReportOptions, ChatExport
from curate.pipeline.spec import load_spec
from curate.errors import SpecError
from test_runner import run_main as cli

ROOT = Path(__file__).resolve().parents[2]


def source(n=30):
    return [{"q": f"question {i} " + "word " * (i % 6), "a": str(i)} for i in range(n)]


class Calls:
    """Counts predicate calls; private state, so it is no input of the stage's fingerprint."""

    def __init__(self):
        self._seen = []

    def append(self, value):
        self._seen.append(value)

    def __len__(self):
        return len(self._seen)


def counting_filter(calls):
    def keep_even(row):
        calls.append(row["a"])
        return int(row["a"]) % 2 == 0
    return keep_even


def make(calls, max_words=5, rows=None):
    return Pipeline(source=rows or source(),
                    stages=[Filter(counting_filter(calls), name="even"),
                            ComplexityFilter(lambda t: len(t.split()), field="q", max_value=max_words)],
                    export=ChatExport(system="sys", human="Q: {q}", gpt="a"),
                    report=ReportOptions(measure=lambda r: len(r["q"].split()), measure_label="words",
                                         text_field="q"))


def test_run_folder_contents_and_counts(tmp_path):
    run = make(Calls()).run(tmp_path, progress=False)
    for name in ("manifest.json", "report.html", "rejected.jsonl.gz", "checkpoints/00_source.parquet",
                 "export/sharegpt.jsonl", "checkpoints/01_even/stats.json"):
        assert (tmp_path / name).exists(), name
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["rows"] == {"source": 30, "kept": len(run.kept),
                                "rejected": 30 - len(run.kept), "errored": 0,
                                "kept_by_origin": {"source": len(run.kept)}}
    assert [s["stage"] for s in manifest["stages"]] == ["even", "complexity_filter"]
    assert manifest["versions"]["pandas"] == pd.__version__
    rejected = [json.loads(l) for l in gzip.open(tmp_path / "rejected.jsonl.gz", "rt")]
    assert {r["_stage"] for r in rejected} == {"even", "complexity_filter"}
    assert all(r["_reason"] for r in rejected)
    exported = open(tmp_path / "export/sharegpt.jsonl").read().splitlines()
    assert len(exported) == len(run.kept) == manifest["export"]["sharegpt"]["rows"]


def test_each_rejected_row_is_written_as_its_stage_rejected_it(tmp_path):
    """rejected.jsonl.gz holds every stage's rejected rows in stage order, each with the
    fields it held at that point (no empty fields from other stages' bookkeeping)."""
    from curate import ExactDedup
    from curate.core.table import records

    rows = [{"q": f"question {i % 7}", "a": str(i)} for i in range(40)]
    run = Pipeline(source=rows, stages=[Filter(lambda r: int(r["a"]) % 5 != 0, name="fives"),
                                        ExactDedup("q")]).run(tmp_path, progress=False)
    written = [json.loads(line) for line in gzip.open(tmp_path / "rejected.jsonl.gz", "rt")]
    expected = [{k: v for k, v in row.items()}
                for _, result in run.stages for row in records(result.rejected)]
    assert written == expected and len(written) == run.manifest["rows"]["rejected"] == 33
    assert [r["_stage"] for r in written] == ["fives"] * 8 + ["exact_dedup"] * 25
    assert "_dup_of" not in written[0] and written[-1]["_dup_of"]


def test_rerun_reuses_unchanged_stages(tmp_path):
    calls = Calls()
    first = make(calls).run(tmp_path, progress=False)
    assert len(calls) == 30
    second = make(calls).run(tmp_path, progress=False)
    assert len(calls) == 30, "the unchanged stage ran again"
    assert all(r.stats["reused"] for _, r in second.stages)
    from curate.core.table import records
    assert records(second.kept) == records(first.kept)
    assert second.manifest["reused"]["stages"] == 2 and second.manifest["llm"] == {}


def test_changed_stage_recomputes_it_and_only_what_follows(tmp_path):
    calls = Calls()
    make(calls).run(tmp_path, progress=False)
    run = make(calls, max_words=3).run(tmp_path, progress=False)
    assert len(calls) == 30  # first stage reused
    assert [r.stats["reused"] for _, r in run.stages] == [True, False]
    assert run.kept["q"].map(lambda q: len(q.split())).max() <= 3


def test_changed_source_recomputes_everything(tmp_path):
    calls = Calls()
    make(calls).run(tmp_path, progress=False)
    make(calls, rows=source(31)).run(tmp_path, progress=False)
    assert len(calls) == 30 + 31


def test_limit_runs_on_first_rows(tmp_path):
    run = make(Calls()).run(tmp_path, limit=5, progress=False)
    assert len(run.source) == 5


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.text, self.rows = {}, [], []
        self._id, self._in_row = None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._id = attrs.get("id")
        if tag == "tr" and attrs.get("class"):
            self.rows.append([attrs["class"]])
            self._in_row = True

    def handle_endtag(self, tag):
        self._id = None
        if tag == "tr":
            self._in_row = False

    def handle_data(self, data):
        if self._id and data.strip():
            self.ids[self._id] = data.strip()
        if self._in_row and data.strip():
            self.rows[-1].append(data.strip())
        self.text.append(data)


def test_report_shows_funnel_reasons_distribution_and_near_dups(tmp_path):
    from curate.core.table import mark

    class FakeNearDup(Filter):
        """Rejects rows whose text repeats an earlier one, recording _dup_of (like a dedup)."""

        def added_columns(self):
            return {"_dup_of": "duplicate_of"}

        def process(self, df):
            first = df.drop_duplicates("q")
            dup = df[~df["_id"].isin(first["_id"])]
            dup = dup.assign(_dup_of=[first.loc[first["q"] == q, "_id"].iloc[0] for q in dup["q"]])
            res = self.result(first, [True] * len(first))
            res.rejected = mark(dup, self.name, "near_duplicate_test", "same text")
            return res

    rows = source(10) + [dict(source(10)[3], a="99")]
    pipe = Pipeline(source=rows, stages=[FakeNearDup(lambda r: True, name="neardup"),
                                         Filter(lambda r: int(r["a"]) < 8, name="small")],
                    report=ReportOptions(measure=lambda r: len(r["q"]), measure_label="chars",
                                         text_field="q"))
    pipe.run(tmp_path, progress=False)
    page = _Text()
    page.feed((tmp_path / "report.html").read_text())
    assert page.ids["source-rows"] == "11" and page.ids["kept-rows"] == "8"
    funnel = [r for r in page.rows if r[0] == "funnel-row"]
    assert [r[1:6] for r in funnel] == [["neardup", "11", "0", "10", "1"], ["small", "10", "0", "8", "2"]]
    reasons = [r[1:] for r in page.rows if r[0] == "reason-row"]
    assert reasons[0] == ["small", "small", "2"]
    assert ["neardup", "near_duplicate_test", "1"] in reasons
    text = "".join(page.text)
    assert "chars: before and after" in text and "mean" in text
    pair = [r for r in page.rows if r[0] == "pair"][0]
    text3 = source(10)[3]["q"].strip()
    assert pair[1:5] == ["rejected", text3, "kept", text3]


# -- the CLI -------------------------------------------------------------------------------
def cli_process(*args, cwd=None):
    """The command in a process of its own (``cli`` runs its ``main`` in this one)."""
    return subprocess.run([sys.executable, "-m", "curate.pipeline", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=120)


def write_spec(tmp_path, body):
    spec = tmp_path / "spec.py"
    spec.write_text(textwrap.dedent(body))
    return spec


GOOD_SPEC = """
from curate import Pipeline, Filter, ChatExport
pipeline = Pipeline(source={source!r}, stages=[Filter(lambda r: True, name="all")],
                    export=ChatExport(human="{{q}}", gpt="a"))
"""


def test_cli_runs_a_spec_with_limit(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in source(8)))
    spec = write_spec(tmp_path, GOOD_SPEC.format(source=str(data)))
    proc = cli_process(str(spec), "--out", str(tmp_path / "run"), "--limit", "3", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "run/export/sharegpt.jsonl").read_text().splitlines()) == 3


def test_cli_help_explains_the_spec():
    proc = cli("--help")
    assert proc.returncode == 0 and "pipeline = Pipeline(" in proc.stdout and "--limit" in proc.stdout


def test_cli_help_names_the_files_a_run_writes(tmp_path):
    text = " ".join(cli("--help").stdout.split())
    assert "kept.parquet" not in text and "rejected.jsonl " not in text
    pipe = Pipeline(source=source(4), stages=[Filter(lambda r: r["a"] != "1", name="not_one")],
                    export=ChatExport(human="{q}", gpt="a"))
    pipe.run(tmp_path / "run", progress=False)
    for name in sorted(p.name for p in (tmp_path / "run").iterdir() if p.name != ".lock"):
        assert (name.rstrip("/") in text), name  # every file or folder of a run is named
    assert "checkpoints/00_source.parquet" in text and "export/sharegpt.jsonl" in text


def test_the_manifest_names_functions_and_objects_by_name_and_digest_once(tmp_path):
    """Each stage's parameters used to hold the whole description of its functions (the
    Honeycomb checker, its rules, their globals: 54 KB for each stage that used it)."""
    from curate import AssertionFilter
    from assertions.honeycomb import check

    rows = [{"query": {"calculations": [{"op": "COUNT"}]}, "columns": ["a"]}]
    run = Pipeline(source=rows, stages=[AssertionFilter(check, name="first"),
                                        AssertionFilter(check, name="second")]).run(
        tmp_path / "run", progress=False)
    params = run.manifest["stages"][0]["params"]
    assert params["check"]["fn"] == "assertions.honeycomb.check"
    assert set(params["check"]) == {"fn", "sha256"} and params["name"] == "first"
    assert run.manifest["stages"][1]["params"]["check"] == params["check"]
    assert (tmp_path / "run/manifest.json").stat().st_size < 12_000


@pytest.mark.parametrize("content,expected", [
    ('{"q": "a", "a": "1"}\n{"q": "b", "a": \n', "rows.jsonl:2: malformed JSON"),
    ("", "rows.jsonl: no rows to read: the input is empty"),
])
def test_cli_bad_source_is_one_line_and_leaves_no_complete_output(tmp_path, content, expected):
    data = tmp_path / "rows.jsonl"
    data.write_text(content)
    spec = write_spec(tmp_path, GOOD_SPEC.format(source=str(data)))
    out = tmp_path / "run"
    proc = cli_process(str(spec), "--out", str(out), "--no-progress")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr
    assert not (out / "manifest.json").exists() and not (out / "export").exists()


def test_cli_missing_field_names_stage_and_field(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"q": "a"}\n')
    spec = write_spec(tmp_path, """
        from curate import Pipeline, ComplexityFilter
        pipeline = Pipeline(source=%r, stages=[ComplexityFilter(len, field="nlq", max_value=3)])
        """ % str(data))
    proc = cli(str(spec), "--out", str(tmp_path / "run"), "--no-progress")
    assert proc.returncode == 2
    assert "stage 'complexity_filter', field 'nlq': the table has no field 'nlq'" in proc.stderr


def test_cli_spec_without_pipeline(tmp_path):
    spec = write_spec(tmp_path, "x = 1\n")
    proc = cli(str(spec), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "does not define `pipeline`" in proc.stderr


def test_cli_unknown_stage_parameter_names_spec_line(tmp_path):
    spec = write_spec(tmp_path, """
        from curate import Pipeline, Sample

        pipeline = Pipeline(source=[{"a": 1}], stages=[Sample(n=1, sead=3)])
        """)
    proc = cli(str(spec), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert f"{spec}:4: TypeError" in proc.stderr and "'sead'" in proc.stderr


def test_load_spec_syntax_error_names_line(tmp_path):
    spec = write_spec(tmp_path, "from curate import Pipeline\npipeline = Pipeline(\n")
    with pytest.raises(SpecError, match=r"spec\.py:2"):
        load_spec(spec)


def test_cli_a_bad_row_is_errored_with_its_source_line_and_the_run_goes_on(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"q": "ok"}\n{"q": 5}\n{"q": "fine"}\n')
    spec = write_spec(tmp_path, """
        from curate import Pipeline, ComplexityFilter, RougeDedup
        pipeline = Pipeline(source="rows.jsonl",
                            stages=[RougeDedup("q"), ComplexityFilter(len, field="q", max_value=3)])
        """)
    proc = cli(str(spec), "--out", str(tmp_path / "run"), "--no-progress", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    errored = [json.loads(line) for line in open(tmp_path / "run/errored.jsonl")]
    assert [(e["_stage"], e["_reason_code"], e["_field"]) for e in errored] == \
        [("rouge_dedup", "wrong_type", "q")]
    assert errored[0]["_source"].endswith("rows.jsonl:2")
    assert errored[0]["_reason"] == "field 'q' holds int 5, expected text"


def test_cli_too_many_errored_rows_stop_with_one_line_naming_the_lines(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"q": "ok"}\n{"q": 5}\n{"q": [1]}\n{"other": 1}\n')
    spec = write_spec(tmp_path, """
        from curate import Pipeline, RougeDedup
        pipeline = Pipeline(source="rows.jsonl", stages=[RougeDedup("q")])
        """)
    out = tmp_path / "run"
    proc = cli(str(spec), "--out", str(out), "--no-progress")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "stage 'rouge_dedup': 3 of 4 rows errored (75% > max_errored 50%)" in line
    assert "rows.jsonl:2, " in line and "rows.jsonl:3" in line
    assert not (out / "manifest.json").exists()
    assert len((out / "errored.jsonl").read_text().splitlines()) == 3


def test_a_folder_given_as_the_spec_says_it_is_a_folder(tmp_path):
    with pytest.raises(SpecError) as error:
        load_spec(tmp_path)
    assert str(error.value) == f"{tmp_path}: a folder, not a spec file; give the spec's .py file"
    write_spec(tmp_path, "x = 1\n")
    with pytest.raises(SpecError, match=r": a folder, not a spec file; give the spec's \.py "
                                        r"file \(.*spec\.py\?\)$"):
        load_spec(tmp_path)
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.py")


BIG = 123456789012345678901234567890


def test_integers_beyond_int64_stay_exact_from_the_source_to_the_export(tmp_path):
    """pyarrow's reader turns a column holding an integer past int64 into floats (``1`` ->
    ``1.0``, the big one rounded): such a file is read by ``json``, which keeps every int."""
    data = tmp_path / "rows.jsonl"
    data.write_text(f'{{"q": "small", "n": 1}}\n{{"q": "big", "n": {BIG}}}\n'
                    f'{{"q": "gone", "n": -{BIG}}}\n')

    def pipeline(human):
        return Pipeline(source=data, stages=[Filter(lambda r: r["q"] != "gone", name="not_gone")],
                        export=ChatExport(human=human, gpt="n"))

    out = tmp_path / "run"
    for human in ("{q}", "Q: {q} ({n})"):  # the second run rebuilds the export from checkpoints
        pipeline(human).run(out, progress=False)
        rows = [json.loads(line)["conversations"]
                for line in (out / "export/sharegpt.jsonl").read_text().splitlines()]
        assert [turns[1]["value"] for turns in rows] == ["1", str(BIG)]
    assert rows[1][0]["value"] == f"Q: big ({BIG})"
    [rejected] = [json.loads(line) for line in gzip.open(out / "rejected.jsonl.gz", "rt")]
    assert rejected["n"] == -BIG and type(rejected["n"]) is int


def test_rows_without_a_key_field_are_kept_by_exact_dedup_and_errored_by_the_export(tmp_path):
    """Rows that lack the field used to be "duplicates" of each other, the kept one written
    as an empty conversation; now none is a duplicate and the export errors each of them."""
    from curate import ExactDedup
    from curate.pipeline.folder import open_run

    rows = [{"q": "one", "a": "A"}, {"q": "two"}, {"q": "three"}, {"q": "four", "a": "A"},
            {"q": "five", "a": "  "}]
    pipe = Pipeline(source=rows, stages=[ExactDedup("a")],
                    export=ChatExport(human="{q}", gpt="a"))
    run = pipe.run(tmp_path / "run", progress=False)
    lines = (tmp_path / "run/export/sharegpt.jsonl").read_text().splitlines()
    assert [json.loads(line)["conversations"][0]["value"] for line in lines] == ["one"]
    errored = [json.loads(line) for line in open(tmp_path / "run/errored.jsonl")]
    assert [(r["q"], r["_stage"], r["_reason_code"]) for r in errored] == [
        ("two", "export", "missing_field"), ("three", "export", "missing_field"),
        ("five", "export", "empty_turn")]
    assert errored[0]["_source"] == "<list>:2"
    counts = run.manifest["rows"]
    assert (counts["kept"], counts["rejected"], counts["errored"]) == (1, 1, 3)
    assert run.manifest["export_errored"]["errors"] == {"missing_field": 2, "empty_turn": 1}
    assert len(run.kept) == 1 and len(run.errored) == 3
    again = open_run(tmp_path / "run")
    assert again.kept["q"].tolist() == ["one"] and sorted(again.errored["q"]) == ["five", "three", "two"]


CHECKER_SPEC = """
from curate import AssertionFilter, Pipeline, ChatExport

BROKEN = {3, 7, 11, 19, 23}


def check(q, n):
    if n in BROKEN:
        raise LookupError(f"no entry for {n}")
    return []


pipeline = Pipeline(source="rows.jsonl", stages=[AssertionFilter(check, name="lookup_check")],
                    export=ChatExport(human="{q}", gpt="q"))
"""


@pytest.mark.parametrize("progress", [False, True])
def test_a_checker_that_raises_on_some_rows_is_shown_at_the_end_with_where_it_raised(tmp_path,
                                                                                   progress):
    """5 of 31 rows errored used to end at exit 0 with only a count: the run now ends with
    the stage, the count, the first exception and its file:line, and keeps every errored
    row with its traceback."""
    with open(tmp_path / "rows.jsonl", "w") as fh:
        for n in range(31):
            fh.write(json.dumps({"q": f"question {n}", "n": n}) + "\n")
    spec = write_spec(tmp_path, CHECKER_SPEC)
    out = tmp_path / "run"
    proc = cli(str(spec), "--out", str(out), *([] if progress else ["--no-progress"]),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [" ".join(line.split()) for line in proc.stderr.splitlines()]
    assert ("errored: lookup_check: 5 of 31 rows; first: the checker raised LookupError: no "
            "entry for 3 at spec.py:9 (row from rows.jsonl:4)") in lines
    assert f"every errored row, with its reason and traceback, is in {out / 'errored.jsonl'}" in lines
    if progress:  # the funnel's top reason shows the errors
        assert any("lookup_check" in line and "errored: check_raised (5)" in line for line in lines)
    errored = [json.loads(line) for line in open(out / "errored.jsonl")]
    assert [e["n"] for e in errored] == [3, 7, 11, 19, 23]
    trace = errored[0]["_traceback"]
    assert f'File "{spec}", line 9, in check' in trace
    assert trace.rstrip().endswith("LookupError: no entry for 3")
    assert "curate/stages" not in trace  # the library's own frames are left out
    report = (out / "report.html").read_text()
    assert "errored: check_raised (5)" in report and "LookupError: no entry for 3" in report


def test_a_misspelt_field_is_refused_before_any_stage_runs_with_the_closest_name(tmp_path):
    from curate import AssertionFilter, Derive, ExactDedup, StageError

    rows = [dict(row, answer=row["a"]) for row in source(6)]
    calls = Calls()
    first = Filter(counting_filter(calls), name="even")
    cases = [
        (dict(stages=[first], export=ChatExport(human="{q}", gpt="anwser")),
         "stage 'export', field 'anwser': the template needs field 'anwser', which no row "
         "will have (fields: q, a, answer); did you mean 'answer'?"),
        (dict(stages=[first, ExactDedup("qq")], export=None),
         "stage 'exact_dedup', field 'qq': the table has no field 'qq' (fields: q, a, "
         "answer); did you mean 'q'?"),
        (dict(stages=[first, AssertionFilter(lambda querry: [], name="check")], export=None),
         "stage 'check', field 'querry': the table has no field 'querry' (fields: q, a, "
         "answer)"),
    ]
    for settings, message in cases:
        with pytest.raises(StageError) as error:
            Pipeline(source=rows, **settings).run(tmp_path / "run", progress=False)
        assert str(error.value) == message
    assert len(calls) == 0 and not (tmp_path / "run/checkpoints/01_even").exists()
    # a field a stage may add without declaring it (Derive) is not refused
    made = Pipeline(source=source(6), stages=[Derive(lambda r: [{"reply": r["a"]}], keep="new")],
                    export=ChatExport(human="{q}", gpt="reply"))
    assert len(made.run(tmp_path / "derived", progress=False).kept) == 6


def test_a_two_field_table_leaves_with_its_fields_and_the_bookkeeping_kept_rows_need(tmp_path):
    """Why a row was rejected (its near-duplicate, score, checker failures) is written on the
    rejected rows only; kept rows carry their id, parent, source and what was measured."""
    from curate import AssertionFilter, ExactDedup, RougeDedup

    def no_x(q):
        return [("has_x", "contains x")] if "x" in q else []

    rows = pd.DataFrame({"q": ["count errors by host", "count errors by host", "count the errors by host",
                               "p99 latency by service", "x marks it"], "a": ["1", "2", "3", "4", "5"]})
    stages = [ExactDedup("q"), RougeDedup("q", threshold=0.7), AssertionFilter(no_x),
              ComplexityFilter(lambda t: len(t.split()), field="q", min_value=1)]
    run = Pipeline(source=rows, stages=stages, export=ChatExport(human="{q}", gpt="a")).run(
        tmp_path, progress=False)
    assert run.kept["q"].tolist() == ["count errors by host", "p99 latency by service"]
    assert set(run.kept.columns) == {"q", "a", "_id", "_parent", "_source", "_complexity"}
    rejected = {r["_stage"]: r for r in (json.loads(line) for line in gzip.open(tmp_path / "rejected.jsonl.gz", "rt"))}
    assert rejected["exact_dedup"]["_dup_of"] == rejected["rouge_dedup"]["_dup_of"] == run.kept["_id"][0]
    assert rejected["rouge_dedup"]["_rouge_l"] > 0.7
    assert rejected["assertions"]["_failures"] == [{"rule": "has_x", "message": "contains x"}]
