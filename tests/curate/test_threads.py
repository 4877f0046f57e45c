"""Threads for the in-process models: the cores other work leaves free, or CURATE_THREADS."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from curate import EmbeddingDedup
from curate.core.threads import free_cores, model_thread_limit, model_threads, usable_cores
from curate.errors import CurateError


@pytest.mark.parametrize("cores, load, running, expected", [
    (2, 0.1, 1, 2),    # idle: every core
    (2, 1.0, 2, 1),    # another job holds one core
    (2, 1.3, 1, 2),    # the load average counts this process's own earlier work: idle now
    (2, 0.2, 3, 2),    # a burst of runnable tasks the last minute did not see
    (4, 2.4, 4, 2),
    (2, 14.0, 12, 1),  # a crowded machine: still one thread
    (8, 3.0, None, 5),  # no /proc/loadavg: the load average alone
])
def test_free_cores(cores, load, running, expected):
    assert free_cores(cores, load, running) == expected


def test_the_user_sets_the_threads(monkeypatch):
    monkeypatch.setenv("CURATE_THREADS", "3")
    assert model_threads() == 3
    monkeypatch.setenv("CURATE_THREADS", "zero")
    with pytest.raises(CurateError, match="CURATE_THREADS must be a whole number"):
        model_threads()
    monkeypatch.delenv("CURATE_THREADS")
    assert 1 <= model_threads() <= usable_cores()


def test_torch_runs_on_the_chosen_threads_and_gets_its_own_back(monkeypatch):
    monkeypatch.setenv("CURATE_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with model_thread_limit() as threads:
            assert threads == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


class _Encoder:
    """A tiny encoder (the stage takes anything with ``encode``) that notes torch's threads."""

    def __init__(self):
        self.threads = []

    def encode(self, texts, **_):
        self.threads.append(torch.get_num_threads())
        return np.eye(len(texts), 4, dtype=np.float32)[:, :4] + 0.1


def test_the_encoder_runs_on_the_chosen_threads(monkeypatch):
    monkeypatch.setenv("CURATE_THREADS", "1")
    encoder = _Encoder()
    before = torch.get_num_threads()
    EmbeddingDedup("text", model=encoder).run(pd.DataFrame({"text": ["a", "b", "c"]}))
    assert encoder.threads == [1] and torch.get_num_threads() == before
