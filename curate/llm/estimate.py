"""What a pipeline's LLM stages would send and cost, worked out before anything is sent.

``python -m curate.pipeline spec.py --estimate`` (or :func:`estimate_pipeline`) prints, per
LLM stage: the rows it would see, its requests (and how many the response cache already
answers), estimated prompt and completion tokens, and the cost online and in batch mode,
with the most that retries could add. Nothing reaches an endpoint: each stage builds its
requests in a *dry run* (:func:`dry_run`) where the client answers none of them.

The method, printed with every estimate:

- **requests**: a stage's first round, built as the run builds it (its prompt functions run
  on the rows); requests in the response cache are free (a run also sends identical
  requests once: a table with duplicate rows costs less than estimated);
- **prompt tokens**: characters / 4 of each message plus 4 per message and 3 per reply
  (OpenAI's rule of thumb for English and its chat format's overhead), plus the JSON
  Schema's characters / 4 where OpenAI receives it as a structured-output request. No
  OpenAI tokenizer is available offline, so this is an approximation (code, JSON and
  other languages take more tokens per character). The client's ``tpm`` limiter starts
  from the same estimate and corrects it from the prompt tokens replies report;
- **completion tokens**: each request's ``max_tokens`` (256 where none is set), the most a
  reply can take: the completion figures and costs are upper estimates;
- **rows**: stages are not run (a ``Sample`` is: it draws rows without looking at
  replies), so each is assumed to keep its input; an ``Augment`` adds one row per request
  (a copy of its parent: ``keep="new"`` replaces each row by its copies); a ``when`` that
  reads a column an earlier LLM stage writes counts every row as chosen;
- **at most**: a corrective retry can double a parsing stage's requests, a ``Repair`` can
  take ``max_attempts`` rounds (each resending the conversation so far); ``Vote`` has no
  retry round.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .accounting import batch_price_of, cost_of, price_of
from .limits import DEFAULT_COMPLETION, completion_bound, prompt_tokens
from .types import REQUEST_FAILED, Failure, Request

FOLLOWUP_TOKENS = 60      # the correction or feedback message of a retry round
METHOD = ("prompt tokens = characters/4 + 4 per message + 3 per reply (+ the schema's "
          "characters/4 where OpenAI receives it); completion tokens = max_tokens, the bound "
          f"({DEFAULT_COMPLETION} where unset); no OpenAI tokenizer is available offline")
ASSUMED = ("stages other than Sample are not run: each keeps its input; Augment adds one "
           "copy of its parent per request; a `when` that reads an earlier LLM stage's "
           "column chooses every row; 'at most' adds corrective retries (x2) and Repair's "
           "max_attempts rounds")


# -- the dry run --------------------------------------------------------------------------
class _Recorder:
    """Stands in for the client in a dry run: records every request, answers none."""

    def __init__(self, llm):
        self._llm, self.requests = llm, []

    def __getattr__(self, name):
        return getattr(self._llm, name)

    def complete_many(self, requests, *, usage=None, on_result=None):
        out = []
        for index, request in enumerate(requests):
            self.requests.append(request if isinstance(request, Request) else Request(request))
            failure = Failure(REQUEST_FAILED, "dry run: nothing is sent")
            if on_result is not None:
                on_result(index, failure)
            out.append(failure)
        return out


class _Unknown(BaseException):
    """A ``when`` function read a column no stage has written yet."""


class _ProbeRow(dict):
    def __init__(self, row: dict, unknown: set):
        super().__init__(row)
        self._unknown = unknown

    def _check(self, key):
        if key in self._unknown:
            raise _Unknown()

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._check(key)
        return super().__contains__(key)


class _ChosenWhenUnknown:
    def __init__(self, when, unknown: set):
        self.when, self.unknown = when, unknown

    def __call__(self, row):
        try:
            return self.when(_ProbeRow(row, self.unknown))
        except _Unknown:
            return True


def dry_run(stage, df: pd.DataFrame, unknown_columns=()) -> list[Request]:
    """The requests ``stage`` (an LLM stage) would send first for ``df``; none is sent."""
    from ..core.stage import TooManyRowErrors
    from ..progress import run_progress

    recorder = _Recorder(stage.llm)
    saved_llm, saved_when = stage.llm, stage.when
    stage.llm = recorder
    if saved_when is not None and unknown_columns:
        stage.when = _ChosenWhenUnknown(saved_when, set(unknown_columns))
    try:
        with run_progress(enabled=False):
            stage.run(df)
    except TooManyRowErrors:
        pass  # every row errors in a dry run (no replies); the requests are what counts
    finally:
        stage.llm, stage.when = saved_llm, saved_when
    return recorder.requests


# -- tokens and cost ----------------------------------------------------------------------
def _schema_counted(llm) -> bool:
    """Whether the endpoint counts a structured-output schema as prompt (OpenAI does)."""
    host_is_openai = "api.openai.com" in (llm.base_url or "")
    return llm.backend is None and (llm.structured == "openai" or
                                    (llm.structured == "auto" and host_is_openai))


def _cached_keys(llm, keys: list[str]) -> set[str]:
    """The keys already in the client's response cache (a missing file is not created)."""
    from .cache import ResponseCache, default_cache_path, open_cache

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


def _rounds(stage) -> int:
    from ..stages.llm.repair import Repair
    from ..stages.llm.vote import Vote

    if isinstance(stage, Repair):
        return stage.max_attempts
    return 1 if isinstance(stage, Vote) else 2


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
    rounds = _rounds(stage)
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
    return StageEstimate(stage.name, llm.model, len(df), len(resolved),
                         len(resolved) - len(todo), prompt,
                         completion, online, batch, rounds * len(todo), max_online,
                         max_batch, options is not None and llm.backend is None,
                         llm.backend is not None or online_price is not None)


def next_input(stage, df: pd.DataFrame) -> pd.DataFrame:
    """What the estimate assumes the stage passes on (see the module docstring)."""
    from ..core.table import ID
    from ..stages.llm.augment import Augment

    if not isinstance(stage, Augment):
        return df
    copies = [df.assign(**{ID: df[ID].astype(str) + f"~estimate{s}"}) for s in range(stage.n)]
    parts = ([df] if stage.keep == "all" else []) + copies
    return pd.concat(parts, ignore_index=True) if parts else df


@dataclass
class PipelineEstimate:
    """Every LLM stage's estimate, and what the figures assume."""

    name: str
    source_rows: int
    stages: list[StageEstimate] = field(default_factory=list)

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
        lines += ["", f"how: {METHOD}.", f"assumed: {ASSUMED}."]
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
    from .cache import use_default_cache_path

    if out is None:
        return _estimate(pipeline, limit)
    with use_default_cache_path(Path(out) / "cache" / "llm.sqlite"):
        return _estimate(pipeline, limit)


def _estimate(pipeline, limit: int | None) -> PipelineEstimate:
    from ..progress import run_progress
    from ..stages.llm.base import LLMStage
    from ..stages.sampling import Sample

    current = pipeline.load_source(limit)
    estimate = PipelineEstimate(pipeline.name, len(current))
    unknown: set[str] = set()
    for stage in pipeline.stages:
        if isinstance(stage, Sample):
            with run_progress(enabled=False):
                current = stage.run(current).kept
        if not isinstance(stage, LLMStage):
            continue
        estimate.stages.append(estimate_stage(stage, current, unknown))
        unknown |= set(stage.added_columns())
        current = next_input(stage, current)
    return estimate
