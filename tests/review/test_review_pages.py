"""Pages over awkward rows: a 20 MB field shows its start and a link to the whole value, and
row ids holding ``/``, ``?``, ``%`` or ``#`` work in every link."""
from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

from curate.review import create_app
from curate.review.table import RunTable
from review_sample import LONG_ID, ODD_IDS, long_text
from review_served import fetch, served

SMALL_PAGE = 200_000  # bytes: the start of every long value, the markup, the rest of the row


def _more_links(page: str) -> list[tuple[str, str]]:
    """(href, text) of every "… (X MB more)" marker on a page."""
    return [(html.unescape(h), t) for h, t in
            re.findall(r'<a class="more" href="([^"]+)">([^<]*)</a>', page)]


def test_a_20_mb_field_gives_small_pages_and_the_whole_value_on_request(long_run):
    child = RunTable(long_run).children(LONG_ID)[0]
    text = long_text()
    line = (long_run / "export" / "sharegpt.jsonl").read_text().splitlines()[0]
    with served(create_app(long_run)) as url:
        pages = {name: fetch(url + path) for name, path in
                 (("row", f"/row/{quote(LONG_ID, safe='')}"), ("browse", "/"),
                  ("child", f"/row/{quote(child, safe='')}"), ("search", "/?q=a%3Cb"))}
        assert {n: p[0] for n, p in pages.items()} == dict.fromkeys(pages, 200)
        assert {n: len(p[2].encode()) < SMALL_PAGE for n, p in pages.items()} == \
            dict.fromkeys(pages, True)
        links = dict(_more_links(pages["row"][2]))
        whole = {href: fetch(url + href) for href in links}
        child_links = dict(_more_links(pages["child"][2]))
    row_page = pages["row"][2]
    assert '<pre class="field" data-name="text">a&lt;b&gt; &amp; c a&lt;b&gt;' in row_page
    assert set(links.values()) == {"… (20.0 MB more)"} and len(links) == 2
    bodies = {resp[2] for resp in whole.values()}
    assert bodies == {text, line}
    assert all(r[0] == 200 and r[1]["content-type"] == "text/plain; charset=utf-8"
               and r[1]["x-content-type-options"] == "nosniff" for r in whole.values())
    assert json.loads(line)["conversations"][0]["value"] == text
    # the child's lineage shows its own long text and its parent's, each cut with a link
    assert {h for h in child_links if f"id={quote(LONG_ID, safe='')}" in h}
    assert {h for h in child_links if f"id={quote(child, safe='')}" in h}


def test_the_whole_value_route_answers_unknown_rows_and_fields_with_404(long_run):
    with served(create_app(long_run)) as url:
        assert fetch(url + "/raw?id=nope&field=text")[0] == 404
        assert fetch(url + f"/raw?id={quote(LONG_ID)}&field=nope")[0] == 404
        assert fetch(url + f"/raw?id={quote(LONG_ID)}&export=nope")[0] == 404
        assert fetch(url + "/raw?id=%2Fshort%2Frow%3A2&field=text")[2] == "a short row"


def test_row_ids_with_slashes_work_in_every_link(odd_ids_run):
    with served(create_app(odd_ids_run)) as url:
        for row_id in ODD_IDS:
            status, _, page = fetch(url + "/row/" + quote(row_id, safe=""))
            assert status == 200, row_id
            shown = re.search(r'<code id="row-id">([^<]*)</code>', page).group(1)
            assert html.unescape(shown) == row_id
        browse = fetch(url + "/?q=")[2]
        links = [html.unescape(h) for h in re.findall(r'class="row" data-id="[^"]*">\s*<td>'
                                                      r'<a href="([^"]+)"', browse)]
        ids = [html.unescape(i) for i in re.findall(r'class="row" data-id="([^"]*)"', browse)]
        opened = {i: fetch(url + h) for i, h in zip(ids, links)}
    assert set(ODD_IDS) <= set(ids) and len(links) == len(ids)
    for row_id, (status, _, page) in opened.items():
        shown = re.search(r'<code id="row-id">([^<]*)</code>', page).group(1)
        assert status == 200 and html.unescape(shown) == row_id
