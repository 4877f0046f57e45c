"""Stages that call an LLM: one shared loop (:mod:`.base`), each stage a prompt and a parser."""
