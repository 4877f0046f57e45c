"""The API key never appears in the cache, stats, reprs, reasons, logs or exceptions."""
from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from conftest import SECRET, make_llm

from curate.errors import CurateError
from curate.llm import LLM, Request
from curate.stages.llm.judge import Judge
from curate.testing import Fault, last_user_message


def _leaky(body):
    text = last_user_message(body)
    if "echo" in text:  # a proxy that repeats the Authorization header in its error
        return Fault.status(500, message="upstream rejected {authorization}")
    if "denied" in text:
        return Fault.status(401, message="Incorrect API key provided: {authorization}")
    return json.dumps({"critique": "fine", "outcome": "good"})


def test_the_key_never_leaks(server, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    server.reply = _leaky
    llm = make_llm(server, tmp_path, max_tries=2)
    direct = llm.complete_many([Request("echo me"), Request("denied"), Request("ok")])
    rows = pd.DataFrame({"nlq": ["echo this", "denied here", "fine row"]})
    judge = Judge(llm, fields=["nlq"], max_errored=1.0)
    result = judge.run(rows)
    assert len(result.errored) == 2 and direct[0].code == "llm_request_failed"
    assert "***" in direct[0].reason and "HTTP 401" in direct[1].reason

    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    texts = [repr(llm), str(llm), llm.fingerprint(), repr(llm.__dict__),
             json.dumps(judge.params()), judge.fingerprint().digest, json.dumps(result.stats),
             *(r.reason for r in direct if not r.ok),
             *(part.to_csv() for part in (result.kept, result.rejected, result.errored)),
             caplog.text, *capsys.readouterr()]
    with pytest.raises(CurateError) as error:
        LLM(base_url=f"http://user:{SECRET}@127.0.0.1:9/v1", api_key=SECRET)
    texts.append(str(error.value))
    assert len(written) > 0
    assert SECRET.encode() not in written
    for text in texts:
        assert SECRET not in text


def test_the_key_is_used_and_scrubbed_from_what_the_server_echoes(server, tmp_path):
    # the sentinel above is really the key in use: the server saw it and echoed it back
    server.reply = lambda body: Fault.status(500, message="{authorization}")
    result = make_llm(server, tmp_path, max_tries=1).complete("x")
    assert result.reason == "HTTP 500: Bearer *** (gave up after 1 try)"
