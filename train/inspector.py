"""Show the first rows token by token, learned tokens in colour, before spending a GPU hour.

    python -m train inspect config.yaml [--rows 3]

Masked tokens (the model reads them but is not trained to write them) are dim; learned
tokens are bold green; each token is boxed by alternating underline so boundaries show.
"""
from __future__ import annotations

from rich.console import Console
from rich.text import Text

from train.data import IGNORE_INDEX, build_examples, load_conversations
from train.model import load_tokenizer

LEARNED, MASKED = "bold green", "grey50"


def token_text(tokenizer, token_id: int) -> str:
    piece = tokenizer.decode([token_id])
    return piece.replace("\n", "\u21b5\n").replace("\t", "\u2192") or "\u2205"


def render_example(tokenizer, example: dict) -> Text:
    text = Text()
    for i, (token_id, label) in enumerate(zip(example["input_ids"], example["labels"])):
        style = LEARNED if label != IGNORE_INDEX else MASKED
        text.append(token_text(tokenizer, token_id), style=style + (" underline" if i % 2 else ""))
    return text


def inspect_rows(cfg, rows: int = 3, console: Console | None = None, tokenizer=None) -> list[dict]:
    """Print the first ``rows`` training examples; return their token counts."""
    console = console or Console()
    tokenizer = tokenizer or load_tokenizer(cfg)
    train_rows, _ = load_conversations(cfg)
    examples, stats = build_examples(train_rows, tokenizer, cfg)
    console.print(f"[bold]{cfg.data}[/bold]: {stats.summary(cfg)}; template {cfg.template}, "
                  f"train_on_inputs {cfg.train_on_inputs}")
    console.print(Text.assemble(("learned", LEARNED), "  ", ("masked (-100)", MASKED)))
    counts = []
    for number, example in enumerate(examples[:rows], 1):
        learned = sum(label != IGNORE_INDEX for label in example["labels"])
        total = len(example["input_ids"])
        counts.append({"tokens": total, "learned": learned, "masked": total - learned})
        console.rule(f"row {number}: {total} tokens, {learned} learned, {total - learned} masked")
        console.print(render_example(tokenizer, example))
    return counts
