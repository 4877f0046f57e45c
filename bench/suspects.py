"""Benchmark: how many wrong-but-valid rows the suspect filter finds at a fixed cost in clean rows.

`SuspectFilter` runs once on the seeds and their column swaps with wrong-but-valid faults; for
each out-of-fold score, the recall of each fault kind (95% Wilson interval) where at most
``--clean-share`` of the clean rows score above, and the ROC AUC, beside a random ranking
(bench/README.md). Sized for two CPU cores: the question alone as the prompt.

    .venv/bin/python bench/suspects.py
    .venv/bin/python bench/suspects.py --folds 3 --epochs 2 --template export
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
from benchkit import ROOT, best_of, load, script_parser

from examples.honeycomb.stage_accuracy import LABEL, faulted_table, recall_at

SCORES = {"mean NLL": "_answer_loss", "max token NLL": "_answer_loss_max"}


def suspect_stage(args, **options):
    """The stage as ``args`` set it (``options``: any other `SuspectFilter` argument, a model)."""
    from curate import ChatExport, SuspectFilter
    from curate.pipeline.spec import load_spec

    export = load_spec(ROOT / "examples/honeycomb/spec.py").export
    if args.template == "question":
        export = ChatExport(human='NLQ: "{nlq}"', gpt=export.gpt)
    return SuspectFilter(export, folds=args.folds, epochs=args.epochs, lr=args.lr, lora_r=args.lora_r,
                         lora_alpha=2 * args.lora_r, batch_size=args.batch, seed=args.seed, share=args.clean_share,
                         **options)


def report(scored: pd.DataFrame, clean_share: float) -> list[str]:
    labels = scored[LABEL]
    kinds = sorted(set(labels.dropna()))
    lines = [f"{'score':<15}{'AUC':>6}  {'clean removed':<16}{'all faults':<18}"
             + "".join(f"{k:>21}" for k in kinds)]
    for name, column in SCORES.items():
        r = recall_at(scored[column], labels, clean_share)
        cell = lambda v: f"{v[0]:.0%} [{v[1]:.0%},{v[2]:.0%}]"  # noqa: E731
        lines.append(f"{name:<15}{r['auc']:>6.2f}  {cell(r['clean']):<16}{cell(r['all faults']):<18}" +
                     "".join(f"{cell(r[k]):>21}" for k in kinds))
    lines.append(f"a random ranking: AUC 0.50, recall {clean_share:.0%} of every kind at {clean_share:.0%} "
                 f"of the clean rows removed; rows: {len(scored)} ({int(labels.notna().sum())} faulted: "
                 + ", ".join(f"{k} {int((labels == k).sum())}" for k in kinds) + ")")
    return lines


def main(argv=None) -> int:
    from examples.honeycomb.faults import DEFAULT_RATES, WRONG_BUT_VALID

    parser = script_parser(__doc__)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="seeds the faults, the folds and the training")
    parser.add_argument("--rate", type=float, default=None,
                        help=f"share of the swaps given each wrong-but-valid fault (default "
                             f"{DEFAULT_RATES['dropped_filter']})")
    parser.add_argument("--clean-share", type=float, default=0.1, help="the clean rows it may remove")
    parser.add_argument("--template", choices=("question", "export"), default="question")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (on a loaded machine 1 is several times faster than 2)")
    parser.add_argument("--json", help="also write the scores and the settings to this file")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rates = {k: DEFAULT_RATES[k] if args.rate is None else args.rate for k in WRONG_BUT_VALID}
    table = faulted_table(rates, seed=args.seed)
    print(f"settings: {json.dumps({k: v for k, v in vars(args).items() if k != 'json'})}; rates {rates}")
    print(f"load average: {load(2)}; cpus: {os.cpu_count()}", flush=True)
    stage = suspect_stage(args)
    seconds, result = best_of(lambda: stage.run(table))
    minutes = seconds / 60
    scored = pd.concat([result.kept, result.rejected], ignore_index=True)
    lines = report(scored, args.clean_share)
    print("\n".join(lines))
    print(f"{minutes:.1f} min for {args.folds} folds of {args.epochs:g} epoch(s) on {len(table)} rows; "
          f"load average now: {load()}")
    if args.json:
        keep = ["_id", LABEL, "nlq", *SCORES.values(), "_answer_loss_rank"]
        Path(args.json).write_text(json.dumps({"settings": vars(args), "minutes": minutes, "report": lines,
                                               "rows": scored[keep].to_dict("records")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
