"""The command line's start: heavy libraries imported when first used, not when named.

An unchanged rerun proves that nothing changed from digests, fingerprints and small JSON
files; it never touches a table. Yet the spec and the stages it builds ``import pandas``
(and numpy, pyarrow, jinja2) at the top of their modules, which costs more than the whole
check. For the command line only, :func:`defer_imports` puts a stand-in for each such
module in ``sys.modules``: the ``import`` statements bind the stand-in, and the first use
of any of its attributes imports the real module and copies its namespace into the
stand-in, so later uses cost nothing extra. A library user's process is never changed.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

DEFERRED = ("pandas", "numpy", "pyarrow", "pyarrow.compute", "jinja2")
_lock = threading.RLock()


class _Deferred(types.ModuleType):
    """A module not imported yet; any attribute it lacks imports it."""

    def __getattr__(self, name: str):
        child = sys.modules.get(f"{self.__name__}.{name}")
        if isinstance(child, _Deferred):  # ``import pyarrow.compute as pc`` binds the child
            return child
        with _lock:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
                real = importlib.import_module(self.__name__)
                self.__dict__.update({k: v for k, v in vars(real).items()
                                      if k not in ("__spec__", "__loader__")})
                self.__spec__, self.__loader__ = real.__spec__, real.__loader__
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None


def defer_imports(names=DEFERRED) -> None:
    """Defer each module of ``names`` that is installed and not imported yet."""
    for name in names:
        parent = name.rpartition(".")[0]
        if name in sys.modules:
            continue
        if parent:  # a package's own submodule: there when the package is
            if isinstance(sys.modules.get(parent), _Deferred):
                sys.modules[name] = _Deferred(name)
        elif importlib.util.find_spec(name) is not None:
            sys.modules[name] = _Deferred(name)


def deferred(name: str) -> bool:
    """Whether ``name`` is still a stand-in (never used so far)."""
    return isinstance(sys.modules.get(name), _Deferred) and \
        sys.modules.get(name).__spec__ is None
