"""python -m curate.pipeline SPEC.py --out DIR [--limit N]"""
from __future__ import annotations

import argparse
import sys

from ..errors import CurateError
from .spec import load_spec

EPILOG = """\
The spec is a Python file that defines:

    pipeline = Pipeline(source="seeds.jsonl", stages=[...], export=SharegptExport(...))

A relative source path is taken from the spec file's own folder, not from the folder
you run the command in.

The run folder gets a checkpoint per stage (reused on rerun when the stage's input and
parameters are unchanged; an unchanged rerun recomputes and rewrites nothing),
rejected.jsonl.gz and errored.jsonl (every dropped row with its stage, reason and source
line), kept.parquet (the final table), export/ (sharegpt JSONL and other formats),
report.html and manifest.json (written last: a folder without it holds no finished run).
The folder is locked while a run uses it.
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m curate.pipeline", description="Run a curation pipeline spec.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="path to the spec .py file that defines `pipeline`")
    parser.add_argument("--out", required=True, help="run folder (created; reused to resume)")
    parser.add_argument("--limit", type=int, default=None,
                        help="run on the first N source rows only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or funnel")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be a positive integer")
    try:
        pipeline = load_spec(args.spec)
        pipeline.run(args.out, limit=args.limit, progress=not args.no_progress,
                     spec_path=args.spec)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
