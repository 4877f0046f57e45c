"""Cluster names written by an LLM, through the client, against a real loopback HTTP server."""
from __future__ import annotations

import numpy as np

from curate import LLM
from curate.clustering import cluster_table
from curate.testing import ScriptedServer
from curate.testing.server import last_user_message

TEXTS = ["how long to bake sourdough bread", "which flour for a chocolate cake",
         "oven temperature for butter cookies", "who scored the penalty kick",
         "did the goalkeeper save it", "the striker signed in the transfer window",
         "rain forecast for the weekend", "is a snow storm coming"]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2])


def reply(body) -> str:
    text = last_user_message(body)
    if "flour" in text:
        return '"Baking at home."\n(about ovens and doughs)'
    if "goalkeeper" in text:
        return "Football matches"
    return ""  # no name: the cluster keeps its words


def test_an_llm_names_each_cluster_from_its_texts_and_words(tmp_path):
    with ScriptedServer(reply) as server:
        llm = LLM("scripted", base_url=server.base_url, api_key="sk-test",
                  cache=tmp_path / "llm.sqlite", timeout=2, max_tries=1)
        table = cluster_table(TEXTS, LABELS, words=2, llm=llm)
        asked = [last_user_message(b) for b in server.bodies]
    names = dict(zip(table["cluster"], table["name"]))
    assert names[0] == "Baking at home" and names[1] == "Football matches"
    assert names[2] == " · ".join(table.set_index("cluster").loc[2, "words"])
    assert len(asked) == 3
    baking = next(a for a in asked if "flour" in a)
    assert all(f"- {t}" in baking for t in TEXTS[:3]) and "goalkeeper" not in baking
    assert ", ".join(table.set_index("cluster").loc[0, "words"]) in baking
