"""Evaluate a model on the held-out Honeycomb set, with and without self-healing.

    python -m examples.honeycomb.evaluate --backend embedded --out runs/eval
    python -m examples.honeycomb.evaluate --backend endpoint --model NAME [--base-url URL]
    python -m examples.honeycomb.evaluate --backend adapter --adapter runs/train/adapter \\
        [--train-config train/configs/honeycomb.yaml]

Each row's prompt is the fine-tuning prompt. The first answer is scored as is; then failing
answers are sent back with the checker's failures, up to ``--attempts`` calls in all
(self-healing). Reported for both: the validity rate, the failures per rule, exact match with
the gold query (canonical JSON) and the part F1 (partial credit, ``examples.honeycomb.scoring``).

Rows are generated ``--batch-size`` at a time; each is appended to ``--out``/predictions.jsonl
as soon as its final answer is known. Rerun the same command after an interruption and only
the missing rows are generated: a saved row is reused when its question, columns and gold
query match and it was made with the same backend, model, attempts and max tokens.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

from assertions import heal_many
from assertions.honeycomb import canonical, check
from assertions.parsing import ParseError
from curate.errors import CurateError
from curate.io import read_table, write_json, write_jsonl
from examples.honeycomb import scoring
from examples.honeycomb.prompts import SYSTEM_PROMPT, USER_TEMPLATE, finetune_messages

EVAL_PATH = Path(__file__).parent / "data" / "eval.jsonl"
PREDICTIONS, REPORT = "predictions.jsonl", "evaluation.json"


# -- rows ---------------------------------------------------------------------------------------
def load_rows(path, limit: int | None = None) -> list[dict]:
    """The held-out rows ``{nlq, columns, query}`` as plain dicts (the first ``limit`` only)."""
    is_csv = str(path).endswith(".csv")
    frame = read_table(path, json_columns=("columns", "query") if is_csv else ())
    rows = [{name: _plain(value) for name, value in row.items()} for row in frame.to_dict("records")]
    rows = rows[:limit] if limit else rows
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("nlq"), str) or not row["nlq"].strip():
            raise CurateError(f"{path} row {number}: needs an nlq (the question, as text)")
        if not isinstance(row.get("columns"), (list, str)) or not row["columns"]:
            raise CurateError(f"{path} row {number}: needs columns (the list of column names)")
        try:
            scoring.parts_of(row.get("query"))
        except ParseError as error:
            raise CurateError(f"{path} row {number}: the gold query is not a query object ({error})") from None
    return rows


def _plain(value):
    """A table cell as plain JSON data (numpy values made plain, NaN -> None)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def row_key(row: dict) -> str:
    """A stable id of a row: a hash of its question, column list and gold query."""
    text = json.dumps([row["nlq"], row["columns"], row["query"]], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- scoring ------------------------------------------------------------------------------------
def same_query(output: str, gold) -> bool:
    """Exact match after canonicalisation (key order, list order where it does not matter)."""
    try:
        return canonical(output) == canonical(gold)
    except ValueError:
        return False


def assess(text: str, row: dict) -> dict:
    """One answer against its row: validity, failures, exact match and part scores."""
    failures = check(text, row["columns"])
    return {"valid": not failures, "rules": list(dict.fromkeys(f.rule for f in failures)),
            "failures": [f.message for f in failures], "exact": same_query(text, row["query"]),
            **scoring.score(text, row["query"])}


def summarize(answers: list[dict]) -> dict:
    """Validity, exact match, part F1 and failures per rule over one `assess` per row."""
    n = len(answers)
    valid, exact = sum(a["valid"] for a in answers), sum(a["exact"] for a in answers)
    per_rule = Counter(rule for a in answers for rule in a["rules"])
    parts = scoring.summarize(answers)
    return {"rows": n, "valid": valid, "validity_rate": round(valid / n, 4),
            "exact_match": exact, "exact_match_rate": round(exact / n, 4),
            "part_f1": parts["part_f1"], "parts": parts["parts"],
            "failures_per_rule": dict(per_rule.most_common())}


def make_record(row: dict, key: str, settings: str, first_text: str, final_text: str, attempts: int,
                no_reply: bool = False, first: dict | None = None, final: dict | None = None) -> dict:
    """The line of predictions.jsonl for a finished row (``first``/``final``: their `assess`).

    ``no_reply``: a request of the row got no answer; the line says so and is never reused."""
    first, final = first or assess(first_text, row), final or assess(final_text, row)
    record = {"key": key, "settings": settings, "nlq": row["nlq"], "gold": row["query"]}
    for name, text, result in (("first", first_text, first), ("final", final_text, final)):
        record.update({name: text, f"{name}_valid": result["valid"], f"{name}_exact": result["exact"],
                       f"{name}_part_f1": round(result["part_f1"], 4),
                       f"{name}_parts": {part: round(s["f1"], 4) for part, s in result["parts"].items()}})
    record.update({"attempts": attempts, "final_failures": final["failures"]})
    return {**record, "no_reply": True} if no_reply else record


# -- generation ---------------------------------------------------------------------------------
class NoReply(str):
    """The empty answer that stands for a request the endpoint did not answer."""


def evaluate(generate_many, rows: list[dict], attempts: int = 3, *, batch_size: int = 16,
             done: dict | None = None, save=None, settings: str = "") -> dict:
    """Self-heal every row not in ``done`` (``{key: record}``) and report on all ``rows``.

    ``generate_many`` takes a batch of conversations and returns the replies. New records are
    added to ``done`` and passed to ``save`` as each row's final answer is known, except rows
    with an unanswered request (`NoReply`), which a rerun asks again.
    """
    done = {} if done is None else done
    keys = [row_key(row) for row in rows]
    todo = {key: row for key, row in zip(keys, rows) if key not in done}

    def finished(key: str, answers: list[str]) -> None:
        no_reply = any(isinstance(answer, NoReply) for answer in answers)
        done[key] = make_record(todo[key], key, settings, answers[0], answers[-1], len(answers), no_reply)
        if save is not None and not no_reply:
            save(done[key])

    items = list(todo.items())
    for start in range(0, len(items), batch_size):
        _heal_group(generate_many, items[start:start + batch_size], attempts, finished)
    saved = [done[key] for key in keys]
    first = [assess(record["first"], row) for record, row in zip(saved, rows)]
    final = [assess(record["final"], row) for record, row in zip(saved, rows)]
    records = [make_record(row, key, settings, r["first"], r["final"], r["attempts"], r.get("no_reply", False),
                           a, b) for row, key, r, a, b in zip(rows, keys, saved, first, final)]
    healed = {**summarize(final), "mean_attempts": round(sum(r["attempts"] for r in records) / len(rows), 3)}
    return {"single_attempt": summarize(first), f"self_healing_{attempts}": healed,
            "predictions": records, "unsaved": sum(r.get("no_reply", False) for r in records)}


def _heal_group(generate_many, items: list[tuple[str, dict]], attempts: int, finished) -> None:
    """`heal_many` over one group of ``(key, row)``; ``finished(key, answers)`` per row, at once."""
    answers: list[list[str]] = [[] for _ in items]

    def checker(i: int, key: str, columns):
        def run(text: str):
            failures = check(text, columns)
            answers[i].append(text)
            if not failures or len(answers[i]) == attempts:
                finished(key, answers[i])
            return failures
        return run

    checks = [checker(i, key, row["columns"]) for i, (key, row) in enumerate(items)]
    heal_many(generate_many, checks, [finetune_messages(row) for _, row in items], max_attempts=attempts)


# -- predictions.jsonl: an append-only log of finished rows ---------------------------------------
def read_predictions(path: Path, settings: str) -> tuple[dict, int]:
    """The records saved in ``path`` with these ``settings`` by key, and how many lines are not
    reused (other settings, or a line cut short by a kill)."""
    done, other = {}, 0
    if not path.is_file():
        return done, other
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if _reusable(record, settings):
                done[record["key"]] = record
            elif line.strip() and not (isinstance(record, dict) and record.get("no_reply")):
                other += 1
    return done, other


def _reusable(record, settings: str) -> bool:
    return (isinstance(record, dict) and record.get("settings") == settings and not record.get("no_reply")
            and all(isinstance(record.get(name), str) for name in ("key", "first", "final"))
            and isinstance(record.get("attempts"), int) and record["attempts"] >= 1)


@contextlib.contextmanager
def prediction_log(path: Path, done: dict):
    """``save(record)``: append one line to ``path`` and flush it to disk.

    The file is first rewritten (atomically) with ``done`` alone, so a line cut short by a kill
    never runs into the next one.
    """
    write_jsonl(path, list(done.values()))
    with open(path, "a", encoding="utf-8") as fh:
        def save(record: dict) -> None:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        yield save


def settings_of(args, label: str, weights: str = "") -> str:
    """The fingerprint of what decides the answers: backend, model, attempts, max tokens, prompt."""
    parts = {"backend": args.backend, "model": label, "weights": weights, "attempts": args.attempts,
             "max_tokens": args.max_tokens, "prompt": [SYSTEM_PROMPT, USER_TEMPLATE]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _digest(*paths: Path) -> str:
    """A hash of the files at ``paths`` (folders: every file inside), read in chunks."""
    digest = hashlib.sha256()
    for path in paths:
        for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
            with open(file, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


# -- backends: each gives generate_many(conversations) -> list[str] ----------------------------------
def client_generator(llm, max_tokens: int):
    from curate.llm import Request

    def generate_many(conversations):
        results = llm.complete_many([Request(c, temperature=0.0, max_tokens=max_tokens) for c in conversations])
        # a reply cut off at max_tokens keeps its text; a request that failed has none
        return [NoReply() if getattr(r, "text", None) is None else r.text for r in results]
    return generate_many


def adapter_generator(train_config: str, adapter: str, max_tokens: int, batch_size: int = 16):
    """Greedy generation with a saved adapter (see :func:`model_generator`); the config is
    read from ``train_config``. The model loads on the first call."""
    def load():
        from train.config import load_config
        return _load_model(load_config(train_config), adapter, train_config)
    return _generator(load, max_tokens, batch_size)


def model_generator(cfg, adapter: str | None, max_tokens: int, batch_size: int = 16):
    """Greedy generation with a training config's base model, and ``adapter`` on it when
    given (None: the untuned base), stopping at the end of the turn."""
    return _generator(lambda: _load_model(cfg, adapter, "the training config"), max_tokens,
                      batch_size)


def _generator(load, max_tokens: int, batch_size: int):
    """Prompts of similar length are batched together; the model loads on the first call."""
    loaded: list = []

    def generate_many(conversations):
        import torch

        from train.templates import render_prompt

        if not loaded:
            loaded.extend(load())
        cfg, tokenizer, model, stop = loaded
        prompts = [render_prompt(c, tokenizer, cfg.template) for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        texts = [""] * len(prompts)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, use_cache=True,
                                     eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
            replies = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(batch, replies):
                texts[i] = text.strip()
        return texts
    return generate_many


def _load_model(cfg, adapter: str | None, where: str) -> tuple:
    from train.model import load_base, load_tokenizer, load_trained
    from train.templates import eot_id

    try:
        tokenizer = load_tokenizer(cfg)
        model = (load_trained(cfg, adapter) if adapter else load_base(cfg, quantize=False)).eval()
        stop = eot_id(tokenizer, cfg.template, cfg.eot_token)
    except Exception as error:  # config, template and weight errors come in many types
        first_line = (str(error).splitlines() or [""])[0]
        raise CurateError(f"cannot load {'the adapter ' + str(adapter) if adapter else 'the base model'} "
                          f"with {where}: {type(error).__name__}: {first_line}") from None
    tokenizer.padding_side = "left"
    return cfg, tokenizer, model, stop


def make_generator(args) -> tuple:
    """``(generate_many, model label, weights digest)`` for ``--backend``."""
    if args.backend == "adapter":
        folder, config = Path(args.adapter or ""), Path(args.train_config)
        if not args.adapter or not folder.is_dir():
            raise CurateError(f"--backend adapter needs --adapter DIR, a saved adapter folder (got {args.adapter})")
        if not config.is_file():
            raise CurateError(f"--train-config {config}: no such file")
        generate_many = adapter_generator(args.train_config, args.adapter, args.max_tokens, args.batch_size)
        return generate_many, f"adapter {args.adapter}", _digest(folder, config)
    from curate.llm import LLM, default_backend

    if args.backend == "embedded":
        llm = LLM(backend=default_backend(batch_size=args.batch_size), cache=args.cache)
    elif not (args.base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY")):
        raise CurateError("--backend endpoint needs --base-url URL (or OPENAI_BASE_URL, or OPENAI_API_KEY for OpenAI)")
    else:
        llm = LLM(args.model, base_url=args.base_url, concurrency=args.concurrency, cache=args.cache)
    return client_generator(llm, args.max_tokens), llm.model, ""


# -- command line -------------------------------------------------------------------------------
def print_table(report: dict, label: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"held-out evaluation: {label}")
    for col in ("mode", "rows", "valid", "exact match", "part F1", "attempts", "top failing rules"):
        table.add_column(col)
    for mode, s in report.items():
        if not isinstance(s, dict) or "rows" not in s:
            continue
        rules = ", ".join(f"{k} {v}" for k, v in list(s["failures_per_rule"].items())[:3])
        table.add_row(mode, str(s["rows"]), f"{s['validity_rate']:.1%}", f"{s['exact_match_rate']:.1%}",
                      f"{s['part_f1']:.3f}", str(s.get("mean_attempts", 1)), rules)
    Console().print(table)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m examples.honeycomb.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("embedded", "endpoint", "adapter"), default="embedded")
    p.add_argument("--model", help="model name at the endpoint (or env CURATE_LLM_MODEL)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (or env OPENAI_BASE_URL)")
    p.add_argument("--adapter", help="saved LoRA adapter folder (--backend adapter)")
    p.add_argument("--train-config", default="train/configs/honeycomb.yaml",
                   help="the training config the adapter was trained with")
    p.add_argument("--data", default=str(EVAL_PATH), help="held-out rows (nlq, columns, query)")
    p.add_argument("--limit", type=int, help="evaluate the first N rows only")
    p.add_argument("--attempts", type=int, default=3, help="model calls per row with self-healing")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16,
                   help="rows generated together (one batch of a local model, concurrent requests to an endpoint)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--no-cache", dest="cache", action="store_false", help="do not cache replies")
    p.add_argument("--fresh", action="store_true", help="generate every row again, reusing nothing in --out")
    p.add_argument("--out", default="runs/eval", help="folder for evaluation.json and predictions.jsonl")
    args = p.parse_args(argv)
    for name, least in (("limit", 0), ("attempts", 1), ("max_tokens", 1), ("batch_size", 1), ("concurrency", 1)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            p.error(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(args, name)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    path, rows, done = Path(args.out) / PREDICTIONS, [], {}
    try:
        rows = load_rows(args.data, args.limit)
        generate_many, label, weights = make_generator(args)
        settings = settings_of(args, label, weights)
        if not args.fresh:
            done, other = read_predictions(path, settings)
            _note_resume(path, rows, done, other)
        with prediction_log(path, done) as save:
            report = evaluate(generate_many, rows, attempts=args.attempts, batch_size=args.batch_size,
                              done=done, save=save, settings=settings)
        write_jsonl(path, report.pop("predictions"))
        unsaved = report.pop("unsaved")
        report = {"backend": args.backend, "model": label, "data": args.data, **report}
        write_json(Path(args.out) / REPORT, report)
    except (CurateError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {_saved(rows, done)} of {len(rows)} rows are saved in {path}; "
              f"run the same command again to finish", file=sys.stderr)
        return 130
    if unsaved:
        print(f"note: {unsaved} rows got no reply from the endpoint; they count as empty answers here "
              f"and are not saved, so running the same command again asks again", file=sys.stderr)
    print_table(report, label)
    return 0


def _saved(rows: list[dict], done: dict) -> int:
    return sum(1 for key in {row_key(row) for row in rows} if key in done and not done[key].get("no_reply"))


def _note_resume(path: Path, rows: list[dict], done: dict, other: int) -> None:
    if _saved(rows, done):
        print(f"resuming: {_saved(rows, done)} of {len(rows)} rows are already in {path}", file=sys.stderr)
    if other:
        print(f"note: {other} lines of {path} were made with other settings (or cut short) "
              f"and are replaced", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
