"""A local web app for reviewing a finished run: browse every row, follow its lineage, and
label the judge's verdicts to align it with a domain expert.

    python -m curate.review runs/honeycomb          # or: curate-review runs/honeycomb
"""
from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):
    """See :func:`curate.review.app.create_app` (imported on use: the web stack loads only
    when the app is wanted)."""
    from .app import create_app as create

    return create(*args, **kwargs)
