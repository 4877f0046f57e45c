"""Test helpers that ship with the library: an in-process scripted model for the logic of
LLM stages, and a scripted chat-completions server on loopback for the client itself."""
from .model import ScriptedModel
from .server import Fault, Reply, ScriptedServer, last_user_message

__all__ = ["Fault", "Reply", "ScriptedModel", "ScriptedServer", "last_user_message"]
