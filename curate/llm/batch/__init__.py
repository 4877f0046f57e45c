"""Batch mode (``LLM(..., batch=True)``): requests not in the cache go through the
provider's Batch API as lines of batch files (:mod:`.lines`), followed from upload to
replies (:mod:`.run`, :mod:`.api`) and recorded (:mod:`.state`) so that a run killed at any
point and started again pays for nothing twice. See "Batch mode" in ``curate/llm/README.md``.
"""
from .api import BatchesPending, cancel_batches
from .options import BatchOptions, batch_options

__all__ = ["BatchOptions", "BatchesPending", "batch_options", "cancel_batches"]
