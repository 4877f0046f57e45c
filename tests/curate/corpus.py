"""Seeded short texts for the dedup tests: many are edits or repeats of earlier ones, so
near-duplicates, chains (a row matching only a rejected row) and ties occur."""
import random

WORDS = ("how many errors requests users traces service latency p99 show count by the of "
         "in last hour day week for each group where is slow fast").split()


def edited_texts(n: int, seed: int = 0, *, repeat: float = 0.0, edit: float = 0.45,
                 max_edits: int = 3, max_words: int = 12) -> list[str]:
    """``n`` texts: a ``repeat`` share exact repeats, an ``edit`` share edits (up to
    ``max_edits`` insertions or deletions) of an earlier text, the rest fresh; then three
    texts that tokenise to nothing."""
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(n):
        r = rng.random()
        if texts and r < repeat:
            texts.append(rng.choice(texts))
        elif texts and r < repeat + edit:
            toks = rng.choice(texts).split()
            for _ in range(rng.randint(0, max_edits)):
                j = rng.randrange(len(toks) + 1)
                if toks and rng.random() < 0.5:
                    del toks[min(j, len(toks) - 1)]
                else:
                    toks.insert(j, rng.choice(WORDS))
            texts.append(" ".join(toks))
        else:
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, max_words))))
    return texts + ["", "!!!", "   "]
