"""Training rows -> token ids and labels, with every masking decision made here.

Rows are sharegpt, OpenAI ``messages`` or alpaca, from JSONL files or a datasets folder.
Labels are -100 except on assistant turns, each learned through its end-of-turn token (a model
that never sees it never stops); what the template adds after it is masked, and padding is
masked by position, never by id, so an EOS that shares the pad id stays learned. Assistant
tokens are found by rendering the prefix before and after each turn and mapping those
characters onto token offsets (any template whose prefix renderings are prefixes of the whole).
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from curate.formats import chat
from train.errors import DataError, TemplateError
from train.templates import eot_id, render

IGNORE_INDEX = -100


# ---------------------------------------------------------------- reading

def read_rows(paths) -> list[tuple[dict, str, int]]:
    """Every row with where it came from: ``(row, file, line)``; line is 1-based."""
    out = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()):
            from datasets import load_from_disk
            out += [(dict(row), str(path), i + 1) for i, row in enumerate(load_from_disk(str(path)))]
        elif path.is_dir():
            files = sorted(path.glob("*.jsonl"))
            if not files:
                raise DataError(path, "folder holds neither a saved datasets folder nor *.jsonl files")
            out += read_rows(files)
        elif path.exists():
            out += _read_jsonl(path)
        else:
            raise DataError(path, "no such file or folder; set data: to a JSONL file or a datasets folder")
    return out


def _read_jsonl(path: Path) -> list[tuple[dict, str, int]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(path, f"not valid JSON ({error.msg} at column {error.colno})", number) from None
        except RecursionError:
            raise DataError(path, "JSON nested too deeply to read", number) from None
        if not isinstance(row, dict):
            raise DataError(path, f"expected a JSON object per line, got {type(row).__name__}", number)
        rows.append((row, str(path), number))
    return rows


def to_messages(row: dict, fmt: str = "auto", where=("row", None)) -> list[dict]:
    """One row in any supported format -> ``[{"role", "content"}, ...]``, by the same rules
    curate's exporters write with (`curate.formats.chat`), so a row trains on the prompt
    curate shows; ``where`` (file, line) names the row in errors."""
    try:
        messages = chat.to_messages(row, fmt)
    except chat.ChatFormatError as error:
        raise DataError(where[0], str(error), where[1]) from None
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(where[0], "conversation has no assistant (gpt) turn to learn", where[1])
    return messages


def load_conversations(cfg) -> tuple[list[dict], list[dict]]:
    """Train and held-out rows as ``{"messages": [...], "row": original}``.

    Held out: ``val_data`` when given, else a seeded ``val_fraction`` of ``data``.
    """
    def convert(items):
        return [{"messages": to_messages(row, cfg.format, (src, line)), "row": row} for row, src, line in items]

    train = convert(read_rows(cfg.data))
    if cfg.val_data:
        return train, convert(read_rows(cfg.val_data))
    n_val = round(len(train) * cfg.val_fraction)
    if cfg.val_fraction > 0 and len(train) > 1:
        n_val = max(n_val, 1)
    order = list(range(len(train)))
    random.Random(cfg.seed).shuffle(order)
    held = set(order[:n_val])
    return [r for i, r in enumerate(train) if i not in held], [r for i, r in enumerate(train) if i in held]


# ---------------------------------------------------------------- labels

def assistant_char_spans(messages: list[dict], tokenizer, template: str) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and, per assistant turn, the characters it adds after its header."""
    text = render(messages, tokenizer, template)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(messages[:i], tokenizer, template, add_generation_prompt=True)
        through = render(messages[: i + 1], tokenizer, template)
        if not (text.startswith(before) and text.startswith(through) and through.startswith(before)):
            raise TemplateError("the chat template renders a conversation prefix differently from the whole "
                                "conversation, so assistant tokens cannot be located; use template: chatml "
                                "or alpaca, or a tokenizer whose template keeps earlier turns unchanged")
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_conversation(messages: list[dict], tokenizer, template: str = "auto",
                          eot: int | None = None, train_on_inputs: bool = False) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one conversation; see the module docstring for the rules."""
    eot = eot_id(tokenizer, template) if eot is None else eot
    text, spans = assistant_char_spans(messages, tokenizer, template)
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise TemplateError("the tokenizer gives no character offsets; load a fast tokenizer") from None
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if train_on_inputs:
        return list(ids), list(ids)
    labels = [IGNORE_INDEX] * len(ids)
    for start, end in spans:
        inside = [j for j, (a, _) in enumerate(offsets) if start <= a < end]
        closing = [j for j in inside if ids[j] == eot]
        if not closing:
            seen = [tokenizer.convert_ids_to_tokens(ids[j]) for j in inside if ids[j] in tokenizer.all_special_ids]
            hint = f"; it holds {seen}: try eot_token: {seen[-1]!r}" if seen else ""
            raise TemplateError(f"an assistant turn is not closed by the end-of-turn token "
                                f"{tokenizer.convert_ids_to_tokens(eot)!r}{hint}")
        for j in inside:
            if j <= closing[-1]:
                labels[j] = ids[j]
    return list(ids), labels


# ---------------------------------------------------------------- length

def _shorten_prompt(messages, tokenizer, cfg, eot) -> tuple[list[int], list[int]] | None:
    """Fit a conversation by removing prompt text only; None when the answers alone do not fit.

    Earlier exchanges go first (oldest first, system kept), then the last user message loses
    tokens from its end. No answer that is kept is ever cut.
    """
    msgs = [dict(m) for m in messages]
    for _ in range(len(messages) + 8):
        ids, labels = tokenize_conversation(msgs, tokenizer, cfg.template, eot)
        excess = len(ids) - cfg.max_seq_len
        if excess <= 0:
            return ids, labels
        turns = [i for i, m in enumerate(msgs) if m["role"] != "system"]
        answers = [i for i in turns if msgs[i]["role"] == "assistant"]
        if len(answers) > 1:  # drop the oldest exchange
            msgs = [m for i, m in enumerate(msgs) if i not in turns or i > answers[0]]
            continue
        users = [i for i in turns if i < answers[0] and msgs[i]["role"] == "user"]
        if not users:
            return None
        content = tokenizer(msgs[users[-1]]["content"], add_special_tokens=False)["input_ids"]
        if len(content) <= excess:
            return None
        # decode/encode may shift a token or two at the cut: loop until it fits
        msgs[users[-1]]["content"] = tokenizer.decode(content[: len(content) - excess])
    return None


@dataclass
class DataStats:
    """What happened to the rows on their way to examples, for the log and the inspector."""

    rows: int = 0
    over_max_seq_len: int = 0
    prompt_truncated: int = 0
    dropped: Counter = field(default_factory=Counter)
    lengths: list = field(default_factory=list)  # tokens per row, before the length rule

    def length_report(self, cfg, examples: list[dict]) -> str:
        """Tokens per row, how many exceed max_seq_len, and the share of kept tokens that are learned."""
        if not self.lengths:
            return "lengths: no rows"
        ordered = sorted(self.lengths)
        tokens = sum(len(e["input_ids"]) for e in examples)
        learned = sum(label != IGNORE_INDEX for e in examples for label in e["labels"])
        return (f"lengths: tokens per row min {ordered[0]}, median {ordered[len(ordered) // 2]}, "
                f"p95 {ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}, max {ordered[-1]}; "
                f"{self.over_max_seq_len} of {self.rows} over max_seq_len {cfg.max_seq_len}; learned tokens "
                f"{learned:,} of {tokens:,} kept ({learned / max(tokens, 1):.1%})")

    def summary(self, cfg) -> str:
        kept = self.rows - sum(self.dropped.values())
        text = f"{kept} of {self.rows} rows kept"
        if self.over_max_seq_len:
            text += (f"; {self.over_max_seq_len} exceed max_seq_len {cfg.max_seq_len} (overlong: {cfg.overlong}):"
                     f" {self.prompt_truncated} prompt-truncated, {sum(self.dropped.values())} dropped")
        return text


def build_examples(conversations: list[dict], tokenizer, cfg) -> tuple[list[dict], DataStats]:
    """Tokenize and label every conversation, applying the ``overlong`` rule."""
    eot = eot_id(tokenizer, cfg.template, cfg.eot_token)
    stats, examples = DataStats(rows=len(conversations)), []
    for conv in conversations:
        ids, labels = tokenize_conversation(conv["messages"], tokenizer, cfg.template, eot, cfg.train_on_inputs)
        stats.lengths.append(len(ids))
        if len(ids) > cfg.max_seq_len:
            stats.over_max_seq_len += 1
            fitted = None
            if cfg.overlong == "truncate_prompt" and not cfg.train_on_inputs:
                fitted = _shorten_prompt(conv["messages"], tokenizer, cfg, eot)
            if fitted is None:
                stats.dropped["over_max_seq_len" if cfg.overlong == "drop" else "answer_over_max_seq_len"] += 1
                continue
            ids, labels = fitted
            stats.prompt_truncated += 1
        examples.append({"input_ids": ids, "labels": labels})
    return examples, stats


# ---------------------------------------------------------------- batching

def collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch. Labels arrive already masked; padding is masked by position.

    Packed examples carry ``position_ids``; they get no attention mask (the model isolates
    the packed sequences from the position ids) and their padding becomes one more sequence.
    """
    width = max(len(e["input_ids"]) for e in examples)
    batch = {"input_ids": [], "labels": [], "attention_mask": [], "position_ids": []}
    for e in examples:
        n, pad = len(e["input_ids"]), width - len(e["input_ids"])
        batch["input_ids"].append(e["input_ids"] + [pad_id] * pad)
        batch["labels"].append(e["labels"] + [IGNORE_INDEX] * pad)
        batch["attention_mask"].append([1] * n + [0] * pad)
        batch["position_ids"].append(e.get("position_ids", list(range(n))) + list(range(pad)))
    packed = "position_ids" in examples[0]
    return {k: torch.tensor(v) for k, v in batch.items() if k != ("attention_mask" if packed else "position_ids")}
