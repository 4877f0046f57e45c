"""A class's source text, read from its module's syntax tree, parsed once per file version
(``inspect.getsource`` parses and tokenizes the whole module again for every class: most of
an unchanged rerun's time when fingerprinting a spec's stages)."""
from __future__ import annotations

import ast
import functools
import inspect
from pathlib import Path


def class_source(klass: type) -> str | None:
    """A class's source text, decorators included (None when there is none)."""
    try:
        path = inspect.getsourcefile(klass)
        spans, lines = _class_spans(path, Path(path).stat().st_mtime_ns)
    except (OSError, TypeError, SyntaxError, ValueError):
        spans, lines = {}, []
    if klass.__qualname__ in spans:
        start, end = spans[klass.__qualname__]
        return "".join(lines[start - 1:end])
    try:
        return inspect.getsource(klass)
    except (OSError, TypeError):
        return None


@functools.lru_cache(maxsize=128)
def _class_spans(path: str, mtime_ns: int) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """The first and last line of every class in a file by qualified name, and its lines."""
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    spans: dict[str, tuple[int, int]] = {}

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                name = prefix + child.name
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                spans.setdefault(name, (first, child.end_lineno))
                visit(child, name + ".")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, f"{prefix}{child.name}.<locals>.")

    visit(ast.parse(source, path), "")
    return spans, source.splitlines(keepends=True)
