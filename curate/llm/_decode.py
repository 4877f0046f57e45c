"""A small batched decoding loop with per-request sampling settings and generators.

``model.generate`` shares one random generator across a batch, so a request's sample would
depend on its neighbours; this loop samples each row with its own seeded generator and
honours each request's temperature, top_p, max_tokens and stop sequences.
"""
from __future__ import annotations

import torch

from .types import Completion, Request


def _prompt_ids(tokenizer, request: Request) -> list[int]:
    text = tokenizer.apply_chat_template(request.messages, tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids, mask


def _pick(logits: torch.Tensor, request: Request, generator: torch.Generator) -> int:
    temperature = request.temperature or 0.0
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    top_p = request.top_p
    if top_p is not None and 0 < top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        cut = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > top_p
        sorted_probs[cut] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def _stop_at(text: str, stops: tuple[str, ...] | None) -> int | None:
    hits = [text.find(s) for s in (stops or ()) if s and s in text]
    return min(hits) if hits else None


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return {i for i in ids if i is not None}


@torch.inference_mode()
def generate_batch(model, tokenizer, batch: list[Request], seeds: list[int],
                   default_max_tokens: int) -> list[Completion]:
    prompts = [_prompt_ids(tokenizer, r) for r in batch]
    ids, mask = _left_pad(prompts, tokenizer.pad_token_id)
    limits = [r.max_tokens or default_max_tokens for r in batch]
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    eos = _eos_ids(model, tokenizer)
    generated: list[list[int]] = [[] for _ in batch]
    finish: list[str | None] = [None] * len(batch)
    texts: list[str | None] = [None] * len(batch)
    past, step_ids = None, ids
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    step_positions = positions
    for _ in range(max(limits)):
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_positions,
                    past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1, :]
        next_ids = []
        for i, request in enumerate(batch):
            if finish[i] is not None:
                next_ids.append(tokenizer.pad_token_id)
                continue
            token = _pick(logits[i], request, generators[i])
            next_ids.append(token)
            if token in eos:
                finish[i] = "stop"
                continue
            generated[i].append(token)
            if request.stop:
                text = tokenizer.decode(generated[i], skip_special_tokens=True)
                cut = _stop_at(text, request.stop)
                if cut is not None:
                    texts[i], finish[i] = text[:cut], "stop"
                    continue
            if len(generated[i]) >= limits[i]:
                finish[i] = "length"
        if all(f is not None for f in finish):
            break
        step_ids = torch.tensor(next_ids, dtype=torch.long).unsqueeze(1)
        mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=torch.long)], dim=1)
        step_positions = step_positions[:, -1:] + 1
    results = []
    for i, request in enumerate(batch):
        text = texts[i] if texts[i] is not None else tokenizer.decode(generated[i], skip_special_tokens=True)
        results.append(Completion(text=text, finish_reason=finish[i] or "length",
                                  prompt_tokens=len(prompts[i]),
                                  completion_tokens=len(generated[i])))
    return results
