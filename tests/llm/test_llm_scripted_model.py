"""The in-process scripted model (curate.testing.ScriptedModel): replies in turn, then a
function of the request; the requests it saw as sent; faults a backend can give."""
from __future__ import annotations

import pytest

from curate.llm import TRUNCATED, Request
from curate.testing import Reply, ScriptedModel


def test_queued_replies_then_a_function_and_the_requests_as_sent():
    model = ScriptedModel("first", "second", reply=lambda request: f"seed {request.seed}")
    llm = model.client(seed=7, temperature=0.3)
    out = llm.complete_many([Request(f"q{i}", sample=i) for i in range(3)])
    assert [c.text for c in out] == ["first", "second", "seed 9"]
    assert [r.messages[-1]["content"] for r in model.history] == ["q0", "q1", "q2"]
    assert [(r.seed, r.temperature) for r in model.history] == [(7, 0.3), (8, 0.3), (9, 0.3)]
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in out)
    assert llm.usage.as_stats()["requests"] == 3


def test_a_cut_off_reply_is_a_failure_and_running_out_of_replies_says_so():
    model = ScriptedModel(Reply('{"a": 1', finish_reason="length"))
    llm = model.client()
    assert llm.complete("x").code == TRUNCATED
    with pytest.raises(AssertionError, match="no reply left for request 2"):
        llm.complete("y")


def test_with_a_cache_a_repeated_request_never_reaches_the_model(tmp_path):
    model = ScriptedModel(reply=lambda request: "hello")
    llm = model.client(cache=tmp_path / "llm.sqlite")
    assert llm.complete("x").text == llm.complete("x").text == "hello"
    assert len(model.history) == 1
