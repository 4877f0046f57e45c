"""The embedded backends' decoding loop on a tiny random Llama built from a config."""
from __future__ import annotations

import pytest

from curate.llm.types import Request

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.train.train_testkit import word_tokenizer

    tokenizer = word_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, initializer_range=0.2, bos_token_id=1,
                         eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tokenizer


def _forwards(model, monkeypatch) -> list[tuple]:
    shapes, forward = [], model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: shapes.append(
        tuple(k["input_ids"].shape)) or forward(*a, **k))
    return shapes


def test_a_batch_of_one_runs_its_whole_prompt_in_one_pass_with_the_same_greedy_reply(
        tiny, monkeypatch):
    from curate.llm.backends.decode import generate_batch, prompt_ids, shared_prefix

    model, tokenizer = tiny
    system = " ".join(["You answer with the word ."] * 8)
    request = Request([{"role": "system", "content": system},
                       {"role": "user", "content": "Repeat : apple"}], temperature=0, max_tokens=5)
    prompt = prompt_ids(tokenizer, request)
    assert shared_prefix([prompt]) == 0 and shared_prefix([prompt, prompt + [5]]) == len(prompt) - 1
    shapes = _forwards(model, monkeypatch)
    [reply] = generate_batch(model, tokenizer, [request], [0], 8, eos={2})
    monkeypatch.undo()
    assert shapes[0] == (1, len(prompt))
    with torch.inference_mode():
        alone = model.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False,
                               eos_token_id=[2], pad_token_id=0)
    assert reply.text == tokenizer.decode(alone[0, len(prompt):], skip_special_tokens=True)


def test_a_batch_where_no_row_may_generate_a_token_gives_empty_replies_without_a_pass(
        tiny, monkeypatch):
    from curate.llm.backends.decode import generate_batch

    model, tokenizer = tiny
    shapes, done = _forwards(model, monkeypatch), []
    replies = generate_batch(model, tokenizer, [Request("Say hello"), Request("Say ok", max_tokens=-1)],
                             [0, 1], 0, eos={2}, on_done=lambda i, c: done.append(i))
    assert [(r.text, r.finish_reason, r.completion_tokens) for r in replies] == [("", "length", 0)] * 2
    assert shapes == [] and done == [0, 1]
