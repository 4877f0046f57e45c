"""The gold answer's teacher-forced loss: exactly the learned tokens, batched, with an adapter."""
from __future__ import annotations

import math

import pytest
import torch
from train_testkit import WORDS, repeat_rows, word_tokenizer

from curate.formats.chat import convert
from train.answer_loss import answer_losses, mean_loss
from train.data import tokenize_conversation
from train.folds import fold_of, out_of_fold_token_losses
from train.loop import train
from train.model import load_trained


def conversation(word: str, answer: str, turns: int = 1) -> list[dict]:
    messages = [{"role": "system", "content": "You answer with the word ."}]
    for _ in range(turns):
        messages += [{"role": "user", "content": f"Repeat : {word}"}, {"role": "assistant", "content": answer}]
    return messages


def by_hand(model, tokenizer, messages) -> float:
    """Mean -log p of the learned tokens, from a full forward pass of the row alone."""
    ids, labels = tokenize_conversation(messages, tokenizer, "auto", tokenizer.convert_tokens_to_ids("<|im_end|>"))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    picked = [-logp[i - 1, labels[i]].item() for i in range(1, len(ids)) if labels[i] != -100]
    return sum(picked) / len(picked)


def test_each_row_scores_the_mean_nll_of_exactly_its_learned_tokens_batched_or_alone(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model_dir), word_tokenizer()
    rows = [conversation("apple", "apple"), conversation("pear", "kiwi plum fig"),
            conversation("fig", "fig", turns=3), conversation("lime", "date grape")]
    expected = [by_hand(model, tokenizer, row) for row in rows]
    for batch_size in (1, 3, 8):  # padding and the order rows are batched in change nothing
        got = answer_losses(model, tokenizer, rows, batch_size=batch_size)
        assert got == pytest.approx(expected, rel=1e-5)
    model.train()  # scoring runs in eval mode (no dropout) and gives the model back as it was
    answer_losses(model, tokenizer, rows[:1])
    assert model.training


def test_rows_in_any_chat_format_score_as_their_messages(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model_dir), word_tokenizer()
    rows = repeat_rows(3)
    messages = [[{"role": {"human": "user", "gpt": "assistant"}.get(t["from"], t["from"]), "content": t["value"]}
                 for t in row["conversations"]] for row in rows]
    base = answer_losses(model, tokenizer, messages)
    for fmt in ("sharegpt", "messages", "alpaca"):
        assert answer_losses(model, tokenizer, [convert(row, fmt) for row in rows]) == pytest.approx(base, rel=1e-6)


def test_training_lowers_the_trained_answers_loss_and_a_saved_adapter_scores_the_same(tiny_cfg):
    cfg = tiny_cfg(max_steps=30)
    tokenizer = word_tokenizer()
    rows = repeat_rows(8)
    from transformers import AutoModelForCausalLM

    before = answer_losses(AutoModelForCausalLM.from_pretrained(cfg.model), tokenizer, rows)
    result = train(cfg)
    after = answer_losses(result["model"], tokenizer, rows)
    assert sum(after) < 0.25 * sum(before)
    reloaded = load_trained(cfg, result["adapter_dir"])
    assert answer_losses(reloaded, tokenizer, rows) == pytest.approx(after, rel=1e-5)


def test_folds_are_seeded_and_balanced():
    folds = fold_of(10, 3, seed=0)
    assert sorted(folds.count(f) for f in range(3)) == [3, 3, 4]
    assert fold_of(10, 3, seed=0) == folds != fold_of(10, 3, seed=1)


@pytest.mark.slow
def test_out_of_fold_token_losses_score_every_row_with_a_model_that_never_saw_it(tiny_cfg):
    # each word appears once: a model that never saw the row cannot know its answer, one that did can
    rows = [conversation(word, word) for word in WORDS]
    cfg = tiny_cfg(method="full", max_steps=40, micro_batch_size=4)
    seen = []
    tokens = out_of_fold_token_losses(rows, cfg, folds=2, on_fold=seen.append)
    assert seen == [1, 2] and [len(t) for t in tokens] == [2] * len(rows)  # the word and <|im_end|>
    held_out = [mean_loss(t) for t in tokens]
    assert all(math.isfinite(x) for x in held_out)
    trained = answer_losses(train(cfg)["model"], word_tokenizer(), rows)  # the same rows, seen in training
    assert sum(held_out) / len(held_out) > 2 * sum(trained) / len(trained)
    with pytest.raises(ValueError, match="needs folds >= 2 and at least one row per fold; got 9 folds for 8"):
        out_of_fold_token_losses(rows, cfg, folds=9)
