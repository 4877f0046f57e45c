"""The review app in a real headless Chromium: browse, lineage, labelling, agreement, escaping.

One browser serves every test here (see conftest.py); each test opens the pages it checks.
"""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from selenium.common.exceptions import (NoAlertPresentException, NoSuchElementException,
                                        StaleElementReferenceException)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from curate.review.alignment import alignment_report, read_review
from curate.pipeline.folder import open_run
from review_sample import IMG_NLQ, JUDGE_PROMPT, LONG_ID, SCRIPT_NLQ, build, long_text
from review_served import served

WAIT = 10
PAGE_CHANGING = (NoSuchElementException, StaleElementReferenceException)


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def press(driver, *keys):
    ActionChains(driver).send_keys(*keys).perform()


def stage_result(run, name):
    return next(result for stage, result in run.stages if stage == name)


def assert_no_alert(driver):
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    pytest.fail(f"an alert opened: {text!r}")


def test_filter_to_a_reason_code(browser, app_url, judged_run):
    expected = set(stage_result(open_run(judged_run), "rouge_dedup").rejected["_id"])
    browser.get(app_url + "/")
    Select(browser.find_element(By.ID, "f-reason")).select_by_value("near_duplicate_rouge")
    browser.find_element(By.ID, "f-apply").click()
    WebDriverWait(browser, WAIT).until(EC.url_contains("reason=near_duplicate_rouge"))
    shown = {row.get_attribute("data-id") for row in css(browser, "tr.row")}
    assert shown == expected and len(expected) > 3
    assert browser.find_element(By.ID, "match-count").text == f"{len(expected)} rows match"
    reasons = {row.find_elements(By.TAG_NAME, "td")[3].text for row in css(browser, "tr.row")}
    assert reasons == {"near_duplicate_rouge"}


def test_a_repaired_rows_lineage_and_training_text(browser, app_url, judged_run):
    run = open_run(judged_run)
    kept = run.kept.reset_index(drop=True)
    position = int(kept.index[kept["_origin"] == "repair"][0])
    repaired = kept.iloc[position]
    browser.get(app_url + "/?stage=repair&status=kept")
    browser.find_element(By.CSS_SELECTOR, f'tr.row[data-id="{repaired["_id"]}"] a.row-link').click()
    WebDriverWait(browser, WAIT).until(EC.url_contains("/row/"))
    ancestors = [a.get_attribute("data-id") for a in css(browser, ".ancestor")]
    assert ancestors == [repaired["_id"], repaired["_parent"]]
    parent = browser.find_element(By.CSS_SELECTOR, f'.ancestor[data-id="{repaired["_parent"]}"]')
    judged = parent.find_element(By.CSS_SELECTOR, '.event[data-stage="judge"]')
    original = stage_result(run, "judge").kept.set_index("_id").loc[repaired["_parent"]]
    assert original["outcome"] == "bad"
    assert original["critique"] in judged.text and "bad" in judged.text
    replaced = parent.find_element(By.CSS_SELECTOR, '.event[data-stage="repair"]')
    assert replaced.get_attribute("data-outcome") == "replaced" and repaired["_id"] in replaced.text
    line = (judged_run / "export" / "sharegpt.jsonl").read_text().splitlines()[position]
    raw = browser.find_element(By.CSS_SELECTOR, '.export[data-format="sharegpt"] .raw-line')
    assert raw.get_attribute("textContent") == line
    turns = [t.text for t in css(browser, '.export[data-format="sharegpt"] pre.turn')]
    assert turns == [t["value"] for t in json.loads(line)["conversations"]]


def test_a_near_duplicate_is_shown_beside_the_row_it_matched(browser, app_url, judged_run):
    rejected = stage_result(open_run(judged_run), "rouge_dedup").rejected.iloc[0]
    browser.get(app_url + f"/row/{rejected['_id']}")
    pair = browser.find_element(By.CSS_SELECTOR, '.event[data-stage="rouge_dedup"] .near-dup')
    matched = open_run(judged_run).source.set_index("_id").loc[rejected["_dup_of"]]
    cells = pair.find_elements(By.CSS_SELECTOR, "table.pair tr")[1].find_elements(By.TAG_NAME, "td")
    assert [c.text for c in cells] == [rejected["nlq"], matched["nlq"]]
    assert f"{rejected['_rouge_l']:.3f}" in pair.text


def _label_current_row(browser, outcome: str, critique: str = "") -> str:
    row_id = browser.find_element(By.ID, "label-id").text
    if critique:
        browser.find_element(By.ID, "expert-critique").send_keys(critique)
        press(browser, Keys.ESCAPE)
    press(browser, outcome[0])
    WebDriverWait(browser, WAIT, ignored_exceptions=PAGE_CHANGING).until(
        lambda d: d.find_element(By.ID, "label-id").text != row_id)
    return row_id


def test_label_three_rows_reload_and_see_them(browser, app_url, judged_run):
    browser.get(app_url + "/label")
    made = {}
    for i, critique in enumerate(["the breakdown should be by service", "", ""]):
        judge = browser.find_element(By.ID, "judge-outcome").text
        outcome = {"good": "bad", "bad": "good"}[judge] if i == 0 else judge
        made[_label_current_row(browser, outcome, critique)] = (outcome, critique)
    browser.refresh()
    assert browser.find_element(By.ID, "done-count").text == "3"
    saved = read_review(judged_run / "review" / "labels.csv").set_index("_id")
    labels = {i: (r["expert_outcome"], r["expert_critique"] or "") for i, r in saved.iterrows()}
    assert labels == made
    press(browser, "p")
    WebDriverWait(browser, WAIT).until(EC.presence_of_element_located((By.ID, "current-label")))
    shown_id = browser.find_element(By.ID, "label-id").text
    assert made[shown_id][0] in browser.find_element(By.ID, "current-label").text


def test_agreement_panel_matches_curate_alignment(browser, app_url, judged_run):
    browser.get(app_url + "/label")
    report = alignment_report(read_review(judged_run / "review" / "labels.csv"))
    assert report.n == 3 and len(report.disagreements) == 1
    value = lambda name: float(browser.find_element(By.ID, name).get_attribute("data-value"))
    assert browser.find_element(By.ID, "agreement-n").text == "3"
    assert value("agreement-rate") == report.agreement
    assert browser.find_element(By.ID, "agreement-rate").text == f"{report.agreement:.1%}"
    kappa = value("kappa")
    assert kappa == report.kappa or (kappa != kappa and report.kappa != report.kappa)
    confusion = report.confusion
    for label, element in (("good", "tpr"), ("bad", "tnr")):
        if label in confusion.columns and confusion[label].sum():
            assert value(element) == confusion.loc[label, label] / confusion[label].sum()
    cells = {(c.get_attribute("data-judge"), c.get_attribute("data-expert")): int(c.text)
             for c in css(browser, "#confusion td.cell")}
    assert cells == {(j, e): int(confusion.loc[j, e]) for j in confusion.index
                     for e in confusion.columns}
    shown = [d.get_attribute("data-id") for d in css(browser, "#disagreements .disagreement")]
    assert shown == report.disagreements["_id"].tolist()


def test_disagreements_export_as_few_shot_examples(browser, app_url, judged_run):
    browser.get(app_url + "/label")
    browser.find_element(By.ID, "export-few-shot").click()
    note = WebDriverWait(browser, WAIT).until(EC.presence_of_element_located((By.ID, "exported")))
    assert "Wrote 1 few-shot example" in note.text
    lines = (judged_run / "review" / "critique_examples.jsonl").read_text().splitlines()
    example = json.loads(lines[0])
    assert list(example) == ["nlq", "columns", "query", "critique", "outcome"]
    assert example["critique"] == "the breakdown should be by service"
    disagreement = read_review(judged_run / "review" / "labels.csv")
    assert example["outcome"] == disagreement.loc[
        disagreement["expert_critique"].astype(bool), "expert_outcome"].item()


def test_model_output_renders_as_text(browser, app_url, judged_run):
    rows = open_run(judged_run).kept.set_index("nlq")
    for nlq in (SCRIPT_NLQ, IMG_NLQ):
        row_id = rows.loc[nlq, "_id"]
        browser.get(app_url + f"/row/{row_id}")
        assert_no_alert(browser)
        assert browser.find_element(By.CSS_SELECTOR, 'pre.field[data-name="nlq"]').text == nlq
        assert css(browser, "img") == [] and css(browser, "[onerror]") == []
        assert len(css(browser, "script")) == 1 and css(browser, "[onmouseover]") == []
    browser.get(app_url + "/?q=onerror")
    assert_no_alert(browser)
    assert IMG_NLQ in browser.find_element(By.ID, "rows").text and css(browser, "img") == []
    script_row = rows.loc[SCRIPT_NLQ, "_id"]
    browser.get(app_url + f"/label/{script_row}")
    assert_no_alert(browser)
    critique = browser.find_element(By.ID, "judge-critique").text
    assert "<b onmouseover=alert(2)>bold</b> <script>alert(3)</script>" in critique
    assert len(css(browser, "script")) == 1 and css(browser, "b[onmouseover]") == []


def test_agreement_by_round_when_the_judge_prompt_changes(browser, tmp_path):
    run = build(tmp_path)
    from curate.review import create_app

    with served(create_app(run)) as url:
        browser.get(url + "/label")
        first = browser.find_element(By.ID, "judge-fingerprint").text
        for _ in range(2):
            _label_current_row(browser, browser.find_element(By.ID, "judge-outcome").text)
    build(tmp_path, instructions=JUDGE_PROMPT + " Be strict about breakdowns.")
    with served(create_app(run)) as url:
        browser.get(url + "/label")
        assert browser.find_element(By.ID, "judge-fingerprint").text != first
        assert browser.find_element(By.ID, "done-count").text == "0"
        outcome = {"good": "bad", "bad": "good"}[browser.find_element(By.ID, "judge-outcome").text]
        _label_current_row(browser, outcome)
        lines = css(browser, "#rounds tr.round-line")
        assert [line.find_elements(By.TAG_NAME, "td")[1].text for line in lines][:2] == ["2", "1"]
        assert [line.find_elements(By.TAG_NAME, "td")[2].text for line in lines][:2] == \
            ["100.0%", "0.0%"]
        assert "current" in lines[1].get_attribute("class")
        assert lines[-1].find_elements(By.TAG_NAME, "td")[0].text.startswith("current judge")


@pytest.mark.slow
def test_a_20_mb_field_shows_its_start_and_opens_whole(browser, long_run):
    from curate.review import create_app

    text = long_text()
    with served(create_app(long_run)) as url:
        browser.get(url + "/row/" + quote(LONG_ID, safe=""))
        page_size = browser.execute_script("return document.documentElement.outerHTML.length")
        field = browser.find_element(By.CSS_SELECTOR, 'pre.field[data-name="text"]')
        more = field.find_element(By.CSS_SELECTOR, "a.more")
        shown = field.get_attribute("textContent")
        assert page_size < 200_000 and shown == text[:len(shown) - len(more.text)] + more.text
        assert more.text == "… (20.0 MB more)" and len(shown) > 10_000
        more.click()
        WebDriverWait(browser, WAIT).until(EC.url_contains("/raw?"))
        whole = browser.execute_script(
            "var t = document.body.textContent; return [t.length, t.slice(0, 40), t.slice(-40)]")
        assert whole == [len(text), text[:40], text[-40:]]
