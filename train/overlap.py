"""Warn when training prompts repeat held-out ones (curate's ``Decontaminate`` stage), since
held-out figures on questions the model trained on overstate it; removing rows is curation's job.
"""
from __future__ import annotations

from train.data import read_rows, to_messages
from train.templates import prompt_messages

SHOWN = 3  # matching rows named in the warning


def prompts(paths, fmt: str) -> list[tuple[str, str]]:
    """``(prompt text, "file:line")`` of every row: its turns before the last answer."""
    out = []
    for row, source, line in read_rows(paths):
        messages = prompt_messages(to_messages(row, fmt, (source, line)))
        out.append(("\n".join(str(m["content"]) for m in messages), f"{source}:{line}"))
    return out


def overlap_warning(cfg) -> str | None:
    """One line naming how many training rows repeat held-out rows and where, or None
    (also None without ``val_data``: a split of ``data`` itself cannot repeat it)."""
    if not cfg.val_data:
        return None
    import pandas as pd

    from curate.stages.decontaminate import Decontaminate

    train, held = prompts(cfg.data, cfg.format), prompts(cfg.val_data, cfg.format)
    frame = pd.DataFrame({"prompt": [p for p, _ in train], "_source": [s for _, s in train]})
    reference = pd.DataFrame({"prompt": [p for p, _ in held], "_source": [s for _, s in held]})
    found = Decontaminate(reference, "prompt", max_errored=1.0).run(frame)
    if not len(found.rejected):
        return None
    kinds = ", ".join(f"{kind} {n}" for kind, n in found.stats["matches"].items() if n)
    pairs = "; ".join(f"{s} ~ {m}" for s, m in zip(found.rejected["_source"][:SHOWN],
                                                    found.rejected["_reference_match"][:SHOWN]))
    return (f"{len(found.rejected)} of {len(frame)} training rows repeat held-out rows ({kinds}): "
            f"{pairs}{' ...' if len(found.rejected) > SHOWN else ''}; the held-out figures "
            f"overstate the model; remove them with curate's Decontaminate stage")
