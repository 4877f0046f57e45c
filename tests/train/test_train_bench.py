"""bench/train_gpu.py runs on the CPUs too: both arms train the tiny model the same way."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from train_testkit import repeat_rows, write_jsonl

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_speed_bench_runs_both_arms_on_the_cpu_with_the_same_rows_and_schedule(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "rows.jsonl", repeat_rows(8))
    run = subprocess.run([sys.executable, "bench/train_gpu.py", "speed", "--cpu", "--data", data,
                          "--model", str(tiny_model_dir), "--steps", "3", "--seq-len", "64", "--micro-batch", "2",
                          "--warmup-steps", "1", "--lora-r", "4"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("ours ", "trl "))}
    assert sorted(table) == ["ours", "trl"]
    for row in table.values():  # tokens/s, MFU, peak GiB, estimate, vs est., loss 1, loss N, learned 1
        assert float(row[0].replace(",", "")) > 0 and row[1] == "n/a" and float(row[2]) > 0.1
    # the same model, adapter, rows, order, optimizer and schedule: the same losses (the word
    # tokenizer has no newline after <|im_end|>, so both arms learn the same tokens)
    assert table["ours"][5:] == table["trl"][5:]
    assert "schedule: both arms use this trainer's AdamW and schedule" in out and "(TRL's own starts at 0)" in out
    assert "ratio ours / TRL" in out and any(f", {precision}, 3 steps" in out for precision in ("fp32", "bf16"))
