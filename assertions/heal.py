"""Self-healing at inference: check a model's output and ask it to fix what fails.

The loop is the one of the Honeycomb case study: generate, run the level-1
assertions, and when they fail, show the model its own answer and the failures in
words, then ask again, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from assertions.core import Failure

__all__ = ["HealResult", "describe_failures", "from_pipeline", "heal_many", "self_heal"]

Message = dict[str, str]
Generate = Callable[[list[Message]], str]
CheckText = Callable[[str], Sequence[Failure]]


@dataclass(frozen=True)
class HealResult:
    """The outcome of `self_heal`.

    Args:
        output: the last output generated (the valid one when ``valid``).
        valid: whether ``output`` passed the check.
        attempts: how many times the model was called.
        history: ``(output, failures)`` for every attempt, in order.
    """

    output: str
    valid: bool
    attempts: int
    history: tuple[tuple[str, tuple[Failure, ...]], ...]

    @property
    def failures(self) -> tuple[Failure, ...]:
        """The failures of the final output (empty when valid)."""
        return self.history[-1][1] if self.history else ()


def describe_failures(failures: Sequence[Failure]) -> str:
    """The default feedback: the failures as a list, and a request for a corrected query."""
    problems = "\n".join(f"- {failure.message}" for failure in failures)
    return f"Your query has these problems:\n{problems}\nReturn a corrected query."


def self_heal(
    generate: Generate,
    check: CheckText,
    prompt: str | Sequence[Message],
    max_attempts: int = 3,
    feedback: Callable[[Sequence[Failure]], str] = describe_failures,
) -> HealResult:
    """Generate, check, and on failure feed the failures back to the model, up to ``max_attempts`` calls.

    Args:
        generate: any model as a callable taking chat messages (``[{"role", "content"}]``)
            and returning text; see `from_pipeline` for a transformers pipeline.
        check: ``check(text) -> failures``, e.g. ``lambda text: honeycomb.check(text, columns)``.
        prompt: the user prompt as a string, or the opening chat messages.
        max_attempts: the most model calls, the first one included.
        feedback: turns failures into the user message that asks for a correction.

    After a failed attempt the conversation grows by the model's reply (as an
    assistant message) and the feedback (as a user message), so the model sees what
    it wrote and what is wrong with it.
    """
    one_by_one = lambda conversations: [generate(conversations[0])]  # noqa: E731
    return heal_many(one_by_one, [check], [prompt], max_attempts, feedback)[0]


def heal_many(
    generate_many: Callable[[list[list[Message]]], Sequence[str]],
    checks: Sequence[CheckText],
    prompts: Sequence[str | Sequence[Message]],
    max_attempts: int = 3,
    feedback: Callable[[Sequence[Failure]], str] = describe_failures,
) -> list[HealResult]:
    """`self_heal` for many prompts at once, in rounds, for models that batch.

    Each round sends every conversation still failing to ``generate_many`` in one call (a
    batched local model or a concurrent client). ``checks[i]`` checks ``prompts[i]``'s output.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if len(checks) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(checks)} checks")
    conversations = [_as_messages(p) for p in prompts]
    histories: list[list[tuple[str, tuple[Failure, ...]]]] = [[] for _ in prompts]
    pending = list(range(len(prompts)))
    while pending:
        replies = generate_many([list(conversations[i]) for i in pending])
        if len(replies) != len(pending):
            raise ValueError(f"generate_many returned {len(replies)} replies for {len(pending)} prompts")
        still = []
        for i, reply in zip(pending, replies):
            output = _as_text(reply)
            failures = tuple(checks[i](output))
            histories[i].append((output, failures))
            if failures and len(histories[i]) < max_attempts:
                conversations[i] += [{"role": "assistant", "content": output},
                                     {"role": "user", "content": feedback(failures)}]
                still.append(i)
        pending = still
    return [HealResult(h[-1][0], not h[-1][1], len(h), tuple(h)) for h in histories]


def _as_messages(prompt: str | Sequence[Message]) -> list[Message]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = [dict(message) for message in prompt]
    if not messages or not all("role" in message and "content" in message for message in messages):
        raise ValueError("prompt must be a string or a non-empty list of {'role', 'content'} messages")
    return messages


def _as_text(reply: Any) -> str:
    if isinstance(reply, str):
        return reply
    kind = type(reply).__name__
    raise TypeError(f"generate must return text, got {kind}; wrap the model so it returns the reply's text")


def from_pipeline(pipe: Callable[..., Any], **generate_kwargs: Any) -> Generate:
    """Wrap a transformers text-generation pipeline (or anything shaped like one) as ``generate``.

    The pipeline gets the chat messages and ``generate_kwargs`` (``return_full_text=False``
    unless given); the reply is ``result[0]["generated_text"]``, new text or the whole chat.
    """
    generate_kwargs.setdefault("return_full_text", False)

    def generate(messages: list[Message]) -> str:
        result = pipe(messages, **generate_kwargs)
        if isinstance(result, list) and result:
            result = result[0]
        if isinstance(result, list) and result:  # a batch of one prompt: [[{...}]]
            result = result[0]
        text = result.get("generated_text") if isinstance(result, dict) else None
        if isinstance(text, list) and text and isinstance(text[-1], dict):
            text = text[-1].get("content")
        if not isinstance(text, str):
            raise TypeError("expected a text-generation pipeline result with 'generated_text', "
                            f"got {result!r:.200}")
        return text

    return generate
