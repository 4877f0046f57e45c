"""Draw a cluster map into an SVG file: a run's (the one in its report), or a data file's.

    python -m examples.honeycomb.cluster_map runs/honeycomb docs/honeycomb-clusters.svg
    python -m examples.honeycomb.cluster_map examples/honeycomb/data/seeds.jsonl docs/honeycomb-seeds-clusters.svg

For a run folder it reads ``<run>/cache/clusters.parquet``, which the report writes when the
pipeline sets ``ReportOptions(clusters=...)`` (the Honeycomb spec clusters the questions,
``nlq``); a data file's questions are clustered here with ``curate.clusters``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from curate.clustering.map import cluster_map_svg
from curate.io.atomic import write_text
from curate.io.columnar import read_frame
from curate.pipeline.report_clusters import CLUSTERS_FILE


def _from_file(path: Path):
    from curate import clusters, read_table

    found = clusters(read_table(path), "nlq")
    names = dict(zip(found.table["cluster"], found.table["name"]))
    return found.xy, found.labels.to_numpy(), names, None


def _from_run(folder: Path):
    table = read_frame(folder / CLUSTERS_FILE)
    names = dict(zip(table["cluster"], table["cluster_name"]))
    return table[["x", "y"]].to_numpy(), table["cluster"].to_numpy(), names, \
        table["kept"].to_numpy()


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m examples.honeycomb.cluster_map RUN_FOLDER|DATA_FILE OUT.svg",
              file=sys.stderr)
        return 2
    source = Path(args[0])
    if source.is_dir() and not (source / CLUSTERS_FILE).is_file():
        print(f"{source / CLUSTERS_FILE}: not found; run the spec with "
              f"ReportOptions(clusters=...) first", file=sys.stderr)
        return 1
    xy, labels, names, kept = _from_run(source) if source.is_dir() else _from_file(source)
    write_text(args[1], cluster_map_svg(xy, labels, names, kept) + "\n")
    print(f"wrote {args[1]}: {len(labels)} rows, {len(names)} clusters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
