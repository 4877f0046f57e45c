"""Config loading, the inspector and the command line."""
from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from train_testkit import repeat_rows, word_tokenizer, write_jsonl

from train.__main__ import main
from train.config import load_config, parse_overrides
from train.errors import ConfigError
from train.inspector import inspect_rows


def test_unknown_keys_are_rejected_with_the_list_of_known_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: d.jsonl\nlearning_rate: 1e-4\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) learning_rate; known keys: data, format, .* lr,"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"assertion_eval: unknown key\(s\) check; known keys: checker, check_fields"):
        load_config(None, {"data": "d", "assertion_eval": {"check": "m:f"}})


def test_values_are_read_as_the_types_the_keys_need(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: d.jsonl\nlr: 3e-4\nmax_steps: 10\nmethod: lora\n")
    cfg = load_config(path, parse_overrides(["lr=1e-3", "assertion_eval.checker=m:f", "assertion_eval.every=5"]))
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float) and cfg.max_steps == 10
    assert cfg.assertion_eval.checker == "m:f" and cfg.assertion_eval.every == 5
    with pytest.raises(ConfigError, match="max_steps: expected a whole number"):
        load_config(None, {"data": "d", "max_steps": 2.5})
    with pytest.raises(ConfigError, match="method must be one of lora, qlora, full, got 'qlor'"):
        load_config(None, {"data": "d", "method": "qlor"})
    with pytest.raises(ConfigError, match="set data:"):
        load_config(None, {})


def test_qlora_without_a_gpu_says_what_to_use_instead(tiny_cfg):
    import torch

    from train.model import load_base

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: 4-bit loading is allowed")
    with pytest.raises(ConfigError, match="needs a CUDA GPU.*use method: lora"):
        load_base(tiny_cfg(method="qlora"))


def test_the_inspector_colours_learned_tokens_and_counts_them(tiny_cfg):
    console = Console(record=True, width=100, force_terminal=True, color_system="truecolor")
    counts = inspect_rows(tiny_cfg(), rows=2, console=console, tokenizer=word_tokenizer())
    # <|im_start|> system You answer with the word . <|im_end|> <|im_start|> user Repeat : apple <|im_end|>
    # <|im_start|> assistant [apple <|im_end|>]
    assert counts == [{"tokens": 19, "learned": 2, "masked": 17}] * 2
    text = console.export_text(clear=False)
    assert "row 1: 19 tokens, 2 learned, 17 masked" in text and "8 of 8 rows kept" in text
    html = console.export_html(inline_styles=True)
    green = re.findall(r'<span style="color: #008000[^"]*font-weight: bold[^"]*">([^<]*)</span>', html)
    assert green == ["learned", "apple", "&lt;|im_end|&gt;", "pear", "&lt;|im_end|&gt;"]


def test_piped_inspector_output_marks_learned_spans_in_plain_text_and_reports_lengths(tiny_cfg):
    out = io.StringIO()
    rows = repeat_rows(7) + [{"messages": [{"role": "user", "content": "Say " + " ".join(["fig"] * 70)},
                                           {"role": "assistant", "content": "fig"}]}]
    counts = inspect_rows(tiny_cfg(rows), rows=1, console=Console(file=out, width=200), tokenizer=word_tokenizer())
    text = out.getvalue()
    assert "\x1b[" not in text  # not a terminal: no colour codes
    assert "legend: ⟦learned⟧ (the model is trained to write these tokens)" in text
    row = text.split("row 1: 19 tokens, 2 learned, 17 masked")[1]
    assert row.strip().endswith("<|im_start|>assistant⟦apple<|im_end|>⟧") and row.count("⟦") == 1
    # 7 rows of 19 tokens and one of 78 (over max_seq_len 64, dropped); 14 of 133 kept tokens learned
    assert ("lengths: tokens per row min 19, median 19, p95 78, max 78; 1 of 8 over max_seq_len 64; "
            "learned tokens 14 of 133 kept (10.5%)") in text
    assert counts == [{"tokens": 19, "learned": 2, "masked": 17}]


def test_the_command_line_prints_errors_as_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("data: d.jsonl\nbatch: 3\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "unknown key(s) batch" in err


def test_inspect_from_the_command_line(tmp_path, tiny_model_dir, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", repeat_rows(3))
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {data}\nmodel: {tiny_model_dir}\ngguf_file: null\nval_fraction: 0\n")
    assert main(["inspect", str(path), "--rows", "1", "--set", "max_seq_len=10"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0 of 3 rows kept; 3 exceed max_seq_len 10 (overlong: drop): 0 prompt-truncated, 3 dropped" in out


def test_the_inspector_says_what_happened_to_every_row_of_the_file(tiny_cfg):
    """With held-out rows it used to count the training rows only ("6 of 6 rows kept" for
    an 8-row file)."""
    console = Console(record=True, width=200)
    inspect_rows(tiny_cfg(val_fraction=0.25), rows=1, console=console, tokenizer=word_tokenizer())
    text = " ".join(console.export_text().split())
    assert ("8 rows: 2 held out for evaluation (val_fraction 0.25), 6 to train on: 6 of 6 rows "
            "kept") in text
