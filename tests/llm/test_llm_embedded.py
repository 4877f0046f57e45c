"""The embedded offline model, for real: one short batch of generations."""
from __future__ import annotations

import logging

import pytest

from curate.llm import LLM, TRUNCATED, Completion, Request, TransformersBackend, Usage
from curate.llm.embedded import WARNING


@pytest.mark.slow
def test_embedded_model_generates_offline_and_caches(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level(logging.WARNING, logger="curate.llm")
    llm = LLM(cache=tmp_path / "llm.sqlite")
    assert isinstance(llm.backend, TransformersBackend)
    requests = [Request("What is 2+2? Reply with one number.", temperature=0, max_tokens=12),
                Request("Name a colour.", temperature=1.0, max_tokens=12, sample=0),
                Request("Name a colour.", temperature=1.0, max_tokens=12, sample=1)]
    usage = Usage()
    first = llm.complete_many(requests, usage=usage)
    for result in first:  # a reply, or one cut at max_tokens (a failure that keeps its text)
        assert isinstance(result, Completion) or result.code == TRUNCATED
        assert result.text.strip()
    assert usage.requests == 3 and 0 < usage.completion_tokens <= 36 and usage.prompt_tokens > 0
    assert caplog.text.count(WARNING) == 1

    again = Usage()
    second = llm.complete_many(requests, usage=again)
    assert again.requests == 0 and again.cached == 3
    assert [r.text for r in second] == [r.text for r in first]
    # the seeded sampler is reproducible outside the cache too
    assert llm.backend.generate([llm.resolve(requests[1])])[0].text == first[1].text
