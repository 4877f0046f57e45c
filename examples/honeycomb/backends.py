"""The models an evaluation can ask: each backend gives ``generate_many(conversations) ->
replies``, greedy, one reply per conversation.

- an OpenAI-compatible endpoint or the embedded model, through `curate.llm.LLM`;
- a base model from a training config, with a saved LoRA adapter on it or untuned.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from curate.errors import CurateError


class NoReply(str):
    """The empty answer that stands for a request the endpoint did not answer."""


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


def client_generator(llm, max_tokens: int):
    from curate.llm import Request

    def generate_many(conversations):
        results = llm.complete_many([Request(c, temperature=0.0, max_tokens=max_tokens) for c in conversations])
        # a reply cut off at max_tokens keeps its text; a request that failed has none
        return [NoReply() if getattr(r, "text", None) is None else r.text for r in results]
    return generate_many


def model_generator(cfg, adapter: str | None, max_tokens: int, batch_size: int = 16):
    """Greedy generation with a training config's base model, and ``adapter`` on it when
    given (None: the untuned base), stopping at the end of the turn."""
    return _generator(lambda: _load_model(cfg, adapter, "the training config"), max_tokens,
                      batch_size)


def _generator(load, max_tokens: int, batch_size: int):
    """Prompts of similar length batched together in the training template, decoded by the
    embedded backend's loop; the model loads (``load()``) on the first call."""
    loaded: list = []

    def generate_many(conversations):
        from curate.llm import Request
        from curate.llm.backends.decode import generate_batch
        from train.templates import render_prompt

        if not loaded:
            loaded.extend(load())
        cfg, tokenizer, model, stop = loaded
        ids = [tokenizer(render_prompt(c, tokenizer, cfg.template), add_special_tokens=False)["input_ids"]
               for c in conversations]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        texts = [""] * len(ids)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            requests = [Request(conversations[i], temperature=0, max_tokens=max_tokens) for i in batch]
            done = generate_batch(model, tokenizer, requests, [0] * len(batch), max_tokens,
                                  prompts=[ids[i] for i in batch], eos={stop})
            for i, completion in zip(batch, done):
                texts[i] = completion.text.strip()
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

        def load():
            from train.config import load_config
            return _load_model(load_config(args.train_config), args.adapter, args.train_config)
        generate_many = _generator(load, args.max_tokens, args.batch_size)
        return generate_many, f"adapter {args.adapter}", _digest(folder, config)
    from curate.llm import LLM, default_backend

    if args.backend == "embedded":
        llm = LLM(backend=default_backend(batch_size=args.batch_size), cache=args.cache)
    elif not (args.base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY")):
        raise CurateError("--backend endpoint needs --base-url URL (or OPENAI_BASE_URL, or OPENAI_API_KEY for OpenAI)")
    else:
        llm = LLM(args.model, base_url=args.base_url, concurrency=args.concurrency, cache=args.cache)
    return client_generator(llm, args.max_tokens), llm.model, ""
