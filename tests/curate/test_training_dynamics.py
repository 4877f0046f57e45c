"""SuspectFilter on a tiny model built here: rows whose answer breaks the rule the other rows
teach (the answer repeats the word asked for) get the highest out-of-fold loss and go."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from curate import ChatExport, Pipeline, SuspectFilter
from curate.errors import StageError
from tests.train.train_testkit import WORDS, word_tokenizer

EXPORT = ChatExport(system="You answer with the word .", human="Repeat : {word}", gpt="answer")
PLANTED = {32: "kiwi", 33: "plum", 34: "apple"}  # answers that do not repeat the word asked for


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer Llama (hidden 32) with the word tokenizer (see tests/train/conftest.py)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = word_tokenizer()
    tokenizer.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         initializer_range=0.2, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return path


def table() -> pd.DataFrame:
    words = [WORDS[i % len(WORDS)] for i in range(32)] + ["pear", "fig", "lime"]
    answers = [PLANTED.get(i, word) for i, word in enumerate(words)]
    made_by = ["llm" if i % 2 else "seed" for i in range(len(words))]
    return pd.DataFrame({"word": words, "answer": answers, "made_by": made_by})


def stage(model, **overrides) -> SuspectFilter:
    settings = dict(model=model, folds=3, epochs=8, lr=1e-2, batch_size=8, seed=0, share=0.08,
                    train_options={"method": "full", "max_seq_len": 64, "precision": "no"})
    settings.update(overrides)
    return SuspectFilter(EXPORT, **settings)


@pytest.fixture(scope="module")
def pipeline_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return Pipeline(name="suspects", source=table(), stages=[stage(tiny_model)], export=EXPORT).run(
        out, progress=False)


@pytest.mark.slow
def test_the_planted_answers_rank_highest_and_are_rejected_in_a_pipeline(pipeline_run):
    rejected = pipeline_run.rejected
    source = table()
    assert len(pipeline_run.kept) + len(rejected) == len(source)  # every row kept or rejected
    # share 0.08 of 35 rows: 3 rejected, exactly the planted ones, ranked 1 to 3
    assert sorted(rejected["word"] + ">" + rejected["answer"]) == sorted(
        f"{source['word'][i]}>{answer}" for i, answer in PLANTED.items())
    assert set(rejected["_answer_loss_rank"]) == {1, 2, 3}
    assert set(rejected["_reason_code"]) == {"unlikely_answer"}
    first = rejected.sort_values("_answer_loss_rank").iloc[0]
    assert first["_reason"].startswith(f"answer loss {first['_answer_loss']:.3f} nats/token, rank 1 of 35")
    kept = pipeline_run.kept
    assert kept["_answer_loss"].notna().all() and kept["_answer_loss"].max() < rejected["_answer_loss"].min()
    assert kept["_answer_loss_z"].mean() < 0 < rejected["_answer_loss_z"].min()
    stats = next(s for s in pipeline_run.manifest["stages"] if s["stage"] == "suspect_filter")
    assert stats["rows_scored"] == 35 and stats["rejected"] == 3 and stats["folds"] == 3
    assert stats["added_columns"] == {"_answer_loss": "measure", "_answer_loss_max": "measure",
                                      "_answer_loss_rank": "measure", "_answer_loss_z": "measure"}
    assert (kept["_answer_loss_max"] >= kept["_answer_loss"]).all()


@pytest.mark.slow
def test_the_review_app_sorts_every_row_by_its_answer_loss(pipeline_run):
    from curate.review.table import Query, RunTable

    table = RunTable(pipeline_run.out)
    assert {"_answer_loss", "_answer_loss_max", "_answer_loss_rank", "_answer_loss_z"} <= set(table.measures)
    page = table.page(Query(sort="_answer_loss", order="desc"), size=3)
    assert page.total == 35 and page.measure == "_answer_loss"
    assert [row["status"] for row in page.rows] == ["rejected"] * 3  # the planted rows first
    assert [row["measure"] for row in page.rows] == sorted((row["measure"] for row in page.rows), reverse=True)


@pytest.mark.slow
def test_a_rerun_with_the_same_settings_reuses_the_stage_without_training(tiny_model, pipeline_run):
    again = Pipeline(name="suspects", source=table(), stages=[stage(tiny_model)], export=EXPORT).run(
        pipeline_run.out, progress=False)
    assert [s["reused"] for s in again.manifest["stages"]] == [True]
    assert sorted(again.rejected["_id"]) == sorted(pipeline_run.rejected["_id"])


@pytest.mark.slow
def test_a_notebook_call_keeps_what_the_pipeline_kept_with_the_same_losses_to_the_last_bit(tiny_model, pipeline_run):
    kept = stage(tiny_model)(table())  # a fresh stage, the same seed: the same folds and training
    assert kept.sort_values("_id")[["_id", "_answer_loss", "_answer_loss_rank"]].to_dict("records") == \
        pipeline_run.kept.sort_values("_id")[["_id", "_answer_loss", "_answer_loss_rank"]].to_dict("records")


@pytest.mark.slow
def test_when_limits_the_rows_that_may_go_and_min_z_sets_the_bar_on_the_chosen_score(tiny_model):
    result = stage(tiny_model, when=lambda row: row["made_by"] == "llm", score="max", share=None,
                   min_z=2.0).run(table())
    rejected, kept = result.rejected, result.kept
    assert list(rejected["word"] + ">" + rejected["answer"]) == ["fig>plum"]  # the one planted llm row
    peak = rejected["_answer_loss_max"].iloc[0]
    assert rejected["_reason"].iloc[0].startswith(f"least likely answer token {peak:.3f} nats, rank ")
    assert (rejected["_answer_loss_z"] >= 2.0).all()
    assert (kept.loc[kept["made_by"] == "llm", "_answer_loss_z"] < 2.0).all()
    # the planted rows `when` leaves out stay, their high loss written for the review app
    left = kept[kept["word"] != kept["answer"]]
    assert set(left["made_by"]) == {"seed"} and len(left) == 2 and set(left["_answer_loss_rank"]) <= {1, 2, 3}


def test_the_fingerprint_covers_every_setting_and_the_model_bytes(tiny_model, tmp_path):
    base = stage(tiny_model).fingerprint().digest
    assert stage(tiny_model).fingerprint().digest == base
    changes = dict(folds=4, epochs=2, max_steps=5, lr=2e-2, lora_r=4, lora_alpha=8, batch_size=4, seed=3,
                   score="max", share=0.2, min_z=1.0, when=lambda row: True,
                   train_options={"method": "full", "max_seq_len": 32, "precision": "no"})
    for key, value in changes.items():
        assert stage(tiny_model, **{key: value}).fingerprint().digest != base, key
    other_export = ChatExport(system="You answer .", human="Repeat : {word}", gpt="answer")
    assert SuspectFilter(other_export, model=tiny_model).fingerprint() != SuspectFilter(EXPORT, model=tiny_model) \
        .fingerprint()
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    before = stage(copy).fingerprint()
    assert before.stable and stage(copy).fingerprint() == before
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    assert stage(copy).fingerprint() != before  # the same folder, other weights


def test_settings_that_cannot_work_stop_the_stage_in_one_line(tiny_model):
    with pytest.raises(StageError, match="folds must be an integer >= 2"):
        stage(tiny_model, folds=1)
    with pytest.raises(StageError, match=r"share must be in \(0, 1\]"):
        stage(tiny_model, share=1.5)
    with pytest.raises(StageError, match="score must be one of mean, max, got 'sum'"):
        stage(tiny_model, score="sum")
    with pytest.raises(StageError, match="give share, min_z or both"):
        stage(tiny_model, share=None)
    with pytest.raises(StageError, match="set lr with the stage's own parameters"):
        stage(tiny_model, train_options={"lr": 1.0})
    with pytest.raises(StageError, match="unknown key.*lora_rank.*known keys"):
        stage(tiny_model, train_options={"lora_rank": 4})
    with pytest.raises(StageError, match="is not a local model folder"):
        stage(tiny_model / "nowhere")
    with pytest.raises(StageError, match="5 rows to score: 3 folds need at least 6"):
        stage(tiny_model).run(table().head(5))
    with pytest.raises(StageError, match="has no field 'word'"):
        stage(tiny_model).run(table().rename(columns={"word": "w"}))
