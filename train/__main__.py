"""Command line of the trainer.

    python -m train config.yaml [--set key=value ...]            # fine-tune
    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 -m train config.yaml   # on 2 CPU processes
    python -m train inspect config.yaml [--rows 3] [--set ...]   # show masks token by token
    python -m train.memory --help                                # memory estimator
"""
from __future__ import annotations

import argparse
import sys

from train.config import load_config, parse_overrides
from train.errors import TrainError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    inspect = bool(argv) and argv[0] == "inspect"
    parser = argparse.ArgumentParser(prog="python -m train" + (" inspect" if inspect else ""),
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="YAML config (see train/README.md for its keys)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set max_steps=20 --set assertion_eval.every=5")
    if inspect:
        parser.add_argument("--rows", type=int, default=3, help="how many rows to show")
    args = parser.parse_args(argv[1:] if inspect else argv)
    try:
        cfg = load_config(args.config, parse_overrides(args.set))
        if inspect:
            from train.inspector import inspect_rows

            inspect_rows(cfg, args.rows)
        else:
            from train.loop import train

            result = train(cfg)
            if result["main_process"]:
                print(f"{result['stopped']}: {result['steps']}/{result['total_steps']} steps; peak memory "
                      f"{result['peak_mem_gib']:.2f} GiB ({result['memory_kind']}; estimated "
                      f"{result['estimated_mem_gib']:.2f}); adapter in {result['adapter_dir']}")
    except TrainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
