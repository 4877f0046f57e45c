"""The report's clusters section (``ReportOptions(clusters="nlq")``): the topics of the
run's rows and what each stage did to each.

Every row the run saw (each in its last version) is embedded and clustered together, so a
topic only the augmentation wrote shows up. Vectors are cached in
``<run>/cache/embeddings.sqlite`` by model and text; each row's cluster, name and map
position go to ``<run>/cache/clusters.parquet`` for the review app.
"""
from __future__ import annotations

import pandas as pd

from ..core.table import ID
from ..errors import CurateError
from ..io.columnar import write_frame

CLUSTERS_FILE = "cache/clusters.parquet"
EMBEDDINGS_FILE = "cache/embeddings.sqlite"


def every_row(run, field: str) -> pd.DataFrame:
    """``_id`` and ``field`` of every row the run saw, each id once (its last version)."""
    tables = [run.source] + [t for _, r in run.stages for t in (r.kept, r.rejected, r.errored)]
    parts = [t[[ID, field]] for t in tables if len(t) and field in t.columns]
    if not parts:
        return pd.DataFrame({ID: [], field: []})
    return pd.concat(parts, ignore_index=True).drop_duplicates(ID, keep="last",
                                                               ignore_index=True)


def _counts(ids, label_of: pd.Series) -> pd.Series:
    return label_of.reindex(pd.Index(ids)).dropna().astype(int).value_counts()


def stage_effects(run, label_of: pd.Series) -> tuple[dict, list[dict]]:
    """Per cluster: rows in the source and kept; per stage: rows it made and removed."""
    counts = {"source": _counts(run.source[ID], label_of), "kept": _counts(run.kept[ID], label_of)}
    stages, before = [], set(run.source[ID])
    for name, result in run.stages:
        came_out = [t[ID] for t in (result.kept, result.rejected, result.errored) if len(t)]
        out_ids = set(pd.concat(came_out)) if came_out else set()
        removed = [t[ID] for t in (result.rejected, result.errored) if len(t)]
        stages.append({"stage": name, "made": _counts(list(out_ids - before), label_of),
                       "removed": _counts(pd.concat(removed), label_of) if removed
                       else pd.Series(dtype=int)})
        before = set(result.kept[ID])
    return counts, stages


def cluster_section(run, spec) -> dict | None:
    """What the template draws, or None when clusters are not asked for."""
    if spec is None:
        (run.out / CLUSTERS_FILE).unlink(missing_ok=True)  # from a run that asked for them
        return None
    from ..clustering import ClusterOptions

    opts = spec if isinstance(spec, ClusterOptions) else ClusterOptions(str(spec))
    rows = every_row(run, opts.field)
    if not len(rows):
        return {"field": opts.field, "problem": f"no row has a field {opts.field!r}"}
    from ..clustering import clusters
    from ..clustering.embed import as_texts
    from ..clustering.map import cluster_map_svg, colour

    try:
        found = clusters(rows, opts, cache=run.out / EMBEDDINGS_FILE)
    except CurateError as error:  # e.g. a model that cannot be loaded: said in the report
        return {"field": opts.field, "problem": f"no clusters: {error}"}
    label_of = pd.Series(found.labels.to_numpy(), index=rows[ID])
    names = dict(zip(found.table["cluster"], found.table["name"]))
    counts, stages = stage_effects(run, label_of)
    kept = rows[ID].isin(set(run.kept[ID])).to_numpy()
    write_frame(pd.DataFrame({ID: rows[ID], "cluster": found.labels.to_numpy(),
                              "cluster_name": found.names.to_numpy(), "x": found.xy[:, 0],
                              "y": found.xy[:, 1], "kept": kept}), run.out / CLUSTERS_FILE)
    shown_stages = [s for s in stages if s["removed"].sum() or s["made"].sum()]
    n_source, n_kept = max(1, len(run.source)), max(1, len(run.kept))
    table = []
    for c, name in names.items():
        src, kept_n = int(counts["source"].get(c, 0)), int(counts["kept"].get(c, 0))
        table.append({"cluster": int(c), "name": name, "colour": colour(int(c)), "source": src,
                      "kept": kept_n, "source_share": src / n_source, "kept_share": kept_n / n_kept,
                      "stages": [(int(s["made"].get(c, 0)), int(s["removed"].get(c, 0)))
                                 for s in shown_stages]})
    return {"field": opts.field, "method": opts.method, "rows": len(rows),
            "embedded": found.embedded, "reused": len(set(as_texts(rows[opts.field]))) - found.embedded, "clusters": table, "stages": [s["stage"] for s in shown_stages],
            "map": cluster_map_svg(found.xy, found.labels.to_numpy(), names, kept)}
