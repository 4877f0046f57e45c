"""Sample packing: several short examples in one row, none attending to another.

Each packed row carries ``position_ids`` restarting at 0 per example and no attention mask;
transformers then isolates the examples (block-diagonal mask, or flash-attention's
variable-length kernel with ``use_cache=False``); `check_isolation` proves it on the model.
"""
from __future__ import annotations

import torch

from train.errors import TrainError


def pack(examples: list[dict], max_seq_len: int) -> list[dict]:
    """Greedily concatenate consecutive examples into rows of at most ``max_seq_len`` tokens."""
    rows: list[dict] = []
    current = {"input_ids": [], "labels": [], "position_ids": []}
    for e in examples:
        n = len(e["input_ids"])
        if current["input_ids"] and len(current["input_ids"]) + n > max_seq_len:
            rows.append(current)
            current = {"input_ids": [], "labels": [], "position_ids": []}
        current["input_ids"] += e["input_ids"]
        # the first token of an example is never a target: unpacked, nothing precedes it;
        # packed, it would be predicted from the previous example's last token
        current["labels"] += [-100] + e["labels"][1:]
        current["position_ids"] += list(range(n))
    if current["input_ids"]:
        rows.append(current)
    return rows


@torch.no_grad()
def check_isolation(model, vocab_size: int) -> None:
    """Raise unless two packed sequences give the same logits as each run alone."""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(3, vocab_size, (1, 7), generator=g)
    b = torch.randint(3, vocab_size, (1, 5), generator=g)
    param = next(p for p in model.parameters() if p.device.type != "meta")
    device, tolerance = param.device, (1e-3 if param.dtype == torch.float32 else 5e-2)
    a, b = a.to(device), b.to(device)
    was_training = model.training
    model.eval()
    try:
        alone = [model(x, use_cache=False).logits.float() for x in (a, b)]
        positions = torch.cat([torch.arange(7), torch.arange(5)]).unsqueeze(0).to(device)
        packed = model(torch.cat([a, b], 1), position_ids=positions, use_cache=False).logits.float()
    finally:
        model.train(was_training)
    gap = max((packed[:, :7] - alone[0]).abs().max().item(), (packed[:, 7:] - alone[1]).abs().max().item())
    scale = max(x.abs().max().item() for x in alone)
    if gap > tolerance * max(1.0, scale):
        raise TrainError(f"packing is not isolated for this model: packed logits differ by {gap:.3g} from "
                         f"unpacked; set packing: false, or attn_implementation: sdpa or flash_attention_2")
