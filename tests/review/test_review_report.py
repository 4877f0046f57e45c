"""The static report: it names the review app's command and shows escaped example rows of
every stage."""
from __future__ import annotations

import re

from selenium.webdriver.common.by import By

from curate import Filter, Pipeline

ROWS = [{"text": "<script>alert('kept')</script> stays"},
        {"text": '<img src=x onerror="alert(1)"> goes'},
        {"text": "a plain row that stays"},
        {"text": "a plain row that goes"}]


def stays(row):
    return True if "stays" in row["text"] else (False, "goes", f"{row['text'][:12]!r} goes")


def test_report_names_the_app_and_shows_escaped_examples_per_stage(tmp_path, browser):
    out = tmp_path / "run"
    Pipeline(source=ROWS, stages=[Filter(stays, name="stays_only")], name="tiny").run(
        out, progress=False)
    page = (out / "report.html").read_text()
    assert f"python -m curate.review {out}" in page
    assert "<script" not in page and "<img" not in page
    examples = page[page.index('id="stage-examples"'):page.index('id="distribution"')]
    assert "&lt;script&gt;alert(&#39;kept&#39;)&lt;/script&gt; stays" in examples
    assert examples.count('class="rejected-example"><b><code>goes</code></b>') == 2
    browser.get(out.joinpath("report.html").as_uri())
    kept = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "td.kept-example")]
    assert {re.sub(r"\s+", " ", k) for k in kept} == {str({"text": r["text"]}) for r in ROWS
                                                      if "stays" in r["text"]}
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.find_elements(By.TAG_NAME, "script") == []
