"""Benchmark: what each curation stage removes, measured on faults injected at known rates.

Each deterministic stage of the Honeycomb spec (``--judge``: its judge too, given an endpoint or
``--embedded``), alone and all in order, on the seeds and their column swaps with faults in the
swaps: the share of each kind and of clean rows it removes, and its precision (bench/README.md).
The measuring lives in ``examples/honeycomb/stage_accuracy.py``.

    .venv/bin/python bench/stage_accuracy.py
    .venv/bin/python bench/stage_accuracy.py --rates dropped_filter=0.1,near_duplicate=0.2 --seed 1
    OPENAI_BASE_URL=... .venv/bin/python bench/stage_accuracy.py --judge
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from benchkit import load, script_parser

from examples.honeycomb.stage_accuracy import (faulted_table, format_accuracy, spec_stages,
                                               stage_accuracy)


def parse_rates(text: str | None) -> dict | None:
    if not text:
        return None
    from examples.honeycomb.faults import DEFAULT_RATES

    rates = dict(DEFAULT_RATES)
    for pair in text.split(","):
        kind, _, share = pair.partition("=")
        rates[kind.strip()] = float(share)
    return rates


def main(argv=None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--rates", help="kind=share,... over the defaults (faults.DEFAULT_RATES)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the fault injection")
    parser.add_argument("--swaps", type=int, default=2, help="column swaps per seed")
    parser.add_argument("--judge", action="store_true", help="also the spec's judge (needs an endpoint)")
    parser.add_argument("--embedded", action="store_true", help="let the judge run the embedded model")
    parser.add_argument("--json", help="also write the records to this file")
    args = parser.parse_args(argv)
    judge = args.judge and (bool(os.environ.get("OPENAI_BASE_URL")) or args.embedded)
    if args.judge and not judge:
        print("no endpoint configured (OPENAI_BASE_URL): the judge is left out; --embedded runs it on the "
              "embedded SmolLM2-135M (slow)")
    print(f"load average: {load(1)}; cpus: {os.cpu_count()}")
    start = time.time()
    try:
        table = faulted_table(parse_rates(args.rates), seed=args.seed, swaps=args.swaps)
    except ValueError as error:
        parser.error(str(error))
    records = stage_accuracy(table, spec_stages(judge=judge))
    print(format_accuracy(records, table))
    print(f"{time.time() - start:.0f} s; load average: {load(1)}")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
