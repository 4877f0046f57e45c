"""The Honeycomb held-out set: the conventions its questions and queries follow (seeds alike),
its row order, its column swaps, and no leakage from the training data."""

import json
import re
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT_DIR = Path(__file__).resolve().parents[2]
if str(ROOT_DIR) not in sys.path:  # `examples` is not an installed package
    sys.path.insert(0, str(ROOT_DIR))

from assertions.honeycomb import check  # noqa: E402
from examples.honeycomb.column_swap import mentions  # noqa: E402
from examples.honeycomb.data import make_data  # noqa: E402
from examples.honeycomb.data.dsl import Q  # noqa: E402
from examples.honeycomb.evaluate import row_key  # noqa: E402
from examples.honeycomb.schemas import load_schemas  # noqa: E402

DATA = ROOT_DIR / "examples" / "honeycomb" / "data"
SEEDS = [json.loads(line) for line in (DATA / "seeds.jsonl").read_text().splitlines()]
EVAL = [json.loads(line) for line in (DATA / "eval.jsonl").read_text().splitlines()]
ORIGINALS = [r for r in EVAL if r["swap"] is None]
SWAPS = [r for r in EVAL if r["swap"] is not None]
ROWS = SEEDS + EVAL
SCHEMAS = load_schemas()
SPAN_SCHEMAS = {"webshop", "payments"}  # OpenTelemetry spans, with trace.parent_id
ROOT = {"column": "trace.parent_id", "op": "does-not-exist"}


def _filters(row, column=None):
    return [f for f in row["query"].get("filters", []) if column in (None, f["column"])]


def _violations(rule):
    return [(r["nlq"], r["query"]) for r in ROWS if not rule(r)]


# --- what the question states is what the query does ----------------------------------------

def test_every_query_counts_with_an_explicit_calculation():
    assert _violations(lambda r: len(r["query"].get("calculations", [])) >= 1) == []


REQUESTS = re.compile(r"\brequests\b|(?<!stack )\btraces\b", re.I)


def test_requests_and_traces_are_root_spans_and_nothing_else_is():
    """'requests', 'traces' and checkouts (requests to /api/checkout) filter on root spans;
    spans, calls, errors and the rest do not."""
    def rule(row):
        if row["schema"] not in SPAN_SCHEMAS:
            return True
        checkout = any(f.get("value") == "/api/checkout" for f in _filters(row, "http.route"))
        return (ROOT in _filters(row)) == bool(REQUESTS.search(row["nlq"]) or checkout)
    assert _violations(rule) == []


RANKING = re.compile(r"(?<!at )\b(top|most|highest|lowest|least|first|ranked|sorted|alphabetical|"
                     r"slowest|worst)\b", re.I)
ASCENDING = re.compile(r"\b(lowest|least|alphabetical|sorted)\b", re.I)


def test_an_order_is_there_exactly_when_the_question_ranks_the_groups():
    def rule(row):
        q, nlq = row["query"], row["nlq"]
        ranked = bool(RANKING.search(nlq)) and bool(q.get("breakdowns"))
        directions = {o["order"] for o in q.get("orders", [])}
        wanted = {"ascending" if ASCENDING.search(nlq) else "descending"}
        return bool(q.get("orders")) == ranked and directions in (set(), wanted)
    assert _violations(rule) == []


def test_a_limit_is_there_exactly_when_the_question_says_top_n():
    def rule(row):
        asked = re.search(r"\b(?:top|slowest) (\d+)\b|\btop (\d+)$", row["nlq"])
        limit = row["query"].get("limit")
        return limit == (int(next(g for g in asked.groups() if g)) if asked else None)
    assert _violations(rule) == []


def test_every_breakdown_column_is_named_in_the_question():
    """By its name or an alias; grouping traces by trace.trace_id is the one idiom."""
    def rule(row):
        named = set(mentions(row["nlq"], SCHEMAS[row["schema"]]))
        wanted = set(row["query"].get("breakdowns", [])) - {"trace.trace_id"}
        return wanted <= named
    assert _violations(rule) == []


UNITS = {"min": 60, "minute": 60, "h": 3600, "hour": 3600, "day": 86400, "week": 604800}
WINDOW = re.compile(r"\b(?:last|past|this)\s+(?:(\d+)\s*)?(min|minute|h|hour|day|week)s?\b", re.I)
DATE = re.compile(r"\b(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\w* (\d{4})\b")


def expected_window(nlq: str) -> dict:
    """The time keys a question asks for: a relative window in words -> time_range seconds,
    an absolute one in UTC -> start_time and end_time on that date, nothing -> no time key."""
    if "UTC" in nlq:
        day = datetime.strptime(" ".join(DATE.search(nlq).groups()), "%d %b %Y")
        return {"date": day.date()}
    found = WINDOW.search(nlq)
    return {"time_range": int(found.group(1) or 1) * UNITS[found.group(2).lower()]} if found else {}


def test_time_windows_in_words_map_to_seconds_and_no_window_means_none():
    def rule(row):
        q = row["query"]
        got = {"time_range": q["time_range"]} if "time_range" in q else {}
        if "start_time" in q or "end_time" in q:
            if not q.get("start_time", 0) < q.get("end_time", 0):
                return False
            got["date"] = datetime.fromtimestamp(q["start_time"], tz=timezone.utc).date()
        return got == expected_window(row["nlq"])
    assert _violations(rule) == []
    assert expected_window("p99 over the past 12 hours") == {"time_range": 43200}
    assert expected_window("errors in the last 30 min") == {"time_range": 1800}
    assert expected_window("evictions this week") == {"time_range": 604800}


GRANULARITY = [(re.compile(r"\b(\d+)[ -]minute buckets\b"), 60),
               (re.compile(r"\b(\d+)[ -]hour buckets\b"), 3600),
               (re.compile(r"\bper minute\b|\bminute by minute\b"), 60),
               (re.compile(r"\bhourly\b|\bper hour\b"), 3600)]


def test_a_granularity_is_there_exactly_when_the_question_asks_for_time_buckets():
    def expected(nlq):
        for pattern, unit in GRANULARITY:
            if found := pattern.search(nlq):
                return int(found.group(1)) * unit if pattern.groups else unit
        return None
    assert _violations(lambda r: r["query"].get("granularity") == expected(r["nlq"])) == []


# --- one column per concept ----------------------------------------------------------------

def test_oom_kills_are_the_oom_killed_flag_never_the_termination_reason():
    def rule(row):
        flag = {"column": "k8s.container.oom_killed", "op": "=", "value": True} in _filters(row)
        reason = [f for f in _filters(row, "k8s.container.last_terminated_reason")
                  if "OOMKilled" in json.dumps(f.get("value"))]
        return not reason and flag == bool(re.search(r"\boom\b", row["nlq"], re.I))
    assert _violations(rule) == []


def test_each_status_code_column_is_the_one_the_question_names():
    """http.status_code unless the question says webhook (webhook.endpoint_status) or grpc
    (rpc.grpc.status_code); otel.status_code only for an 'otel status'."""
    named_by = {"webhook.endpoint_status": "webhook", "rpc.grpc.status_code": "grpc",
                "otel.status_code": "otel"}

    def rule(row):
        used = {f["column"] for f in _filters(row)} | set(row["query"].get("breakdowns", []))
        nlq = row["nlq"].lower()
        if "http.status_code" in used and any(w in nlq for w in ("webhook", "otel")):
            return False
        return all(word in nlq for column, word in named_by.items() if column in used)
    assert _violations(rule) == []


def test_the_checkout_service_and_checkout_requests_are_told_apart():
    def rule(row):
        if row["schema"] != "webshop":
            return True
        service = {"column": "service.name", "op": "=", "value": "checkout"} in _filters(row)
        route = any(f.get("value") == "/api/checkout" for f in _filters(row, "http.route"))
        said_service = "checkout service" in row["nlq"].lower()
        said_route = bool(re.search(r"checkouts?\b(?! service| flag)", row["nlq"], re.I))
        return service == said_service and route == said_route
    assert _violations(rule) == []


def test_payments_span_names_and_routes_are_written_as_in_the_question():
    """A span name ('POST /v1/refunds') is a filter on name, a bare path on http.route."""
    def rule(row):
        if row["schema"] != "payments":
            return True
        for f in _filters(row):
            value = str(f.get("value"))
            if f["column"] == "name" and value not in row["nlq"]:
                return False
            if f["column"] == "http.route" and not re.search(
                    r"(?<!GET )(?<!POST )" + re.escape(value) + r"(?![\w/{])", row["nlq"]):
                return False
        return True
    assert _violations(rule) == []


def test_counted_pods_and_nodes_are_distinct_names_and_container_names_are_never_counted():
    def rule(row):
        calcs = row["query"].get("calculations", [])
        distinct = {c.get("column") for c in calcs if c["op"] == "COUNT_DISTINCT"}
        if "k8s.container.name" in distinct:
            return False
        for column, noun in (("k8s.pod.name", "pods"), ("k8s.node.name", "nodes")):
            asked = re.search(rf"\b(how many|number of)( distinct)? {noun}\b", row["nlq"], re.I)
            if asked and column not in distinct or column in distinct and noun not in row["nlq"]:
                return False
        return True
    assert _violations(rule) == []


def test_failed_payments_are_the_failed_status():
    def rule(row):
        failed = {"column": "payment.status", "op": "=", "value": "failed"} in _filters(row)
        return not failed or bool(re.search(r"\bfailed payments\b|\bdeclin(es|ed)\b", row["nlq"]))
    assert _violations(rule) == []


# --- order, swaps and leakage of the held-out file -----------------------------------------

def test_the_hand_written_rows_come_first_and_every_prefix_is_balanced_by_schema():
    assert EVAL[:len(ORIGINALS)] == ORIGINALS and len(ORIGINALS) == 67
    share = Counter(r["schema"] for r in ORIGINALS)
    for n in range(1, len(ORIGINALS) + 1):
        seen = Counter(r["schema"] for r in ORIGINALS[:n])
        assert all(abs(seen[s] - n * share[s] / len(ORIGINALS)) <= 1 for s in share), n
    assert Counter(r["schema"] for r in EVAL[:30]) == {"webshop": 10, "k8s": 10, "payments": 10}
    by_bank = [r["nlq"] for name in make_data.SOURCES for r, _ in make_data._written("eval")[name]]
    assert by_bank != [r["nlq"] for r in ORIGINALS]  # interleaved, not in bank order


def test_every_row_carries_its_parents_key_and_swaps_follow_in_parent_order():
    parents = {r["group"]: r for r in ORIGINALS}
    assert all(r["group"] == row_key(r) for r in ORIGINALS)
    assert len(parents) == len(ORIGINALS)
    assert all(r["group"] in parents for r in SWAPS)
    order = [r["group"] for r in ORIGINALS]
    first_swaps = list(dict.fromkeys(r["group"] for r in SWAPS))
    assert first_swaps == [g for g in order if g in set(first_swaps)]


def test_swaps_are_about_two_per_row_valid_and_change_one_column_everywhere():
    per_parent = Counter(r["group"] for r in SWAPS)
    assert 190 <= len(EVAL) <= 220 and max(per_parent.values()) <= 3
    assert sum(n >= 2 for n in per_parent.values()) >= 50
    parents = {r["group"]: r for r in ORIGINALS}
    for row in SWAPS:
        parent, (old, new) = parents[row["group"]], row["swap"]
        assert check(row["query"], row["columns"]) == [], row["nlq"]
        assert row["nlq"] != parent["nlq"] and row["schema"] == parent["schema"]
        assert row["columns"] == [new if c == old else old if c == new else c
                                  for c in parent["columns"]]
        text = json.dumps(row["query"])
        assert f'"{old}"' not in text and f'"{new}"' in text, row["nlq"]
    assert len({r["nlq"] for r in EVAL}) == len(EVAL)


def test_a_swap_that_is_not_safe_stops_the_build(monkeypatch):
    from examples.honeycomb.data.questions import webshop

    entry = ("p99 latency by route", Q("P99(duration_ms)", by=["http.route"]),
             [("http.route", "duration_ms")])  # a breakdown cannot become a duration
    monkeypatch.setattr(webshop, "EVAL", [entry])
    with pytest.raises(ValueError, match="the swap http.route -> duration_ms is not safe"):
        make_data.held_out()


def test_no_held_out_question_is_near_a_seed_or_a_swap_of_a_seed():
    training = SEEDS + make_data.training_swaps(SEEDS)
    assert len(training) > 10 * len(SEEDS)
    assert make_data.near_duplicates(EVAL, training) == []
    # the check itself finds what it should
    assert make_data.near_duplicates([{"nlq": "p99 latency by service"}], training) != []


def test_the_training_swaps_cover_what_the_spec_makes_of_the_seeds():
    from curate.pipeline.spec import load_spec

    spec = load_spec(ROOT_DIR / "examples/honeycomb/spec.py")
    swap = next(stage for stage in spec.stages if stage.name == "column_swap")
    known = {r["nlq"] for r in make_data.training_swaps(SEEDS)}
    made = {r["nlq"] for seed in SEEDS for r in swap.fn(seed)}
    assert made and made <= known
