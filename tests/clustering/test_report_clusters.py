"""The report's clusters section on a run over planted topics: sizes in the source and kept,
what each stage made and removed per cluster, the map, and embeddings reused on a rerun."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from curate import Derive, Filter, Pipeline, ReportOptions
from curate.clustering import ClusterOptions
from curate.io.columnar import read_frame
from planted import planted

pytestmark = pytest.mark.slow  # loads the embedding model


class Cells(HTMLParser):
    """The text of each cell of the rows of class ``cluster-row``, keyed by the row's first cell."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and attrs.get("class") == "cluster-row":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows[self._row[0]] = self._row[1:]
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def more_baking(row):
    return [{"text": row["text"] + " at home", "topic": "baking"}] if row["topic"] == "baking" else []


def pipeline(last_filter_words: int = 100, clusters="text") -> Pipeline:
    return Pipeline(source=planted().to_dict("records"), name="planted", stages=[
        Filter(lambda r: r["topic"] != "football", name="no_football"),
        Derive(more_baking, name="more_baking"),
        Filter(lambda r: len(r["text"].split()) < last_filter_words, name="short")],
        report=ReportOptions(text_field="text", clusters=clusters))


def section(out):
    page = (out / "report.html").read_text()
    cells = Cells()
    cells.feed(page)
    return page, cells.rows


def test_report_shows_each_topic_in_source_and_kept_and_what_each_stage_did(tmp_path):
    pipeline().run(tmp_path, progress=False)
    page, rows = section(tmp_path)
    assert 'id="clusters"' in page and "<script" not in page
    assert len(rows) == 4
    # source, no_football, more_baking, kept, share
    football = next(r for r in rows.values() if r[1] == "−24")
    assert football[0] == "24" and football[3] == "0" and "all removed" in football[4]
    baking = next(r for r in rows.values() if r[2] == "+24")
    assert baking[0] == "24" and baking[3] == "48" and baking[4] == "25% → 50%"
    others = [r for r in rows.values() if r not in (football, baking)]
    assert [r[:4] for r in others] == [["24", "", "", "24"]] * 2
    assert page.count('class="map-name"') == 4
    assert len(re.findall(r"<circle ", page)) == 96 + 24
    assert len(re.findall(r'<circle [^>]*fill="none"', page)) == 24  # the removed rows
    table = read_frame(tmp_path / "cache" / "clusters.parquet")
    assert len(table) == 120 and table["kept"].sum() == 96


def test_a_rerun_embeds_nothing_it_has_seen(tmp_path):
    first = pipeline().run(tmp_path, progress=False)
    page, _ = section(tmp_path)
    distinct = int(re.search(r"(\d+) texts encoded, 0 from the cache", page).group(1))
    df = planted()
    made = {t + " at home" for t in df.loc[df["topic"] == "baking", "text"]}
    assert distinct == len(set(df["text"]) | made)
    cache = tmp_path / "cache" / "embeddings.sqlite"
    stamp = cache.stat().st_mtime_ns
    pipeline().run(tmp_path, progress=False)  # unchanged: the report itself is reused
    assert cache.stat().st_mtime_ns == stamp
    assert (tmp_path / "report.html").read_text() == page
    pipeline(last_filter_words=8).run(tmp_path, progress=False)  # the last stage changed
    page, rows = section(tmp_path)
    assert f"0 texts encoded, {distinct} from the cache" in page
    assert first.manifest["rows"]["kept"] > 0


def test_clusters_off_writes_no_section_and_removes_the_assignment(tmp_path):
    pipeline(clusters=ClusterOptions("text", k=2)).run(tmp_path, progress=False)
    _, rows = section(tmp_path)
    assert len(rows) == 2 and (tmp_path / "cache" / "clusters.parquet").exists()
    pipeline(clusters=None).run(tmp_path, progress=False)
    page, rows = section(tmp_path)
    assert rows == {} and 'id="clusters"' not in page
    assert not (tmp_path / "cache" / "clusters.parquet").exists()


def test_a_field_no_row_has_is_said_in_the_section(tmp_path):
    pipeline(clusters="question").run(tmp_path, progress=False)
    page, _ = section(tmp_path)
    assert "no row has a field &#39;question&#39;" in page


def test_a_model_that_cannot_be_loaded_is_said_in_the_section_and_the_run_ends(tmp_path):
    missing = tmp_path / "no-such-model"
    pipeline(clusters=ClusterOptions("text", model=str(missing))).run(tmp_path / "run",
                                                                       progress=False)
    page = (tmp_path / "run" / "report.html").read_text()
    assert "no clusters: " in page and "cannot load model" in page
    assert (tmp_path / "run" / "manifest.json").exists()
