"""The held-out figures of a set of answers, with 95% intervals, beside the baselines.

Per row (`assess`): validity (the checker), exact match and atom F1 (`scoring`). Over rows
(`summarize`): their means with cluster bootstrap intervals (`curate.stats.interval`) over a
row's ``group`` (a parent row and its column swaps; a row without one is its own group).
"""
from __future__ import annotations

from collections import Counter

from assertions.honeycomb import check
from curate.stats import interval
from examples.honeycomb import baselines, scoring

HEADLINE = ("validity", "atom_f1", "exact_match")


def assess(answer, row: dict) -> dict:
    """One answer against its row: validity, failures, exact match and atom scores."""
    failures = check(answer, row["columns"])
    return {"valid": not failures, "rules": list(dict.fromkeys(f.rule for f in failures)),
            "failures": [f.message for f in failures], **scoring.score(answer, row["query"])}


def groups_of(rows: list[dict]) -> list:
    """Each row's cluster for the intervals: its ``group`` field, or None (its own)."""
    return [row.get("group") for row in rows]


def summarize(assessed: list[dict], groups: list) -> dict:
    """Counts, rates and intervals over one `assess` per row, with the failures per rule
    and the per-kind atom scores."""
    n = len(assessed)
    valid, exact = [a["valid"] for a in assessed], [a["exact"] for a in assessed]
    atoms = scoring.summarize(assessed)
    per_rule = Counter(rule for a in assessed for rule in a["rules"])
    figures = {"validity": valid, "atom_f1": [a["atom_f1"] for a in assessed], "exact_match": exact}
    return {"rows": n, "valid": sum(valid), "validity_rate": round(sum(valid) / n, 4),
            "exact_match": sum(exact), "exact_match_rate": round(sum(exact) / n, 4),
            "atom_f1": atoms["atom_f1"], "atom_precision": atoms["precision"],
            "atom_recall": atoms["recall"], "parts": atoms["parts"],
            "intervals": {name: interval(values, groups).as_dict() for name, values in figures.items()},
            "failures_per_rule": dict(per_rule.most_common())}


def score_answers(answers: list, rows: list[dict]) -> dict:
    """`summarize` of ``answers`` (one per row, in order) against ``rows``."""
    return summarize([assess(answer, row) for answer, row in zip(answers, rows)], groups_of(rows))


def baseline_summaries(rows: list[dict], seeds: list[dict]) -> dict[str, dict]:
    """`score_answers` of every degenerate answer of `baselines`, by its label."""
    return {baselines.LABELS[name]: score_answers(answers, rows)
            for name, answers in baselines.answers(rows, seeds).items()}


def headline(summary: dict) -> dict:
    """``{"validity", "atom_f1", "exact_match"}``, each ``{"value", "low", "high"}``."""
    return {name: summary["intervals"][name] for name in HEADLINE}


def print_table(title: str, summaries: dict[str, dict]) -> None:
    """One line per set of answers: each headline figure with its interval, the rules."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("answers", "rows", "validity [95% CI]", "atom F1 [95% CI]",
                   "exact match [95% CI]", "top failing rules"):
        table.add_column(column)
    for label, summary in summaries.items():
        cells = [_shown(summary["intervals"][name]) for name in HEADLINE]
        rules = ", ".join(f"{k} {v}" for k, v in list(summary["failures_per_rule"].items())[:3])
        table.add_row(label, str(summary["rows"]), *cells, rules)
    Console(width=160).print(table)


def _shown(figure: dict) -> str:
    return f"{figure['value']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"
