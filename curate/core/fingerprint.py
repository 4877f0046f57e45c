"""Fingerprints of stage parameters: what decides whether a checkpoint may be reused.

A fingerprint is a digest of a JSON description built from explicit inputs only (nothing is
pickled; values under secret-looking names are never described). It changes whenever the
work a stage would do changes and stays the same across processes when it does not: plain
values by value, containers to any depth, tables and arrays by a digest of their content,
files named by a ``Path`` by their bytes, functions by the content of their code, closure,
defaults and the globals they read, classes by the source of every class of their MRO that
is the user's (installed packages by name and version), other objects by ``fingerprint()``
or their class and public attributes.

A value that cannot be described stably (a ``repr`` with a memory address, an open file, a
generator) makes the fingerprint *unstable*: the runner then recomputes the stage and says
why, never reusing a checkpoint on a guess. `fingerprint_ignore` leaves out an object the
work does not depend on (a database connection, a logger, a client).
"""
from __future__ import annotations

import builtins
import dataclasses
import enum
import functools
import hashlib
import inspect
import json
import re
import sys
import sysconfig
import types
from contextvars import ContextVar
from pathlib import Path, PurePath

from .class_source import class_source
from .versions import installed_version

SECRET_WORDS = ("api_key", "apikey", "secret", "token_", "password", "authorization")
LARGE = 256  # containers with more items are described by a digest of their items
MAX_FILE_BYTES = 256 * 2**20  # a Path naming a larger file is described by size and mtime
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")
_IGNORED: dict[int, object] = {}  # id -> the object (kept alive, so its id stays its own)


def fingerprint_ignore(value):
    """Leave ``value`` (a connection, a logger, a client: no input of the work) out of every
    fingerprint, described by its type alone, so it neither changes a fingerprint nor makes
    one unstable; returns it: ``DB = fingerprint_ignore(sqlite3.connect("labels.db"))``.
    What it reads is not checked: when that data changes, change a value the stage does
    read (a version number)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        raise TypeError(f"fingerprint_ignore takes an object such as a connection, got "
                        f"{type(value).__name__} {value!r:.40}: plain values are inputs")
    _IGNORED[id(value)] = value
    return value


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """A digest, and the reasons it cannot be trusted (empty when it can)."""

    digest: str
    unstable: tuple[str, ...] = ()

    @property
    def stable(self) -> bool:
        return not self.unstable

    def describe(self) -> str:
        """What the manifest shows: the digest, or ``unstable: <what>``."""
        return self.digest if self.stable else "unstable: " + "; ".join(self.unstable[:3])


class _Walk:
    """State of one description: the objects on the current path (cycles) and problems."""

    def __init__(self):
        self.active: set[int] = set()
        self.unstable: list[str] = []
        self.memo: dict[int, tuple[object, object]] = {}  # id -> (the object, kept alive; its description)

    def flag(self, what: str) -> str:
        if what not in self.unstable:
            self.unstable.append(what)
        return f"<unstable: {what}>"


_walk: ContextVar[_Walk | None] = ContextVar("curate_fingerprint_walk", default=None)


def _is_secret(name: str) -> bool:
    low = name.lower()
    return any(word in low for word in SECRET_WORDS)


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)}
    return tuple(sorted(str(Path(r).resolve()) for r in roots if r))


def is_library_module(module: types.ModuleType | None) -> bool:
    """True for Python's own modules and installed packages, False for the user's code
    (a spec file, a notebook's ``__main__``, a project folder, an editable install)."""
    if module is None:
        return False
    name = module.__name__.split(".")[0]
    if name in sys.builtin_module_names or name in getattr(sys, "stdlib_module_names", ()):
        return True
    path = getattr(module, "__file__", None)
    return bool(path) and str(Path(path).resolve()).startswith(_library_roots())


@functools.lru_cache(maxsize=None)
def _distributions() -> dict:
    from importlib import metadata

    return metadata.packages_distributions()


@functools.lru_cache(maxsize=None)
def _package_version(module_name: str) -> str | None:
    top = module_name.split(".")[0]
    for dist in _distributions().get(top, []):
        version = installed_version(dist)
        if version is not None:
            return version
    return None


def _code(code: types.CodeType) -> dict:
    """A code object by content: bytecode, constants (nested code by content), names."""
    consts = []
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            consts.append(_code(const))
        elif isinstance(const, frozenset):
            consts.append(sorted(repr(c) for c in const))
        else:
            consts.append(repr(const))
    return {"bytecode": hashlib.sha256(code.co_code).hexdigest()[:16], "consts": consts,
            "names": list(code.co_names), "args": code.co_argcount,
            "kwonly": code.co_kwonlyargcount, "flags": code.co_flags}


def _names_read(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_read(const)
    return names


def _module_reference(module: types.ModuleType, attrs: set[str], walk: _Walk):
    if is_library_module(module):
        return {"module": module.__name__, "version": _package_version(module.__name__)}
    read = {a: describe(getattr(module, a), walk) for a in sorted(attrs) if hasattr(module, a)
            and not a.startswith("__")}
    return {"module": module.__name__, "reads": read}


def _globals_read(fn, walk: _Walk) -> dict:
    names = _names_read(fn.__code__)
    scope = fn.__globals__
    out = {}
    for name in sorted(names):
        if name not in scope or name.startswith("__"):
            continue  # an attribute name, a builtin, or a global not defined yet
        value = scope[name]
        if isinstance(value, types.ModuleType):
            out[name] = _module_reference(value, names, walk)
        elif value is not builtins and not _is_secret(name):
            out[name] = describe(value, walk)
    return out


def _function(fn, walk: _Walk):
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"
    if module is not None and is_library_module(module) and not name.startswith("__"):
        return {"fn": name, "version": _package_version(module.__name__),
                "code": _code(fn.__code__)}
    cells = [c.cell_contents if _cell_set(c) else "<empty>" for c in (fn.__closure__ or ())]
    return {"fn": name, "code": _code(fn.__code__),
            "closure": [describe(v, walk) for v in cells],
            "defaults": describe(list(fn.__defaults__ or ()), walk),
            "kwdefaults": describe(dict(fn.__kwdefaults__ or {}), walk),
            "globals": _globals_read(fn, walk)}


def _cell_set(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _class(cls: type, walk: _Walk):
    sources = []
    for klass in cls.__mro__:
        if klass is object:
            continue
        module = sys.modules.get(klass.__module__)
        if module is not None and is_library_module(module):
            sources.append({"class": f"{klass.__module__}.{klass.__qualname__}",
                            "version": _package_version(klass.__module__)})
            continue
        text = class_source(klass)
        if text is None:
            methods = {k: describe(v, walk) for k, v in sorted(vars(klass).items())
                       if inspect.isfunction(v)}
            sources.append({"class": klass.__qualname__, "methods": methods})
        else:
            sources.append({"class": f"{klass.__module__}.{klass.__qualname__}",
                            "source": hashlib.sha256(text.encode()).hexdigest()[:16]})
    return {"class": sources}


def _path(path: PurePath):
    described = {"path": str(path)}
    try:
        p = Path(path)
        if p.is_file():
            stat = p.stat()
            if stat.st_size <= MAX_FILE_BYTES:
                with open(p, "rb") as fh:
                    described["sha256"] = hashlib.file_digest(fh, "sha256").hexdigest()[:16]
            else:
                described.update(size=stat.st_size, mtime=stat.st_mtime_ns)
    except OSError:
        pass
    return described


def _container(value, walk: _Walk):
    if isinstance(value, dict):
        items = {str(k): ("<secret>" if _is_secret(str(k)) else describe(v, walk))
                 for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
        return items if len(items) <= LARGE else {"dict": len(items), "sha256": _digest(items)}
    items = [describe(v, walk) for v in value]
    if isinstance(value, (set, frozenset)):
        items = sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if len(items) > LARGE:
        return {type(value).__name__: len(items), "sha256": _digest(items)}
    return items if isinstance(value, list) else {type(value).__name__: items}


def _table(value) -> dict | None:
    """Tables, their indexes and arrays by a digest of their content (values by position,
    the index included); pandas and numpy scalars by value."""
    if not any(c.__module__.partition(".")[0] in ("pandas", "numpy")
               for c in type(value).__mro__):
        return None  # and pandas is not imported to find out (see curate.pipeline.startup)
    import numpy as np
    import pandas as pd

    from .table import table_digest

    if isinstance(value, pd.DataFrame):
        return {"dataframe": table_digest(value)}
    if isinstance(value, pd.Series):
        return {"series": table_digest(value.to_frame(name="values")), "name": repr(value.name)}
    if isinstance(value, pd.Index):
        return {"index": table_digest(pd.DataFrame(index=value))}
    if isinstance(value, pd.api.extensions.ExtensionArray) or \
            (isinstance(value, np.ndarray) and value.dtype == object):
        flat = value.ravel() if isinstance(value, np.ndarray) else value
        return {"array": table_digest(pd.DataFrame({"values": pd.Series(flat, copy=False)})),
                "shape": list(value.shape)}
    if isinstance(value, np.ndarray):
        return {"ndarray": str(value.dtype), "shape": list(value.shape),
                "sha256": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]}
    if isinstance(value, np.generic):
        return {"scalar": repr(value.item())}
    if isinstance(value, (pd.Timestamp, pd.Timedelta, pd.Period, pd.Interval)):
        return {"scalar": repr(value)}
    return None


def describe(value, walk: _Walk | None = None):
    """A JSON-able description of ``value``, stable across processes (see the module doc)."""
    walk = walk or _walk.get() or _Walk()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return {"bytes": hashlib.sha256(value).hexdigest()[:16]}
    if _IGNORED.get(id(value)) is value:
        return {"ignored": type(value).__qualname__}
    if id(value) in walk.active:
        return "<cycle>"
    if id(value) in walk.memo:
        return walk.memo[id(value)][1]
    walk.active.add(id(value))
    try:
        described = _describe(value, walk)
    finally:
        walk.active.discard(id(value))
    walk.memo[id(value)] = (value, described)
    return described


def _describe(value, walk: _Walk):
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return _container(value, walk)
    if isinstance(value, enum.Enum):
        return {"enum": f"{type(value).__qualname__}.{value.name}"}
    if isinstance(value, PurePath):
        return _path(value)
    table = _table(value)
    if table is not None:
        return table
    if isinstance(value, functools.partial):
        return {"partial": describe(value.func, walk), "args": describe(list(value.args), walk),
                "keywords": describe(dict(value.keywords), walk)}
    if inspect.ismethod(value):
        return {"method": describe(value.__func__, walk), "self": describe(value.__self__, walk)}
    if inspect.isfunction(value):
        return _function(value, walk)
    if hasattr(value, "__wrapped__") and callable(value):  # lru_cache and other wrappers
        return {"wraps": describe(value.__wrapped__, walk), "type": type(value).__qualname__}
    if inspect.isclass(value):
        return _class(value, walk)
    if isinstance(value, types.ModuleType):
        return _module_reference(value, set(), walk)
    if inspect.isbuiltin(value) or isinstance(value, (types.MethodWrapperType,
                                                      types.WrapperDescriptorType)):
        owner = getattr(value, "__self__", None)
        if owner is not None and not isinstance(owner, types.ModuleType):
            return {"builtin": value.__name__, "self": describe(owner, walk)}
        return {"builtin": f"{getattr(value, '__module__', None)}.{value.__qualname__}"}
    fingerprint = getattr(value, "fingerprint", None)
    if callable(fingerprint) and not inspect.isclass(value):
        fp = fingerprint()
        if isinstance(fp, Fingerprint):
            walk.unstable.extend(u for u in fp.unstable if u not in walk.unstable)
            fp = fp.digest
        return {"type": type(value).__qualname__, "fp": fp}
    return _object(value, walk)


def _object(value, walk: _Walk):
    if isinstance(value, (types.GeneratorType, types.CoroutineType)) or hasattr(value, "fileno"):
        return walk.flag(f"a {type(value).__name__} cannot be described")
    if dataclasses.is_dataclass(value):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"type": describe(type(value), walk), "fields": _container(fields, walk)}
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict):
        public = {k: v for k, v in state.items() if not k.startswith("_")}
        return {"type": describe(type(value), walk), "attrs": _container(public, walk)}
    text = repr(value)
    if _ADDRESS.search(text):
        return walk.flag(f"{type(value).__qualname__} object has no stable description")
    return {"type": type(value).__qualname__, "repr": text}


BRIEF = 200  # characters of JSON a description may take in the manifest before it is digested
BRIEF_PLAIN = 2000  # ... when it is a list or mapping of plain values (field names, labels)


def brief(description):
    """A description as the manifest shows it: as it is when short, else the names it
    holds (function, type, path) and a digest of the whole, so that a change still shows."""
    text = json.dumps(description, sort_keys=True, ensure_ascii=False)
    items = description.values() if isinstance(description, dict) else description
    plain = isinstance(description, (list, dict)) and all(
        v is None or isinstance(v, (bool, int, float, str)) for v in items)
    if len(text) <= (BRIEF_PLAIN if plain else BRIEF):
        return description
    out = {}
    if isinstance(description, dict):
        out = {k: description[k] for k in ("fn", "builtin", "enum", "path", "ignored")
               if isinstance(description.get(k), str)}
        kind = description.get("type")
        classes = kind.get("class") if isinstance(kind, dict) else None
        if isinstance(kind, str):
            out["type"] = kind
        elif isinstance(classes, list) and classes and isinstance(classes[0], dict):
            out["type"] = classes[0].get("class")
        inner = description.get("partial") or description.get("method") or \
            description.get("wraps")
        if isinstance(inner, dict) and isinstance(inner.get("fn"), str):
            out["fn"] = inner["fn"]
    elif isinstance(description, list):
        out["items"] = len(description)
    out["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return out


def fingerprint_of(value) -> Fingerprint:
    """The :class:`Fingerprint` of ``describe(value)``."""
    walk = _Walk()
    token = _walk.set(walk)
    try:
        text = json.dumps(describe(value, walk), sort_keys=True, ensure_ascii=False)
    finally:
        _walk.reset(token)
    return Fingerprint(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
                       tuple(walk.unstable))
