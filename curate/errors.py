"""The few exception types the library raises on bad input.

Each renders as one line that names where the problem is (file and line, or stage and
field) and, where it helps, what to try. The CLI prints ``str(error)`` and exits non-zero.
"""
from __future__ import annotations


class CurateError(Exception):
    """Base class: an error the user can act on, shown as one line without a traceback."""


class InputError(CurateError):
    """Bad input data: names the file and, when known, the line."""

    def __init__(self, path, message: str, line: int | None = None):
        self.path, self.line, self.detail = str(path), line, message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class StageError(CurateError):
    """A stage cannot run on this table (missing field, wrong type, bad parameter)."""

    def __init__(self, stage: str, message: str, field: str | None = None):
        self.stage, self.field, self.detail = stage, field, message
        where = f"stage {stage!r}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")


class SpecError(CurateError):
    """A pipeline spec file that cannot be loaded or does not define what it must."""

    def __init__(self, path, message: str):
        self.path, self.detail = str(path), message
        super().__init__(f"{path}: {message}")


class OutputError(CurateError):
    """A file or folder the library must write cannot be written (no space left, permission
    denied, a read-only filesystem, a file where a folder should be)."""

    def __init__(self, path, cause):
        self.path = str(path)
        if isinstance(cause, OSError):
            detail = cause.strerror or str(cause)
            if cause.errno is not None:
                detail = f"{detail} (errno {cause.errno})"
        else:
            detail = str(cause)
        self.detail = detail
        super().__init__(f"cannot write {self.path}: {detail}")
