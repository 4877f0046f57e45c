"""Render a conversation to text: the one function used for training and for inference.

``template: auto`` uses the tokenizer's chat template; ``chatml`` and ``alpaca`` are written out
here for base models without one. Evaluation and serving use `render_prompt`, which is `render`
with the generation prompt, so the two cannot drift.
"""
from __future__ import annotations

from train.errors import TemplateError

ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.\n\n")


def render(messages: list[dict], tokenizer, template: str = "auto", add_generation_prompt: bool = False) -> str:
    """The conversation as the model sees it (special tokens included, as text)."""
    if template == "chatml":
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")
    if template == "alpaca":
        if not tokenizer.eos_token:
            raise TemplateError("template alpaca ends answers with the EOS token, but the tokenizer has none")
        # Stanford Alpaca's prompt; an alpaca row with an input already carries "### Input:" in
        # its user content (see data.to_messages), so single-turn rows render exactly as Alpaca did.
        system = [m["content"] for m in messages if m["role"] == "system"]
        text = (system[0] + "\n\n") if system else ALPACA_PREAMBLE
        for m in messages:
            if m["role"] == "user":
                text += f"### Instruction:\n{m['content']}\n\n"
            elif m["role"] == "assistant":
                text += f"### Response:\n{m['content']}{tokenizer.eos_token}\n\n"
        return text + ("### Response:\n" if add_generation_prompt else "")
    if template != "auto":
        raise TemplateError(f"unknown template {template!r}; use auto, chatml or alpaca")
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("the tokenizer has no chat template; set template: chatml or template: alpaca "
                            "(a base model learns whichever you pick)")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The messages before the last assistant turn: what a model is asked at inference."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return messages[:last]


def render_prompt(messages: list[dict], tokenizer, template: str = "auto") -> str:
    """The text to generate from: the conversation so far plus the assistant header.

    A trailing assistant turn (a training row) is left out, so a held-out row can be passed as is.
    """
    return render(prompt_messages(messages), tokenizer, template, add_generation_prompt=True)


def eot_token(tokenizer, template: str = "auto", configured: str | None = None) -> str:
    """The token that closes an assistant turn: learned in training, the stop token at inference."""
    token = configured or ("<|im_end|>" if template == "chatml" else tokenizer.eos_token)
    if not token:
        raise TemplateError("the tokenizer has no EOS token; set eot_token: to the token that ends an answer")
    ids = tokenizer.convert_tokens_to_ids([token])
    if ids[0] is None or ids[0] == tokenizer.unk_token_id:
        hint = " (a base model without ChatML tokens: use template: alpaca)" if template == "chatml" else ""
        raise TemplateError(f"end-of-turn token {token!r} is not a single token of this tokenizer{hint}")
    return token


def eot_id(tokenizer, template: str = "auto", configured: str | None = None) -> int:
    return tokenizer.convert_tokens_to_ids([eot_token(tokenizer, template, configured)])[0]
