"""Label masking on the real SmolLM2 tokenizer, checked on exact positions by decoding."""
from __future__ import annotations

import pytest

from train.data import IGNORE_INDEX, collate, tokenize_conversation
from train.errors import TemplateError
from train.templates import eot_token, render, render_prompt

SYSTEM = {"role": "system", "content": "You are terse."}


def learned_runs(ids, labels):
    """Contiguous runs of learned positions as (start, end) pairs."""
    runs, start = [], None
    for i, label in enumerate(labels + [IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        if label == IGNORE_INDEX and start is not None:
            runs.append((start, i))
            start = None
    return runs


def n_tokens(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_single_turn_learns_the_answer_and_its_end_token_only(smol_tokenizer):
    tok = smol_tokenizer
    messages = [SYSTEM, {"role": "user", "content": "What is six times seven?"},
                {"role": "assistant", "content": "The answer is 42."}]
    ids, labels = tokenize_conversation(messages, tok)
    prompt = render_prompt(messages, tok)
    start = n_tokens(tok, prompt)
    end = n_tokens(tok, prompt + "The answer is 42.<|im_end|>")

    assert learned_runs(ids, labels) == [(start, end)]
    assert tok.decode(ids[start:end]) == "The answer is 42.<|im_end|>"
    assert ids[end - 1] == tok.eos_token_id
    assert tok.decode(ids[start - 4:start]) == "<|im_start|>assistant\n"  # header (4 tokens) masked
    assert labels[start - 4:start] == [IGNORE_INDEX] * 4
    assert labels[start:end] == ids[start:end]
    assert len(ids) == end + 1 and tok.decode(ids[end:]) == "\n" and labels[end] == IGNORE_INDEX


def test_multi_turn_learns_every_assistant_turn_and_nothing_else(smol_tokenizer):
    tok = smol_tokenizer
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"},
                {"role": "user", "content": "again"}, {"role": "assistant", "content": "ok"}]
    ids, labels = tokenize_conversation(messages, tok)
    runs = learned_runs(ids, labels)

    first_start = n_tokens(tok, render_prompt(messages[:2], tok))
    second_start = n_tokens(tok, render_prompt(messages, tok))
    assert [start for start, _ in runs] == [first_start, second_start]
    assert [tok.decode(ids[a:b]) for a, b in runs] == ["hello there<|im_end|>", "ok<|im_end|>"]
    masked_text = tok.decode([t for t, label in zip(ids, labels) if label == IGNORE_INDEX])
    assert "hi" in masked_text and "again" in masked_text and "hello" not in masked_text
    # the default system prompt the template inserts is masked too
    assert "SmolLM" in masked_text


def test_padding_is_masked_by_position_so_an_eos_equal_to_pad_stays_learned(smol_tokenizer):
    tok = smol_tokenizer
    assert tok.pad_token_id == tok.eos_token_id  # SmolLM2 pads with <|im_end|>
    short = tokenize_conversation([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], tok)
    long = tokenize_conversation([{"role": "user", "content": "a longer question"},
                                  {"role": "assistant", "content": "a longer answer"}], tok)
    batch = collate([{"input_ids": short[0], "labels": short[1]}, {"input_ids": long[0], "labels": long[1]}],
                    pad_id=tok.pad_token_id)
    n = len(short[0])
    row_ids, row_labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    eos_position = n - 2  # ...b<|im_end|>\n
    assert row_ids[eos_position] == tok.pad_token_id and row_labels[eos_position] == tok.eos_token_id
    assert row_ids[n:] == [tok.pad_token_id] * (len(long[0]) - n)
    assert row_labels[n:] == [IGNORE_INDEX] * (len(long[0]) - n)
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (len(long[0]) - n)


def test_train_on_inputs_learns_every_token(smol_tokenizer):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    ids, labels = tokenize_conversation(messages, smol_tokenizer, train_on_inputs=True)
    assert labels == ids


def test_an_end_token_the_turn_does_not_contain_is_reported_with_a_hint(smol_tokenizer):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    eot = smol_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    with pytest.raises(TemplateError, match=r"not closed by .*endoftext.*try eot_token: .<\|im_end\|>."):
        tokenize_conversation(messages, smol_tokenizer, eot=eot)


def test_alpaca_template_ends_the_answer_with_eos_and_masks_the_instruction(smol_tokenizer):
    tok = smol_tokenizer
    messages = [{"role": "user", "content": "Name the capital of France."},
                {"role": "assistant", "content": "Paris"}]
    text = render(messages, tok, "alpaca")
    assert text.endswith("### Instruction:\nName the capital of France.\n\n### Response:\nParis<|im_end|>\n\n")
    assert text.startswith("Below is an instruction")
    ids, labels = tokenize_conversation(messages, tok, "alpaca")
    runs = learned_runs(ids, labels)
    assert len(runs) == 1 and tok.decode(ids[runs[0][0]:runs[0][1]]) == "Paris<|im_end|>"
    assert runs[0][0] == n_tokens(tok, render_prompt(messages, tok, "alpaca"))


def test_chatml_template_matches_the_tokenizer_template_without_default_system(smol_tokenizer):
    messages = [SYSTEM, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert render(messages, smol_tokenizer, "chatml") == render(messages, smol_tokenizer)
    assert render_prompt(messages, smol_tokenizer, "chatml").endswith("<|im_start|>assistant\n")


def test_render_prompt_is_the_training_text_up_to_the_answer(smol_tokenizer):
    messages = [SYSTEM, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    prompt, full = render_prompt(messages, smol_tokenizer), render(messages, smol_tokenizer)
    assert full == prompt + "4<|im_end|>\n"


def test_an_end_token_outside_the_vocabulary_is_refused(smol_tokenizer):
    with pytest.raises(TemplateError, match="not a single token"):
        eot_token(smol_tokenizer, configured="<|nope|>")
    assert eot_token(smol_tokenizer, "chatml") == "<|im_end|>"
