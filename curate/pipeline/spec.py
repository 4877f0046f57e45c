"""Load a pipeline spec: a Python file that defines ``pipeline = Pipeline(...)``."""
from __future__ import annotations

import runpy
import sys
import traceback
from pathlib import Path

from ..errors import CurateError, SpecError


def _spec_line(path: Path, exc: BaseException) -> int | None:
    """The last line of the spec file in the exception's traceback."""
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    return line


def load_spec(path) -> object:
    """Execute the spec file and return its ``pipeline``; errors name the file and line."""
    from . import Pipeline

    path = Path(path)
    if path.is_dir():
        specs = sorted(path.glob("*.py"))
        hint = f" ({specs[0]}?)" if len(specs) == 1 else ""
        raise SpecError(path, f"a folder, not a spec file; give the spec's .py file{hint}")
    if not path.is_file():
        raise SpecError(path, "no such spec file")
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        namespace = runpy.run_path(str(path.resolve()), run_name="__curate_spec__")
    except Exception as exc:  # any error while building the spec is the spec's
        line = _spec_line(path, exc)
        message = str(exc) if isinstance(exc, CurateError) else f"{type(exc).__name__}: {exc}"
        raise SpecError(f"{path}:{line}" if line else path, message) from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    pipeline = namespace.get("pipeline")
    if pipeline is None:
        raise SpecError(path, "the spec does not define `pipeline` "
                              "(expected: pipeline = Pipeline(source=..., stages=[...]))")
    if not isinstance(pipeline, Pipeline):
        raise SpecError(path, f"`pipeline` is a {type(pipeline).__name__}, not a "
                              "curate.pipeline.Pipeline")
    if pipeline.base is None:  # relative source paths are the spec's, not the shell's
        pipeline.base = path.parent.resolve()
    return pipeline
