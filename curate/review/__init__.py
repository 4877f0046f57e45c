"""A local web app for reviewing a finished run: browse every row, follow its lineage, and
label the judge's verdicts to align it with a domain expert.

    python -m curate.review runs/honeycomb          # or: curate-review runs/honeycomb

:mod:`.table` holds the run in memory and answers filters, search, sort and paging;
:mod:`.lineage` builds a row's page (:mod:`.shown` cuts long values); :mod:`.labels` owns
the labels file and the labelling order; :mod:`.agreement` computes the agreement panel
with :mod:`curate.review.alignment` and exports few-shot examples; :mod:`.guard` refuses what the
app should not serve; :mod:`.app` wires the pages together (and says why it is built on
Starlette).
"""
from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):
    """See :func:`curate.review.app.create_app` (imported on use: the web stack loads only
    when the app is wanted)."""
    from .app import create_app as create

    return create(*args, **kwargs)
