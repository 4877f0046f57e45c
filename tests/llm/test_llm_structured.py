"""Structured output: extraction, validation, and one corrective retry (on the scripted
model: the retry is request logic, not HTTP)."""
from __future__ import annotations

import pytest
from conftest import scripted

from curate.llm import PARSE_FAILED, TRUNCATED, ParseError, Request, extract_json, validate
from curate.llm.structured import Parsed, complete_parsed, parse_json
from curate.testing import Reply

SCHEMA = {"type": "object", "required": ["answer"],
          "properties": {"answer": {"type": "integer"}}}


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', {"a": 1}),
    ('Sure!\n```json\n{"a": [1, 2]}\n```\nHope it helps.', {"a": [1, 2]}),
    ("```\n[{\"x\": \"y\"}]\n```", [{"x": "y"}]),
    ("Here it is: {\"a\": {\"b\": \"}\"}} and nothing else", {"a": {"b": "}"}}),
    ("{'a': True, 'b': None, 'c': \"it's\"}", {"a": True, "b": None, "c": "it's"}),
    ("The result is {'critique': 'fine', 'outcome': 'good'}.",
     {"critique": "fine", "outcome": "good"}),
])
def test_extract_json_accepts_what_models_write(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", "{broken: ", "[1, 2"])
def test_extract_json_rejects_replies_without_json(text):
    with pytest.raises(ParseError):
        extract_json(text)


def test_validation_error_names_the_place():
    with pytest.raises(ParseError, match="at answer: 'four' is not of type 'integer'"):
        validate({"answer": "four"}, SCHEMA)
    assert parse_json('{"answer": 4}', SCHEMA) == {"answer": 4}


def _fix_on_retry(request):
    last = request.messages[-1]["content"]
    return '{"answer": 4}' if "could not be used" in last else '{"answer": "four"}'


def test_a_bad_reply_is_retried_once_with_the_error():
    llm, model = scripted(_fix_on_retry)
    out = complete_parsed(llm, [Request("2+2?")], lambda text: parse_json(text, SCHEMA))
    assert isinstance(out[0], Parsed) and out[0].value == {"answer": 4} and out[0].tries == 2
    retry = model.history[1].messages
    assert retry[-2] == {"role": "assistant", "content": '{"answer": "four"}'}
    assert "'four' is not of type 'integer'" in retry[-1]["content"]


def test_still_bad_after_the_retry_is_a_parse_failure():
    llm, model = scripted(lambda request: "I cannot answer in JSON.")
    out = complete_parsed(llm, [Request("2+2?")], lambda text: parse_json(text, SCHEMA))[0]
    assert out.code == PARSE_FAILED and "after one corrective retry" in out.reason
    assert out.text == "I cannot answer in JSON." and len(model.history) == 2


def test_a_truncated_reply_is_not_parsed():
    llm, model = scripted(None, Reply('{"answer": 4', finish_reason="length"))
    out = complete_parsed(llm, [Request("2+2?")], extract_json)[0]
    assert out.code == TRUNCATED and len(model.history) == 1
