"""An in-process scripted model for testing the logic of LLM stages (yours too) without a
server: simonw/llm's ``MockModel`` shape, a queue of replies and a history of requests."""
from __future__ import annotations

from collections import deque

from ..llm.limits import prompt_tokens
from ..llm.types import Completion, Request
from .server import Reply


class ScriptedModel:
    """A :class:`~curate.llm.backends.base.Backend` answering from a queue of ``replies``,
    then with ``reply(request)``; ``history`` holds every request it saw, as sent (the
    client's defaults filled in). A reply is text, or a :class:`~curate.testing.Reply` for a
    finish reason (``"length"``: cut off) or token counts::

        model = ScriptedModel('{"critique": "fine", "outcome": "good"}', reply=lambda r: ...)
        Judge(model.client(), fields=["nlq"]).run(df)
    """

    def __init__(self, *replies, reply=None, name: str = "scripted"):
        self.name, self.reply, self.queue, self.history = name, reply, deque(replies), []

    def client(self, **options):
        """An :class:`~curate.llm.LLM` on this model (no response cache unless given)."""
        from ..llm.client import LLM

        return LLM(backend=self, **{"cache": False, **options})

    def generate(self, requests: list[Request]) -> list[Completion]:
        out = []
        for request in requests:
            self.history.append(request)
            if not self.queue and self.reply is None:
                raise AssertionError(f"ScriptedModel: no reply left for request {len(self.history)}")
            answer = self.queue.popleft() if self.queue else self.reply(request)
            answer = answer if isinstance(answer, Reply) else Reply(str(answer))
            out.append(Completion(answer.text, answer.finish_reason, model=self.name,
                                  prompt_tokens=answer.prompt_tokens or prompt_tokens(request),
                                  completion_tokens=answer.completion_tokens or len(answer.text) // 4 + 1))
        return out
