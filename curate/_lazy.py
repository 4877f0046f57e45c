"""Lazy exports: a package's public names, imported from their modules on first use.

``import curate`` stays fast and pulls in neither torch nor openai until a name that needs
them is used.
"""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: name -> ``exports[name]`` module, relative."""
    module = importlib.import_module(package)

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        setattr(module, name, value)
        return value

    def __dir__():
        return sorted([*vars(module), *exports])

    return __getattr__, __dir__
