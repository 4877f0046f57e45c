"""A small batched decoding loop with per-request sampling, generators and grammars.

``model.generate`` shares one random generator across a batch, so a request's sample would
depend on its neighbours; here each row has its own seeded generator, sampling parameters
and JSON-Schema grammar (xgrammar masks the tokens that would break it). The start the
prompts share is computed once, and a finished row leaves the batch.
"""
from __future__ import annotations

import os

import torch

from ..types import Completion, Request


def prompt_ids(tokenizer, request: Request) -> list[int]:
    text = tokenizer.apply_chat_template(request.messages, tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = [[pad_id] * (width - len(row)) + row for row in rows]
    mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


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


def _last_only(model) -> dict:
    # Only the last position's logits are needed: skipping the LM head on the prompt saves
    # a fifth of the prefill compute for a small model with a large vocabulary.
    import inspect

    params = inspect.signature(model.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def eos_ids(model, tokenizer) -> set[int]:
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = {tokenizer.eos_token_id, *([configured] if isinstance(configured, int)
                                     else configured or [])}
    return {i for i in ids if i is not None}


class _Row:
    """One request's decoding state: its generator, grammar, tokens so far, why it stopped."""

    def __init__(self, request: Request, seed: int, prompt_len: int, limit: int, matcher=None):
        self.request, self.prompt_len, self.limit = request, prompt_len, limit
        self.generator = torch.Generator().manual_seed(seed)
        self.matcher = matcher
        self.tokens: list[int] = []
        self.finish: str | None = None
        self.text: str | None = None

    def take(self, token: int, eos: set[int], tokenizer) -> None:
        if self.matcher is not None:
            self.matcher.accept_token(token)
            if self.matcher.is_terminated():
                if token not in eos:
                    self.tokens.append(token)
                self.finish = "stop"
                return
        if token in eos:
            self.finish = "stop"
            return
        self.tokens.append(token)
        if self.request.stop:
            text = tokenizer.decode(self.tokens, skip_special_tokens=True)
            hits = [text.find(s) for s in self.request.stop if s and s in text]
            if hits:
                self.text, self.finish = text[:min(hits)], "stop"
                return
        if len(self.tokens) >= self.limit:
            self.finish = "length"

    def completion(self, tokenizer) -> Completion:
        text = self.text if self.text is not None else tokenizer.decode(
            self.tokens, skip_special_tokens=True)
        return Completion(text=text, finish_reason=self.finish or "length",
                          prompt_tokens=self.prompt_len, completion_tokens=len(self.tokens))


def _mask_logits(logits: torch.Tensor, rows: list[_Row], bitmask) -> None:
    """Mask, in place, the tokens each constrained row of ``logits`` may not take next."""
    import xgrammar as xgr

    xgr.reset_token_bitmask(bitmask)
    for i, row in enumerate(rows):
        if row.matcher is not None and row.finish is None:
            row.matcher.fill_next_token_bitmask(bitmask, i)
    xgr.apply_token_bitmask_inplace(logits, bitmask[:len(rows)].to(logits.device))


SHARED_MIN = 32  # tokens: a shorter common start is not worth a pass of its own


def shared_prefix(prompts: list[list[int]]) -> int:
    """The tokens every prompt of a batch starts with (a stage's system prompt and few-shot
    turns), leaving each prompt at least one of its own; 0 when under ``SHARED_MIN`` or
    for a batch of one (nothing to share)."""
    if len(prompts) < 2:
        return 0
    shared = min(len(os.path.commonprefix(prompts)), min(len(p) for p in prompts) - 1)
    return shared if shared >= SHARED_MIN else 0


def _prefill(model, prompts: list[list[int]], pad_id: int, extra: dict):
    """The prompt pass of a batch: ``(output, attention mask, position ids)``. The start the
    prompts share runs once, its keys and values repeated for each row; each row's own
    tokens are left-padded after it. The cache is made here, not by the model, so it is a
    ``DynamicCache`` on every transformers version (older ones return tuples otherwise)."""
    from transformers import DynamicCache

    shared, past = shared_prefix(prompts), DynamicCache()
    if shared:
        model(input_ids=torch.tensor([prompts[0][:shared]]), past_key_values=past,
              use_cache=True, **extra)
        past.batch_repeat_interleave(len(prompts))
    ids, own = _left_pad([p[shared:] for p in prompts], pad_id)
    mask = torch.cat([torch.ones((len(prompts), shared), dtype=torch.long), own], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                past_key_values=past, use_cache=True, **extra)
    return out, mask, positions


@torch.inference_mode()
def generate_batch(model, tokenizer, batch: list[Request], seeds: list[int],
                   default_max_tokens: int, matchers=None, on_done=None,
                   vocab_size: int | None = None, prompts: list[list[int]] | None = None,
                   eos: set[int] | None = None) -> list[Completion]:
    """Generate for a batch: one KV cache, per-row sampling, limits, stop sequences and
    grammars (``matchers``: an xgrammar ``GrammarMatcher`` or None per row).
    ``on_done(i, completion)`` is called as soon as row ``i`` finishes. ``prompts``: each
    request's token ids when not from the tokenizer's chat template; ``eos``: the tokens
    that end a reply (default: the model's and the tokenizer's end of sequence)."""
    matchers = matchers or [None] * len(batch)
    if prompts is None:
        prompts = [prompt_ids(tokenizer, r) for r in batch]
    rows = [_Row(r, seed, len(p), r.max_tokens or default_max_tokens, m)
            for r, seed, p, m in zip(batch, seeds, prompts, matchers)]
    bitmask = None
    if any(m is not None for m in matchers):
        import xgrammar as xgr
        bitmask = xgr.allocate_token_bitmask(len(rows), vocab_size or model.config.vocab_size)
    eos = eos_ids(model, tokenizer) if eos is None else set(eos)
    extra = _last_only(model)
    if max(row.limit for row in rows) <= 0:  # no token may be generated: no pass at all
        done = [row.completion(tokenizer) for row in rows]
        if on_done is not None:
            for i, completion in enumerate(done):
                on_done(i, completion)
        return done
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    out, mask, positions = _prefill(model, prompts, pad, extra)
    active = list(range(len(rows)))  # the rows still decoding, in the order of the batch
    while True:
        logits = out.logits[:, -1, :].float()
        if bitmask is not None:
            _mask_logits(logits, [rows[i] for i in active], bitmask)
        tokens = []
        for j, i in enumerate(active):
            row = rows[i]
            tokens.append(_pick(logits[j], row.request, row.generator))
            row.take(tokens[-1], eos, tokenizer)
            if row.finish is not None and on_done is not None:
                on_done(i, row.completion(tokenizer))
        going = [j for j, i in enumerate(active) if rows[i].finish is None]
        if not going:
            break
        if len(going) < len(active):
            keep = torch.tensor(going, dtype=torch.long)
            out.past_key_values.batch_select_indices(keep)
            mask, positions = mask[keep], positions[keep]
            active, tokens = [active[j] for j in going], [tokens[j] for j in going]
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=torch.tensor(tokens, dtype=torch.long).unsqueeze(1),
                    attention_mask=mask, position_ids=positions,
                    past_key_values=out.past_key_values, use_cache=True, **extra)
    return [row.completion(tokenizer) for row in rows]
