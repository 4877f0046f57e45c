"""The dataset card every run writes beside its export: a Hugging Face card that loads."""
import json

import pytest
import yaml

from curate import Filter, Pipeline, ChatExport
from curate.testing import ScriptedModel

ROWS = [{"q": f"question {i}", "a": str(i)} for i in range(12)] + [{"q": "", "a": "x"}]


def pipeline(**export):
    from curate import Judge

    judge = Judge(ScriptedModel(reply=lambda r: '{"critique": "ok", "outcome": "good"}',
                                name="judge-model").client(), fields=["q", "a"], keep="all")
    return Pipeline(name="numbers", source=ROWS, stages=[
        Filter(lambda r: int(r["a"]) % 4 != 0 if r["a"].isdigit() else (False, "not_a_number"),
               name="no_fours"), judge],
        export=ChatExport(human="{q}", gpt="a", **{"formats": ("sharegpt", "messages"),
                                                       **export}))


def card_of(out):
    text = (out / "export" / "README.md").read_text()
    _, head, body = text.split("---\n", 2)
    return yaml.safe_load(head), body


def test_the_card_has_the_header_and_the_body_a_reader_needs(tmp_path):
    run = pipeline().run(tmp_path / "run", progress=False)
    meta, body = card_of(tmp_path / "run")
    assert meta["license"] == "other" and meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"] and meta["pretty_name"] == "numbers"
    assert meta["configs"] == [
        {"config_name": "sharegpt", "data_files": [{"split": "train", "path": "sharegpt.jsonl"}],
         "default": True},
        {"config_name": "messages", "data_files": [{"split": "train", "path": "messages.jsonl"}]}]
    assert "# fill in the license" in (tmp_path / "run/export/README.md").read_text()
    assert f"digest of its content `{run.manifest['source']['key']}`" in body
    assert "| 1 | no_fours | Filter |  | 13 | 9 | 4 | 0 | no_fours 3, not_a_number 1 |" in body
    assert "| 2 | judge | Judge | `judge-model` | 9 | 9 | 0 | 0 |" in body
    assert "- exported: 9" in body and "- source rows: 13" in body
    tokens = run.manifest["llm_computed"]["prompt_tokens"]
    assert tokens > 0 and f"prompt tokens {tokens:,}" in body
    assert f"pipeline.run('{tmp_path / 'run'}')" in body
    record = json.loads((tmp_path / "run/.curate-run.json").read_text())
    assert "export/README.md" in json.dumps(record)


def test_datasets_loads_the_export_folder_by_its_card(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    pipeline().run(tmp_path / "run", progress=False)
    folder = str(tmp_path / "run" / "export")
    first = datasets.load_dataset(folder, cache_dir=str(tmp_path / "cache"))
    assert list(first) == ["train"] and first["train"].num_rows == 9
    assert first["train"][0]["conversations"][0] == {"from": "human", "value": "question 1"}
    other = datasets.load_dataset(folder, "messages", cache_dir=str(tmp_path / "cache"))
    assert other["train"][0]["messages"][1] == {"role": "assistant", "content": "1"}


def test_a_rerun_keeps_the_card_and_a_changed_export_rewrites_it(tmp_path):
    pipeline().run(tmp_path / "run", progress=False)
    card = tmp_path / "run/export/README.md"
    before = card.stat().st_mtime_ns
    again = pipeline().run(tmp_path / "run", progress=False)
    assert card.stat().st_mtime_ns == before and "export" in again.manifest["reused"]["outputs"]
    pipeline(formats=("messages",)).run(tmp_path / "run", progress=False)
    meta, _ = card_of(tmp_path / "run")
    assert [c["config_name"] for c in meta["configs"]] == ["messages"]
    assert not (tmp_path / "run/export/sharegpt.jsonl").exists()
