"""Draw a run's cluster map (the one in its report) into an SVG file.

    python -m examples.honeycomb.cluster_map runs/honeycomb docs/honeycomb-clusters.svg

Reads ``<run>/cache/clusters.parquet``, which the report writes when the pipeline sets
``ReportOptions(clusters=...)`` (the Honeycomb spec clusters the questions, ``nlq``).
"""
from __future__ import annotations

import sys
from pathlib import Path

from curate.clustering.map import cluster_map_svg
from curate.io.atomic import write_text
from curate.io.columnar import read_frame
from curate.pipeline.report_clusters import CLUSTERS_FILE


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    source = Path(args[0]) / CLUSTERS_FILE
    if not source.is_file():
        print(f"{source}: not found; run the spec with ReportOptions(clusters=...) first",
              file=sys.stderr)
        return 1
    table = read_frame(source)
    names = dict(zip(table["cluster"], table["cluster_name"]))
    svg = cluster_map_svg(table[["x", "y"]].to_numpy(), table["cluster"].to_numpy(), names,
                          table["kept"].to_numpy())
    write_text(args[1], svg + "\n")
    print(f"wrote {args[1]}: {len(table)} rows, {len(names)} clusters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
