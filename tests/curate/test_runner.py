"""The runner's promises: reuse exactly the work whose inputs did not change (in a new
process too), one run per folder, one-line output errors, nothing complete-looking left
behind, plain progress lines in logs.

Most runs call the command line's ``main`` in this process (``cli``); those whose promise
needs a process of their own (a rerun in a new process, a folder another process holds,
what reaches the terminal) start one (``cli_process``)."""
import contextlib
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curate.pipeline.__main__ import main

ROOT = Path(__file__).resolve().parents[2]

SPEC = """
import functools, time
from curate import ExactDedup, Filter, Pipeline, Sample, ChatExport

LIMIT = {limit}
SETTINGS = {{"suffix": {suffix!r}}}


def long_enough(row, minimum={minimum}):
    time.sleep({sleep})
    return len(row["q"]) >= minimum


def tag(row, mark):
    return True if mark in row["q"] else (False, "untagged")


def make_cap(cap):
    return Filter(lambda row: int(row["n"]) < cap, name="cap")


pipeline = Pipeline(
    source="rows.jsonl",
    stages=[Filter(long_enough, name="long_enough"),
            Filter(functools.partial(tag, mark={mark!r}), name="tag"),
            make_cap({cap}),
            ExactDedup("k"),
            Filter(lambda row: int(row["n"]) < LIMIT, name="limit"),
            Sample(n=50, seed=0)],
    export=ChatExport(human="{{q}}" + SETTINGS["suffix"], gpt="k"),
)
"""
DEFAULTS = dict(limit=90, suffix="", minimum=3, mark="q", cap=95, sleep=0)


def write_source(folder: Path, n: int = 120) -> None:
    with open(folder / "rows.jsonl", "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"q": f"question {i}" + "?" * (i % 4), "k": f"k{i % 80}",
                                 "n": i % 100}) + "\n")


def write_spec(folder: Path, **changes) -> Path:
    spec = folder / "spec.py"
    spec.write_text(textwrap.dedent(SPEC.format(**{**DEFAULTS, **changes})))
    return spec


def cli_process(spec, out, *extra, cwd=ROOT, timeout=180):
    """The command line in a process of its own: for what only a new process shows."""
    return subprocess.run([sys.executable, "-m", "curate.pipeline", str(spec), "--out",
                           str(out), *extra], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def run_main(*argv, cwd=ROOT) -> subprocess.CompletedProcess:
    """The command line's ``main`` in this process, from ``cwd``, with what it prints; it
    costs no interpreter start, so the runner's rules are checked on many runs."""
    stdout, stderr, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse: --help, or arguments it refuses
                code = exc.code
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def cli(spec, out, *extra, cwd=ROOT):
    return run_main(str(spec), "--out", str(out), *extra, cwd=cwd)


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def reused(out: Path) -> list[bool]:
    return [s["reused"] for s in manifest(out)["stages"]]


@pytest.fixture
def project(tmp_path):
    write_source(tmp_path)
    return tmp_path


def test_an_unchanged_rerun_in_a_new_process_reuses_and_rewrites_nothing(project):
    spec, out = write_spec(project), project / "run"
    first = cli(spec, out, "--no-progress")
    assert first.returncode == 0, first.stderr
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()
              and p.name not in ("manifest.json", ".lock")}
    again = cli_process(spec, out, "--no-progress")
    assert again.returncode == 0, again.stderr
    m = manifest(out)
    assert all(reused(out)) and m["reused"]["stages"] == 6
    assert set(m["reused"]["outputs"]) == {"rejected.jsonl.gz", "errored.jsonl",
                                           "export", "report.html"}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rewritten
    assert all(s["seconds"] == 0 for s in m["stages"])
    assert m["rows"] == manifest(out)["rows"] and m["rows"]["source"] == 120


@pytest.mark.parametrize("change,first_recomputed", [
    (dict(minimum=12), 0),       # a default argument
    (dict(mark="?"), 1),         # a functools.partial keyword
    (dict(cap=90), 2),           # a closure value
    (dict(limit=80), 4),         # a plain-value global a lambda reads
])
def test_a_changed_input_recomputes_exactly_that_stage_and_those_after(project, change,
                                                                     first_recomputed):
    out = project / "run"
    assert cli(write_spec(project), out, "--no-progress").returncode == 0
    proc = cli(write_spec(project, **change), out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    expected = [i < first_recomputed for i in range(6)]
    assert reused(out) == expected


def test_changing_only_the_export_rewrites_only_the_export_its_errored_rows_and_report(project):
    """The export errors rows it cannot write (an empty turn), so errored.jsonl follows it."""
    out = project / "run"
    assert cli(write_spec(project), out, "--no-progress").returncode == 0
    before = (out / "rejected.jsonl.gz").stat().st_mtime_ns
    proc = cli(write_spec(project, suffix=" (please)"), out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert all(reused(out))
    assert set(manifest(out)["reused"]["outputs"]) == {"rejected.jsonl.gz"}
    assert (out / "rejected.jsonl.gz").stat().st_mtime_ns == before
    first = json.loads((out / "export/sharegpt.jsonl").read_text().splitlines()[0])
    assert first["conversations"][0]["value"].endswith(" (please)")


def test_a_changed_source_recomputes_everything(project):
    out = project / "run"
    assert cli(write_spec(project), out, "--no-progress").returncode == 0
    write_source(project, n=121)
    assert cli(write_spec(project), out, "--no-progress").returncode == 0
    assert not any(reused(out)) and manifest(out)["rows"]["source"] == 121


def test_an_unstable_parameter_is_recomputed_and_the_manifest_says_why(project):
    spec = project / "spec.py"
    spec.write_text(textwrap.dedent("""
        from curate import Filter, Pipeline

        class Opaque:
            __slots__ = ()
            def __call__(self, row):
                return True

        pipeline = Pipeline(source="rows.jsonl", stages=[Filter(Opaque(), name="opaque")])
    """))
    out = project / "run"
    assert cli(spec, out, "--no-progress").returncode == 0
    assert cli(spec, out, "--no-progress").returncode == 0
    stage = manifest(out)["stages"][0]
    assert stage["reused"] is False
    assert stage["fingerprint"].startswith("unstable: ") and "Opaque" in stage["fingerprint"]


def test_a_relative_source_is_the_spec_folders_and_a_missing_one_is_named_in_full(project):
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    spec = write_spec(project)
    assert cli(spec, project / "run", "--no-progress", cwd=elsewhere).returncode == 0
    (project / "rows.jsonl").unlink()
    proc = cli(spec, project / "run2", "--no-progress", cwd=elsewhere)
    assert proc.returncode == 2
    assert f"{project / 'rows.jsonl'}: no such file or folder" in proc.stderr


def test_a_second_run_into_a_folder_in_use_stops_at_once_and_a_dead_owner_is_taken_over(project):
    slow = write_spec(project, sleep=0.05)  # about 6 s for the first stage
    out = project / "run"
    first = subprocess.Popen([sys.executable, "-m", "curate.pipeline", str(slow), "--out",
                              str(out), "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lock = out / ".lock"
            if lock.exists() and lock.read_text().strip():
                break
            time.sleep(0.1)
        start = time.monotonic()
        second = cli(write_spec(project), out, "--no-progress")
        assert time.monotonic() - start < 20
        assert second.returncode == 2
        line = second.stderr.strip()
        assert len(line.splitlines()) == 1
        assert f"run folder {out} is in use by pid {first.pid} since 20" in line
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = cli(write_spec(project), out, "--no-progress")
    assert third.returncode == 0, third.stderr
    assert (out / "manifest.json").exists()


def test_out_is_a_file_or_unwritable_is_one_line(project):
    spec = write_spec(project)
    a_file = project / "taken"
    a_file.write_text("x")
    proc = cli_process(spec, a_file, "--no-progress")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: cannot write {a_file}: it is a file, not a folder; " \
                                  f"choose another --out"
    proc = cli_process(spec, "/sys/curate-run", "--no-progress")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: cannot write /sys/curate-run: ")


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(exist_ok=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True,
                       capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=96k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], capture_output=True, timeout=20)


def test_a_full_disk_during_any_write_is_one_line_and_leaves_nothing_complete(project, small_disk):
    write_source(project, n=3000)
    spec = write_spec(project)
    outcomes = set()
    for name, fill in (("a", 0), ("b", 40_000), ("c", 70_000), ("d", 85_000)):
        (small_disk / "filler").unlink(missing_ok=True)
        for stale in small_disk.iterdir():
            subprocess.run(["rm", "-rf", str(stale)], check=True)
        if fill:
            (small_disk / "filler").write_bytes(b"x" * fill)
        out = small_disk / f"run-{name}"
        proc = cli(spec, out, "--no-progress")
        if proc.returncode == 0:
            assert (out / "manifest.json").exists()
            outcomes.add("ok")
            continue
        outcomes.add("full")
        assert proc.returncode == 2, proc.stderr
        line = proc.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in proc.stderr
        assert "No space left on device (errno 28)" in line and line.startswith("error: cannot write ")
        if out.exists():
            left = {p.name for p in out.iterdir()}
            assert not left & {"manifest.json", "export", "report.html",
                               "rejected.jsonl.gz"}, left
            assert not [p for p in out.rglob("*.tmp")]
    assert "full" in outcomes


def test_a_table_write_on_a_full_disk_leaves_no_file_open(small_disk):
    """The failed write's temporary file is removed and its space given back at once, even
    while the error (and the Parquet writer in its traceback) is still held: a notebook can
    free the disk and run again. (Parquet's writer failed in its constructor, before its
    ``with``, and its open file lived as long as the traceback.)"""
    import pandas as pd

    from curate.errors import OutputError
    from curate.io.columnar import write_frame

    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):  # fill the disk to its last byte
        while os.write(fd, b"x" * 4096):
            pass
    os.close(fd)
    with pytest.raises(OutputError, match="No space left on device") as failed:
        write_frame(pd.DataFrame({"text": ["a", "b"]}), small_disk / "table.parquet")
    assert failed.value.__context__ is not None  # the writer's frames are still referenced
    assert [p.name for p in small_disk.iterdir()] == ["filler"]
    held = [os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.exists()]
    assert not [target for target in held if str(small_disk) in target], held


def test_plain_progress_lines_when_the_output_is_not_a_terminal(project):
    proc = cli(write_spec(project), project / "run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert any("] stage 1/6 long_enough: 120 rows in" in line for line in lines)
    assert any("] stage 4/6 exact_dedup: kept " in line for line in lines)
    assert not any("…" in line or "eta" in line for line in lines)
    header = next(line for line in lines if "stage" in line and "top reason" in line)
    for column in ("in", "new", "kept", "rejected", "errored", "seconds", "work"):
        assert f" {column} " in header


def test_plain_progress_prints_a_line_for_a_long_bar_even_when_it_does_not_move():
    import io

    from curate.progress import PlainProgress

    stream = io.StringIO()
    with PlainProgress(stream=stream, every=0.2) as progress:
        key = progress.add_task("slow stage", total=10)
        progress.advance(key, 3)
        time.sleep(0.7)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2 and all("slow stage: 3/10 (30%)" in line for line in lines)


def test_checkpoints_of_a_stage_that_adds_rows_round_trip(tmp_path):
    """Passed-through rows are stored as positions, created rows whole; loading gives back
    the same tables, in the same order."""
    import pandas as pd

    from curate import Derive, Pipeline
    from curate.core.table import records

    rows = [{"q": f"q{i}", "n": i} for i in range(12)]
    pipe = Pipeline(source=rows, stages=[Derive(lambda r: [{"q": r["q"] + "!"}] if r["n"] % 3 == 0
                                                else [], name="shout")])
    first = pipe.run(tmp_path, progress=False)
    again = pipe.run(tmp_path, progress=False)
    assert again.manifest["reused"]["stages"] == 1
    assert records(again.kept) == records(first.kept) and len(first.kept) == 16
    assert isinstance(again.kept, pd.DataFrame)
    files = sorted(p.name for p in (tmp_path / "checkpoints/01_shout").iterdir())
    assert files == ["kept.new.parquet", "kept.parquet", "stats.json"]


def test_a_checkpoint_whose_file_cannot_be_read_is_not_reusable(tmp_path, monkeypatch):
    from curate import Filter, Pipeline
    from curate.pipeline.checkpoint import CheckpointStore

    Pipeline(source=[{"q": "a"}], stages=[Filter(lambda r: True, name="all")]).run(
        tmp_path, progress=False)
    store = CheckpointStore(tmp_path)
    saved = store.stored(1, "all")
    assert "kept.parquet" in saved["files"] and store.entry(1, "all", saved["key"])
    real_stat = Path.stat

    def stat(path, *args, **kwargs):  # a file the run may not read: recomputed, not a crash
        if path.name == "kept.parquet":
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert store.entry(1, "all", saved["key"]) is None


def test_open_run_rebuilds_every_table_of_a_folder_without_its_spec(project, tmp_path):
    from curate.core.table import records
    from curate.pipeline.folder import open_run

    spec, out = write_spec(project), project / "run"
    assert cli(spec, out, "--no-progress").returncode == 0
    run = open_run(out)
    assert run.manifest["rows"]["kept"] == len(run.kept) == 50
    assert [name for name, _ in run.stages][:2] == ["long_enough", "tag"]
    rejected = sum(len(r.rejected) for _, r in run.stages)
    assert rejected == run.manifest["rows"]["rejected"] == len(run.rejected)
    lines = [json.loads(line) for line in gzip.open(out / "rejected.jsonl.gz", "rt")]
    assert sorted(r["_id"] for r in lines) == sorted(run.rejected["_id"])
    (project / "rows.jsonl").write_text("{}\n")  # the folder holds its own copy of the source
    assert len(open_run(out).kept) == 50
    (out / "checkpoints/00_source.parquet").unlink()  # an older folder: the file is read, checked
    with pytest.raises(Exception, match="the source changed since this run"):
        open_run(out).kept

    from curate import Filter, Pipeline
    memory = Pipeline(source=[{"q": "a"}, {"q": "bb"}], stages=[Filter(lambda r: len(r["q"]) > 1)])
    memory.run(tmp_path / "mem", progress=False)
    assert records(open_run(tmp_path / "mem").kept)[0]["q"] == "bb"


def test_background_work_raises_its_first_error_and_close_swallows_the_rest():
    """Writes beside the stages: a failure is raised by `check` once it happened, by `wait`
    in submission order, and never lost or raised twice."""
    import threading

    from curate.pipeline.background import BackgroundWork

    work, gate, done = BackgroundWork(), threading.Event(), []

    def fail(message):
        raise OSError(28, message)

    work.submit(gate.wait, 5)
    work.submit(fail, "first")
    work.submit(fail, "second")
    work.submit(done.append, "ran")
    gate.set()
    with pytest.raises(OSError, match="first"):
        work.wait()
    assert done == ["ran"] and work.futures == []
    work.submit(fail, "later")
    for _ in range(100):
        if work.futures[0].done():
            break
        time.sleep(0.01)
    with pytest.raises(OSError, match="later"):
        work.check()
    work.close()  # the failed run is being cleaned up: no second raise


LOOKUP_SPEC = """
from pathlib import Path

import pandas as pd
from curate import Filter, Pipeline, ChatExport

LOOKUP = pd.read_csv(Path(__file__).parent / "labels.csv").set_index("id")

pipeline = Pipeline(
    source="items.jsonl",
    stages=[Filter(lambda row: LOOKUP.loc[row["id"], "label"] == "good", name="labelled_good")],
    export=ChatExport(human="{q}", gpt="a"),
)
"""


def test_a_changed_lookup_table_read_by_a_filter_recomputes_the_stage_and_the_export(tmp_path):
    with open(tmp_path / "items.jsonl", "w") as fh:
        for i in range(101, 107):
            fh.write(json.dumps({"id": i, "q": f"question {i}", "a": f"answer {i}"}) + "\n")
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},{'good' if i < 104 else 'bad'}\n"
                                             for i in range(101, 107)))
    spec, out = tmp_path / "spec.py", tmp_path / "run"
    spec.write_text(LOOKUP_SPEC)

    def exported():
        lines = (out / "export/sharegpt.jsonl").read_text().splitlines()
        return [json.loads(line)["conversations"][0]["value"] for line in lines]

    assert cli(spec, out, "--no-progress").returncode == 0
    assert exported() == ["question 101", "question 102", "question 103"]
    labels.write_text("id,label\n" + "".join(f"{i},{'good' if i >= 104 else 'bad'}\n"
                                             for i in range(101, 107)))
    proc = cli(spec, out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert reused(out) == [False]
    assert exported() == ["question 104", "question 105", "question 106"]
    assert cli(spec, out, "--no-progress").returncode == 0
    assert reused(out) == [True]  # unchanged again: reused


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_out_pointed_at_a_folder_this_library_did_not_make_is_refused_and_left_as_it_was(project):
    mine = project / "mine"
    (mine / "export").mkdir(parents=True)
    (mine / "export/notes.txt").write_text("my notes")
    (mine / "report.html").write_text("<p>my report</p>")
    (mine / "errored.jsonl").write_text('{"mine": 1}\n')
    before = _snapshot(mine)
    proc = cli(write_spec(project), mine, "--no-progress")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {mine} holds files this library did not write (errored.jsonl, export, "
        f"report.html); a run there could replace them: choose a new or empty folder for --out"]
    assert _snapshot(mine) == before  # not even a lock file left


def test_a_source_in_the_out_folders_export_is_refused_before_anything_is_removed(project):
    out = project / "run"
    (out / "export").mkdir(parents=True)
    (project / "rows.jsonl").rename(out / "export/rows.jsonl")
    spec = write_spec(project)
    spec.write_text(spec.read_text().replace('source="rows.jsonl"', 'source="run/export/rows.jsonl"'))
    before = _snapshot(out)
    proc = cli(spec, out, "--no-progress")
    assert proc.returncode == 2 and "did not write (export)" in proc.stderr
    assert _snapshot(out) == before


def test_a_run_folder_keeps_what_the_user_put_in_it_and_never_overwrites_its_source(project):
    out = project / "run"
    assert cli(write_spec(project), out, "--no-progress").returncode == 0
    (out / "notes.txt").write_text("mine")
    (out / "export/seeds.jsonl").write_text((project / "rows.jsonl").read_text())
    spec = write_spec(project, suffix="!")  # the export is rewritten
    spec.write_text(spec.read_text().replace('source="rows.jsonl"', 'source="run/export/seeds.jsonl"'))
    proc = cli(spec, out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "export/seeds.jsonl").read_text() == (project / "rows.jsonl").read_text()
    assert sorted(p.name for p in (out / "export").iterdir()) == ["README.md", "seeds.jsonl",
                                                                "sharegpt.jsonl"]
    # the previous export as the source of a run into the same folder: refused, kept
    spec.write_text(spec.read_text().replace("run/export/seeds.jsonl", "run/export/sharegpt.jsonl"))
    exported = (out / "export/sharegpt.jsonl").read_bytes()
    proc = cli(spec, out, "--no-progress")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: the source {out / 'export/sharegpt.jsonl'} lies where "
                                   f"this run writes ({out / 'export/sharegpt.jsonl'}); move it "
                                   f"out of the run folder or choose another --out")
    assert (out / "export/sharegpt.jsonl").read_bytes() == exported


def test_an_empty_folder_an_older_run_folder_and_a_killed_first_run_are_used(project):
    spec = write_spec(project)
    empty = project / "empty"
    empty.mkdir()
    assert cli(spec, empty, "--no-progress").returncode == 0
    (empty / ".curate-run.json").unlink()  # as an older version left it: no record
    proc = cli(spec, empty, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert all(reused(empty))
    record = json.loads((empty / ".curate-run.json").read_text())
    assert {"manifest.json", "report.html", "export/sharegpt.jsonl",
            "checkpoints/01_long_enough"} <= set(record["wrote"])
    killed = project / "killed"
    killed.mkdir()
    (killed / ".curate-run.json").write_text('{"wrote": []}')  # the first thing a run writes
    (killed / ".lock").write_text("")
    assert cli(spec, killed, "--no-progress").returncode == 0


def test_prune_removes_only_checkpoints_this_library_wrote(project):
    out = project / "run"
    assert cli(write_spec(project), out, "--no-progress").returncode == 0
    trainer = out / "checkpoints/step_100"
    trainer.mkdir()
    (trainer / "adapter_model.safetensors").write_bytes(b"weights")
    lookalike = out / "checkpoints/09_other"
    lookalike.mkdir()
    (lookalike / "stats.json").write_text("{}")
    spec = project / "spec.py"  # one stage fewer: the last checkpoint is pruned
    spec.write_text(spec.read_text().replace("            Sample(n=50, seed=0)],", "            ],"))
    proc = cli(spec, out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir())
    assert names == ["01_long_enough", "02_tag", "03_cap", "04_exact_dedup", "05_limit",
                     "09_other", "step_100"]
    assert (trainer / "adapter_model.safetensors").read_bytes() == b"weights"


def test_a_run_removes_the_temporary_files_killed_writes_left_and_nothing_else(project):
    out = project / "run"
    assert cli(write_spec(project), out, "--no-progress").returncode == 0
    stale = [out / ".report.html.k2j4_x9a.tmp", out / "export/.sharegpt.jsonl.abcdefgh.tmp",
             out / "checkpoints/.00_source.parquet.12345678.tmp",
             out / "checkpoints/01_long_enough/.kept.parquet.zzzzzzzz.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    (out / "export/.dataset.q1w2e3r4.tmp").mkdir()  # a folder being written
    kept = [out / ".notes.tmp", out / "mine.tmp", out / "export/.my.file.tmp"]
    for path in kept:
        path.write_bytes(b"mine")
    assert cli(write_spec(project), out, "--no-progress").returncode == 0
    assert not [p for p in stale if p.exists()] and not (out / "export/.dataset.q1w2e3r4.tmp").exists()
    assert all(p.read_bytes() == b"mine" for p in kept)


SQLITE_SPEC = """
import sqlite3
from pathlib import Path

from curate import AssertionFilter, Pipeline{extra_import}

DB = {wrap}sqlite3.connect(Path(__file__).parent / "known.db"){wrap_end}


def known(q):
    found = DB.execute("select 1 from known where q = ?", (q,)).fetchone()
    return [] if found else [("unknown_q", f"{{q}} is not known")]


pipeline = Pipeline(source="rows.jsonl", stages=[Filter(lambda row: True, name="first"),
                                                 AssertionFilter(known, name="known"),
                                                 Filter(lambda row: True, name="last")])
"""


def _sqlite_spec(project, ignore: bool) -> Path:
    import sqlite3

    db = sqlite3.connect(project / "known.db")
    db.execute("create table if not exists known (q text)")
    db.execute("insert into known values ('question 4')")
    db.commit()
    db.close()
    spec = project / "spec.py"
    spec.write_text(SQLITE_SPEC.format(
        extra_import=", Filter" + (", fingerprint_ignore" if ignore else ""),
        wrap="fingerprint_ignore(" if ignore else "", wrap_end=")" if ignore else ""))
    return spec


def test_the_terminal_says_why_each_stage_is_recomputed(project):
    spec, out = _sqlite_spec(project, ignore=False), project / "run"
    assert cli(spec, out, "--no-progress").returncode == 0
    proc = cli(spec, out)  # plain progress: stage lines and the funnel
    assert proc.returncode == 0, proc.stderr
    stages = manifest(out)["stages"]
    assert [s["reused"] for s in stages] == [True, False, False]
    assert stages[1]["recomputed"].startswith("unstable: Connection object has no stable description")
    assert stages[2]["recomputed"] == "its input changed (stage 'known' ran)"
    lines = [" ".join(line.split()) for line in proc.stderr.splitlines()]
    assert any("stage 2/3 known: 120 rows in (recomputed: unstable: Connection object has no "
               "stable description" in line for line in lines)
    assert any("stage 3/3 last:" in line and "(recomputed: its input changed (stage 'known' ran))"
               in line for line in lines)
    spec.write_text(spec.read_text().replace('name="last"', 'name="last", max_errored=0.9'))
    assert cli(spec, out, "--no-progress").returncode == 0
    assert manifest(out)["stages"][2]["recomputed"] == "changed parameter: max_errored"


def test_a_global_left_out_of_the_fingerprint_lets_its_reader_be_reused(project):
    spec, out = _sqlite_spec(project, ignore=True), project / "run"
    assert cli(spec, out, "--no-progress").returncode == 0
    assert cli(spec, out, "--no-progress").returncode == 0
    assert reused(out) == [True, True, True]
    assert manifest(out)["rows"]["kept"] == 1  # "question 4", the one row the table knows
