"""The teacher-forced loss of each row's answer: how unlikely a model finds the gold answer.

A row's loss is the mean NLL, in nats per token, of exactly the tokens training learns
(`train.data`'s masking), in one forward pass. It is continuous and paired (the same rows under
two models compare row by row), so it separates models that generation metrics cannot, and a
row whose answer is far less likely than the others' is a suspect (`train.folds`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from train.data import collate, to_messages, tokenize_conversation
from train.templates import eot_id


def as_messages(conversation, index: int) -> list[dict]:
    """A list of messages, or a row in any chat format (sharegpt, messages, alpaca)."""
    if isinstance(conversation, list):
        return conversation
    return to_messages(conversation, "auto", ("conversation", index + 1))


def tokenized(conversations, tokenizer, template: str = "auto", eot_token: str | None = None) -> list[dict]:
    """``{"input_ids", "labels"}`` of each conversation, masked as training masks them."""
    eot = eot_id(tokenizer, template, eot_token)
    out = []
    for i, conversation in enumerate(conversations):
        ids, labels = tokenize_conversation(as_messages(conversation, i), tokenizer, template, eot)
        out.append({"input_ids": ids, "labels": labels})
    return out


@torch.no_grad()
def token_losses(model, examples: list[dict], pad_id: int, batch_size: int = 8) -> list[list[float]]:
    """The NLL of every learned token of each tokenized example, in the order given; batched
    by length, in eval mode (the model is given back in the mode it was in)."""
    from train.loop import learned_logits  # the trainer's own loss positions

    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    out: list[list[float]] = [[] for _ in examples]
    training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in chunk], pad_id).items()}
            logits, targets, learned = learned_logits(model, batch)
            nll = F.cross_entropy(logits.float(), targets, reduction="none").tolist()
            at = 0
            for i, count in zip(chunk, learned.sum(1).tolist()):  # row-major: each row's tokens in a run
                out[i], at = nll[at:at + count], at + count
    finally:
        model.train(training)
    return out


def mean_loss(tokens: list[float]) -> float:
    return sum(tokens) / len(tokens) if tokens else float("nan")


def answer_losses(model, tokenizer, conversations, template: str = "auto", eot_token: str | None = None,
                  batch_size: int = 8) -> list[float]:
    """The mean per-token NLL of each conversation's answer(s) given its prompt.

    Args:
        model: a causal LM (a peft model with its adapter included).
        tokenizer: its tokenizer (a fast one: masking maps characters onto tokens).
        conversations: message lists, or rows in any chat format the trainer reads.
        template, eot_token: as in the trainer's config (``auto``: the tokenizer's chat template).
        batch_size: rows per forward pass.
    """
    examples = tokenized(conversations, tokenizer, template, eot_token)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot_id(tokenizer, template, eot_token)
    return [mean_loss(t) for t in token_losses(model, examples, pad, batch_size)]
