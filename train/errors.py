"""The exception types the trainer raises on bad input: each renders as one line (what was
expected, found, and to try) that `python -m train` prints, exiting non-zero without a traceback.
"""
from __future__ import annotations


class TrainError(Exception):
    """Base class: an error the user can act on, shown as one line."""


class ConfigError(TrainError):
    """A config file or key that cannot be used as given."""


class DataError(TrainError):
    """Bad training data: names the file and, when known, the line."""

    def __init__(self, path, message: str, line: int | None = None):
        self.path, self.line, self.detail = str(path), line, message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class TemplateError(TrainError):
    """A chat template that cannot be used to find the assistant's tokens."""
