"""Shared fixtures: a scripted loopback server and a client tuned for fast tests."""
from __future__ import annotations

import pandas as pd
import pytest

from curate.llm import LLM
from curate.core.table import ID, PARENT, REASON, REASON_CODE, assign_ids
from curate.testing import ScriptedModel, ScriptedServer

SECRET = "sk-SENTINEL-5f3a9c0d7e21b8"


@pytest.fixture(autouse=True)
def offline_env(tmp_path, monkeypatch):
    """No endpoint from the environment, and a private default cache per test."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "CURATE_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "default-cache"))


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


def make_llm(server, tmp_path, **overrides) -> LLM:
    options = dict(base_url=server.base_url, api_key=SECRET, cache=tmp_path / "llm.sqlite",
                   timeout=0.5, max_tries=3, backoff=0.01, max_backoff=0.05, concurrency=8)
    model = overrides.pop("model", "scripted")
    options.update(overrides)
    return LLM(model, **options)


def scripted(reply=None, *replies, **options):
    """``(llm, model)``: a client on an in-process :class:`ScriptedModel` that answers with
    ``replies`` in turn, then ``reply(request)``: for the logic of a stage."""
    model = ScriptedModel(*replies, reply=reply)
    return model.client(**options), model


def messages_of(sent) -> list[dict]:
    """The messages of a request the scripted model saw, or of a request body a server got."""
    return sent["messages"] if isinstance(sent, dict) else sent.messages


def assert_accounted(df_in: pd.DataFrame, result) -> None:
    """Every input row ends kept, rejected or errored (with a reason), or is the parent of
    an output row that replaces it; rejected and errored rows say why."""
    df_in = assign_ids(df_in)
    parts = [result.kept, result.rejected, result.errored]
    out_ids = set(pd.concat([p[ID] for p in parts]))
    parents = set(pd.concat([p[PARENT] for p in parts]).dropna())
    for row_id in df_in[ID]:
        assert row_id in out_ids or row_id in parents, row_id
    for part in (result.rejected, result.errored):
        if len(part):
            assert part[REASON_CODE].notna().all() and (part[REASON_CODE] != "").all()
            assert part[REASON].notna().all() and (part[REASON].str.len() > 0).all()
