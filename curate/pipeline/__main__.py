"""python -m curate.pipeline SPEC.py --out DIR [--limit N]"""
from __future__ import annotations

import argparse
import sys

from ..errors import CurateError
from .spec import load_spec

EPILOG = """\
The spec is a Python file that defines:

    pipeline = Pipeline(source="seeds.jsonl", stages=[...], export=SharegptExport(...))

The run folder gets a checkpoint per stage (reused on rerun when the stage's input and
parameters are unchanged), rejected.jsonl and errored.jsonl (every dropped row with its
stage and reason), kept.jsonl, export/ (sharegpt JSONL and other formats), manifest.json
(written last) and report.html.
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
    except KeyboardInterrupt:
        print("interrupted: completed stages are checkpointed; rerun to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
