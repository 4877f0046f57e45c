"""The command line's start: --help and an unchanged rerun import no pandas, numpy or
pyarrow (they are deferred until used), and what replaced slow library calls on that path
gives the same answers as the calls it replaced."""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from curate.core.class_source import class_source
from curate.core.versions import installed_version

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "pyarrow")
SPEC = """
from curate import ExactDedup, Filter, Pipeline, ChatExport

pipeline = Pipeline(source="rows.jsonl",
                    stages=[Filter(lambda row: len(row["q"]) > {minimum}, name="long"),
                            ExactDedup("k")],
                    export=ChatExport(human="{{q}}", gpt="k"))
"""


def imported(*args: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``python -X importtime ARGS``; the heavy modules it really imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    names = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
             if line.startswith("import time:")}  # a deferred module's own line is not logged
    return done, names & set(HEAVY)


def test_help_imports_no_pandas():
    done, heavy = imported("-m", "curate.pipeline", "--help")
    assert done.returncode == 0 and "the spec is a python file" in done.stdout.lower()
    assert heavy == set()


def test_an_unchanged_rerun_imports_no_table_library_and_a_changed_one_does(tmp_path):
    with open(tmp_path / "rows.jsonl", "w") as fh:
        for i in range(40):
            fh.write(json.dumps({"q": f"question {i}" + "?" * (i % 3), "k": f"k{i % 25}"}) + "\n")
    spec = tmp_path / "spec.py"
    spec.write_text(textwrap.dedent(SPEC.format(minimum=10)))
    run = ("-m", "curate.pipeline", str(spec), "--out", str(tmp_path / "out"), "--no-progress")
    first, heavy = imported(*run)
    assert first.returncode == 0, first.stderr[-2000:]
    assert heavy == set(HEAVY)  # the first run reads and writes tables
    exported = (tmp_path / "out" / "export" / "sharegpt.jsonl").read_text()
    again, heavy = imported(*run)
    assert again.returncode == 0 and heavy == set()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["reused"]["stages"] == 2 and manifest["versions"]["pandas"]
    spec.write_text(textwrap.dedent(SPEC.format(minimum=11)))
    changed, heavy = imported(*run)
    assert changed.returncode == 0 and heavy == set(HEAVY)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["reused"] for s in manifest["stages"]] == [False, False]
    rows = (tmp_path / "out" / "export" / "sharegpt.jsonl").read_text().splitlines()
    assert 0 < len(rows) < len(exported.splitlines())  # "question 9?" no longer passes


def test_a_deferred_module_is_the_real_one_once_used(tmp_path):
    code = textwrap.dedent("""
        import sys
        from curate.pipeline.startup import defer_imports, deferred
        defer_imports(("fractions", "xml", "xml.dom"))
        import fractions
        import xml.dom as dom
        assert deferred("fractions") and deferred("xml.dom")
        from fractions import Fraction
        assert Fraction(1, 3) + fractions.Fraction(1, 6) == Fraction(1, 2)
        assert not deferred("fractions") and sys.modules["fractions"].Fraction is Fraction
        assert dom.Node.ELEMENT_NODE == 1 and not deferred("xml")
        try:
            fractions.no_such_name
        except AttributeError as error:
            print("ok", error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok module 'fractions' has no attribute 'no_such_name'")


class Outer:
    @staticmethod
    def make():
        class Inner:  # a class in a function: qualname Outer.make.<locals>.Inner
            x = 1
        return Inner

    class Nested:
        y = 2


def test_class_source_is_inspects_and_follows_an_edit(tmp_path):
    for klass in (Outer, Outer.Nested, Outer.make(), inspect.Signature):
        assert class_source(klass) == inspect.getsource(klass)
    module = tmp_path / "edited_module.py"
    module.write_text("import dataclasses\n\n@dataclasses.dataclass\nclass A:\n    x: int = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import edited_module
        first = class_source(edited_module.A)
        assert first.startswith("@dataclasses.dataclass\nclass A:")
        module.write_text(module.read_text().replace("x: int = 1", "x: int = 2"))
        os.utime(module, ns=(1, 1))  # a new version of the file, whatever the clock
        assert class_source(edited_module.A) == first.replace("= 1", "= 2")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("edited_module", None)


def test_installed_versions_are_importlib_metadatas():
    for name in ("pandas", "numpy", "pyarrow", "rouge-score", "faiss_cpu", "curate-workbench"):
        assert installed_version(name) == metadata.version(name)
    assert installed_version("no-such-package-anywhere") is None
