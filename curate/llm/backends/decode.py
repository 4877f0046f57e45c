"""A small batched decoding loop with per-request sampling, generators and grammars.

``model.generate`` shares one random generator across a batch, so a request's sample would
depend on its neighbours; this loop samples each row with its own seeded generator and
honours each request's temperature, top_p, max_tokens and stop sequences. A row whose
request carries a JSON Schema decodes under that schema's grammar (xgrammar: the tokens
that would break the schema are masked out before sampling, and the row ends when the JSON
is complete), so its reply always parses. Each row is handed to ``on_done`` the moment it
finishes, so a kill mid-batch loses only the rows still being generated.
"""
from __future__ import annotations

import torch

from ..types import Completion, Request


def prompt_ids(tokenizer, request: Request) -> list[int]:
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


def _last_only(model) -> dict:
    # Only the last position's logits are needed: skipping the LM head on the prompt saves
    # a fifth of the prefill compute for a small model with a large vocabulary.
    import inspect

    params = inspect.signature(model.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
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
            cut = _stop_at(text, self.request.stop)
            if cut is not None:
                self.text, self.finish = text[:cut], "stop"
                return
        if len(self.tokens) >= self.limit:
            self.finish = "length"

    def completion(self, tokenizer) -> Completion:
        text = self.text if self.text is not None else tokenizer.decode(
            self.tokens, skip_special_tokens=True)
        return Completion(text=text, finish_reason=self.finish or "length",
                          prompt_tokens=self.prompt_len, completion_tokens=len(self.tokens))


def _mask_logits(logits: torch.Tensor, rows: list[_Row], bitmask) -> None:
    """Mask, in place, the tokens each constrained row's grammar forbids next."""
    import xgrammar as xgr

    xgr.reset_token_bitmask(bitmask)
    for i, row in enumerate(rows):
        if row.matcher is not None and row.finish is None:
            row.matcher.fill_next_token_bitmask(bitmask, i)
    xgr.apply_token_bitmask_inplace(logits, bitmask.to(logits.device))


@torch.inference_mode()
def generate_batch(model, tokenizer, batch: list[Request], seeds: list[int],
                   default_max_tokens: int, matchers=None, on_done=None,
                   vocab_size: int | None = None) -> list[Completion]:
    """Generate for a batch: left-padded prompts, one KV cache, per-row sampling, limits,
    stop sequences and grammars (``matchers``: an xgrammar ``GrammarMatcher`` or None per
    row). ``on_done(i, completion)`` is called as soon as row ``i`` finishes."""
    matchers = matchers or [None] * len(batch)
    prompts = [prompt_ids(tokenizer, r) for r in batch]
    rows = [_Row(r, seed, len(p), r.max_tokens or default_max_tokens, m)
            for r, seed, p, m in zip(batch, seeds, prompts, matchers)]
    bitmask = None
    if any(m is not None for m in matchers):
        import xgrammar as xgr
        bitmask = xgr.allocate_token_bitmask(len(rows), vocab_size or model.config.vocab_size)
    step_ids, mask = _left_pad(prompts, tokenizer.pad_token_id)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    eos, extra, pad = eos_ids(model, tokenizer), _last_only(model), tokenizer.pad_token_id
    past, reported = None, set()
    for _ in range(max(row.limit for row in rows)):
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                    past_key_values=past, use_cache=True, **extra)
        past, logits = out.past_key_values, out.logits[:, -1, :].float()
        if bitmask is not None:
            _mask_logits(logits, rows, bitmask)
        next_ids = []
        for i, row in enumerate(rows):
            if row.finish is not None:
                next_ids.append(pad)
                continue
            token = _pick(logits[i], row.request, row.generator)
            next_ids.append(token)
            row.take(token, eos, tokenizer)
            if row.finish is not None and on_done is not None:
                on_done(i, row.completion(tokenizer))
                reported.add(i)
        if all(row.finish is not None for row in rows):
            break
        step_ids = torch.tensor(next_ids, dtype=torch.long).unsqueeze(1)
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        positions = positions[:, -1:] + 1
    results = [row.completion(tokenizer) for row in rows]
    if on_done is not None:
        for i, completion in enumerate(results):
            if i not in reported:
                on_done(i, completion)
    return results
