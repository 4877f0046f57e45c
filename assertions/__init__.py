"""Level-1 assertions: plain Python rules that need no LLM and run almost instantly.

The same checkers filter training data, score a model's outputs, and heal outputs
at inference. Domain checkers live in submodules (`assertions.honeycomb`).
"""

from assertions.core import Checker, Failure, FailureCounter, Rule
from assertions.heal import HealResult, describe_failures, from_pipeline, heal_many, self_heal

__all__ = [
    "Checker",
    "Failure",
    "FailureCounter",
    "HealResult",
    "Rule",
    "describe_failures",
    "from_pipeline",
    "heal_many",
    "self_heal",
]
