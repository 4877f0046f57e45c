"""The dependency-free core of level-1 assertions: failures, rules, checkers, counters.

A rule is a plain function ``rule(output, *context) -> iterable of Failure | None``; a
`Checker` runs every rule, so one pass tells a model (or a person) everything that is wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Failure", "Rule", "Checker", "FailureCounter"]


@dataclass(frozen=True)
class Failure:
    """One thing wrong with an output.

    Args:
        rule: a stable snake_case name (``filter_value_not_list``) for counting and filtering.
        message: a sentence a model can act on (``filter op 'in' needs a list value, got "GET"``).
    """

    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


Rule = Callable[..., "Iterable[Failure] | None"]


class Checker:
    """Runs a group of rules on an output and returns all their failures.

    Args:
        rules: plain functions ``rule(output, *context) -> iterable of Failure | None``.

    A rule that raises becomes a ``rule_error`` failure, so a filter over thousands of
    rows never dies on one odd row and the error is still counted.
    """

    def __init__(self, rules: Iterable[Rule]):
        self.rules = tuple(rules)

    def check(self, output: Any, *context: Any) -> list[Failure]:
        failures: list[Failure] = []
        for rule in self.rules:
            try:
                found = rule(output, *context)
                if found:
                    failures.extend(found)
            except Exception as error:  # noqa: BLE001 - reported as a failure, see class docstring
                name = getattr(rule, "__name__", repr(rule))
                failures.append(Failure("rule_error", f"rule {name} raised {type(error).__name__}: {error}"))
        return failures

    def is_valid(self, output: Any, *context: Any) -> bool:
        return not self.check(output, *context)

    def summarize(self, outputs: Iterable[Any], *context: Any) -> Counter:
        """Per-rule counts of failing outputs, most common first (same context for all)."""
        counter = FailureCounter()
        for output in outputs:
            counter.add(self.check(output, *context))
        return counter.most_common()


class FailureCounter:
    """Aggregates failures over many outputs: ``counts`` per rule (at most once per output),
    ``total`` and ``valid`` outputs."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.total = 0
        self.valid = 0

    def add(self, failures: Iterable[Failure]) -> None:
        rules = {failure.rule for failure in failures}
        self.total += 1
        self.valid += not rules
        self.counts.update(rules)

    def most_common(self) -> Counter:
        """The per-rule counts as a Counter that iterates most common first (ties by name)."""
        ordered = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return Counter(dict(ordered))

    def rate(self, rule: str) -> float:
        """The share of outputs that broke ``rule`` (0.0 when nothing was counted)."""
        return self.counts[rule] / self.total if self.total else 0.0

    def __repr__(self) -> str:
        return f"FailureCounter(total={self.total}, valid={self.valid}, counts={dict(self.most_common())})"
