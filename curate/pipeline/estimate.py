"""What a pipeline's LLM stages would send and cost, worked out before anything is sent.

``python -m curate.pipeline spec.py --estimate`` (or :func:`estimate_pipeline`) prints, per
LLM stage, the rows it would see, its requests (and how many the response cache already
answers), estimated tokens and the cost online and in batch mode, with the most retries
could add. An LLM stage builds its first round's requests with its own code and no client
(``planned_requests``) and says what it would pass on without a reply (``planned_output``);
every other stage runs for real, so each LLM stage sees the rows a run would give it. The
method (``METHOD``, ``ASSUMED``) is printed with every estimate and explained in
``curate/llm/README.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import CurateError
from ..llm.accounting import batch_price_of, cost_of, price_of
from ..llm.limits import DEFAULT_COMPLETION, completion_bound, prompt_tokens

FOLLOWUP_TOKENS = 60      # the correction or feedback message of a retry round
METHOD = ("prompt tokens = characters/4 + 4 per message + 3 per reply (+ the schema's "
          "characters/4 where OpenAI receives it); completion tokens = max_tokens, the bound "
          f"({DEFAULT_COMPLETION} where unset); no OpenAI tokenizer is available offline")
ASSUMED = ("stages without an LLM run on the planned rows; an LLM stage passes on every row "
           "it gets, its columns empty, and an Augment a copy of the parent per request; a "
           "`when` that reads an earlier LLM stage's column chooses the row; 'at most' is "
           "each stage's max_rounds: corrective retries (x2), Repair's max_attempts")


def _schema_counted(llm) -> bool:
    """Whether the endpoint counts a structured-output schema as prompt (OpenAI does)."""
    host_is_openai = "api.openai.com" in (llm.base_url or "")
    return llm.backend is None and (llm.structured == "openai" or
                                    (llm.structured == "auto" and host_is_openai))


def _cached_keys(llm, keys: list[str]) -> set[str]:
    """The keys already in the client's response cache (a missing file is not created)."""
    from ..llm.cache import ResponseCache, default_cache_path, open_cache

    cache = llm.cache
    if cache is None or cache is False:
        return set()
    if not isinstance(cache, ResponseCache):
        path = default_cache_path() if cache is True else Path(cache).expanduser()
        if not path.exists():
            return set()
        cache = open_cache(path)
    return set(cache.get_many(keys))


@dataclass
class StageEstimate:
    """One LLM stage's estimate (tokens and costs are for the requests not cached)."""

    stage: str
    model: str
    rows: int
    requests: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    online_usd: float
    batch_usd: float
    max_requests: int
    max_online_usd: float
    max_batch_usd: float
    batch_mode: bool
    priced: bool


def estimate_stage(stage, df: pd.DataFrame, unknown_columns=()) -> StageEstimate:
    """The estimate of one LLM stage on ``df`` (sends nothing)."""
    llm = stage.llm
    resolved = [llm.resolve(r) for r in stage.planned_requests(df, unknown_columns)]
    keys = [llm.key(r) for r in resolved]
    cached = _cached_keys(llm, keys)
    todo = [r for k, r in zip(keys, resolved) if k not in cached]
    counted = _schema_counted(llm)
    prompt = sum(prompt_tokens(r, counted) for r in todo)
    completion = sum(completion_bound(r) for r in todo)
    rounds = stage.max_rounds
    growth = sum((completion_bound(r) + FOLLOWUP_TOKENS) for r in todo)
    max_prompt = rounds * prompt + growth * rounds * (rounds - 1) // 2
    options = llm.batch
    batch_price = batch_price_of(llm.model, llm.prices, getattr(options, "prices", None),
                                 getattr(options, "discount", None))
    online_price = price_of(llm.model, llm.prices)

    def costs(p: int, c: int) -> tuple[float, float]:
        if llm.backend is not None or online_price is None:
            return 0.0, 0.0
        return (cost_of(llm.model, p, c, llm.prices),
                cost_of(llm.model, p, c, llm.prices, price=batch_price))

    online, batch = costs(prompt, completion)
    max_online, max_batch = costs(max_prompt, rounds * completion)
    return StageEstimate(stage.name, llm.model, rows=len(df), requests=len(resolved),
                         cached=len(resolved) - len(todo), prompt_tokens=prompt,
                         completion_tokens=completion, online_usd=online, batch_usd=batch,
                         max_requests=rounds * len(todo), max_online_usd=max_online,
                         max_batch_usd=max_batch,
                         batch_mode=options is not None and llm.backend is None,
                         priced=llm.backend is not None or online_price is not None)


@dataclass
class PipelineEstimate:
    """Every LLM stage's estimate, and what the figures assume."""

    name: str
    source_rows: int
    stages: list[StageEstimate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def total(self, name: str):
        return sum(getattr(s, name) for s in self.stages)

    def render(self) -> str:
        """The estimate as the terminal shows it: a table, then the method and assumptions."""
        head = ("stage", "model", "rows", "requests", "cached", "prompt tok", "compl. tok",
                "online $", "batch $", "at most: requests", "online $", "batch $")
        rows = [(s.stage, s.model, s.rows, s.requests, s.cached, s.prompt_tokens,
                 s.completion_tokens, s.online_usd, s.batch_usd, s.max_requests,
                 s.max_online_usd, s.max_batch_usd) for s in self.stages]
        names = ("requests", "cached", "prompt_tokens", "completion_tokens",
                 "online_usd", "batch_usd", "max_requests", "max_online_usd", "max_batch_usd")
        rows.append(("total", "", "", *(self.total(n) for n in names)))
        cells = [head] + [tuple(_cell(v) for v in row) for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
        lines = [f"Estimate for pipeline {self.name!r}: {self.source_rows} source rows, "
                 f"{len(self.stages)} LLM stage(s); nothing was sent.", ""]
        for row in cells:
            lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))))
        lines += ["", f"how: {METHOD}.", f"assumed: {ASSUMED}.", *self.notes]
        unpriced = sorted({s.model for s in self.stages if not s.priced})
        if unpriced:
            lines.append(f"no price for {', '.join(unpriced)}: its cost shows as 0 (set one "
                         f"with --price MODEL=IN,OUT or curate.llm.accounting.set_price)")
        modes = {s.stage: "batch" if s.batch_mode else "online" for s in self.stages}
        lines.append("mode of each stage's client: " +
                     ", ".join(f"{k} {v}" for k, v in modes.items()) if modes else
                     "the pipeline has no LLM stage")
        return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def estimate_pipeline(pipeline, limit: int | None = None, out=None) -> PipelineEstimate:
    """Estimate every LLM stage of ``pipeline`` on its source (sends nothing). With
    ``out``, a run folder, the requests its response cache holds count as cached."""
    from ..llm.cache import use_default_cache_path

    if out is None:
        return _estimate(pipeline, limit)
    with use_default_cache_path(Path(out) / "cache" / "llm.sqlite"):
        return _estimate(pipeline, limit)


def _estimate(pipeline, limit: int | None) -> PipelineEstimate:
    current = pipeline.load_source(limit)
    estimate = PipelineEstimate(pipeline.name, len(current))
    unknown: set[str] = set()  # columns only replies write
    for stage in pipeline.stages:
        if callable(getattr(stage, "planned_requests", None)):
            estimate.stages.append(estimate_stage(stage, current, unknown))
            current = stage.planned_output(stage.prepare_input(current), unknown)
            unknown |= {str(c) for c in stage.added_columns()}
        else:
            current = _ran(stage, current, estimate.notes)
    return estimate


def _ran(stage, df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The rows a stage without an LLM keeps, run for real on the planned rows; its input
    when it cannot run on them (a column only a reply would fill), with a note."""
    from ..core.stage import TooManyRowErrors
    from ..progress import run_progress

    try:
        with run_progress(enabled=False):
            return stage.run(df).kept
    except TooManyRowErrors as error:
        return error.result.kept
    except CurateError as error:
        notes.append(f"{stage.name} could not run on the planned rows ({error}); its input "
                     f"was passed on")
        return df
