"""JSON Schema validation of the chat rows the library emits (``curate/formats/schemas/``)."""
from __future__ import annotations

import functools
import json
from importlib import resources

from ..errors import StageError
from .chat import FORMATS


@functools.lru_cache(maxsize=None)
def schema(fmt: str) -> dict:
    """The JSON Schema of an emitted format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    text = resources.files("curate.formats").joinpath("schemas", f"{fmt}.schema.json").read_text()
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def _validator(fmt: str):
    # imported on first use: a rerun that reuses the export validates nothing
    import jsonschema

    return jsonschema.Draft202012Validator(schema(fmt))


def validation_errors(row: dict, fmt: str) -> list[str]:
    """Every schema violation of one row, as short sentences (empty when valid)."""
    errors = sorted(_validator(fmt).iter_errors(row), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path)) or '<row>'}: {e.message}" for e in errors]


def validate_rows(rows, fmt: str, where: str = "export", step: int = 1) -> None:
    """Raise a StageError naming the first row that does not fit the format's schema
    (``rows`` may be every ``step``-th row of a table: the index named is the table's)."""
    for i, row in enumerate(rows):
        errors = validation_errors(row, fmt)
        if errors:
            raise StageError(where, f"row {i * step} is not valid {fmt}: {errors[0]}", field=fmt)
