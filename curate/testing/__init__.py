"""Test helpers that ship with the library: a scripted chat-completions server on loopback."""
from .server import Fault, Reply, ScriptedServer, last_user_message

__all__ = ["Fault", "Reply", "ScriptedServer", "last_user_message"]
