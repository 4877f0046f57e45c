"""Several CPU processes: a torchrun launch trains as one data-parallel run, and launches that
would train independent copies stop with the command that works."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from accelerate.utils import DistributedType
from train_testkit import metrics

from train.config import config_dict
from train.errors import ConfigError
from train.launch import check_launch
from train.loop import train

REPO = Path(__file__).resolve().parents[2]


def losses(run_dir):
    return [m["loss"] for m in metrics(run_dir) if "loss" in m]


@pytest.mark.slow
def test_two_cpu_processes_train_like_one_process_accumulating_their_batches(tiny_cfg, tmp_path):
    # each step sees the same 4 rows: 2 processes x 1 micro-batch of 2, or 1 process x 2 micro-batches of 2
    settings = dict(max_steps=3, micro_batch_size=2, precision="no")
    train(tiny_cfg(**settings, grad_accum=2, output_dir=str(tmp_path / "one")))
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(config_dict(tiny_cfg(**settings, grad_accum=1, output_dir=str(tmp_path / "two")))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"  # without a GPU, plain torchrun trains on the CPUs
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "train", str(config)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    assert run.stdout.count("max_steps: 3/3 steps") == 1  # one summary, one metrics file: rank 0 writes


def test_a_process_of_several_set_up_alone_stops_with_the_command_that_works(monkeypatch):
    alone = SimpleNamespace(distributed_type=DistributedType.NO, num_processes=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"WORLD_SIZE is 2 but accelerate set up one non-distributed process.*"
                                          r"ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 -m train CONFIG$"):
        check_launch(alone)
    check_launch(SimpleNamespace(distributed_type=DistributedType.MULTI_CPU, num_processes=2))


def test_accelerate_launch_of_a_multi_cpu_config_stops_with_the_command_that_works(monkeypatch):
    # what accelerate launch sets for a multi-CPU config it runs as one process
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    alone = SimpleNamespace(distributed_type=DistributedType.NO, num_processes=1)
    check_launch(alone)  # one process asked for: fine
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with pytest.raises(ConfigError, match=r"accelerate launch runs a multi-CPU config as one process.*torchrun"):
        check_launch(alone)
