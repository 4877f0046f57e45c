"""Clusters in the review app: each row's cluster (from ``<run>/cache/clusters.parquet``,
written by the report when ``ReportOptions(clusters=...)`` is set), and a cluster's page.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ..core.table import ID, ORIGIN, REASON_CODE, STAGE
from ..pipeline.report_clusters import CLUSTERS_FILE

ROWS_SHOWN = 100


def load_clusters(folder, ids: pd.Series) -> pd.DataFrame | None:
    """``cluster`` (text id, empty when unknown) and ``cluster_name`` for each of ``ids``."""
    path = folder / CLUSTERS_FILE
    if not path.is_file():
        return None
    from ..io.columnar import read_frame

    found = read_frame(path, columns=[ID, "cluster", "cluster_name"]).drop_duplicates(ID)
    found = found.set_index(ID).reindex(pd.Index(ids.to_numpy(dtype=object)))
    cluster = found["cluster"].astype("Int64").astype(str).where(found["cluster"].notna(), "")
    return pd.DataFrame({"cluster": cluster.to_numpy(),
                         "cluster_name": found["cluster_name"].fillna("").to_numpy()})


def cluster_list(table) -> list[dict]:
    """Every cluster with its rows by where they ended, largest first."""
    clusters = table.clusters
    status = table.rows["__status"].to_numpy()
    out = []
    for (cid, name), rows in clusters.groupby(["cluster", "cluster_name"], sort=False).groups.items():
        if cid == "":
            continue
        ended = Counter(status[np.asarray(rows)])
        out.append({"id": cid, "name": name, "rows": len(rows), "kept": ended.get("kept", 0),
                    "removed": len(rows) - ended.get("kept", 0)})
    return sorted(out, key=lambda c: (-c["rows"], int(c["id"])))


def unclustered(table) -> int:
    return int((table.clusters["cluster"] == "").sum()) if table.clusters is not None else 0


def cluster_page(table, cid: str) -> dict | None:
    """A cluster's rows (the first ``ROWS_SHOWN``) and, per stage, what it did to them."""
    if table.clusters is None:
        return None
    positions = np.flatnonzero((table.clusters["cluster"] == cid).to_numpy())
    if cid == "" or not len(positions):
        return None
    rows = table.rows.iloc[positions]
    origin = rows.get(ORIGIN, pd.Series(None, index=rows.index)).fillna("source")
    stages = []
    for name in table.stage_names:
        left = rows[(rows.get(STAGE) == name)] if STAGE in rows.columns else rows.iloc[0:0]
        reasons = Counter(zip(left["__status"], left.get(REASON_CODE, pd.Series("", index=left.index))))
        stages.append({"stage": name, "made": int((origin == name).sum()),
                       "removed": [{"status": s, "code": c, "count": n}
                                   for (s, c), n in reasons.most_common()]})
    return {"id": cid, "name": table.clusters["cluster_name"].iat[int(positions[0])],
            "total": len(positions), "kept": int((rows["__status"] == "kept").sum()),
            "from_source": int((origin == "source").sum()), "stages": stages,
            "rows": [table.summary(int(p)) for p in positions[:ROWS_SHOWN]]}
