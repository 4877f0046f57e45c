"""python -m curate.pipeline SPEC.py --out DIR [--limit N] [--executor ray [--ray-address A]
[--ray-cpus N]] | SPEC.py --estimate [--out DIR]"""
from __future__ import annotations

import argparse
import sys

from ..errors import CurateError
from .startup import defer_imports

EPILOG = """\
The spec is a Python file that defines:

    pipeline = Pipeline(source="seeds.jsonl", stages=[...], export=ChatExport(...))

A relative source path is taken from the spec file's own folder, not from the folder
you run the command in.

The run folder (new or empty; a folder holding files this library did not write is
refused) gets:
  export/sharegpt.jsonl     the training file (and any other formats the export names)
  rejected.jsonl.gz         every rejected row with its stage, reason and source line
  errored.jsonl             every errored row, with its reason and traceback
  report.html               funnel, reasons, distributions, examples
  manifest.json             counts, timings, versions, what was reused (written last:
                            a folder without it holds no finished run)
  checkpoints/              checkpoints/00_source.parquet (a copy of the source) and one
                            folder per stage; a rerun reuses a stage whose input and
                            parameters are unchanged and says why it runs one again
  cache/                    the LLM response cache
  .curate-run.json          what runs wrote here: a run removes or replaces nothing else
Open the final table with curate.open_run(DIR).kept. The folder is locked while a run
uses it.

--estimate sends nothing: it prints each LLM stage's requests, estimated tokens and cost
online and in batch mode (with --out, requests already in that run folder's cache are
free). --price MODEL=IN,OUT[,BATCH_IN,BATCH_OUT] sets USD per million tokens.

--executor ray runs the row-wise stages (filters, derive, LLM stages) on Ray Data and the
others on this process, with the same results and the same run folder as the default
local executor (either can resume the other's folder). Ray starts locally, or attaches to
a running cluster with --ray-address (auto, or HOST:PORT of the head node).
"""


def main(argv=None) -> int:
    defer_imports()  # imported when used: --help and an unchanged rerun need no table
    from .executors import NAMES, make_executor
    from .spec import load_spec
    from .summary import errored_lines

    parser = argparse.ArgumentParser(
        prog="python -m curate.pipeline", description="Run a curation pipeline spec.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="path to the spec .py file that defines `pipeline`")
    parser.add_argument("--out", help="run folder (created; reused to resume); required "
                                      "unless --estimate")
    parser.add_argument("--limit", type=int, default=None,
                        help="run on the first N source rows only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or funnel")
    parser.add_argument("--estimate", action="store_true",
                        help="print requests, tokens and cost per LLM stage; send nothing")
    parser.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT",
                        help="USD per million prompt,completion tokens (then optionally the "
                             "batch prices); repeatable")
    parser.add_argument("--executor", choices=NAMES, default="local",
                        help="where stages run (default: local, this process)")
    parser.add_argument("--ray-address", default=None,
                        help="with --executor ray: attach to this cluster (auto or HOST:PORT)")
    parser.add_argument("--ray-cpus", type=int, default=None,
                        help="with --executor ray: CPUs of the local Ray (default: all)")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be a positive integer")
    if args.out is None and not args.estimate:
        parser.error("--out is required (or --estimate)")
    ray_options = {k: v for k, v in (("address", args.ray_address),
                                     ("num_cpus", args.ray_cpus)) if v is not None}
    if ray_options and args.executor != "ray":
        parser.error("--ray-address and --ray-cpus go with --executor ray")
    from ..llm.accounting import prices_kept

    executor = None
    try:
        with prices_kept():  # --price holds for this run, not the process
            _set_prices(parser, args.price)
            if args.estimate:
                from ..llm.client import planning
                from .estimate import estimate_pipeline

                with planning():  # a model with no endpoint yet can be estimated
                    pipeline = load_spec(args.spec)
                print(estimate_pipeline(pipeline, limit=args.limit, out=args.out).render())
                return 0
            executor, _ = make_executor(args.executor, **ray_options)
            pipeline = load_spec(args.spec)
            run = pipeline.run(args.out, limit=args.limit, progress=not args.no_progress,
                               spec_path=args.spec, executor=executor)
        if args.no_progress:  # no funnel, but errored rows are never only a count
            for line in errored_lines(run.manifest, args.out):
                print(line, file=sys.stderr)
    except CurateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write the library did not expect to fail
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"error: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: completed stages are checkpointed; rerun to resume", file=sys.stderr)
        return 130
    finally:
        if executor is not None:
            executor.close()
    return 0


def _set_prices(parser, prices: list[str]) -> None:
    from ..llm.accounting import set_batch_price, set_price

    for text in prices:
        model, _, numbers = text.partition("=")
        try:
            values = [float(v) for v in numbers.split(",")]
        except ValueError:
            values = []
        if not model or len(values) not in (2, 4):
            parser.error(f"--price {text!r}: expected MODEL=IN,OUT or MODEL=IN,OUT,BATCH_IN,"
                         f"BATCH_OUT (USD per million tokens)")
        set_price(model, *values[:2])
        if len(values) == 4:
            set_batch_price(model, *values[2:])


if __name__ == "__main__":
    sys.exit(main())
