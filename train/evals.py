"""Evaluation with assertions: generate on held-out prompts and score with a checker.

The checker is named in the config as ``"module:function"`` and called as
``function(output_text, **check_fields)``, its answer read as curation reads it
(`assertions.calling`); the other arguments come from the row as ``check_fields`` says::

    assertion_eval:
      checker: assertions.honeycomb:check
      every: 50
      check_fields:
        columns: {turn: user, regex: "Columns: (.*)", parse: list}

The prompt is rendered with `templates.render_prompt`, the function serving uses too.
"""
from __future__ import annotations

import re
from collections import Counter

import torch

from assertions.calling import as_failures, load_function
from assertions.parsing import ParseError, load_object
from train.errors import ConfigError, DataError
from train.templates import eot_id, prompt_messages, render_prompt

PARSERS = ("text", "json", "list", "csv")


def load_checker(spec: str):
    """The checker a ``"module:function"`` reference names (`assertions.calling`'s loader)."""
    try:
        return load_function(spec, "checker")
    except ValueError as error:
        raise ConfigError(f"assertion_eval.checker: {error}") from None


def _parse(text: str, how: str, where: str):
    if how == "text":
        return text.strip()
    if how == "csv":
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        value = load_object(text)
    except ParseError:
        raise DataError(where, f"cannot parse {text[:60]!r} as {how}") from None
    if how == "list" and not isinstance(value, list):
        raise DataError(where, f"expected a list, got {type(value).__name__} from {text[:60]!r}")
    return value


def extract_fields(conversation: dict, fields: dict) -> dict:
    """The checker's keyword arguments for one held-out row (see the module docstring)."""
    out = {}
    for arg, spec in fields.items():
        where = f"assertion_eval.check_fields.{arg}"
        spec = {"field": spec} if isinstance(spec, str) else dict(spec)
        unknown = set(spec) - {"field", "turn", "regex", "parse"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: field, turn, regex, parse")
        if spec.get("parse", "text") not in PARSERS:
            raise ConfigError(f"{where}: parse must be one of {', '.join(PARSERS)}, got {spec['parse']!r}")
        if "field" in spec:
            if spec["field"] not in conversation["row"]:
                raise DataError(where, f"row has no field {spec['field']!r}; it has {sorted(conversation['row'])}")
            value = conversation["row"][spec["field"]]
        else:
            role = {"human": "user", "gpt": "assistant"}.get(spec.get("turn", "user"), spec.get("turn", "user"))
            turns = [m["content"] for m in prompt_messages(conversation["messages"]) if m["role"] == role]
            if not turns:
                raise DataError(where, f"the prompt has no {role} turn")
            value = turns[-1]
        if "regex" in spec:
            found = re.search(spec["regex"], value)  # "(?s)" in the pattern spans lines
            if not found:
                raise DataError(where, f"regex {spec['regex']!r} does not match {value[:80]!r}")
            value = found.group(1) if found.groups() else found.group(0)
        out[arg] = _parse(value, spec.get("parse", "text"), where) if isinstance(value, str) else value
    return out


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, stop_id: int, batch_size: int = 8,
             synced_gpus: bool = False) -> list[str]:
    """Greedy completions, left-padded in batches; special tokens are dropped from the text."""
    device = next(p.device for p in model.parameters())
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for start in range(0, len(prompts), batch_size):
            encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[start:start + batch_size]]
            width = max(len(ids) for ids in encoded)
            ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(x)) + x for x in encoded], device=device)
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in encoded], device=device)
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=stop_id, pad_token_id=tokenizer.pad_token_id,
                                 use_cache=True, synced_gpus=synced_gpus)
            outputs += tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return outputs


def _is_valid(result) -> tuple[bool, list[str]]:
    """(valid, rule names) of a checker's answer (`assertions.calling.as_failures`)."""
    rules = [failure.rule for failure in as_failures(result)]
    return not rules, rules


def assertion_eval(model, tokenizer, conversations: list[dict], ecfg, template: str = "auto",
                   eot_token: str | None = None, batch_size: int = 8, synced_gpus: bool = False) -> dict:
    """Validity rate of greedy outputs on the first ``ecfg.rows`` held-out conversations."""
    checker = load_checker(ecfg.checker)
    rows = conversations[: ecfg.rows]
    if not rows:
        return {"valid_rate": float("nan"), "n": 0, "failures": Counter(), "examples": []}
    prompts = [render_prompt(c["messages"], tokenizer, template) for c in rows]
    outputs = generate(model, tokenizer, prompts, ecfg.max_new_tokens, eot_id(tokenizer, template, eot_token),
                       batch_size, synced_gpus)
    failures, valid, examples = Counter(), 0, []
    for conv, output in zip(rows, outputs):
        ok, rules = _is_valid(checker(output, **extract_fields(conv, ecfg.check_fields)))
        valid += ok
        failures.update(set(rules))
        examples.append({"output": output, "valid": ok, "failures": rules})
    return {"valid_rate": valid / len(rows), "n": len(rows), "failures": failures, "examples": examples}
