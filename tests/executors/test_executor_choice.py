"""Choosing an executor: the local one imports no Ray, a missing Ray is one line naming the
install command, bad choices are one-line errors, and what decides where a stage runs."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from executor_kit import client

from curate import LLM, Augment, Judge
from curate.errors import CurateError
from curate.pipeline.__main__ import main
from curate.pipeline.executors import LocalExecutor, make_executor
from curate.pipeline.executors.ray_executor import split_rate_limits, worker_paths
from curate.testing import ScriptedServer

ROOT = Path(__file__).resolve().parents[2]

LOCAL_RUN = """
import sys, tempfile
import pandas as pd
import curate.pipeline
from curate import Filter, Pipeline
Pipeline(source=pd.DataFrame({"n": [1, 2, 3]}), stages=[Filter(lambda row: row["n"] > 1)]).run(
    tempfile.mkdtemp(), progress=False)
loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
print("ray modules:", loaded)
"""

SPEC = """
import pandas as pd
from curate import Filter, Pipeline
pipeline = Pipeline(source=pd.DataFrame({"n": [1, 2]}), stages=[Filter(lambda row: True)])
"""


def test_the_local_executor_imports_no_ray():
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(LOCAL_RUN)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ray modules: []" in done.stdout


def test_a_missing_ray_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    spec = tmp_path / "spec.py"
    spec.write_text(textwrap.dedent(SPEC))
    code = main([str(spec), "--out", str(tmp_path / "run"), "--executor", "ray"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "pip install 'curate-workbench[ray]'" in lines[0]
    assert not (tmp_path / "run").exists()


def test_ray_options_without_the_ray_executor_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "spec.py"), "--out", str(tmp_path / "run"), "--ray-cpus", "2"])
    assert stop.value.code == 2
    assert "--ray-address and --ray-cpus go with --executor ray" in capsys.readouterr().err


def test_make_executor_choices():
    executor, made = make_executor(None)
    assert isinstance(executor, LocalExecutor) and made
    mine = LocalExecutor()
    assert make_executor(mine) == (mine, False)  # the caller's to close
    with pytest.raises(CurateError, match="unknown executor 'spark'; choose one of local, ray"):
        make_executor("spark")
    with pytest.raises(CurateError, match="need executor='ray'"):
        make_executor("local", num_cpus=2)
    with pytest.raises(CurateError, match="must have run_stage"):
        make_executor(object())


def test_augment_is_row_wise_only_without_few_shot_rows():
    llm = LLM("m", base_url="http://127.0.0.1:9/v1", api_key="x")
    assert Augment(llm, prompt=lambda row: "p").kind == "row"
    assert Augment(llm, prompt=lambda row, examples: "p", k=2).kind == "global"
    assert Judge(llm, fields=["text"]).kind == "row"


def test_split_rate_limits_gives_each_actor_its_share():
    with ScriptedServer() as server:
        llm = client(server, rpm=600, tpm=90_000)
        share = split_rate_limits(llm, 4)
        assert (share.rpm, share.tpm) == (150, 22_500)
        assert (share.limiter.rpm, share.limiter.tpm) == (150, 22_500)
        assert (llm.rpm, llm.tpm, llm.limiter.rpm) == (600, 90_000, 600)
        unlimited = split_rate_limits(client(server), 4)
        assert (unlimited.rpm, unlimited.tpm) == (None, None)


def test_workers_import_this_working_tree():
    paths = worker_paths([ROOT / "examples"])
    assert paths[0] == str(ROOT) and str(ROOT / "examples") in paths
    assert not any("site-packages" in p for p in paths)


def test_an_address_nothing_answers_on_is_one_line_at_once():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("this process already has a Ray")
    from curate.pipeline.executors.ray_executor import RayExecutor

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executor = RayExecutor(address=f"127.0.0.1:{port}")
    expected = rf"cannot attach to the Ray cluster at 127.0.0.1:{port}: .*; is `ray start"
    with pytest.raises(CurateError, match=expected):
        executor.start()
    assert not ray.is_initialized()
