"""Stages: deterministic ones here, LLM ones in :mod:`curate.stages.llm`.

Every stage is importable from :mod:`curate` too (``from curate import RougeDedup``).
"""
from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "Filter": "filters", "ComplexityFilter": "filters", "AssertionFilter": "filters",
    "ExactDedup": "dedup_exact", "RougeDedup": "dedup_rouge", "EmbeddingDedup": "dedup_embedding",
    "MinHashDedup": "dedup_minhash", "Decontaminate": "decontaminate",
    "Sample": "sampling", "Mix": "sampling", "Derive": "derive",
    "SuspectFilter": "training_dynamics",
    "LLMStage": "llm.base", "Made": "llm.base", "Augment": "llm.augment",
    "Judge": "llm.judge", "Repair": "llm.repair", "Vote": "llm.vote",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
