"""How the Honeycomb checker reads its inputs: text forms of queries and column lists, and odd shapes."""

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assertions import honeycomb
from assertions.parsing import ParseError

COLUMNS = ["duration_ms", "service.name", "name", "http.method", "error", "trace.parent_id"]
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / ".." / "shared" / "honeycomb" / "ftcourse_alpaca_synth_queries_sample100.jsonl"


def rules(query, columns=COLUMNS):
    return [failure.rule for failure in honeycomb.check(query, columns)]


def test_python_repr_with_apostrophes_reads_as_the_same_query():
    text = """{'calculations': [{'op': 'COUNT'}], 'filters': [{'column': 'name', 'op': '=', 'value': "user's cart"}]}"""
    assert honeycomb.check(text, COLUMNS) == []
    assert honeycomb.parse_query(text)["filters"][0]["value"] == "user's cart"


def test_python_repr_with_true_none_and_escaped_quotes():
    text = "{'filters': [{'column': 'error', 'op': '=', 'value': True},"
    text += " {'column': 'name', 'op': '=', 'value': 'it\\'s \"x\"'}],"
    text += " 'calculations': [{'op': 'COUNT', 'column': None}]}"
    query = honeycomb.parse_query(text)
    assert query["filters"][1]["value"] == "it's \"x\""
    assert query["filters"][0]["value"] is True
    assert honeycomb.check(text, COLUMNS) == []


def test_json_with_surrounding_whitespace_and_newlines():
    assert honeycomb.check('\n\n  {"calculations": [{"op": "COUNT"}]}\n ', COLUMNS) == []
    assert honeycomb.check(b'{"calculations": [{"op": "COUNT"}]}', COLUMNS) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "{calculations: COUNT",
        "SELECT count(*) FROM spans",
        "```json\n{\"time_range\": 7200}\n```",
        "{'a': true}",
    ],
)
def test_unreadable_text_is_one_query_not_json_failure(text):
    failures = honeycomb.check(text, COLUMNS)
    assert [failure.rule for failure in failures] == ["query_not_json"]
    assert "JSON" in failures[0].message


@pytest.mark.parametrize("query", ["[1, 2]", "42", '"COUNT"', [{"op": "COUNT"}], None, 7200])
def test_a_query_that_is_not_an_object_is_one_failure(query):
    assert rules(query) == ["query_not_object"]


def test_parse_query_raises_parse_error_for_non_objects():
    with pytest.raises(ParseError):
        honeycomb.parse_query("not a query")
    with pytest.raises(ParseError, match="JSON object"):
        honeycomb.parse_query("[1]")


@pytest.mark.parametrize(
    "columns",
    [
        COLUMNS,
        tuple(COLUMNS),
        set(COLUMNS),
        iter(COLUMNS),
        json.dumps(COLUMNS),
        repr(COLUMNS),
        ",".join(COLUMNS),
        ", ".join(COLUMNS),
        "\n" + repr(COLUMNS) + "\n",
    ],
    ids=["list", "tuple", "set", "iterator", "json", "python", "comma-joined", "comma-space", "padded"],
)
def test_column_lists_in_every_form(columns):
    query = {"calculations": [{"op": "AVG", "column": "duration_ms"}], "breakdowns": ["service.name"]}
    assert honeycomb.check(query, columns) == []
    assert rules({"breakdowns": ["duration"]}, columns) == ["breakdown_column_unknown"]


def test_columns_are_whole_names_even_inside_a_string():
    # "name" must not match because "service.name" contains it, nor "http" because "http.method" starts with it.
    columns = "service.name,http.method"
    assert rules({"breakdowns": ["name"]}, columns) == ["breakdown_column_unknown"]
    assert rules({"breakdowns": ["http"]}, columns) == ["breakdown_column_unknown"]
    assert rules({"breakdowns": ["service.name"]}, columns) == []


def test_columns_that_are_not_iterable_raise_a_type_error():
    with pytest.raises(TypeError, match="column names"):
        honeycomb.check({}, 5)


def test_sample_of_public_training_queries_are_all_valid():
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} is not present")
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    invalid = []
    for row in rows:
        human, answer = row["conversations"][1]["value"], row["conversations"][2]["value"]
        columns = human.split("Columns:", 1)[1].strip()
        failures = honeycomb.check(answer, columns)
        if failures:
            invalid.append((answer, failures))
    assert len(rows) == 100
    assert invalid == []


def _mutations(value, rng):
    """Yield copies of ``value`` with one node replaced by a value of another shape."""
    junk = [None, 0, -1, 1.5, True, "", "x", "COUNT", [], [1], ["x"], {}, {"op": 1}, [{"op": None}], [[]]]
    text = json.dumps(value)
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, path + (key,))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, path + (index,))

    walk(value, ())
    for _ in range(400):
        copy, path = json.loads(text), rng.choice(paths[1:])
        parent = copy
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = rng.choice(junk)
        yield copy


def test_no_shape_of_input_crashes_a_rule():
    rng = random.Random(7)
    seed = {
        "calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
        "filters": [{"column": "name", "op": "in", "value": ["a", "b"]}, {"column": "error", "op": "exists"}],
        "filter_combination": "OR",
        "breakdowns": ["name"],
        "orders": [
            {"op": "P99", "column": "duration_ms", "order": "descending"},
            {"column": "name", "order": "ascending"},
        ],
        "havings": [{"calculate_op": "COUNT", "op": ">", "value": 1}],
        "start_time": 1700000000,
        "end_time": 1700003600,
        "granularity": 60,
        "limit": 10,
    }
    seen_rules = set()
    for query in _mutations(seed, rng):
        failures = honeycomb.check(query, COLUMNS)
        assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", failure.rule) for failure in failures)
        assert all(failure.message for failure in failures)
        seen_rules.update(failure.rule for failure in failures)
    assert "rule_error" not in seen_rules
    assert len(seen_rules) > 20


def test_importing_the_package_pulls_in_no_heavy_dependency():
    code = (
        "import sys, assertions, assertions.honeycomb, assertions.heal; "
        "print(sorted({'torch', 'pandas', 'openai', 'transformers', 'numpy'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"
