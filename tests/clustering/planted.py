"""A table with planted topics: questions about four unrelated subjects, written in the same
four frames (so that only the topic's words tell the rows apart), shuffled."""
from __future__ import annotations

import numpy as np
import pandas as pd

WORDS = {
    "baking": ["sourdough bread", "flour", "oven temperature", "butter cookies", "yeast dough",
               "chocolate cake", "pastry crust", "baking soda"],
    "football": ["the striker", "a penalty kick", "the goalkeeper", "the league table",
                 "an offside goal", "the football coach", "the transfer window", "the midfield"],
    "weather": ["the rain forecast", "a snow storm", "strong wind", "the humidity",
                "a thunderstorm", "the weekend temperature", "heavy fog", "the heat wave"],
    "databases": ["a SQL query", "the postgres index", "a table schema migration",
                  "a transaction deadlock", "the database replica", "a slow join",
                  "the primary key", "a query planner"],
}
FRAMES = ["what should I know about {a} and {b}", "how does {a} change {b}",
          "tell me why {a} matters more than {b}", "is {a} related to {b}"]


def planted(per_topic: int = 24, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for topic, words in WORDS.items():
        for i in range(per_topic):
            a, b = rng.choice(len(words), size=2, replace=False)
            rows.append({"text": FRAMES[i % len(FRAMES)].format(a=words[a], b=words[b]),
                         "topic": topic})
    order = rng.permutation(len(rows))
    return pd.DataFrame([rows[i] for i in order]).reset_index(drop=True)
