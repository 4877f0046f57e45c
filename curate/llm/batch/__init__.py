"""Batch mode: a client's requests sent through the provider's Batch API, resumably.

With ``LLM(..., batch=True)`` (or ``batch=BatchOptions(...)``, :mod:`.options`) every
request not in the response cache becomes a line of a batch input file (:mod:`.lines`:
the body an online request sends, its cache key as ``custom_id``) instead of an HTTP call
of its own. :mod:`.run` follows the batches from upload to replies, every provider call
retried like an online request (:mod:`.api`), and :mod:`.state` records their ids as soon
as they exist, so a run killed at any point and started again pays for nothing twice.
See "Batch mode" in ``curate/llm/README.md``.
"""
from .api import BatchesPending, cancel_batches
from .options import BatchOptions, batch_options

__all__ = ["BatchOptions", "BatchesPending", "batch_options", "cancel_batches"]
