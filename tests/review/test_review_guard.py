"""The guard against DNS rebinding: only exact loopback Host headers (and the configured
host) are served, with no port or the served port; and the form limits."""
from __future__ import annotations

import pytest

from curate.review import create_app
from curate.review.app import MAX_FORM_BYTES
from curate.review.guard import is_loopback
from curate.review.labels import Walk, judged_stages
from curate.review.table import RunTable
from review_served import fetch, form_token, served

ACCEPTED = ["127.0.0.1:{port}", "127.0.0.1", "localhost:{port}", "localhost", "LocalHost",
            "127.0.0.2:{port}", "127.255.255.254", "[::1]:{port}", "[::1]"]
REFUSED = ["127.0.0.1.evil.example", "127.0.0.1.evil.example:{port}", "127.evil.example",
           "127.0.0.1.nip.io:{port}", "localhost.evil.example", "evil.localhost",
           "127.0.0.1:{other}", "localhost:{other}", "[::1]:{other}", "127.0.0.1:",
           "127.0.0.1:{port}:{port}", "127.1", "127.0.0.01", "0x7f.0.0.1", "2130706433",
           "128.0.0.1", "::1", "[::1].evil.example", "[::2]", "attacker.example",
           "attacker.example:{port}", "127.0.0.1 evil", ""]


def test_loopback_host_names_are_whole_addresses():
    assert [is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "localhost", "::1", "[::1]")] \
        == [True] * 5
    assert [is_loopback(h) for h in ("127.0.0.1.evil.example", "127.evil", "127.1", "0.0.0.0",
                                     "localhost.example", "192.168.1.2", "")] == [False] * 7


def test_only_exact_loopback_hosts_are_served(judged_run):
    with served(create_app(judged_run)) as url:
        port = int(url.rsplit(":", 1)[1])
        status = {host: fetch(url + "/", headers={"Host": host.format(
            port=port, other=port + 1)})[0] for host in ACCEPTED + REFUSED}
    assert {h: s for h, s in status.items() if h in ACCEPTED} == dict.fromkeys(ACCEPTED, 200)
    assert {h: s for h, s in status.items() if h in REFUSED} == dict.fromkeys(REFUSED, 403)


def test_the_configured_host_is_served_too(judged_run):
    with served(create_app(judged_run, host="review.internal")) as url:
        port = url.rsplit(":", 1)[1]
        assert fetch(url + "/", headers={"Host": f"review.internal:{port}"})[0] == 200
        assert fetch(url + "/", headers={"Host": f"review.internal.evil:{port}"})[0] == 403


def test_a_rebound_host_cannot_read_rows_or_write_labels(judged_run):
    table = RunTable(judged_run)
    row_id = Walk(table, judged_stages(table)[0]).ids[0]
    evil = {"Host": "127.0.0.1.evil.example"}
    with served(create_app(judged_run)) as url:
        token = form_token(fetch(url + "/label/" + row_id)[2])
        status, _, body = fetch(url + "/row/" + row_id, headers=evil)
        assert status == 403 and row_id not in body
        form = {"form_token": token, "expert_outcome": "bad"}
        assert fetch(url + "/label/" + row_id + "?judge=judge", form=form, headers=evil)[0] == 403
    assert not (judged_run / "review" / "labels.csv").exists()


@pytest.mark.parametrize("size", [MAX_FORM_BYTES + 1, 3 * MAX_FORM_BYTES])
def test_an_oversized_form_is_refused_as_too_large(judged_run, size):
    table = RunTable(judged_run)
    row_id = Walk(table, judged_stages(table)[0]).ids[0]
    with served(create_app(judged_run)) as url:
        token = form_token(fetch(url + "/label/" + row_id)[2])
        form = {"form_token": token, "expert_outcome": "bad", "expert_critique": "x" * size}
        status, headers, body = fetch(url + "/label/" + row_id + "?judge=judge", form=form)
    assert status == 413 and headers["content-type"].startswith("text/plain")
    assert body == f"the form is larger than {MAX_FORM_BYTES // 1000} KB: shorten the " \
                   "critique or the corrected answer\n"
    assert not (judged_run / "review" / "labels.csv").exists()
