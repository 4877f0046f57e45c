"""Show the first rows token by token, with what is learned marked, before spending a GPU hour.

    python -m train inspect config.yaml [--rows 3]
    python -m train inspect config.yaml | less          # plain text: learned spans in ⟦ ⟧

On a terminal, learned tokens are bold green, masked ones dim, and tokens alternate underlined;
anywhere else (a pipe, a file) learned spans are also wrapped in ⟦ ⟧.
"""
from __future__ import annotations

from rich.console import Console
from rich.text import Text

from train.data import IGNORE_INDEX, build_examples, load_conversations
from train.model import load_tokenizer

LEARNED, MASKED = "bold green", "grey50"
OPEN, CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧


def render_example(tokenizer, example: dict, plain: bool = False) -> Text:
    """The example's tokens, styled; with ``plain``, learned spans are also wrapped in ⟦ ⟧."""
    text, inside = Text(), False
    for i, (token_id, label) in enumerate(zip(example["input_ids"], example["labels"])):
        learned = label != IGNORE_INDEX
        if plain and learned != inside:
            text.append(OPEN if learned else CLOSE, style=LEARNED)
            inside = learned
        style = LEARNED if learned else MASKED
        piece = tokenizer.decode([token_id]).replace("\n", "\u21b5\n").replace("\t", "\u2192")
        piece = piece or "\u2205"
        text.append(piece, style=style + ("" if plain or not i % 2 else " underline"))
    if inside:
        text.append(CLOSE, style=LEARNED)
    return text


def legend(plain: bool) -> Text:
    if plain:
        return Text(f"legend: {OPEN}learned{CLOSE} (the model is trained to write these tokens); "
                    f"everything else is masked (-100); \u21b5 is a newline")
    return Text.assemble("legend: ", ("learned", LEARNED), "  ", ("masked (-100)", MASKED),
                         "  (tokens alternate underlined; \u21b5 is a newline)")


def rows_line(cfg, train_rows: list, held_rows: list, stats) -> str:
    """Every row of the data: held out, or trained on (kept, truncated or dropped)."""
    if cfg.val_data:
        return (f"{len(train_rows)} rows to train on ({len(held_rows)} held out in "
                f"{cfg.val_data}): {stats.summary(cfg)}")
    return (f"{len(train_rows) + len(held_rows)} rows: {len(held_rows)} held out for evaluation "
            f"(val_fraction {cfg.val_fraction:g}), {len(train_rows)} to train on: "
            f"{stats.summary(cfg)}")


def inspect_rows(cfg, rows: int = 3, console: Console | None = None, tokenizer=None) -> list[dict]:
    """Print the length report and the first ``rows`` training examples; return their token counts."""
    console = console or Console()
    plain = not console.is_terminal
    tokenizer = tokenizer or load_tokenizer(cfg)
    train_rows, held_rows = load_conversations(cfg)
    examples, stats = build_examples(train_rows, tokenizer, cfg)
    console.print(f"[bold]{cfg.data}[/bold]: {rows_line(cfg, train_rows, held_rows, stats)}; "
                  f"template {cfg.template}, train_on_inputs {cfg.train_on_inputs}",
                  soft_wrap=plain)  # plain: one line per line
    console.print(stats.length_report(cfg, examples), soft_wrap=plain)
    console.print(legend(plain), soft_wrap=plain)
    counts = []
    for number, example in enumerate(examples[:rows], 1):
        learned = sum(label != IGNORE_INDEX for label in example["labels"])
        total = len(example["input_ids"])
        counts.append({"tokens": total, "learned": learned, "masked": total - learned})
        console.rule(f"row {number}: {total} tokens, {learned} learned, {total - learned} masked")
        console.print(render_example(tokenizer, example, plain), soft_wrap=plain)
    return counts
