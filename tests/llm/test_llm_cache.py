"""The response cache: reruns send nothing, keys come from explicit inputs, writers share."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

from conftest import make_llm

from curate.llm import LLM, Request, ResponseCache, Usage, cache_key, use_default_cache_path
from curate.llm.cache import default_cache_path
from curate.testing import Reply, ScriptedServer


def test_a_second_run_sends_zero_requests(server, tmp_path):
    requests = [Request(f"question {i}", temperature=0.7) for i in range(25)]
    first = make_llm(server, tmp_path).complete_many(requests)
    assert server.received == 25
    usage = Usage()
    second = make_llm(server, tmp_path).complete_many(requests, usage=usage)
    assert server.received == 25  # counted at the server: nothing new arrived
    assert [r.text for r in second] == [r.text for r in first]
    assert usage.cached == 25 and usage.requests == 0 and all(r.cached for r in second)


def test_failures_are_not_cached(server, tmp_path):
    from curate.testing import Fault

    server.reply = lambda body: Fault.status(500)
    assert not make_llm(server, tmp_path, max_tries=1).complete("x").ok
    server.reply = lambda body: "fine now"
    assert make_llm(server, tmp_path).complete("x").text == "fine now"


def test_truncated_replies_are_cached_and_still_failures(server, tmp_path):
    server.reply = lambda body: Reply("cut", finish_reason="length")
    for _ in range(2):
        assert make_llm(server, tmp_path).complete("x").code == "llm_truncated"
    assert server.received == 1


def test_the_key_depends_on_content_sample_and_parameters_only(tmp_path):
    base = cache_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0.5}, 0)
    assert base == cache_key("m", [{"role": "user", "content": "hi"}],
                             {"temperature": 0.5, "seed": None}, 0)
    assert base != cache_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0.5}, 1)
    assert base != cache_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0.6}, 0)
    assert base != cache_key("m2", [{"role": "user", "content": "hi"}], {"temperature": 0.5}, 0)


def test_another_endpoint_or_key_with_the_same_model_hits_the_cache(tmp_path):
    with ScriptedServer() as one:
        make_llm(one, tmp_path).complete("portable")
    with ScriptedServer() as two:
        llm = make_llm(two, tmp_path, api_key="sk-another-key")
        assert llm.complete("portable").cached and two.received == 0


def test_sample_index_gives_distinct_entries(server, tmp_path):
    llm = make_llm(server, tmp_path)
    llm.complete_many([Request("same", sample=s) for s in range(3)])
    assert server.received == 3 and len(ResponseCache(tmp_path / "llm.sqlite")) == 3


def test_default_path_comes_from_the_context(server, tmp_path):
    run_cache = tmp_path / "run" / "cache" / "llm.sqlite"
    llm = LLM("scripted", base_url=server.base_url, api_key="x")  # cache=True: the default
    with use_default_cache_path(run_cache):
        assert default_cache_path() == run_cache
        llm.complete("inside the run")
    assert run_cache.exists() and len(ResponseCache(run_cache)) == 1
    assert default_cache_path() == tmp_path / "default-cache" / "llm.sqlite"


WRITER = textwrap.dedent("""
    import sys
    from curate.llm.cache import ResponseCache
    cache = ResponseCache(sys.argv[1])
    who = sys.argv[2]
    for i in range(150):
        cache.put(f"{who}-{i}", "m", {"text": f"{who} {i}"})
        cache.put(f"shared-{i}", "m", {"text": f"shared {i}"})
""")


def test_concurrent_writers_from_several_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResponseCache(path)  # create the schema first, as a run would
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{n}"])
             for n in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 3 * 150 + 150
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_unusable_cache_path_is_a_clear_error(server, tmp_path):
    from curate.errors import CurateError

    (tmp_path / "a-file").write_text("not a folder")
    llm = make_llm(server, tmp_path, cache=tmp_path / "a-file" / "llm.sqlite")
    try:
        llm.complete("x")
    except CurateError as error:
        assert "cannot open the LLM response cache" in str(error)
        assert "CURATE_CACHE_DIR" in str(error)
    else:
        raise AssertionError("expected a CurateError")
    assert server.received == 0
