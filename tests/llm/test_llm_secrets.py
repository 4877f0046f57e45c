"""The API key never appears in the cache, stats, reprs, reasons, logs or exceptions."""
from __future__ import annotations

import json
import logging
import re

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


KEY = "sk-live/Zq+8x=SENTINEL/k9Qw7"  # a key with characters that encodings change


def _encodings(key: str) -> dict[str, str]:
    import base64
    from urllib.parse import quote, quote_plus

    lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(key, safe=""))
    return {"raw": key, "percent": quote(key, safe=""), "percent, lower case": lower,
            "form": quote_plus(key), "json": json.dumps(key)[1:-1].replace("/", "\\/"),
            "base64": base64.b64encode(key.encode()).decode(),
            "base64 of the header": base64.b64encode(f"Bearer {key}".encode()).decode(),
            "base64url of the header": base64.urlsafe_b64encode(f"Bearer {key}".encode()).decode(),
            "html": key.replace("/", "&#x2F;")}


def test_every_encoding_of_the_key_is_scrubbed_from_what_a_run_writes(server, tmp_path):
    from curate import Pipeline

    forms = _encodings(KEY)
    names = list(forms)

    def reply(body):
        n = int(last_user_message(body).split("row ")[1].split('"')[0])
        if n < len(names):  # an error that quotes the key, encoded one way or another
            return Fault.status(500, message=f"bad credentials {forms[names[n]]} for you")
        return f"not a verdict: your key is {forms[names[n - len(names)]]}"  # a reply

    server.reply = reply
    rows = pd.DataFrame({"nlq": [f"row {i}" for i in range(2 * len(names))]})
    llm = make_llm(server, tmp_path, api_key=KEY, max_tries=1)
    run = Pipeline(source=rows, stages=[Judge(llm, fields=["nlq"], max_errored=1.0)]).run(
        tmp_path / "run", progress=False)
    assert len(run.errored) == 2 * len(names)
    written = "\n".join(p.read_bytes().decode("utf-8", "replace")
                        for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".gz")
    assert "bad credentials *** for you" in written and "your key is ***" in written
    reasons = run.errored["_reason"].tolist() + [json.dumps(run.manifest)]
    for name, form in forms.items():
        assert form not in written and not any(form in r for r in reasons), name


def test_a_key_in_the_base_url_query_is_refused_in_one_line_without_showing_it(monkeypatch):
    url = f"https://llm.example.com/v1?api-key={SECRET}"
    for where in ("argument", "environment"):
        if where == "environment":
            monkeypatch.setenv("OPENAI_BASE_URL", url)
        with pytest.raises(CurateError) as error:
            LLM("m", base_url=url if where == "argument" else None, api_key="x")
        message = str(error.value)
        assert SECRET not in message and "\n" not in message
        assert "?api-key=***" in message and "api_key=" in message
        assert ("OPENAI_BASE_URL" in message) == (where == "environment"), message


def test_a_refused_key_names_where_the_key_came_from(server, tmp_path, monkeypatch):
    server.reply = lambda body: Fault.status(401, message="Incorrect API key provided")
    passed = make_llm(server, tmp_path, max_tries=1).complete("x")
    assert "check the api_key passed to LLM(...)" in passed.reason, passed.reason
    assert "OPENAI_API_KEY" not in passed.reason
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    from_env = make_llm(server, tmp_path, max_tries=1, api_key=None).complete("x")
    assert "check OPENAI_API_KEY" in from_env.reason, from_env.reason
