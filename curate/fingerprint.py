"""Stable fingerprints of stage parameters, used to decide whether a checkpoint is reusable.

A fingerprint is built from explicit inputs only: plain values by value, functions by their
qualified name and source text, objects by their own ``fingerprint()`` when they have one.
Nothing is pickled, and attributes whose name marks them as secret are never included.
"""
from __future__ import annotations

import hashlib
import inspect
import json

import numpy as np
import pandas as pd

SECRET_WORDS = ("api_key", "apikey", "secret", "token_", "password", "authorization")


def _is_secret(name: str) -> bool:
    low = name.lower()
    return any(word in low for word in SECRET_WORDS)


def _function_identity(fn) -> str:
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    code = getattr(fn, "__code__", None)
    if code is not None:  # tells apart two lambdas written on one line
        source += repr((code.co_code, code.co_consts, code.co_names))
    return f"{name}#{hashlib.sha1(source.encode()).hexdigest()[:12]}"


def describe(value, depth: int = 0):
    """A JSON-able description of a parameter value, stable across runs."""
    if depth > 6:
        return repr(type(value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [describe(v, depth + 1) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, dict):
        return {str(k): ("<secret>" if _is_secret(str(k)) else describe(v, depth + 1))
                for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, pd.DataFrame):
        digest = pd.util.hash_pandas_object(value.astype(str), index=False).values
        return {"dataframe": hashlib.sha1(digest.tobytes()).hexdigest()}
    if isinstance(value, np.ndarray):
        return {"ndarray": hashlib.sha1(value.tobytes()).hexdigest()}
    if hasattr(value, "fingerprint") and callable(value.fingerprint) and not inspect.isclass(value):
        return {"type": type(value).__qualname__, "fp": value.fingerprint()}
    if inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value):
        return {"fn": _function_identity(value)}
    if inspect.isclass(value):
        return {"class": _function_identity(value)}
    if callable(value) and hasattr(type(value), "__call__") and not hasattr(value, "__dict__"):
        return {"callable": _function_identity(type(value))}
    if hasattr(value, "__dict__"):
        return {"type": type(value).__qualname__,
                "attrs": describe({k: v for k, v in vars(value).items()
                                   if not k.startswith("_")}, depth + 1)}
    return repr(value)


def fingerprint_of(value) -> str:
    """A hex digest of ``describe(value)``."""
    text = json.dumps(describe(value), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
