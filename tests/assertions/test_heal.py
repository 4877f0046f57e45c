"""Self-healing with a scripted model that first emits invalid queries and then corrects them."""

import json

import pytest

from assertions import Failure, HealResult, describe_failures, from_pipeline, self_heal
from assertions import honeycomb

COLUMNS = ["duration_ms", "http.method", "service.name"]
PROMPT = "NLQ: slowest requests by method\nColumns: " + ", ".join(COLUMNS)

BROKEN = '{"calculations": [{"op": "P99"}], "breakdowns": ["method"]}'
HALF_FIXED = "{'calculations': [{'op': 'P99', 'column': 'duration_ms'}], 'breakdowns': ['method']}"
FIXED = '{"calculations": [{"op": "P99", "column": "duration_ms"}], "breakdowns": ["http.method"]}'


class ScriptedModel:
    """Replies from a queue and records the messages of every call."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls = []

    def __call__(self, messages):
        self.calls.append(messages)
        return self.replies.pop(0)


def check_query(text):
    return honeycomb.check(text, COLUMNS)


def test_the_model_corrects_itself_from_the_failure_messages():
    model = ScriptedModel(BROKEN, HALF_FIXED, FIXED)
    result = self_heal(model, check_query, PROMPT)

    assert isinstance(result, HealResult)
    assert (result.output, result.valid, result.attempts) == (FIXED, True, 3)
    assert [[failure.rule for failure in failures] for _, failures in result.history] == [
        ["calc_column_missing", "breakdown_column_unknown"],
        ["breakdown_column_unknown"],
        [],
    ]
    assert result.failures == ()

    first, second, third = model.calls
    assert first == [{"role": "user", "content": PROMPT}]
    assert second[:2] == [first[0], {"role": "assistant", "content": BROKEN}]
    feedback = second[2]["content"]
    assert second[2]["role"] == "user"
    assert feedback.startswith("Your query has these problems:")
    assert "calculation P99 needs a column" in feedback
    assert 'breakdown column "method" is not one of the given columns; did you mean "http.method"?' in feedback
    assert feedback.endswith("Return a corrected query.")
    assert len(third) == 5 and third[3] == {"role": "assistant", "content": HALF_FIXED}
    assert "calculation P99 needs a column" not in third[4]["content"]


def test_a_valid_first_answer_costs_one_call():
    model = ScriptedModel(FIXED, BROKEN)
    result = self_heal(model, check_query, PROMPT)
    assert (result.valid, result.attempts, len(model.calls)) == (True, 1, 1)
    assert model.replies == [BROKEN]


def test_attempts_are_bounded_and_the_last_output_is_returned():
    model = ScriptedModel("I think you want P99 latency.", BROKEN, FIXED)
    result = self_heal(model, check_query, PROMPT, max_attempts=2)
    assert (result.output, result.valid, result.attempts) == (BROKEN, False, 2)
    assert [failure.rule for failure in result.failures] == ["calc_column_missing", "breakdown_column_unknown"]
    assert "the query is not valid JSON" in model.calls[1][-1]["content"]
    assert model.replies == [FIXED]


def test_message_lists_are_kept_and_not_mutated():
    messages = [{"role": "system", "content": "You write Honeycomb queries."}, {"role": "user", "content": PROMPT}]
    model = ScriptedModel(BROKEN, FIXED)
    result = self_heal(model, check_query, messages)
    assert result.valid and len(messages) == 2
    assert model.calls[1][:2] == messages
    assert len(model.calls[0]) == 2


def test_custom_feedback_is_sent():
    def terse(failures):
        return "Fix: " + "; ".join(failure.rule for failure in failures)

    model = ScriptedModel(BROKEN, FIXED)
    self_heal(model, check_query, PROMPT, feedback=terse)
    assert model.calls[1][-1]["content"] == "Fix: calc_column_missing; breakdown_column_unknown"


def test_describe_failures_lists_every_message():
    text = describe_failures([Failure("a", "first problem"), Failure("b", "second problem")])
    assert text == "Your query has these problems:\n- first problem\n- second problem\nReturn a corrected query."


@pytest.mark.parametrize("prompt", [[], [{"content": "no role"}]])
def test_bad_prompts_are_rejected(prompt):
    with pytest.raises(ValueError, match="prompt"):
        self_heal(ScriptedModel(FIXED), check_query, prompt)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="max_attempts"):
        self_heal(ScriptedModel(FIXED), check_query, PROMPT, max_attempts=0)
    with pytest.raises(TypeError, match="must return text"):
        self_heal(ScriptedModel({"text": FIXED}), check_query, PROMPT)


class FakePipeline:
    """Shaped like a transformers text-generation pipeline called with chat messages."""

    def __init__(self, replies, full_chat):
        self.replies, self.full_chat, self.kwargs = list(replies), full_chat, []

    def __call__(self, messages, **kwargs):
        self.kwargs.append(kwargs)
        reply = self.replies.pop(0)
        if self.full_chat:
            return [{"generated_text": [*messages, {"role": "assistant", "content": reply}]}]
        return [{"generated_text": reply}]


@pytest.mark.parametrize("full_chat", [False, True])
def test_a_pipeline_can_heal_through_the_adapter(full_chat):
    pipe = FakePipeline([BROKEN, FIXED], full_chat)
    result = self_heal(from_pipeline(pipe, max_new_tokens=64), check_query, PROMPT)
    assert (result.output, result.valid, result.attempts) == (FIXED, True, 2)
    assert pipe.kwargs == [{"max_new_tokens": 64, "return_full_text": False}] * 2
    assert json.loads(result.output)["breakdowns"] == ["http.method"]


def test_the_adapter_names_what_it_expected():
    generate = from_pipeline(lambda messages, **kwargs: [{"score": 1.0}])
    with pytest.raises(TypeError, match="generated_text"):
        generate([{"role": "user", "content": "hi"}])


def test_heal_many_batches_only_the_failing_conversations():
    from assertions import heal_many

    first, second = ScriptedModel(BROKEN, FIXED), ScriptedModel(FIXED)
    batches = []

    def generate_many(conversations):
        batches.append(len(conversations))
        # route each conversation to its own scripted model by its prompt text
        return [(first if "slowest" in c[0]["content"] else second)(c) for c in conversations]

    results = heal_many(generate_many, [check_query, check_query],
                        [PROMPT, "NLQ: p99 latency\nColumns: duration_ms"], max_attempts=3)
    assert batches == [2, 1]
    assert [(r.valid, r.attempts) for r in results] == [(True, 2), (True, 1)]
    retry = first.calls[1]
    assert retry[-2] == {"role": "assistant", "content": BROKEN}
    assert "column" in retry[-1]["content"] and retry[-1]["role"] == "user"
