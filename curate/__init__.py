"""curate: composable stages over a table of examples, run from a notebook or a spec file.

Everything a notebook or a spec needs is importable from here::

    from curate import Pipeline, Filter, AssertionFilter, RougeDedup, Augment, Judge, LLM

Names are imported on first use, so ``import curate`` is fast and pulls in neither torch
nor openai until a stage that needs them is used.
"""
from __future__ import annotations

from ._lazy import lazy_exports

_EXPORTS = {
    # errors
    "CurateError": "errors", "InputError": "errors", "OutputError": "errors",
    "SpecError": "errors", "StageError": "errors",
    # the table and the stage contract
    "Stage": "core.stage", "StageResult": "core.stage", "TooManyRowErrors": "core.stage",
    "fingerprint_ignore": "core.fingerprint",
    # readers, writers, chat formats, exporters
    "read_table": "io", "write_table": "io",
    "ChatExport": "formats.export",
    "PreferencePairs": "formats.preferences",
    "convert": "formats.chat", "to_messages": "formats.chat", "from_messages": "formats.chat",
    # deterministic stages
    "Filter": "stages.filters", "ComplexityFilter": "stages.filters",
    "AssertionFilter": "stages.filters", "ExactDedup": "stages.dedup_exact",
    "RougeDedup": "stages.dedup_rouge", "EmbeddingDedup": "stages.dedup_embedding",
    "MinHashDedup": "stages.dedup_minhash", "Decontaminate": "stages.decontaminate",
    "Sample": "stages.sampling", "Mix": "stages.sampling", "Derive": "stages.derive",
    "SuspectFilter": "stages.training_dynamics",
    # LLM stages and the client
    "LLMStage": "stages.llm.base", "Made": "stages.llm.base", "Augment": "stages.llm.augment",
    "Judge": "stages.llm.judge",
    "Repair": "stages.llm.repair", "Vote": "stages.llm.vote",
    "AnswerAfter": "stages.llm.vote", "JsonAnswer": "stages.llm.vote",
    "LLM": "llm.client", "Request": "llm.types",
    # the runner
    "Pipeline": "pipeline", "ReportOptions": "pipeline.report", "RunResult": "pipeline.runner",
    "open_run": "pipeline.folder",
    # what the data covers
    "clusters": "clustering", "ClusterOptions": "clustering", "Clusters": "clustering",
    # evaluation statistics
    "Interval": "stats", "interval": "stats", "paired_difference": "stats",
    "mcnemar_exact": "stats",
    # judge alignment
    "export_for_review": "review.alignment", "read_review": "review.alignment",
    "alignment_report": "review.alignment",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
