"""The invented telemetry schemas the Honeycomb example's questions are asked against.

Each is a JSON file in ``data/schemas/``: a name, a description and columns, each with a
``name``, a ``kind`` (so that like can be swapped for like: ``id``, ``enum``, ``string``,
``bool``, ``numeric``, ``duration`` in ms, ``bytes``, ``code``) and optionally ``aliases`` (how
people say it), ``values`` (typical values of a categorical column) and ``swappable: false``
(structural columns such as the trace ids).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).parent / "data" / "schemas"
KINDS = ("id", "enum", "string", "bool", "numeric", "duration", "bytes", "code")


@dataclass(frozen=True)
class Column:
    """One column of a schema (see the module docstring for the fields)."""

    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    values: tuple = ()
    swappable: bool = True


@dataclass(frozen=True)
class Schema:
    """A named list of columns, looked up by name with ``schema["duration_ms"]``."""

    name: str
    description: str
    columns: tuple[Column, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    def __getitem__(self, name: str) -> Column:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def kinds(self) -> dict[str, str]:
        """Column name -> kind."""
        return {c.name: c.kind for c in self.columns}


def _parse(data: dict) -> Schema:
    columns = []
    for raw in data["columns"]:
        if raw["kind"] not in KINDS:
            raise ValueError(f"column {raw['name']!r}: kind {raw['kind']!r} is not one of {KINDS}")
        columns.append(Column(name=raw["name"], kind=raw["kind"],
                              aliases=tuple(raw.get("aliases", ())),
                              values=tuple(raw.get("values", ())),
                              swappable=raw.get("swappable", True)))
    return Schema(name=data["name"], description=data.get("description", ""),
                  columns=tuple(columns))


def schema_names() -> list[str]:
    """Names of the schemas shipped with the example, sorted."""
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))


@lru_cache(maxsize=None)
def load_schema(name: str) -> Schema:
    """Load ``data/schemas/<name>.json``."""
    path = SCHEMA_DIR / f"{name}.json"
    if not path.exists():
        raise ValueError(f"unknown schema {name!r}; expected one of {schema_names()}")
    return _parse(json.loads(path.read_text()))


def load_schemas() -> dict[str, Schema]:
    """Every shipped schema by name."""
    return {name: load_schema(name) for name in schema_names()}
