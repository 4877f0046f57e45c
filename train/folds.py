"""Out-of-fold answer losses: train briefly on k-1 folds, score the answers of the k-th.

A row scored by a model trained on the rest of the table gets a high loss when its answer breaks
the pattern the other rows teach: the signal of Dataset Cartography (Swayamdipta et al., 2020)
and confident learning (Northcutt et al., 2021), on the answer's likelihood instead of a class
label. The folds train in memory with the trainer's own objective, batches and schedule.
"""
from __future__ import annotations

import math
import random
from typing import Callable

from train.answer_loss import as_messages, token_losses, tokenized


def fold_of(n: int, folds: int, seed: int) -> list[int]:
    """The fold of each of ``n`` rows: a seeded shuffle dealt round-robin (sizes differ by <= 1)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    out = [0] * n
    for position, row in enumerate(order):
        out[row] = position % folds
    return out


def fit(cfg, tokenizer, examples: list[dict]):
    """A fresh LoRA (or full) fine-tune of ``cfg.model`` on ``examples``, in memory, as the
    trainer would run it (``max_steps``, else ``epochs``); returns the trained model."""
    from accelerate.utils import set_seed

    from train.launch import make_accelerator
    from train.loop import micro_batches, optimizer_step, prepare_optimizer
    from train.model import load_base, prepare_model

    set_seed(cfg.seed)
    accelerator = make_accelerator(cfg)
    model = prepare_model(cfg, load_base(cfg))
    per_step = cfg.micro_batch_size * cfg.grad_accum * accelerator.num_processes
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(examples) / per_step))
    model, optimizer, scheduler = prepare_optimizer(accelerator, model, cfg, total)
    batches = micro_batches(accelerator, examples, cfg, tokenizer.pad_token_id)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    for _ in range(total):
        window = [next(batches) for _ in range(cfg.grad_accum)]
        optimizer_step(accelerator, model, optimizer, window, cfg, params)
        scheduler.step()
    return accelerator.unwrap_model(model)


def out_of_fold_token_losses(conversations, cfg, folds: int = 5, batch_size: int = 8,
                             on_fold: Callable[[int], None] | None = None) -> list[list[float]]:
    """The NLL of each answer token of each conversation under a model fine-tuned on the other
    folds; ``train.answer_loss.mean_loss`` of a row's list is its answer loss.

    Args:
        conversations: message lists or chat rows (any format the trainer reads).
        cfg: a `train.config.TrainConfig`, as for training (length per fold; the seed also
            deals the folds).
        folds: k >= 2; every row is scored once, by the model that did not train on it.
        batch_size: rows per forward pass when scoring.
        on_fold: called with the fold's number after each fold is scored.
    """
    from train.data import build_examples
    from train.model import load_tokenizer

    if folds < 2 or len(conversations) < folds:
        raise ValueError(f"out-of-fold scoring needs folds >= 2 and at least one row per fold; "
                         f"got {folds} folds for {len(conversations)} rows")
    tokenizer = load_tokenizer(cfg)
    scored = tokenized(conversations, tokenizer, cfg.template, cfg.eot_token)
    assigned = fold_of(len(conversations), folds, cfg.seed)
    losses: list[list[float]] = [[] for _ in conversations]
    for fold in range(folds):
        held = [i for i, f in enumerate(assigned) if f == fold]
        rows = [{"messages": as_messages(c, i)} for i, c in enumerate(conversations) if assigned[i] != fold]
        examples, _ = build_examples(rows, tokenizer, cfg)  # the trainer's length rule
        if not examples:
            raise ValueError(f"fold {fold + 1}: no training rows fit max_seq_len {cfg.max_seq_len}")
        model = fit(cfg, tokenizer, examples)
        for i, tokens in zip(held, token_losses(model, [scored[i] for i in held], tokenizer.pad_token_id,
                                                batch_size)):
            losses[i] = tokens
        del model
        if on_fold is not None:
            on_fold(fold + 1)
    return losses
