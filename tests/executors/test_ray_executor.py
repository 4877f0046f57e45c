"""The Ray executor against the local one: the same rows, counts and export; resume across
executors; the run folder's LLM cache on Ray; the rate limits split over actors; the same
one-line stops. One local Ray (2 CPUs, a small object store) serves the whole module."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from executor_kit import canonical, client, ids, reply, rows, spec

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow,  # starts Ray: make test runs it, make test-fast does not
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")]

from curate import Stage  # noqa: E402
from curate.errors import CurateError  # noqa: E402
from curate.pipeline.__main__ import main  # noqa: E402
from curate.pipeline.executors.ray_executor import RayExecutor  # noqa: E402
from curate.testing import ScriptedServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RPM, TPM = 60_000, 50_000_000
COUNTS = ("stage", "rows_in", "rows_created", "kept", "rejected", "errored", "replaced",
          "reasons", "errors")


@pytest.fixture(scope="module")
def ray_executor():
    print(f"load average before Ray: {os.getloadavg()}")
    executor = RayExecutor(num_cpus=2, object_store_memory=256 * 2**20, batch_rows=9)
    executor.start()
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(reply) as srv:
        yield srv


@pytest.fixture(scope="module")
def runs(ray_executor, server, tmp_path_factory):
    """The same spec into one folder per executor; requests sent by each run."""
    base = tmp_path_factory.mktemp("runs")
    llm = client(server, cache=True, rpm=RPM, tpm=TPM)
    pipeline = spec(rows(60), llm)
    before = server.received
    local = pipeline.run(base / "local", progress=False)
    sent_local = server.received - before
    ray_run = pipeline.run(base / "ray", progress=False, executor=ray_executor)
    return {"pipeline": pipeline, "llm": llm, "local": local, "ray": ray_run, "base": base,
            "sent": (sent_local, server.received - before - sent_local)}


def test_ray_gives_the_same_rows_counts_and_export(runs):
    local, ray_run = runs["local"], runs["ray"]
    assert len(local.kept) and len(local.rejected) and len(local.errored)
    assert ids(ray_run.kept) == ids(local.kept)  # the same rows in the same order
    for part in ("kept", "rejected", "errored"):
        assert canonical(getattr(ray_run, part)) == canonical(getattr(local, part)), part
    assert ray_run.manifest["rows"] == local.manifest["rows"]
    for mine, theirs in zip(ray_run.manifest["stages"], local.manifest["stages"]):
        assert {k: mine[k] for k in COUNTS} == {k: theirs[k] for k in COUNTS}
    for name in ("export/sharegpt.jsonl", "rejected.jsonl.gz", "errored.jsonl"):
        assert (runs["base"] / "ray" / name).read_bytes() == \
            (runs["base"] / "local" / name).read_bytes(), name
    assert ray_run.manifest["executor"] == "ray" and local.manifest["executor"] == "local"


def test_row_stages_and_exact_dedup_ran_on_ray_and_other_global_ones_on_the_driver(runs):
    where = {s["stage"]: s.get("executor") for s in runs["ray"].manifest["stages"]}
    assert where["long_enough"]["batches"] > 1 and where["judge"]["actors"] == 2
    assert where["exact_dedup"]["distributed"] and where["exact_dedup"]["batches"] > 1
    assert where["rouge_dedup"] is None
    assert where["few_shot"] is None  # Augment with k > 0 needs the whole table


def test_rate_limits_are_split_over_the_actors(runs):
    stages = {s["stage"]: s for s in runs["ray"].manifest["stages"]}
    for name in ("augment", "judge", "repair"):
        info = stages[name]["executor"]
        assert info["rate_limits_per_actor"] == {"rpm": RPM / info["actors"],
                                                 "tpm": TPM / info["actors"]}
    assert (runs["llm"].rpm, runs["llm"].tpm) == (RPM, TPM)  # the spec's client is unchanged


def test_resume_works_across_executors(runs, ray_executor):
    pipeline, base = runs["pipeline"], runs["base"]
    again = pipeline.run(base / "ray", progress=False, executor=ray_executor)
    assert again.manifest["reused"]["stages"] == len(pipeline.stages)
    local_after_ray = pipeline.run(base / "ray", progress=False)
    assert local_after_ray.manifest["reused"]["stages"] == len(pipeline.stages)
    ray_after_local = pipeline.run(base / "local", progress=False, executor=ray_executor)
    assert ray_after_local.manifest["reused"]["stages"] == len(pipeline.stages)
    assert ids(ray_after_local.kept) == ids(runs["local"].kept)


def test_the_llm_cache_of_the_run_folder_serves_ray_and_local_reruns(runs, server):
    pipeline, folder = runs["pipeline"], runs["base"] / "ray"
    assert runs["sent"][0] > 0 and runs["sent"][1] > 0  # a new folder: a cache of its own
    shutil.rmtree(folder / "checkpoints")
    before = server.received
    rerun = pipeline.run(folder, progress=False, executor="ray")
    assert server.received == before  # every reply came from the folder's cache
    judge = next(s for s in rerun.manifest["stages"] if s["stage"] == "judge")
    assert judge["executor"]["name"] == "ray" and judge["llm"]["cached"] > 0
    shutil.rmtree(folder / "checkpoints")
    local = pipeline.run(folder, progress=False)
    assert server.received == before
    assert ids(local.kept) == ids(runs["local"].kept)


STOP_SPEC = """
import pandas as pd
from curate import Filter, Pipeline

def picky(row):
    if row["n"] % 4:
        raise ValueError(f"cannot read row {row['n']}")
    return True

pipeline = Pipeline(source=pd.DataFrame({"n": list(range(40))}),
                    stages=[Filter(picky, max_errored=0.5)])
"""


def test_too_many_errors_stop_with_the_same_line_on_ray(ray_executor, tmp_path, capsys):
    path = tmp_path / "spec.py"
    path.write_text(textwrap.dedent(STOP_SPEC))
    lines = {}
    for executor in ("local", "ray"):
        code = main([str(path), "--out", str(tmp_path / "run"), "--no-progress",
                     "--executor", executor])
        lines[executor] = capsys.readouterr().err.strip().splitlines()
        assert code == 2
    assert lines["ray"] == lines["local"] and len(lines["ray"]) == 1
    assert "30 of 40 rows errored" in lines["ray"][0]
    errored = (tmp_path / "run" / "errored.jsonl").read_text().splitlines()
    assert len(errored) == 30 and json.loads(errored[0])["_reason_code"] == "predicate_raised"


ATTACH_SPEC = """
import pandas as pd
from curate import Derive, Filter, Pipeline
from spec_helpers import even  # a module beside the spec: the workers import it too

pipeline = Pipeline(source=pd.DataFrame({"n": list(range(3000))}),
                    stages=[Filter(even), Derive(lambda row: [{"n": row["n"] + 1}])])
"""


def test_the_cli_attaches_to_a_running_cluster(ray_executor, tmp_path):
    import ray

    path = tmp_path / "spec.py"
    path.write_text(textwrap.dedent(ATTACH_SPEC))
    (tmp_path / "spec_helpers.py").write_text("def even(row):\n    return row['n'] % 2 == 0\n")
    address = ray.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, "-m", "curate.pipeline", str(path), "--out",
                           str(tmp_path / "run"), "--no-progress", "--executor", "ray",
                           "--ray-address", address], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["rows"]["kept"] == 3000 and manifest["executor"] == "ray"
    assert [s["executor"]["name"] for s in manifest["stages"]] == ["ray", "ray"]


class Broken(Stage):
    """A row-wise stage with a bug: it raises on every batch."""

    def process(self, df):
        raise RuntimeError("broken on purpose")


def test_a_stage_that_crashes_on_a_worker_fails_in_one_line(ray_executor):
    with pytest.raises(CurateError) as error:
        ray_executor.run_stage(Broken(), pd.DataFrame({"n": range(20)}))
    assert str(error.value) == ("stage 'broken' failed on a Ray worker: RuntimeError: broken on "
                                "purpose (the local executor shows the traceback)")


CRASH_SPEC = """
import os
import pandas as pd
from curate import LLM, Filter, Judge, Pipeline

def fatal(row):
    if row["n"] == 7:
        os._exit(3)  # a worker killed under the stage: a segfault, the OOM killer
    return True

STAGES = {{
    "filter": Filter(fatal, name="fatal_filter"),
    "llm": Judge(LLM("scripted", base_url="http://127.0.0.1:9/v1", api_key="x"),
                 fields=["n"], prompt=lambda row: fatal(row) and "judge {{n}}".format(**row),
                 name="fatal_judge"),
}}
pipeline = Pipeline(source=pd.DataFrame({{"n": list(range(40))}}), stages=[STAGES[{kind!r}]])
"""


@pytest.mark.parametrize("kind,stage", [("filter", "fatal_filter"), ("llm", "fatal_judge")])
def test_a_worker_that_dies_ends_the_run_in_one_line(ray_executor, tmp_path, kind, stage):
    """A worker process that dies on a row (a task, or an LLM stage's actor) is retried a
    bounded number of times, then the run stops with one line naming the stage (exit 2)."""
    import ray

    path = tmp_path / "spec.py"
    path.write_text(textwrap.dedent(CRASH_SPEC.format(kind=kind)))
    address = ray.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, "-m", "curate.pipeline", str(path), "--out",
                           str(tmp_path / "run"), "--no-progress", "--executor", "ray",
                           "--ray-address", address], capture_output=True, text=True,
                          cwd=ROOT, timeout=240)
    assert done.returncode == 2, done.stderr[-2000:]
    # Ray's own C++ notices may precede it; the run's news is one line, with no traceback
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and done.stderr.rstrip().endswith(errors[0]), done.stderr[-2000:]
    assert errors[0].startswith(f"error: stage {stage!r}: a Ray worker died"), errors
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "manifest.json").exists()
