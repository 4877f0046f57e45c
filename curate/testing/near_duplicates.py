"""Seeded, self-contained text for near-duplicate checks: labelled pairs and large corpora.

Telemetry questions from templates and slot values, and generic sentences from a small
grammar; :func:`labelled_pairs` pairs them by :data:`KINDS` of edit, :func:`make_corpus`
returns texts of which a known share are edits of an earlier one.

    >>> pairs = labelled_pairs(per_kind=2, seed=0)
    >>> sorted(set(p.kind for p in pairs))[:3]
    ['deletion', 'insertion', 'paraphrase']
"""
from __future__ import annotations

import random
from dataclasses import dataclass

METRICS = ["p99 latency", "p95 latency", "p50 latency", "error rate", "request count",
           "cpu usage", "memory usage", "throughput", "cache hit ratio", "queue depth",
           "db query time", "retry count", "timeout rate", "payload size", "cold starts",
           "gc pause time", "open connections", "disk io", "dropped spans", "5xx responses",
           "4xx responses", "saturation", "thread count", "heap size", "network egress",
           "lock wait time", "replication lag", "consumer lag", "span count", "apdex score"]
SERVICES = ["checkout", "payments", "auth", "search", "frontend", "inventory", "shipping",
            "recommendations", "billing", "notifications", "gateway", "users", "catalog",
            "orders", "analytics", "email", "profile", "cart", "reviews", "ads", "ledger",
            "pricing", "media", "uploads", "scheduler", "webhooks", "exports", "tenants",
            "identity", "geo", "quotes", "refunds", "loyalty", "fraud", "chat", "feeds"]
UNITS = ["minutes", "hours", "days"]
GROUPS = ["by endpoint", "by region", "by customer", "by host", "by version", "by status",
          "per pod", "by user agent", "by http method", "by zone", "by team", "per tenant",
          "by build", "by container", "by route", "by country", "by device", "by plan"]
FILTERS = ["for status 500", "for slow requests", "excluding health checks",
           "for mobile clients", "on the free plan", "in the eu cluster", "with errors",
           "on canary hosts", "with more than three retries", "when the cache is cold",
           "for enterprise accounts", "from the android app", "behind the new balancer",
           "with the dark mode flag", "for internal traffic", "for first time visitors"]
TEMPLATES = [
    "what is the {m} of the {s} service over the last {w} {g}",
    "show me the {m} for {s} during the past {w} {f}",
    "plot {m} {g} for the {s} service over the last {w}",
    "how did the {m} of {s} change in the last {w} {f}",
    "are there spikes in {m} on {s} over the past {w} {g}",
    "compare the {m} of {s} and {s2} over the last {w}",
    "list the top {k} {g2}s by {m} for {s} {f}",
    "why is the {m} so high for {s} in the last {w}",
    "give me a breakdown of {m} {g} for {s} {f}",
    "alert me when the {m} of {s} goes above {k} over {w}",
    "count {m} events for {s} {g} during the last {w}",
    "find traces from {s} {f} sorted by {m} over the past {w}",
]
SCOPES = ["for customer {n}", "on host web-{n}", "for order {n}", "in build {n}",
          "for tenant t{n}", "on pod api-{n}", "for user {n}", "for trace {n}"]
OPENINGS = ["", "", "", "please ", "quick question ", "hey ", "can you tell me ", "i need to know "]
SUBJECTS = ["engineer", "manager", "student", "doctor", "farmer", "pilot", "teacher", "artist",
            "chef", "driver", "writer", "nurse", "lawyer", "painter", "baker", "sailor",
            "miner", "tailor", "singer", "gardener", "scientist", "captain", "clerk", "judge"]
ADJECTIVES = ["careful", "tired", "young", "old", "quiet", "busy", "clever", "patient",
              "curious", "nervous", "cheerful", "honest", "lazy", "brave", "polite", "angry",
              "gentle", "proud", "shy", "calm", "eager", "famous", "humble", "strict"]
VERBS = ["reviewed", "repaired", "painted", "described", "ignored", "carried", "cleaned",
         "measured", "studied", "ordered", "returned", "finished", "opened", "sold",
         "borrowed", "collected", "photographed", "packed", "checked", "moved", "sorted"]
OBJECTS = ["report", "bicycle", "kitchen", "letter", "garden", "engine", "contract", "map",
           "window", "painting", "recipe", "basket", "ledger", "telescope", "piano", "boat",
           "fence", "lamp", "carpet", "camera", "violin", "notebook", "tractor", "bridge"]
ADVERBS = ["quietly", "quickly", "slowly", "carefully", "proudly", "gladly", "rarely",
           "nearly", "barely", "suddenly", "openly", "secretly", "gently", "eagerly"]
TIMES = ["before the meeting", "after lunch", "on sunday", "during the storm", "at dawn",
         "late last night", "before the holidays", "after the long trip", "in the spring",
         "every morning", "at the market", "near the old station", "by the river"]
SYNONYMS = {"what is": "tell me", "show me": "display", "plot": "chart", "last": "previous",
            "past": "previous", "over": "across", "during": "within", "service": "app",
            "compare": "contrast", "spikes": "jumps", "high": "elevated", "find": "look up",
            "give me": "provide", "count": "tally", "list": "rank", "change": "evolve",
            "breakdown": "split", "alert me": "notify me", "events": "occurrences",
            "reviewed": "examined", "repaired": "fixed", "careful": "cautious",
            "quickly": "rapidly", "old": "aging", "quiet": "silent", "busy": "occupied",
            "cleaned": "tidied", "studied": "examined", "finished": "completed",
            "before": "prior to", "after": "following", "the": "that", "slowly": "gradually"}
FILLERS = ["now", "today", "again", "exactly", "roughly", "overall", "also", "first"]
KINDS = ("substitution", "deletion", "insertion", "reorder", "paraphrase", "same_template",
         "unrelated")


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    kind: str


def _slots(rng: random.Random) -> dict:
    group = rng.choice(GROUPS)
    n = rng.choice([1, 2, 3, 5, 6, 10, 12, 15, 24, 30, 45, 90])
    return {"m": rng.choice(METRICS), "s": rng.choice(SERVICES), "s2": rng.choice(SERVICES),
            "w": f"{n} {rng.choice(UNITS)}", "g": group, "g2": group.split()[-1],
            "f": rng.choice(FILTERS), "k": rng.randint(3, 500)}


def telemetry(rng: random.Random, template: str | None = None) -> str:
    """A question from a template, its slots and a scope drawn from 80,000 ("on pod
    api-4821"), so that two questions rarely differ in one slot only by chance."""
    scope = rng.choice(SCOPES).format(n=rng.randint(1, 10_000))
    text = rng.choice(OPENINGS) + (template or rng.choice(TEMPLATES)).format(**_slots(rng))
    return " ".join(f"{text} {scope}".split())


def sentence(rng: random.Random) -> str:
    return (f"the {rng.choice(ADJECTIVES)} {rng.choice(SUBJECTS)} {rng.choice(ADVERBS)} "
            f"{rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} {rng.choice(OBJECTS)} of the "
            f"{rng.choice(SUBJECTS)} {rng.choice(TIMES)}")


def any_text(rng: random.Random, generic_share: float = 0.3) -> str:
    return sentence(rng) if rng.random() < generic_share else telemetry(rng)


_WORDS = sorted(set(" ".join(METRICS + SERVICES + GROUPS + FILTERS + SUBJECTS + ADJECTIVES
                             + VERBS + OBJECTS + ADVERBS + TIMES).split()))


def substitute(text: str, rng: random.Random) -> str:
    words = text.split()
    i = rng.randrange(len(words))
    words[i] = rng.choice([w for w in _WORDS if w != words[i]])
    return " ".join(words)


def delete(text: str, rng: random.Random) -> str:
    words = text.split()
    del words[rng.randrange(len(words))]
    return " ".join(words)


def insert(text: str, rng: random.Random) -> str:
    words = text.split()
    words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
    return " ".join(words)


def reorder(text: str, rng: random.Random) -> str:
    """Move the tail of the text (from a random word on) to the front."""
    words = text.split()
    cut = rng.randrange(max(2, len(words) // 3), max(3, len(words) - 1))
    return " ".join(words[cut:] + words[:cut])


def paraphrase(text: str, rng: random.Random) -> str:
    """Swap every phrase that has a synonym (left to right) and change the opening."""
    out = f" {text} "
    for phrase, other in SYNONYMS.items():
        if f" {phrase} " in out and rng.random() < 0.8:
            out = out.replace(f" {phrase} ", f" {other} ", 1)
    opening = rng.choice(["could you", "i wonder", "quickly", "help me understand"])
    return " ".join(f"{opening} {out}".split())


EDITS = {"substitution": substitute, "deletion": delete, "insertion": insert,
         "reorder": reorder, "paraphrase": paraphrase}


def labelled_pairs(per_kind: int = 300, seed: int = 0) -> list[Pair]:
    """``per_kind`` pairs of each kind in :data:`KINDS`, deterministic for a seed."""
    rng = random.Random(seed)
    pairs = []
    for kind in KINDS:
        for _ in range(per_kind):
            base = any_text(rng)
            if kind == "unrelated":
                pairs.append(Pair(base, any_text(rng), kind))
            elif kind == "same_template":
                template = rng.choice(TEMPLATES)
                pairs.append(Pair(telemetry(rng, template), telemetry(rng, template), kind))
            else:
                pairs.append(Pair(base, EDITS[kind](base, rng), kind))
    return pairs


def make_corpus(n: int, seed: int = 0, near_dup_share: float = 0.2):
    """(texts, source) where ``source[i]`` is the index of the text that text i is a
    one-word edit or reordering of (None for an original); about ``near_dup_share`` of the
    texts are such edits of an earlier original."""
    rng = random.Random(seed)
    texts: list[str] = []
    source: list[int | None] = []
    originals: list[int] = []
    edits = [substitute, delete, insert, reorder]
    while len(texts) < n:
        if originals and rng.random() < near_dup_share:
            i = originals[rng.randrange(len(originals))]
            texts.append(rng.choice(edits)(texts[i], rng))
            source.append(i)
        else:
            originals.append(len(texts))
            texts.append(any_text(rng))
            source.append(None)
    return texts, source
