"""The review app's cluster pages in a real headless Chromium: the list of clusters, a
cluster's page (its rows, what each stage did to them) and the browse filter by cluster."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from curate import Derive, Filter, Pipeline, ReportOptions
from curate.io.columnar import read_frame
from curate.pipeline.folder import open_run
from review_served import served
from tests.clustering.planted import planted

pytestmark = pytest.mark.slow  # loads the embedding model
WAIT = 10


def more_baking(row):
    return [{"text": row["text"] + " at home", "topic": "baking"}] if row["topic"] == "baking" else []


@pytest.fixture(scope="module")
def clustered_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clustered")
    Pipeline(source=planted().to_dict("records"), name="planted", stages=[
        Filter(lambda r: r["topic"] != "football", name="no_football"),
        Derive(more_baking, name="more_baking")],
        report=ReportOptions(text_field="text", clusters="text")).run(out, progress=False)
    return out


@pytest.fixture(scope="module")
def clusters_url(clustered_run):
    from curate.review import create_app

    with served(create_app(clustered_run)) as url:
        yield url


def assignment(run_folder):
    table = read_frame(run_folder / "cache" / "clusters.parquet")
    topic = {}
    run = open_run(run_folder)
    for frame in [run.source] + [t for _, r in run.stages for t in (r.kept, r.rejected)]:
        topic.update(zip(frame["_id"], frame["topic"]))
    table["topic"] = table["_id"].map(topic)
    return table


def cluster_of(table, topic):
    ids = set(table.loc[table["topic"] == topic, "cluster"])
    assert len(ids) == 1
    return str(ids.pop())


def test_the_clusters_page_lists_each_cluster_and_a_clusters_page_shows_what_stages_did(
        browser, clusters_url, clustered_run):
    table = assignment(clustered_run)
    browser.get(clusters_url + "/")
    browser.find_element(By.ID, "nav-clusters").click()
    WebDriverWait(browser, WAIT).until(EC.url_contains("/clusters"))
    listed = browser.find_elements(By.CSS_SELECTOR, "tr.cluster")
    assert len(listed) == 4
    counts = {r.get_attribute("data-cluster"): [c.text for c in r.find_elements(By.TAG_NAME, "td")][1:4]
              for r in listed}
    football = cluster_of(table, "football")
    assert counts[football] == ["24", "0", "24"]
    assert counts[cluster_of(table, "baking")] == ["48", "48", "0"]

    browser.find_element(By.CSS_SELECTOR, f'tr.cluster[data-cluster="{football}"] a.cluster-link').click()
    WebDriverWait(browser, WAIT).until(EC.url_contains(f"/cluster/{football}"))
    assert browser.find_element(By.ID, "cluster-total").text == "24"
    assert browser.find_element(By.ID, "cluster-kept").text == "0"
    removed = browser.find_element(By.CSS_SELECTOR, 'tr.cluster-stage[data-stage="no_football"] td.removed')
    code = open_run(clustered_run).stages[0][1].rejected["_reason_code"].iloc[0]
    assert removed.text == f"rejected {code} 24"
    made = browser.find_element(By.CSS_SELECTOR, 'tr.cluster-stage[data-stage="more_baking"] td.made')
    assert made.text == ""
    shown = {r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "tr.row")}
    assert shown == set(table.loc[table["topic"] == "football", "_id"])

    baking = cluster_of(table, "baking")
    browser.get(f"{clusters_url}/cluster/{baking}")
    made = browser.find_element(By.CSS_SELECTOR, 'tr.cluster-stage[data-stage="more_baking"] td.made')
    assert made.text == "24"
    assert browser.find_element(By.ID, "cluster-name").text == \
        table.loc[table["topic"] == "baking", "cluster_name"].iloc[0]


def test_browse_filters_by_cluster_and_shows_each_rows_cluster(browser, clusters_url, clustered_run):
    table = assignment(clustered_run)
    weather = cluster_of(table, "weather")
    browser.get(clusters_url + "/")
    Select(browser.find_element(By.ID, "f-cluster")).select_by_value(weather)
    browser.find_element(By.ID, "f-apply").click()
    WebDriverWait(browser, WAIT).until(EC.url_contains(f"cluster={weather}"))
    shown = {r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "tr.row")}
    assert shown == set(table.loc[table["topic"] == "weather", "_id"])
    names = {c.text for c in browser.find_elements(By.CSS_SELECTOR, "tr.row td.cluster")}
    assert names == set(table.loc[table["topic"] == "weather", "cluster_name"])


def test_an_unknown_cluster_is_a_404_page(browser, clusters_url):
    browser.get(clusters_url + "/cluster/99")
    assert "This run has no cluster '99'" in browser.find_element(By.ID, "missing").text
