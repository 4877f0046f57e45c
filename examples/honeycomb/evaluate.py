"""Evaluate a model on the held-out Honeycomb set, with and without self-healing, or score
answers made anywhere else.

    python -m examples.honeycomb.evaluate --backend embedded --out runs/eval
    python -m examples.honeycomb.evaluate --backend endpoint --model NAME [--base-url URL]
    python -m examples.honeycomb.evaluate --backend adapter --adapter runs/train/adapter \\
        [--train-config train/configs/honeycomb.yaml]
    python -m examples.honeycomb.evaluate --predictions answers.jsonl

Each row's prompt is the fine-tuning prompt. The first answer is scored as is; failing answers
are sent back with the checker's failures, up to ``--attempts`` calls in all (self-healing).
``--predictions FILE`` instead scores one JSON line ``{"query": <object or text>}`` per
held-out row, in order. Reported with 95% intervals (a cluster bootstrap over a row's
``group``), beside what degenerate answers score (``baselines``): validity (the checker), atom
F1 (the headline, ``scoring``) and exact match. The output ends with one JSON line
``{"validity", "atom_f1", "exact_match"}``, each ``{"value", "low", "high"}`` (for generated
answers, the self-healed ones).

Each row is appended to ``--out``/predictions.jsonl as soon as its final answer is known. Rerun
the same command after an interruption and only the missing rows are generated: a saved row is
reused when its question, columns and gold query match and it was made with the same backend,
model, attempts and max tokens.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

from assertions import heal_many
from assertions.honeycomb import atoms, check
from assertions.parsing import ParseError
from curate.core.table import to_jsonable
from curate.errors import CurateError
from curate.io import read_table, write_json, write_jsonl
from examples.honeycomb import baselines, metrics
from examples.honeycomb.backends import NoReply, make_generator
from examples.honeycomb.prompts import SYSTEM_PROMPT, USER_TEMPLATE, finetune_messages

EVAL_PATH = Path(__file__).parent / "data" / "eval.jsonl"
PREDICTIONS, REPORT = "predictions.jsonl", "evaluation.json"


def load_rows(path, limit: int | None = None) -> list[dict]:
    """The held-out rows ``{nlq, columns, query}`` as plain dicts (the first ``limit`` only)."""
    is_csv = str(path).endswith(".csv")
    frame = read_table(path, json_columns=("columns", "query") if is_csv else ())
    rows = [{name: to_jsonable(value) for name, value in row.items()}
            for row in frame.to_dict("records")][:limit or None]
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("nlq"), str) or not row["nlq"].strip():
            raise CurateError(f"{path} row {number}: needs an nlq (the question, as text)")
        if not isinstance(row.get("columns"), (list, str)) or not row["columns"]:
            raise CurateError(f"{path} row {number}: needs columns (the list of column names)")
        try:
            said = atoms(row.get("query"))
        except ParseError as error:
            raise CurateError(f"{path} row {number}: the gold query is not a query object ({error})") from None
        if not said:
            raise CurateError(f"{path} row {number}: the gold query sets nothing (no calculation, filter, "
                              f"breakdown or time); a held-out answer must say something")
    return rows


def row_key(row: dict) -> str:
    """A stable id of a row: a hash of its question, column list and gold query."""
    text = json.dumps([row["nlq"], row["columns"], row["query"]], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_record(row: dict, key: str, settings: str, first_text: str, final_text: str, attempts: int,
                no_reply: bool = False, first: dict | None = None, final: dict | None = None) -> dict:
    """The line of predictions.jsonl for a finished row (``first``/``final``: their `assess`).

    ``no_reply``: a request of the row got no answer; the line says so and is never reused."""
    first, final = first or metrics.assess(first_text, row), final or metrics.assess(final_text, row)
    record = {"key": key, "settings": settings, "nlq": row["nlq"], "gold": row["query"]}
    for name, text, result in (("first", first_text, first), ("final", final_text, final)):
        record.update({name: text, f"{name}_valid": result["valid"], f"{name}_exact": result["exact"],
                       f"{name}_atom_f1": round(result["atom_f1"], 4),
                       f"{name}_parts": {kind: round(s["f1"], 4) for kind, s in result["parts"].items()}})
    record.update({"attempts": attempts, "final_failures": final["failures"]})
    return {**record, "no_reply": True} if no_reply else record


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
    saved, groups = [done[key] for key in keys], metrics.groups_of(rows)
    first, final = ([metrics.assess(r[name], row) for r, row in zip(saved, rows)]
                    for name in ("first", "final"))
    records = [make_record(row, key, settings, r["first"], r["final"], r["attempts"], r.get("no_reply", False),
                           a, b) for row, key, r, a, b in zip(rows, keys, saved, first, final)]
    healed = {**metrics.summarize(final, groups),
              "mean_attempts": round(sum(r["attempts"] for r in records) / len(rows), 3)}
    return {"single_attempt": metrics.summarize(first, groups), f"self_healing_{attempts}": healed,
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


def read_answers(path, rows: int) -> list:
    """The ``query`` of each JSON line of ``path`` (blank lines skipped): one per held-out row."""
    answers = []
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise CurateError(f"--predictions {path}: {error.strerror or error}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise CurateError(f"{path} line {number}: not JSON ({error}); write one line "
                              f'{{"query": ...}} per held-out row') from None
        if not isinstance(record, dict) or "query" not in record:
            raise CurateError(f'{path} line {number}: expected an object with a "query" key '
                              f"(the answer, as an object or text), got {line.strip()[:60]}")
        answers.append(record["query"])
    if len(answers) != rows:
        raise CurateError(f"{path}: {len(answers)} answers for {rows} held-out rows; write one line "
                          f'{{"query": ...}} per row of the held-out file, in its order')
    return answers


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m examples.honeycomb.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("embedded", "endpoint", "adapter"), default="embedded")
    p.add_argument("--model", help="model name at the endpoint (or env CURATE_LLM_MODEL)")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (or env OPENAI_BASE_URL)")
    p.add_argument("--adapter", help="saved LoRA adapter folder (--backend adapter)")
    p.add_argument("--train-config", default="train/configs/honeycomb.yaml",
                   help="the training config the adapter was trained with")
    p.add_argument("--data", default=str(EVAL_PATH), help="held-out rows (nlq, columns, query[, group])")
    p.add_argument("--predictions", metavar="FILE",
                   help="score these answers (one JSON line {\"query\": ...} per held-out row) instead "
                        "of generating any")
    p.add_argument("--seeds", default=str(baselines.SEEDS_PATH),
                   help="the rows whose nearest question gives the nearest-seed baseline")
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
        seeds = load_rows(args.seeds)
        if args.predictions:
            answers = metrics.score_answers(read_answers(args.predictions, len(rows)), rows)
            return _report({f"answers ({Path(args.predictions).name})": answers}, answers,
                           f"held-out evaluation of {args.predictions}",
                           metrics.baseline_summaries(rows, seeds))
        generate_many, label, weights = make_generator(args)
        settings = settings_of(args, label, weights)
        if not args.fresh:
            done, other = read_predictions(path, settings)
            if saved := _saved(rows, done):
                print(f"resuming: {saved} of {len(rows)} rows are already in {path}",
                      file=sys.stderr)
            if other:
                print(f"note: {other} lines of {path} were made with other settings (or cut short) "
                      f"and are replaced", file=sys.stderr)
        with prediction_log(path, done) as save:
            report = evaluate(generate_many, rows, attempts=args.attempts, batch_size=args.batch_size,
                              done=done, save=save, settings=settings)
        write_jsonl(path, report.pop("predictions"))
        unsaved = report.pop("unsaved")
        report = {"backend": args.backend, "model": label, "data": args.data, **report,
                  "baselines": metrics.baseline_summaries(rows, seeds)}
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
    first, healed = report["single_attempt"], report[f"self_healing_{args.attempts}"]
    modes = {"first answer": first, f"self-healing, up to {args.attempts} calls": healed}
    return _report(modes, healed, f"held-out evaluation: {label}", report["baselines"])


def _report(answers: dict, final: dict, title: str, degenerate: dict) -> int:
    """The table of ``answers`` beside the ``degenerate`` baselines, then the headline JSON line
    of ``final``."""
    metrics.print_table(title, {**answers, **degenerate})
    print(json.dumps(metrics.headline(final)))
    return 0


def _saved(rows: list[dict], done: dict) -> int:
    return sum(1 for key in {row_key(row) for row in rows} if key in done and not done[key].get("no_reply"))


if __name__ == "__main__":
    sys.exit(main())
