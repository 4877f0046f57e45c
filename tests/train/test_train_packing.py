"""Packing: positions restart per example and packed examples cannot see each other."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from train.data import IGNORE_INDEX, collate
from train.errors import TrainError
from train.loop import loss_sum
from train.packing import check_isolation, pack


def example(ids, learned_from):
    return {"input_ids": list(ids), "labels": [IGNORE_INDEX] * learned_from + list(ids[learned_from:])}


EXAMPLES = [example([5, 6, 7, 8, 9], 3), example([10, 11, 12, 13], 0), example([14, 15, 16, 17, 18, 19], 4)]


def test_pack_restarts_positions_and_never_targets_an_example_first_token():
    packs = pack(EXAMPLES, max_seq_len=10)
    assert [p["input_ids"] for p in packs] == [[5, 6, 7, 8, 9, 10, 11, 12, 13], [14, 15, 16, 17, 18, 19]]
    assert packs[0]["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert packs[0]["labels"] == [IGNORE_INDEX] * 3 + [8, 9] + [IGNORE_INDEX, 11, 12, 13]
    batch = collate(packs, pad_id=0)
    assert "attention_mask" not in batch
    assert batch["position_ids"][1].tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]  # padding is a sequence of its own
    assert batch["labels"][1].tolist()[6:] == [IGNORE_INDEX] * 3


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def model(request, tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=request.param).eval()


@torch.no_grad()
def test_packed_logits_equal_unpacked_logits_per_example(model):
    packed = collate(pack(EXAMPLES, max_seq_len=64), pad_id=0)
    logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
    start = 0
    for e in EXAMPLES:
        alone = model(torch.tensor([e["input_ids"]]), use_cache=False).logits[0]
        n = len(e["input_ids"])
        torch.testing.assert_close(logits[start:start + n], alone, atol=1e-5, rtol=1e-5)
        start += n


@torch.no_grad()
def test_the_packed_loss_is_the_sum_of_the_unpacked_losses(model):
    full = [{"input_ids": e["input_ids"], "labels": list(e["input_ids"])} for e in EXAMPLES]  # train_on_inputs
    packed = loss_sum(model, collate(pack(full, max_seq_len=64), pad_id=0))
    alone = sum(loss_sum(model, collate([e], pad_id=0)) for e in full)
    torch.testing.assert_close(packed, alone, atol=1e-4, rtol=1e-5)


class IgnoresPositions(torch.nn.Module):
    """A real model called the way a plain causal LM would be, dropping the position ids."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, position_ids=None, use_cache=False):
        return self.model(input_ids, use_cache=use_cache)


def test_check_isolation_passes_here_and_catches_a_leaking_model(model):
    check_isolation(model, model.config.vocab_size)
    with pytest.raises(TrainError, match="packing is not isolated"):
        check_isolation(IgnoresPositions(model), model.config.vocab_size)
