"""Installed package versions, read from the ``NAME-VERSION.dist-info`` folder names on
``sys.path`` (one directory listing each), with ``importlib.metadata`` for anything else:
reading each METADATA file through ``importlib.metadata`` was a fifth of an unchanged rerun.
"""
from __future__ import annotations

import functools
import os
import re
import sys


def normalized(name: str) -> str:
    """A distribution name as its dist-info folder spells it (PEP 503, with underscores)."""
    return re.sub(r"[-_.]+", "_", name).lower()


@functools.lru_cache(maxsize=1)
def _dist_infos(path: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info"):
                name, _, version = folder[:-len(".dist-info")].partition("-")
                found.setdefault(normalized(name), version)  # the first on sys.path wins
    return found


def installed_version(name: str) -> str | None:
    """The version of the installed distribution ``name``, or None when there is none."""
    version = _dist_infos(tuple(sys.path)).get(normalized(name))
    if version:
        return version
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
