"""The import graph of ``curate/``, read from the source with ``ast``: no import circles.

Every ``import`` counts, at module level or inside a function: a lazy import still makes
a circle in the design. An import of ``a.b.c`` is an edge to the deepest of ``a.b.c``,
``a.b`` that is a module of the tree (its parent packages are not counted: importing a
submodule runs them, but they do not depend on it).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CURATE = ROOT / "curate"


def modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module under ``package_dir`` (a package's
    ``__init__.py`` is the package itself)."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path) -> set[str]:
    """The dotted names that module ``name`` (its file ``path``) imports, relative ones
    resolved: ``from .x import y`` gives ``<package>.x.y``, a module or a name in one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def graph(package_dir: Path, within: Path | list[Path] = CURATE) -> dict[str, set[str]]:
    """Module -> the modules it imports, for the modules under ``package_dir``; imports are
    resolved against every module under ``within`` (the whole library: a package or several)."""
    known = {}
    for package in within if isinstance(within, list) else [within]:
        known.update(modules(package))
    inside = {name for name, path in known.items() if path.is_relative_to(package_dir)}
    edges: dict[str, set[str]] = {}
    for name in sorted(inside):
        targets = set()
        for dotted in imported(name, known[name]):
            parts = dotted.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            target = ".".join(parts)
            if target in inside and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def cycles(package_dir: Path, within: Path | list[Path] = CURATE) -> list[list[str]]:
    """The import circles among the modules under ``package_dir``: each group of modules
    that reach one another through imports (a strongly connected component of more than
    one module), its members sorted; the groups sorted."""
    edges = graph(package_dir, within)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_the_graph_sees_relative_absolute_and_function_level_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    import pkg.c\n")
    (package / "c.py").write_text("def g():\n    from .sub.b import f\n")
    (package / "d.py").write_text("from . import a\nfrom .sub import b as other\n")
    edges = graph(package, within=package)
    assert edges["pkg.a"] == {"pkg.sub.b"}
    assert edges["pkg.sub.b"] == {"pkg.c"}
    assert edges["pkg.c"] == {"pkg.sub.b"}
    assert edges["pkg.d"] == {"pkg.a", "pkg.sub.b"}
    assert cycles(package, within=package) == [["pkg.c", "pkg.sub.b"]]
    assert cycles(package / "sub", within=package) == []  # the circle leaves pkg.sub
    (package / "c.py").write_text("X = 1\n")
    assert cycles(package, within=package) == []


def test_the_llm_package_has_no_import_circle():
    assert cycles(CURATE / "llm") == []


@pytest.mark.parametrize("package", ["core", "io", "formats", "pipeline"])
def test_the_table_io_and_runner_packages_have_no_import_circle(package):
    """Among them: the JSON encoder above the table helpers, executors above their base."""
    assert cycles(CURATE / package) == []


def test_the_llm_wire_layer_imports_nothing_above_it():
    """The key, request bodies, replies and retries sit under the client, batch mode and
    the backends: they may import one another only."""
    edges = graph(CURATE / "llm")
    wire = {f"curate.llm.{name}" for name in ("types", "credentials", "dialects", "wire")}
    assert {name: edges[name] - wire for name in wire} == {name: set() for name in wire}
    assert "curate.llm.wire" in edges["curate.llm.online"] & edges["curate.llm.batch.run"]


@pytest.mark.parametrize("package", ["curate", "assertions", "train"])
def test_the_library_has_no_import_circle(package):
    """The whole of each package: in curate/ the client package never reaches up into the
    stages (the estimate lives with the runner and asks stages what they would send)."""
    found = cycles(ROOT / package, within=ROOT / package)
    print(f"\nimport circles in {package}/: {len(found)}")
    for group in found:
        print("  " + " <-> ".join(group))
    assert found == []


def test_no_circle_across_the_packages():
    """One graph of curate/, assertions/ and train/ together: SuspectFilter fine-tunes with
    train/, and train/ reads curate's chat format and model files, without a circle."""
    packages = [ROOT / "curate", ROOT / "assertions", ROOT / "train"]
    edges = graph(ROOT, within=packages)
    assert "train.folds" in edges["curate.stages.training_dynamics"]  # the graph crosses packages
    assert cycles(ROOT, within=packages) == []


def test_no_test_imports_the_benchmarks():
    """bench/ measures; what tests and benchmarks share (corpora, servers) lives in curate.testing."""
    found = [f"{path.relative_to(ROOT)}:{number}" for path in sorted((ROOT / "tests").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.match(r"\s*(from\s+bench[.\s]|import\s+bench\b)", line)
             or re.match(r"\s*sys\.path\.\w+\(.*bench", line)]
    assert found == []
