"""Why a stage runs again instead of reusing its checkpoint, in words for the terminal and
the manifest: its fingerprint is unstable (and what made it so), a parameter changed (which),
its input changed (which stage before it ran), or there is no checkpoint."""
from __future__ import annotations


def recompute_reason(stage, fingerprint, origin: dict, stored: dict | None,
                     before: dict | None, earlier: str | None, earlier_ran: bool,
                     reusable: bool) -> str:
    """Why ``stage`` runs. ``origin``: this run's ``{"fingerprint", "input"}`` for it;
    ``stored``: the stats of the checkpoint in its folder, whatever its key; ``before``: its
    entry in the previous manifest; ``earlier``: the stage before it (None for the first);
    ``reusable``: its checkpoint has this run's key (it runs because a stage before it does)."""
    if not fingerprint.stable:
        return "unstable: " + "; ".join(fingerprint.unstable[:2])
    if reusable:
        return f"stage {earlier!r} before it ran"
    if stored is None:
        return "no checkpoint"
    if "fingerprint" not in stored:
        return "its checkpoint was written by an older version"
    if stored["fingerprint"] != origin["fingerprint"]:
        return _changed(stage, before)
    if stored.get("input") != origin["input"]:
        if earlier is None:
            return "the source changed"
        return f"its input changed (stage {earlier!r} ran)" if earlier_ran else \
            "its input changed"
    return "its checkpoint is incomplete"


def _changed(stage, before: dict | None) -> str:
    """Which public parameters differ from the previous run's (else its code changed)."""
    old = (before or {}).get("params")
    if old is None or (before or {}).get("stage") != stage.name:
        return "its parameters or code changed"
    new = stage.params()
    names = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not names:
        return "its code changed"
    return ("changed parameter: " if len(names) == 1 else "changed parameters: ") + \
        ", ".join(names)


def short(reason: str | None) -> str:
    """The funnel's word for a reason."""
    if reason is None:
        return "reused"
    head = reason.split(":")[0].split(" (")[0]
    words = {"unstable": "unstable", "changed parameter": "changed", "changed parameters":
             "changed", "its code changed": "changed", "its parameters or code changed":
             "changed", "no checkpoint": "new", "the source changed": "input changed",
             "its input changed": "input changed"}
    return f"ran ({words.get(head, 'rerun')})"
