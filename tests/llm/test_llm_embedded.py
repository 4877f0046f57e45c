"""The embedded offline model, for real: one short batch of generations."""
from __future__ import annotations

import logging

import pytest

from curate.llm import LLM, TRUNCATED, Completion, Request, TransformersBackend, Usage
from curate.llm.backends import WARNING


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


@pytest.mark.slow
def test_a_schema_constrains_the_embedded_model_and_replies_arrive_as_they_finish(tmp_path):
    import json

    import jsonschema

    schema = {"type": "object", "required": ["answer", "sure"], "additionalProperties": False,
              "properties": {"answer": {"type": "string", "maxLength": 20},
                             "sure": {"enum": ["yes", "no"]}}}
    requests = [Request("What is the capital of France? Answer in JSON.", temperature=0.7,
                        max_tokens=40, schema=schema, sample=i) for i in range(3)]
    requests.append(Request("Say hi.", temperature=0, max_tokens=30))  # unconstrained
    backend = LLM(cache=False).backend
    seen = []
    out = backend.generate(requests, on_done=lambda i, c: seen.append((i, c.completion_tokens)))
    assert sorted(i for i, _ in seen) == [0, 1, 2, 3] and len(seen) == 4
    for completion in out[:3]:
        assert completion.finish_reason == "stop"
        jsonschema.validate(json.loads(completion.text), schema)  # compact, schema-valid JSON
        assert " " not in completion.text.split('"answer"')[0]
    lengths = [n for _, n in seen]  # handed back when finished: shortest first (a reply that
    assert all(b >= a - 1 for a, b in zip(lengths, lengths[1:]))  # ends on EOS counts one less

    llm = LLM(cache=tmp_path / "llm.sqlite")
    cached = []
    llm.complete_many(requests[:3], on_result=lambda i, r: cached.append(len(llm.open_cache())))
    assert cached == [1, 2, 3]  # stored one by one, not when the batch ended


def test_the_embedded_backend_is_chosen_by_what_is_installed_or_asked_for(monkeypatch):
    from curate.errors import CurateError
    from curate.llm import backends
    from curate.llm.backends import llamacpp

    monkeypatch.setattr(llamacpp, "available", lambda: True)
    monkeypatch.delenv("CURATE_EMBEDDED_BACKEND", raising=False)
    chosen = backends.default_backend()
    assert isinstance(chosen, llamacpp.LlamaCppBackend)
    assert chosen.model_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert chosen.structured_engine() == "llama.cpp-gbnf"
    monkeypatch.setenv("CURATE_EMBEDDED_BACKEND", "transformers")
    assert isinstance(backends.default_backend(), TransformersBackend)
    monkeypatch.setenv("CURATE_EMBEDDED_BACKEND", "vllm")
    with pytest.raises(CurateError, match="CURATE_EMBEDDED_BACKEND must be auto"):
        backends.default_backend()
    monkeypatch.setattr(llamacpp, "available", lambda: False)
    monkeypatch.setenv("CURATE_EMBEDDED_BACKEND", "auto")
    assert isinstance(backends.default_backend(), TransformersBackend)


@pytest.mark.slow
@pytest.mark.skipif(not __import__("curate.llm.backends.llamacpp", fromlist=["x"]).available(),
                    reason="llama-cpp-python (the [llamacpp] extra) is not installed")
def test_llama_cpp_backend_generates_schema_valid_replies():
    import json

    import jsonschema

    from curate.llm.backends import SMOLLM2_FILE, smollm2_path
    from curate.llm.backends.llamacpp import LlamaCppBackend

    schema = {"type": "object", "required": ["colour"], "additionalProperties": False,
              "properties": {"colour": {"type": "string", "maxLength": 20}}}
    backend = LlamaCppBackend(smollm2_path() / SMOLLM2_FILE, n_threads=1)
    seen = []
    out = backend.generate([Request("Name a colour, as JSON.", schema=schema, max_tokens=40,
                                    temperature=0.5, sample=i) for i in range(2)],
                           on_done=lambda i, c: seen.append(i))
    assert seen == [0, 1]
    for completion in out:
        jsonschema.validate(json.loads(completion.text), schema)


@pytest.mark.slow
def test_a_run_without_xgrammar_says_in_its_summary_and_manifest_that_it_was_unconstrained(
        tmp_path, monkeypatch):
    """As after a hand install that left xgrammar out: the run goes on, and the manifest and
    the terminal summary say, per LLM stage, that replies were not held to their schema."""
    import sys

    import pandas as pd
    from rich.console import Console

    from curate import Judge, Pipeline
    from curate.pipeline.summary import print_funnel

    monkeypatch.setenv("CURATE_EMBEDDED_BACKEND", "transformers")
    rows = pd.DataFrame({"q": ["2+2 is 4", "the sky is green"]})

    def run(folder):
        llm = LLM(max_tokens=24, seed=0, cache=tmp_path / f"{folder}.sqlite")
        pipe = Pipeline(source=rows, stages=[Judge(llm, fields=["q"], on_failure="keep")])
        done = pipe.run(tmp_path / folder, progress=False)
        console = Console(record=True, width=220)
        print_funnel(done.manifest, tmp_path / folder, console=console)
        return done.manifest["stages"][0], console.export_text()

    stage, text = run("with")
    assert stage["structured"] == "constrained" and "unconstrained" not in text

    monkeypatch.setitem(sys.modules, "xgrammar", None)  # not installed
    stage, text = run("without")
    assert stage["structured"] == "unconstrained (xgrammar missing)"
    assert "unconstrained (xgrammar missing)" in text
    assert any("xgrammar" in w and "pip install" in w for w in stage["warnings"])


def test_the_documented_hand_install_is_the_one_make_runs():
    """README's "Installing by hand" for a CPU gives what `make` installs, xgrammar (the
    offline model's constrained decoding) included; the GPU extra brings xgrammar too."""
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def installs(text: str) -> list[list[str]]:
        """The arguments of each `pip install` (a pip upgrade and --quiet left out)."""
        commands = []
        for line in text.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#")[0])
            if "pip" in words and "install" in words and "--upgrade" not in words:
                commands.append(sorted(w for w in words[words.index("install") + 1:]
                                       if w != "--quiet"))
        return commands

    make = installs((root / "Makefile").read_text().split("$(STAMP):")[1].split("touch")[0])
    readme = (root / "README.md").read_text().split("### Installing by hand")[1]
    cpu_block = readme.split("```sh")[1].split("```")[0]
    assert installs(cpu_block) == make and any("xgrammar" in args for args in make)
    assert re.search(r'^gpu = \[.*"xgrammar', (root / "pyproject.toml").read_text(), re.M)


@pytest.mark.slow
def test_the_embedded_model_generates_on_the_chosen_threads(monkeypatch):
    import torch

    monkeypatch.setenv("CURATE_THREADS", "1")
    backend = LLM(cache=False).backend
    before, seen = torch.get_num_threads(), []
    backend.generate([Request("Say hi.", temperature=0, max_tokens=4)],
                     on_done=lambda i, c: seen.append(torch.get_num_threads()))
    assert seen == [1] and torch.get_num_threads() == before


def test_long_prompts_go_in_smaller_batches_and_every_request_in_one():
    """A batch's prompt pass holds scores for every pair of its tokens: the batches of the
    embedded backend keep the padded prompt tokens within the budget."""
    from curate.llm.backends.embedded import batches

    lengths = [100] * 20 + [1500] * 6 + [9000]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    found = batches(order, lengths, size=16, tokens=8192)
    assert [len(b) for b in found] == [16, 5, 5, 1]  # 4 short + 1 long padded: 7,500 tokens
    assert [i for b in found for i in b] == order  # each once, in order
    assert all(max(lengths[i] for i in b) * len(b) <= 8192 for b in found if len(b) > 1)
    assert [len(b) for b in batches(order, lengths, size=16, tokens=10**9)] == [16, 11]


@pytest.mark.slow
def test_a_small_token_budget_generates_the_same_greedy_replies(tmp_path):
    """Batches cut by the budget decode each prompt alone where a larger one batches them:
    the greedy replies are the same."""
    from curate.llm.backends import SMOLLM2_FILE, smollm2_path

    requests = [Request(f"Name {n} fruits, one per line.", temperature=0, max_tokens=16) for n in (2, 3, 4)]
    replies = {budget: [c.text for c in TransformersBackend(smollm2_path(), SMOLLM2_FILE, batch_tokens=budget)
                        .generate(requests)] for budget in (1, 8192)}
    assert replies[1] == replies[8192] and all(replies[1])


@pytest.mark.slow
def test_a_shared_prompt_start_runs_once_and_finished_rows_leave_without_changing_a_reply(monkeypatch):
    """The start a batch's prompts share is computed once and repeated for each row, and a
    row that finishes leaves the batch: the greedy replies are transformers' own, each
    prompt generated alone."""
    import torch

    from curate.llm.backends import SMOLLM2_FILE, smollm2_path
    from curate.llm.backends.decode import SHARED_MIN, eos_ids, prompt_ids, shared_prefix

    system = ("You are a careful assistant for an observability team. Answer in one short "
              "sentence, plainly, without lists, and never repeat the question back.")
    questions = [("What does a p99 latency measure?", 3), ("Why do services time out?", 7),
                 ("What is a trace span?", 11)]
    requests = [Request([{"role": "system", "content": system}, {"role": "user", "content": q}],
                        temperature=0, max_tokens=n) for q, n in questions]
    backend = TransformersBackend(smollm2_path(), SMOLLM2_FILE)
    model, tokenizer = backend.load()
    prompts = [prompt_ids(tokenizer, r) for r in requests]
    assert shared_prefix(prompts) >= SHARED_MIN

    shapes, forward = [], model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: shapes.append(
        tuple(k["input_ids"].shape)) or forward(*a, **k))
    ours = backend.generate(requests)
    monkeypatch.undo()

    assert shapes[0] == (1, shared_prefix(prompts))  # the shared start, once
    assert shapes[1][0] == 3 and shapes[1][1] < max(len(p) for p in prompts) - SHARED_MIN
    rows = [n for n, _ in shapes[2:]]
    assert rows == sorted(rows, reverse=True) and rows[-1] == 1  # finished rows left
    for (question, n), prompt, completion in zip(questions, prompts, ours):
        with torch.inference_mode():
            alone = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                                   eos_token_id=sorted(eos_ids(model, tokenizer)),
                                   pad_token_id=tokenizer.pad_token_id)
        expected = tokenizer.decode(alone[0, len(prompt):], skip_special_tokens=True)
        assert completion.text == expected, question
