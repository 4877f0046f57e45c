"""Every row a run saw, as one in-memory table the review app filters, searches, sorts and pages.

One pandas row per ``_id``: the final kept rows, every stage's rejected and errored rows, and
the rows a stage replaced (repaired originals, parents a ``Derive(keep="new")`` dropped), each
in its last version. ``__status`` says where the row ended (kept, rejected, errored, replaced)
and ``__step`` the index of the stage it left at (the number of stages for kept rows).
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.table import (ID, ORIGIN, PARENT, REASON, REASON_CODE, STAGE, domain_columns,
                          is_bookkeeping, to_jsonable)
from ..errors import InputError
from ..pipeline.folder import open_run
from .clusters import cluster_list, load_clusters

STATUS, STEP = "__status", "__step"
REPLACED = "replaced"
PAGE_SIZE = 50
PREVIEW_CHARS = 140


@dataclass
class Query:
    """What the browse page asks for; every field comes from the URL and is checked."""

    status: str = ""
    stage: str = ""
    reason: str = ""
    verdict: str = ""
    cluster: str = ""
    q: str = ""
    sort: str = ""
    order: str = "desc"
    page: int = 1

    @classmethod
    def from_params(cls, params) -> "Query":
        page = params.get("page", "1")
        return cls(**{name: str(params.get(name, "")).strip()[:200]
                      for name in ("status", "stage", "reason", "verdict", "cluster", "q",
                                   "sort")},
                   order="asc" if params.get("order") == "asc" else "desc",
                   page=int(page) if str(page).isdigit() and int(page) > 0 else 1)

    def params(self, **changes) -> dict:
        """The non-empty parameters of this query, with ``changes`` applied (for links)."""
        values = {**vars(self), **changes}
        return {k: v for k, v in values.items()
                if v not in ("", None) and not (k == "page" and v == 1)
                and not (k == "order" and v == "desc")}


@dataclass
class Page:
    rows: list[dict]
    total: int
    page: int
    pages: int
    measure: str | None = None
    notes: list[str] = field(default_factory=list)


def value_text(value, indent: int | None = None) -> str:
    """A cell as text: strings as they are, everything else as JSON (missing: empty)."""
    value = to_jsonable(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


# numpy values as lists, anything else the encoder cannot write as text
_encode = json.JSONEncoder(ensure_ascii=False, default=lambda value: value.tolist()
                           if hasattr(value, "tolist") else str(value)).encode


def _text_column(series: pd.Series):
    """A column as an Arrow array of searchable text (nested values as JSON)."""
    import pyarrow as pa

    values = series.astype(object).where(series.notna(), "")
    if pd.api.types.infer_dtype(series, skipna=True) != "string":
        values = [v if isinstance(v, str) else _encode(v) for v in values]
    return pa.array(list(values), type=pa.large_string())


class RunTable:
    """One run folder's rows (see the module docstring)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        start = time.perf_counter()
        self.run = open_run(self.folder)
        self.manifest = self.run.manifest
        if not isinstance(self.manifest, dict) or not isinstance(self.manifest.get("stages"), list):
            raise InputError(self.folder / "manifest.json",
                             "not a run manifest (no list of stages)")
        self.run.kept  # noqa: B018 - reads every table of the run now, once
        self.seconds = {"open_run": time.perf_counter() - start}
        self.stage_names = [s["stage"] for s in self.manifest["stages"]]
        self.stage_stats = list(self.manifest["stages"])
        self.rows = self._all_rows()
        self.kept_count = int((self.rows[STATUS] == "kept").sum())
        self.positions = pd.Index(self.rows[ID])
        self.fields = [c for c in self.rows.columns if not is_bookkeeping(c)]
        self.measures = self._numeric_columns()
        self.clusters = load_clusters(self.folder, self.rows[ID])
        self._filters = self._filter_columns()
        self._search = None  # a pyarrow array, built on first use
        self._choices: dict | None = None
        self._search_lock = threading.Lock()
        self._children: dict | None = None
        self._numbers: dict[str, np.ndarray] = {}
        self.seconds["table"] = time.perf_counter() - start - self.seconds["open_run"]

    # -- building -----------------------------------------------------------------------
    def _all_rows(self) -> pd.DataFrame:
        run = self.run
        parts = [run.kept.assign(**{STATUS: "kept", STEP: len(run.stages)})]
        previous = run.source
        for step, (name, result) in enumerate(run.stages):
            for status, table in (("rejected", result.rejected), ("errored", result.errored)):
                if len(table):
                    parts.append(table.assign(**{STATUS: status, STEP: step}))
            gone = _replaced(previous, result) if self.stage_stats[step].get("replaced", 1) \
                else previous.iloc[0:0]
            if len(gone):
                parts.append(gone.assign(**{STATUS: REPLACED, STEP: step, STAGE: name,
                                            REASON_CODE: REPLACED,
                                            REASON: f"replaced by a row {name} derived from it"}))
            previous = result.kept
        rows = pd.concat(parts, ignore_index=True)
        first = domain_columns(run.source) if len(run.source.columns) else []
        order = list(dict.fromkeys([*first, *domain_columns(rows), *rows.columns]))
        return rows[order]

    def _numeric_columns(self) -> list[str]:
        """Columns a page can be sorted by: numbers (not flags, not ids)."""
        names = []
        for column in self.rows.columns:
            series = self.rows[column]
            if column.startswith("__") or pd.api.types.is_bool_dtype(series):
                continue
            if pd.api.types.is_numeric_dtype(series):
                if series.notna().any():
                    names.append(column)
            elif series.dtype == object:
                sample = series.dropna().head(200)
                if len(sample) and sample.map(lambda v: isinstance(v, (int, float))
                                              and not isinstance(v, bool)).all():
                    names.append(column)
        return names

    def _filter_columns(self) -> dict[str, pd.Series]:
        rows = self.rows
        empty = pd.Series(None, index=rows.index, dtype=object)
        columns = {"status": rows[STATUS],
                   "origin": rows.get(ORIGIN, empty).fillna("source"),
                   "stage": rows.get(STAGE, empty), "reason": rows.get(REASON_CODE, empty)}
        for name in self.verdict_columns():
            columns[f"verdict:{name}"] = rows[name]
        if self.clusters is not None:
            columns["cluster"] = pd.Series(self.clusters["cluster"].to_numpy(), index=rows.index)
        return {k: v.astype("category") for k, v in columns.items()}

    # -- what the page offers ---------------------------------------------------------------
    def verdict_columns(self) -> list[str]:
        return [c for s in self.stage_stats for c, role in (s.get("added_columns") or {}).items()
                if role == "verdict" and c in self.rows.columns]

    def choices(self) -> dict[str, list[tuple[str, int]]]:
        """Each filter's values with the number of rows each selects, most first (the run
        does not change while the app runs: counted once)."""
        if self._choices is None:
            out = {}
            for name in ("status", "reason"):
                out[name] = [(str(k), int(v)) for k, v in self._filters[name].value_counts().items()
                             if v]
            stage, origin = self._filters["stage"], self._filters["origin"]
            names = [n for n in self.stage_names if n in set(stage.dropna()) | set(origin)]
            out["stage"] = sorted(((n, int(((stage == n) | (origin == n)).sum())) for n in names),
                                  key=lambda item: -item[1])
            out["verdict"] = [(f"{name}={k}", int(v)) for name in self.verdict_columns()
                              for k, v in self._filters[f"verdict:{name}"].value_counts().items()
                              if v]
            if self.clusters is not None:
                out["cluster"] = [(c["id"], c["name"], c["rows"]) for c in cluster_list(self)]
            self._choices = out
        return self._choices

    # -- filtering, search, sort, paging ----------------------------------------------------------
    def select(self, query: Query) -> tuple[np.ndarray, list[str]]:
        """Positions of the rows matching ``query``, in page order, and notes on ignored
        parameters."""
        mask = np.ones(len(self.rows), dtype=bool)
        notes = []
        if query.status:
            mask &= (self._filters["status"] == query.status).to_numpy()
        if query.stage:
            by_stage = self._filters["stage"] == query.stage
            mask &= (by_stage | (self._filters["origin"] == query.stage)).to_numpy()
        if query.reason:
            mask &= (self._filters["reason"] == query.reason).to_numpy()
        if query.verdict:
            mask &= self._verdict_mask(query.verdict, notes)
        if query.cluster:
            if self.clusters is None:
                notes.append("this run has no clusters: set ReportOptions(clusters=<field>)")
            else:
                mask &= (self._filters["cluster"] == query.cluster).to_numpy()
        positions = np.flatnonzero(mask)
        if query.q:
            positions = self.search(query.q, positions)
        if query.sort in self.measures:
            keys = self.numbers(query.sort)[positions] * (1 if query.order == "asc" else -1)
            positions = positions[np.argsort(np.where(np.isnan(keys), np.inf, keys),
                                             kind="stable")]
        elif query.sort:
            notes.append(f"cannot sort by {query.sort!r}: not a numeric column")
        return positions, notes

    def _verdict_mask(self, verdict: str, notes: list[str]) -> np.ndarray:
        column, _, value = verdict.partition("=")
        series = self._filters.get(f"verdict:{column}")
        if series is None:
            notes.append(f"no verdict column {column!r}")
            return np.ones(len(self.rows), dtype=bool)
        return (series == value).to_numpy()

    def search_text(self):
        """Every row's domain fields as one lower-case Arrow text (built once, on first use)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        with self._search_lock:
            if self._search is None:
                columns = [_text_column(self.rows[c]) for c in self.fields] or \
                    [pa.array([""] * len(self.rows), type=pa.large_string())]
                separator = pa.scalar("\n", type=pa.large_string())
                joined = pc.binary_join_element_wise(*columns, separator) \
                    if len(columns) > 1 else columns[0]
                self._search = pc.utf8_lower(joined)
        return self._search

    def search(self, q: str, positions: np.ndarray) -> np.ndarray:
        """The ``positions`` whose domain fields hold every word of ``q`` (case ignored;
        a "quoted phrase" is one word); each word searches only the rows still in."""
        import pyarrow.compute as pc

        text = self.search_text()
        for term in _terms(q):
            if not len(positions):
                break
            subset = text if len(positions) == len(text) else text.take(positions)
            hits = pc.match_substring(subset, term).to_numpy(zero_copy_only=False)
            positions = positions[hits]
        return positions

    def numbers(self, column: str) -> np.ndarray:
        if column not in self._numbers:
            self._numbers[column] = pd.to_numeric(self.rows[column], errors="coerce") \
                .to_numpy(dtype=float, na_value=np.nan)
        return self._numbers[column]

    def page(self, query: Query, size: int = PAGE_SIZE) -> Page:
        positions, notes = self.select(query)
        pages = max(1, -(-len(positions) // size))
        number = min(query.page, pages)
        shown = positions[(number - 1) * size: number * size]
        measure = query.sort if query.sort in self.measures else None
        return Page([self.summary(p, measure) for p in shown], len(positions), number, pages,
                    measure, notes)

    # -- single rows ----------------------------------------------------------------------------
    def position(self, row_id: str) -> int | None:
        try:
            found = self.positions.get_loc(row_id)
        except KeyError:
            return None
        return int(found) if isinstance(found, (int, np.integer)) else None

    def record(self, position: int) -> dict:
        return {k: to_jsonable(v) for k, v in self.rows.iloc[position].items()}

    def summary(self, position: int, measure: str | None = None) -> dict:
        """What one line of the browse table shows."""
        row = self.record(position)
        previews = [(name, _preview(row.get(name))) for name in self.fields[:3]]
        return {"id": row[ID], "status": row[STATUS], "stage": row.get(STAGE) or "",
                "reason": row.get(REASON_CODE) or "", "origin": row.get(ORIGIN) or "source",
                "fields": previews, "cluster": None if self.clusters is None
                else self.clusters["cluster_name"].iat[position],
                "measure": None if measure is None else _number(self.numbers(measure)[position])}

    def warm(self) -> None:
        """Build now what the first search, row lookup and lineage would otherwise build."""
        self.search_text()
        if len(self.rows):
            self.position(str(self.rows[ID].iat[0]))
        self.children("")

    def children(self, row_id: str) -> list[str]:
        """Ids of the rows derived from ``row_id`` (its ``_parent``)."""
        if self._children is None:
            parents = self.rows[PARENT] if PARENT in self.rows.columns else pd.Series(dtype=object)
            known = parents.notna()
            self._children = self.rows.loc[known, ID].groupby(parents[known]).agg(list).to_dict()
        return list(self._children.get(row_id, []))


def _replaced(before: pd.DataFrame, result) -> pd.DataFrame:
    """The rows of a stage's input that none of its outputs holds (a derived row took over)."""
    if not len(before):
        return before
    came_out = np.concatenate([t[ID].to_numpy(dtype=object)
                               for t in (result.kept, result.rejected, result.errored)])
    present = pd.Index(before[ID].to_numpy(dtype=object)).isin(came_out)
    return before[~present]


def _terms(q: str) -> list[str]:
    """The words of a search (at most eight), a "quoted phrase" as one."""
    return [(phrase or word).lower() for phrase, word in re.findall(r'"([^"]+)"|(\S+)', q)
            if phrase or word][:8]


def _preview(value) -> str:
    text = " ".join(value_text(value)[: PREVIEW_CHARS * 8].split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _number(value: float):
    if value != value:
        return None
    return int(value) if float(value).is_integer() else round(float(value), 4)
